package events

import (
	"errors"
	"fmt"
	"strings"
)

// What can be wrong with a log or a stream. Every error about one is a
// [*LogError] that says where, and unwraps to one of these.
var (
	// ErrMalformed is a record that is not an event: bad JSON, a missing
	// or mistyped field, data that is not a valid step or run, a status
	// the event's name does not announce, or a line too long to read.
	ErrMalformed = errors.New("events: malformed event")
	// ErrUnknownType is an event name runstep does not know.
	ErrUnknownType = errors.New("events: unknown event type")
	// ErrSeqGap is a seq beyond the next one: events are missing.
	ErrSeqGap = errors.New("events: gap in seq")
	// ErrSeqRepeat is a seq at or before one already read: an event is
	// repeated, or events are out of order.
	ErrSeqRepeat = errors.New("events: seq repeated or out of order")
	// ErrTornLine is a last line that was not written whole, as a crash
	// in the middle of a write leaves it: it has no trailing newline. Only
	// the last line can be torn; Repair removes it (or, if the event on it
	// is whole, ends it with its newline).
	ErrTornLine = errors.New("events: torn final line")
	// ErrViolation is an event the lifecycle machines would not have
	// written: a transition they refuse, or data that differs from what
	// they make of the previous state and the event's time.
	ErrViolation = errors.New("events: lifecycle violation")
)

// kinds lists the sentinels a LogError's Kind may be.
var kinds = []error{ErrMalformed, ErrUnknownType, ErrSeqGap, ErrSeqRepeat, ErrTornLine, ErrViolation}

// Position is where a record of a log or stream starts.
type Position struct {
	// File names the input; empty when it has no name.
	File string
	// Line is the 1-based number of the record's first line; 0 when
	// unknown.
	Line int64
	// Offset is the byte offset of the record's first line in the input.
	Offset int64
}

// String returns "file:line", or as much of it as is known.
func (p Position) String() string {
	switch {
	case p.File != "" && p.Line > 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	case p.File != "":
		return p.File
	case p.Line > 0:
		return fmt.Sprintf("line %d", p.Line)
	}
	return ""
}

// LogError is something wrong with one record of a log or stream: what
// (Kind, and the cause in Err) and where (the Position, and the event's
// Seq when it is known). It unwraps to both Kind and Err, so errors.Is
// finds the sentinel and errors.As finds the cause, such as a
// *lifecycle.TransitionError or a *json.SyntaxError.
type LogError struct {
	Position
	// Seq is the event's seq; 0 when the record is too broken to say.
	Seq int64
	// Kind is one of ErrMalformed, ErrUnknownType, ErrSeqGap,
	// ErrSeqRepeat, ErrTornLine and ErrViolation.
	Kind error
	// Err says what exactly is wrong; it may be nil.
	Err error
}

func (e *LogError) Error() string {
	var b strings.Builder
	b.WriteString("events: ")
	if p := e.Position.String(); p != "" {
		b.WriteString(p)
		b.WriteString(": ")
	}
	if e.Seq != 0 {
		fmt.Fprintf(&b, "seq %d: ", e.Seq)
	}
	kind := "error"
	if e.Kind != nil {
		kind = strings.TrimPrefix(e.Kind.Error(), "events: ")
	}
	b.WriteString(kind)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns Kind and Err.
func (e *LogError) Unwrap() []error {
	out := make([]error, 0, 2)
	for _, err := range []error{e.Kind, e.Err} {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// problem returns a LogError of the given kind, its cause formatted.
func problem(pos Position, seq int64, kind error, format string, args ...any) *LogError {
	return &LogError{Position: pos, Seq: seq, Kind: kind, Err: fmt.Errorf(format, args...)}
}

// KindOf returns the sentinel err unwraps to (ErrMalformed, …,
// ErrViolation), or nil if it is none of them.
func KindOf(err error) error {
	var le *LogError
	if errors.As(err, &le) && le.Kind != nil {
		return le.Kind
	}
	for _, k := range kinds {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}
