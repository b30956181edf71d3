package events

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

// The SSE event that ends an OpenAI stream, and its data.
const (
	SSEDone     = "done"
	SSEDoneData = "[DONE]"
)

// SSEWriter writes events as the OpenAI streaming API sends them:
//
//	event: thread.run.step.completed
//	data: {…the step…}
//
// and, at the end, "event: done" / "data: [DONE]". Like Writer, it
// buffers, puts each message in the buffer whole or not at all, and after
// an error from the underlying writer returns that error to every call.
// The stream carries each event's object, not its seq or time: an
// Importer reads those back from the objects.
type SSEWriter struct {
	buf  *bufio.Writer
	line []byte // reused for each message
	err  error
}

// NewSSEWriter returns an SSEWriter that writes to w.
func NewSSEWriter(w io.Writer) *SSEWriter {
	return &SSEWriter{buf: bufio.NewWriterSize(w, 64<<10)}
}

// Write writes ev as one message.
func (w *SSEWriter) Write(ev Event) error {
	if w.err != nil {
		return w.err
	}
	if strings.ContainsAny(string(ev.Type), "\r\n") || ev.Type == "" {
		return problem(Position{}, ev.Seq, ErrUnknownType, "%q cannot be an SSE event name", ev.Type)
	}
	var data []byte
	var err error
	switch {
	case ev.Step != nil && ev.Run == nil:
		data, err = ev.Step.MarshalJSON()
	case ev.Run != nil && ev.Step == nil:
		data, err = ev.Run.MarshalJSON()
	default:
		return fmt.Errorf("events: event %d (%s) must carry exactly one of a step and a run", ev.Seq, ev.Type)
	}
	if err != nil {
		return fmt.Errorf("events: event %d (%s): %w", ev.Seq, ev.Type, err)
	}
	// Compact JSON has no newline, so the data is one line.
	return w.message(string(ev.Type), data)
}

// Done writes the message that ends a stream, and flushes.
func (w *SSEWriter) Done() error {
	if err := w.message(SSEDone, []byte(SSEDoneData)); err != nil {
		return err
	}
	return w.Flush()
}

// Flush writes the buffered messages to the underlying writer.
func (w *SSEWriter) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.buf.Flush(); err != nil {
		w.err = fmt.Errorf("events: flush SSE: %w", err)
	}
	return w.err
}

