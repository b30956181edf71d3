package events

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
)

// Writer appends events to a JSON-lines log, one event a line. It buffers:
// call Flush (or Sync, for a file) to make the lines reach the writer.
type Writer struct {
	w   io.Writer
	buf *bufio.Writer
}

// NewWriter returns a Writer that appends to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, buf: bufio.NewWriterSize(w, 64<<10)}
}

// Write appends ev as one line.
func (w *Writer) Write(ev Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("events: write event %d: %w", ev.Seq, err)
	}
	b = append(b, '\n')
	if _, err := w.buf.Write(b); err != nil {
		return fmt.Errorf("events: write event %d: %w", ev.Seq, err)
	}
	return nil
}

// Flush writes the buffered lines to the underlying writer.
func (w *Writer) Flush() error { return w.buf.Flush() }

// Sync flushes, then asks the underlying writer to make the lines durable
// if it can (an *os.File can).
func (w *Writer) Sync() error {
	if err := w.Flush(); err != nil {
		return err
	}
	if s, ok := w.w.(interface{ Sync() error }); ok {
		return s.Sync()
	}
	return nil
}
