package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Writer appends events to a JSON-lines log, one event a line. It buffers:
// call Flush (or Sync, for a file) to make the lines reach the writer.
//
// A line is put in the buffer whole or not at all, and seqs must follow
// each other: after the first event (whose seq may be any positive
// number, to append to a log that has events already), each event's seq
// is the one before plus one. After an error from the underlying writer,
// every call returns that error: the tail of the output may then be a
// torn line, which Repair removes.
type Writer struct {
	w    io.Writer
	buf  *bufio.Writer
	line []byte // reused for each line
	last int64  // the seq of the last event written; 0 before the first
	err  error  // the underlying writer's first error, returned ever after
}

// NewWriter returns a Writer that appends to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, buf: bufio.NewWriterSize(w, 64<<10)}
}

// Write appends ev as one line. It returns a *LogError of kind ErrSeqGap
// or ErrSeqRepeat, and writes nothing, if ev.Seq does not follow the last
// seq written.
func (w *Writer) Write(ev Event) error {
	if w.err != nil {
		return w.err
	}
	switch {
	case ev.Seq <= 0:
		return problem(Position{}, ev.Seq, ErrMalformed, "seq %d is not positive", ev.Seq)
	case w.last != 0 && ev.Seq > w.last+1:
		return problem(Position{}, ev.Seq, ErrSeqGap, "want seq %d next", w.last+1)
	case w.last != 0 && ev.Seq <= w.last:
		return problem(Position{}, ev.Seq, ErrSeqRepeat, "want seq %d next", w.last+1)
	}
	line, err := ev.appendJSON(w.line[:0])
	if err != nil {
		return err
	}
	w.line = append(line, '\n')
	if _, err := w.buf.Write(w.line); err != nil {
		w.err = fmt.Errorf("events: write event %d: %w", ev.Seq, err)
		return w.err
	}
	w.last = ev.Seq
	return nil
}

// Last returns the seq of the last event written, 0 before the first.
func (w *Writer) Last() int64 { return w.last }

// Flush writes the buffered lines to the underlying writer.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.buf.Flush(); err != nil {
		w.err = fmt.Errorf("events: flush: %w", err)
		return w.err
	}
	return nil
}

// Sync flushes, then asks the underlying writer to make the lines durable
// if it can (an *os.File can).
func (w *Writer) Sync() error {
	if err := w.Flush(); err != nil {
		return err
	}
	if s, ok := w.w.(interface{ Sync() error }); ok {
		if err := s.Sync(); err != nil {
			return fmt.Errorf("events: sync: %w", err)
		}
	}
	return nil
}

// DefaultMaxLine is the longest line a Reader accepts unless told
// otherwise: far more than any step the API makes.
const DefaultMaxLine = 16 << 20

// ReadOptions configure a Reader, an SSEReader or an Importer.
type ReadOptions struct {
	// File names the input in errors and positions.
	File string
	// FirstSeq is the seq the first event must have (an Importer gives it
	// to the first event it imports). 0 means 1. Set it to read a log that
	// goes on from another.
	FirstSeq int64
	// MaxLine is the longest line accepted, in bytes; 0 means
	// DefaultMaxLine. A longer line is reported (ErrMalformed) and passed
	// over without being held in memory.
	MaxLine int
}

func (o ReadOptions) withDefaults() ReadOptions {
	if o.FirstSeq <= 0 {
		o.FirstSeq = 1
	}
	if o.MaxLine <= 0 {
		o.MaxLine = DefaultMaxLine
	}
	return o
}

// Source is a stream of events in log order: a Reader (a JSON-lines log)
// or an Importer (an OpenAI SSE stream).
type Source interface {
	// Read returns the next event, and io.EOF after the last. The event
	// is the caller's: the source keeps no part of it. A *LogError
	// reports a bad record; Read can then be called again to go on past
	// it. With ErrSeqGap or ErrSeqRepeat the event is returned too: it is
	// whole, only not where it should be. Any other error (from the
	// underlying reader) ends the stream.
	Read() (Event, error)
	// Position returns where the record Read last returned (or reported)
	// begins.
	Position() Position
	// Next returns the seq the next event must have: where a log that
	// goes on from this one starts (see ReadOptions.FirstSeq).
	Next() int64
}

// Reader reads a JSON-lines log, one line at a time, in memory that does
// not grow with the log: only the longest line is held. It reports, as a
// *LogError with the line's position, each line that is not an event of a
// known type (ErrMalformed, ErrUnknownType), each seq out of turn
// (ErrSeqGap, ErrSeqRepeat), and a last line without its newline
// (ErrTornLine), and goes on with the next line. It drops nothing
// silently. A line may end in "\r\n".
//
// A log's lines name the same ids again and again, and a Reader remembers
// the strings of the last lines it read (a fixed number of them): events
// share their strings (which no one can change), so that a log's events
// kept in memory hold each id once. Each event's other memory is its own.
type Reader struct {
	opts  ReadOptions
	lines lineReader
	dec   *decoder // keeps what lines share; see fast.go
	pos   Position // of the last line read
	next  int64    // the seq the next event must have
	err   error    // sticky: io.EOF, or the underlying reader's error
	// tornStart is the start of a torn last line, for Repair.
	tornStart []byte
}

var _ Source = (*Reader)(nil)

