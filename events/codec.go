package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/runstep/runstep/lifecycle"
)

// MarshalJSON writes {"seq":…,"event":…,"at":…,"data":{…}}.
func (e Event) MarshalJSON() ([]byte, error) {
	return e.appendJSON(make([]byte, 0, 1024))
}

// appendJSON appends the event's JSON to dst. It builds the envelope by
// hand: the data is the step's (or run's) own compact JSON already, and
// passing it through json.Marshal as a RawMessage would only copy and
// re-scan it. The bytes are the ones json.Marshal would write.
func (e Event) appendJSON(dst []byte) ([]byte, error) {
	var data []byte
	var err error
	switch {
	case e.Step != nil && e.Run == nil:
		data, err = e.Step.MarshalJSON()
	case e.Run != nil && e.Step == nil:
		data, err = e.Run.MarshalJSON()
	default:
		return nil, fmt.Errorf("events: event %d (%s) must carry exactly one of a step and a run", e.Seq, e.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("events: event %d (%s): %w", e.Seq, e.Type, err)
	}
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendInt(dst, e.Seq, 10)
	dst = append(dst, `,"event":`...)
	dst = appendJSONString(dst, string(e.Type))
	dst = append(dst, `,"at":`...)
	dst = strconv.AppendInt(dst, e.At, 10)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}'), nil
}

// appendJSONString appends s as a JSON string, exactly as encoding/json
// writes it.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// UnmarshalJSON reads an event and checks that its name matches its data:
// a step event carries a valid step, a run event a valid run, in the status
// the name announces. seq, event, at and data are required, and seq is
// positive. Errors are *LogErrors (without a position) of kind
// ErrMalformed or ErrUnknownType.
func (e *Event) UnmarshalJSON(b []byte) error {
	ev, err := decodeEvent(b)
	if err != nil {
		return err
	}
	*e = ev
	return nil
}

// envelopeIn is what decoding accepts: pointers tell a missing field from
// a zero one.
type envelopeIn struct {
	Seq  *int64          `json:"seq"`
	Type *Type           `json:"event"`
	At   *int64          `json:"at"`
	Data json.RawMessage `json:"data"`
}

// decodeEvent decodes one event. On error it returns a LogError without a
// position, with Seq set if the record got that far.
func decodeEvent(b []byte) (Event, *LogError) {
	if ev, ok := decodeCanonical(b); ok {
		return ev, nil
	}
	return decodeEventStd(b)
}

// decodeEventStd is decodeEvent with the standard library's decoder and
// lifecycle's own UnmarshalJSON methods: the reference that
// decodeCanonical must agree with.
func decodeEventStd(b []byte) (Event, *LogError) {
	var w envelopeIn
	if err := json.Unmarshal(b, &w); err != nil {
		return Event{}, &LogError{Kind: ErrMalformed, Err: err}
	}
	var seq int64
	if w.Seq != nil {
		seq = *w.Seq
	}
	switch {
	case w.Seq == nil:
		return Event{}, problem(Position{}, 0, ErrMalformed, "no seq")
	case seq <= 0:
		return Event{}, problem(Position{}, 0, ErrMalformed, "seq %d is not positive", seq)
	case w.Type == nil:
		return Event{}, problem(Position{}, seq, ErrMalformed, "no event name")
	case !w.Type.Known():
		return Event{}, problem(Position{}, seq, ErrUnknownType, "%q", *w.Type)
	case w.At == nil:
		return Event{}, problem(Position{}, seq, ErrMalformed, "%s event without at", *w.Type)
	case len(w.Data) == 0 || bytes.Equal(w.Data, []byte("null")):
		return Event{}, problem(Position{}, seq, ErrMalformed, "%s event without data", *w.Type)
	}
	ev := Event{Seq: seq, Type: *w.Type, At: *w.At}
	if ev.Type.IsStep() {
		var step lifecycle.Step
		if err := json.Unmarshal(w.Data, &step); err != nil {
			return Event{}, &LogError{Seq: seq, Kind: ErrMalformed, Err: fmt.Errorf("%s data: %w", ev.Type, err)}
		}
		ev.Step = &step
	} else {
		var run lifecycle.Run
		if err := json.Unmarshal(w.Data, &run); err != nil {
			return Event{}, &LogError{Seq: seq, Kind: ErrMalformed, Err: fmt.Errorf("%s data: %w", ev.Type, err)}
		}
		ev.Run = &run
	}
	if err := ev.checkStatus(); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// checkStatus checks that the event's name announces its object's status.
func (e Event) checkStatus() *LogError {
	if e.Step != nil {
		if StepType(e.Step.Status) != e.Type {
			return problem(Position{}, e.Seq, ErrMalformed, "%s event carries a step in status %s", e.Type, e.Step.Status)
		}
		return nil
	}
	if RunType(e.Run.Status) != e.Type && (e.Type != TypeRunCreated || e.Run.Status != lifecycle.RunStatusQueued) {
		return problem(Position{}, e.Seq, ErrMalformed, "%s event carries a run in status %s", e.Type, e.Run.Status)
	}
	return nil
}