func (w *SSEWriter) message(name string, data []byte) error {
	if w.err != nil {
		return w.err
	}
	b := append(w.line[:0], "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	w.line = b
	if _, err := w.buf.Write(b); err != nil {
		w.err = fmt.Errorf("events: write SSE %s: %w", name, err)
	}
	return w.err
}

// SSEMessage is one server-sent event.
type SSEMessage struct {
	// Event is the event's name; empty if the message gave none (SSE then
	// calls it "message").
	Event string
	// Data is the message's data lines, joined by "\n".
	Data []byte
	// ID is the last event id the stream gave, as SSE carries it over.
	ID string
	// Position is where the message's first field is.
	Position Position
}

// SSEReader reads a stream of server-sent events as the HTML standard
// defines them: lines end in "\n", "\r\n" or "\r"; a line starting with
// ":" is a comment; "event", "data" and "id" fields build a message, which
// a blank line ends. It holds the longest line only, so a stream of any
// length reads in constant memory. Several HTTP bodies one after another
// read as one stream.
//
// Where the standard drops input silently, SSEReader reports it instead:
// a last line without its newline is a *LogError of kind ErrTornLine, and a
// line longer than MaxLine one of kind ErrMalformed (the message it is in
// is then passed over). A last message that ends with its line's newline
// but without the blank line is read as whole.
type SSEReader struct {
	opts    ReadOptions
	lines   lineReader
	pending []pendingLine // the rest of a line that held lone "\r"s
	line    int64         // lines read
	id      string        // the last id field
	first   bool          // no line read yet: a BOM may come
	err     error
}

type pendingLine struct {
	text       []byte
	offset     int64
	terminated bool
}

// NewSSEReader returns an SSEReader of r.
func NewSSEReader(r io.Reader, opts ReadOptions) *SSEReader {
	opts = opts.withDefaults()
	return &SSEReader{opts: opts, lines: newLineReader(r, opts.MaxLine), first: true}
}

// Read returns the next message, and io.EOF after the last. After a
// *LogError, Read goes on with the next message; any other error ends the
// stream.
func (r *SSEReader) Read() (SSEMessage, error) {
	if r.err != nil {
		return SSEMessage{}, r.err
	}
	var (
		msg     SSEMessage
		data    []byte
		hasData bool
		started bool // a field of this message has been read
		broken  *LogError
	)
	for {
		text, pos, terminated, tooLong, err := r.nextLine()
		switch {
		case err == io.EOF:
			r.err = io.EOF
			if broken != nil {
				return SSEMessage{}, broken
			}
			if hasData {
				msg.Data, msg.ID = data, r.id
				return msg, nil
			}
			return SSEMessage{}, io.EOF
		case err != nil:
			r.err = fmt.Errorf("events: read SSE %s: %w", r.describe(), err)
			return SSEMessage{}, r.err
		case !terminated:
			r.err = io.EOF
			le := &LogError{Position: pos, Kind: ErrTornLine, Err: fmt.Errorf("incomplete line (%d bytes)", len(text))}
			if tooLong {
				le.Err = fmt.Errorf("incomplete line longer than %d bytes", r.opts.MaxLine)
			}
			return SSEMessage{}, le
		case tooLong:
			if broken == nil {
				broken = problem(pos, 0, ErrMalformed, "line longer than %d bytes", r.opts.MaxLine)
			}
			continue
		}
		if len(text) == 0 {
			if broken != nil {
				return SSEMessage{}, broken
			}
			if hasData {
				msg.Data, msg.ID = data, r.id
				return msg, nil
			}
			// A message without data is no message; its name goes too.
			msg, started = SSEMessage{}, false
			continue
		}
		if text[0] == ':' {
			continue // a comment
		}
		if !started {
			msg.Position, started = pos, true
		}
		name, value := text, []byte(nil)
		if i := bytes.IndexByte(text, ':'); i >= 0 {
			name, value = text[:i], text[i+1:]
			value = bytes.TrimPrefix(value, []byte{' '})
		}
		switch string(name) {
		case "event":
			msg.Event = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, value...), true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				r.id = string(value)
			}
		}
		// retry and unknown fields are passed over, as the standard says.
	}
}

// nextLine returns the next line and its position. A line that holds lone
// "\r"s is several lines.
func (r *SSEReader) nextLine() (text []byte, pos Position, terminated, tooLong bool, err error) {
	var start int64
	if len(r.pending) > 0 {
		p := r.pending[0]
		r.pending = r.pending[1:]
		text, start, terminated = p.text, p.offset, p.terminated
	} else {
		text, start, terminated, tooLong, err = r.lines.readLine()
		if err != nil {
			return nil, Position{}, false, false, err
		}
		if r.first {
			r.first = false
			text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf"))
		}
		if terminated {
			text = bytes.TrimSuffix(text, []byte{'\r'})
		}
		if i := bytes.IndexByte(text, '\r'); i >= 0 && !tooLong {
			r.splitCR(text[i+1:], start+int64(i)+1, terminated)
			text, terminated = text[:i], true
		}
	}
	r.line++
	return text, Position{File: r.opts.File, Line: r.line, Offset: start}, terminated, tooLong, nil
}

// splitCR queues the lines after the first lone "\r" of a line.
func (r *SSEReader) splitCR(rest []byte, offset int64, terminated bool) {
	for {
		i := bytes.IndexByte(rest, '\r')
		if i < 0 {
			// An unterminated last piece after a "\r" is empty when the
			// input ends in "\r": that "\r" ended the line.
			if len(rest) > 0 || terminated {
				r.pending = append(r.pending, pendingLine{bytes.Clone(rest), offset, terminated})
			}
			return
		}
		r.pending = append(r.pending, pendingLine{bytes.Clone(rest[:i]), offset, true})
		rest, offset = rest[i+1:], offset+int64(i)+1
	}
}

func (r *SSEReader) describe() string {
	if r.opts.File != "" {
		return r.opts.File
	}
	return "stream"
}