// NewReader returns a Reader of the log r.
func NewReader(r io.Reader, opts ReadOptions) *Reader {
	opts = opts.withDefaults()
	return &Reader{
		opts: opts, lines: newLineReader(r, opts.MaxLine), dec: newDecoder(),
		next: opts.FirstSeq, pos: Position{File: opts.File},
	}
}

// Position implements Source.
func (r *Reader) Position() Position { return r.pos }

// Next returns the seq the next event must have.
func (r *Reader) Next() int64 { return r.next }

// Read implements Source.
func (r *Reader) Read() (Event, error) {
	if r.err != nil {
		return Event{}, r.err
	}
	line, start, terminated, tooLong, err := r.lines.readLine()
	if err == nil {
		r.pos = Position{File: r.opts.File, Line: r.pos.Line + 1, Offset: start}
	}
	switch {
	case err == io.EOF:
		r.err = io.EOF
		return Event{}, io.EOF
	case err != nil:
		r.err = fmt.Errorf("events: read %s: %w", r.describe(), err)
		return Event{}, r.err
	case !terminated:
		// Only the last line can lack its newline: the input ends here.
		r.err = io.EOF
		return Event{}, r.torn(line, tooLong)
	case tooLong:
		r.next++
		return Event{}, problem(r.pos, 0, ErrMalformed, "line longer than %d bytes", r.opts.MaxLine)
	}
	line = bytes.TrimSuffix(line, []byte{'\r'})
	ev, perr := r.dec.decode(line)
	if perr != nil {
		perr.Position = r.pos
		if perr.Seq == 0 {
			r.next++ // the line most likely held the next event
		} else {
			r.next = perr.Seq + 1
		}
		return Event{}, perr
	}
	return ev, r.checkSeq(ev.Seq)
}

// checkSeq checks seq against the next one, and follows the log: the one
// after seq comes next. One event missing, or one repeated, is then one
// problem, not one for every line after it.
func (r *Reader) checkSeq(seq int64) error {
	want := r.next
	r.next = seq + 1
	switch {
	case seq > want:
		return problem(r.pos, seq, ErrSeqGap, "want seq %d: %d missing", want, seq-want)
	case seq < want:
		return problem(r.pos, seq, ErrSeqRepeat, "want seq %d", want)
	}
	return nil
}

// torn returns the problem of a last line without its newline, saying
// whether the event on it is whole.
func (r *Reader) torn(line []byte, tooLong bool) *LogError {
	le := &LogError{Position: r.pos, Kind: ErrTornLine}
	r.tornStart = r.lines.head // the torn line was not read whole at once: it ended the input
	if tooLong {
		le.Err = fmt.Errorf("incomplete line longer than %d bytes", r.opts.MaxLine)
	} else if ev, perr := decodeEvent(bytes.TrimSuffix(line, []byte{'\r'})); perr == nil {
		le.Seq = ev.Seq
		le.Err = fmt.Errorf("no newline after a whole event (%d bytes)", len(line))
	} else if !json.Valid(line) {
		le.Err = fmt.Errorf("incomplete line (%d bytes)", len(line))
	} else {
		le.Err = fmt.Errorf("no newline after %d bytes that are not an event", len(line))
	}
	return le
}

func (r *Reader) describe() string {
	if r.opts.File != "" {
		return r.opts.File
	}
	return "log"
}

// lineReader reads lines, in memory that holds the longest line only.
type lineReader struct {
	br     *bufio.Reader
	max    int
	long   []byte // a line longer than br's buffer, pieced together
	head   []byte // the start of a line not read whole at once
	offset int64  // bytes read so far
}

func newLineReader(r io.Reader, max int) lineReader {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 64<<10 {
		br = bufio.NewReaderSize(r, 256<<10)
	}
	return lineReader{br: br, max: max}
}

// readLine returns the next line without its newline, the offset where it
// starts, and whether it had a newline. A line longer than max is read to
// its end but not kept. At the end of the input it returns io.EOF. The
// line is valid until the next call.
func (r *lineReader) readLine() (line []byte, start int64, terminated, tooLong bool, err error) {
	start = r.offset
	r.long = r.long[:0]
	n := 0
	for {
		chunk, err := r.br.ReadSlice('\n')
		if n == 0 && err != nil {
			r.head = append(r.head[:0], chunk[:min(len(chunk), 64)]...)
		}
		n += len(chunk)
		r.offset += int64(len(chunk))
		switch {
		case err == nil:
			terminated = true
			chunk = chunk[:len(chunk)-1]
		case errors.Is(err, bufio.ErrBufferFull):
		case err == io.EOF:
			if n == 0 {
				return nil, start, false, false, io.EOF
			}
		default:
			return nil, start, false, false, err
		}
		switch {
		case tooLong || terminated && n-1 > r.max || !terminated && n > r.max:
			tooLong = true
			r.long = r.long[:0]
		case len(r.long) > 0 || err != nil:
			// Not the whole line in one slice of the buffer: keep a copy,
			// since the next ReadSlice overwrites the buffer.
			r.long = append(r.long, chunk...)
			chunk = r.long
		}
		if err == nil || err == io.EOF {
			if tooLong {
				return nil, start, terminated, true, nil
			}
			return chunk, start, terminated, false, nil
		}
	}
}
