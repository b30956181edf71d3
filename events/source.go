package events

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Format is how a stream of events is written.
type Format string

// The formats.
const (
	// FormatJSONLines is runstep's log: one event a line, read by Reader.
	FormatJSONLines Format = "jsonl"
	// FormatSSE is server-sent events as OpenAI streams them, read by
	// Importer.
	FormatSSE Format = "sse"
)

// sniffLen is how much of an input Detect looks at.
const sniffLen = 4 << 10

// Detect says what prefix, the start of an input, is: a JSON-lines log
// starts with "{", an SSE stream with a field or a comment ("event:",
// "data:", "id:", "retry:", ":"). Blank lines and a UTF-8 byte order mark
// before it are passed over, and an input with nothing else is an empty
// log. It returns a *LogError of kind ErrMalformed for anything else.
func Detect(prefix []byte) (Format, error) {
	rest := bytes.TrimPrefix(prefix, []byte("\xef\xbb\xbf"))
	rest = bytes.TrimLeft(rest, " \t\r\n")
	if len(rest) == 0 {
		return FormatJSONLines, nil
	}
	if rest[0] == '{' {
		return FormatJSONLines, nil
	}
	line := rest
	if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
		line = line[:i]
	}
	for _, field := range []string{":", "event:", "data:", "id:", "retry:"} {
		if bytes.HasPrefix(line, []byte(field)) {
			return FormatSSE, nil
		}
	}
	return "", problem(Position{Line: 1}, 0, ErrMalformed, "neither a JSON-lines log nor an SSE stream: starts with %q", clip(line))
}

// NewSource returns a Source of r, a JSON-lines log (a Reader) or an SSE
// stream (an Importer), whichever its start says it is (see Detect).
func NewSource(r io.Reader, opts ReadOptions) (Source, Format, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	prefix, err := br.Peek(sniffLen)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, "", fmt.Errorf("events: read %s: %w", opts.File, err)
	}
	format, err := Detect(prefix)
	if err != nil {
		var le *LogError
		if errors.As(err, &le) {
			le.File = opts.File
		}
		return nil, "", err
	}
	if format == FormatSSE {
		return NewImporter(br, opts), format, nil
	}
	return NewReader(br, opts), format, nil
}
