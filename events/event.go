// Package events owns what runstep says about every change: the Event (its
// sequence number, its name as OpenAI streams it, its time and the object
// after the change) and the JSON-lines log it is written to.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/runstep/runstep/lifecycle"
)

// Type is an event's name, exactly as the OpenAI stream names it.
type Type string

// The step events. A step is created in progress, so its first event is
// TypeStepCreated; each terminal status has its own event.
const (
	TypeStepCreated   Type = "thread.run.step.created"
	TypeStepCompleted Type = "thread.run.step.completed"
	TypeStepFailed    Type = "thread.run.step.failed"
	TypeStepCancelled Type = "thread.run.step.cancelled"
	TypeStepExpired   Type = "thread.run.step.expired"
)

// ErrUnknownType is an event name runstep does not know.
var ErrUnknownType = errors.New("events: unknown event type")

var stepTypes = map[lifecycle.Status]Type{
	lifecycle.StatusInProgress: TypeStepCreated,
	lifecycle.StatusCompleted:  TypeStepCompleted,
	lifecycle.StatusFailed:     TypeStepFailed,
	lifecycle.StatusCancelled:  TypeStepCancelled,
	lifecycle.StatusExpired:    TypeStepExpired,
}

// StepType returns the event that announces a step reaching status s.
func StepType(s lifecycle.Status) Type { return stepTypes[s] }

// Event is one committed change.
type Event struct {
	// Seq numbers the events of one log: 1, 2, 3, … with no gap. A store
	// assigns it when the event commits.
	Seq  int64
	Type Type
	// At is when the change happened, in Unix seconds.
	At int64
	// Step is the step after the change.
	Step *lifecycle.Step
}

// Clone returns a deep copy of e.
func (e Event) Clone() Event {
	if e.Step != nil {
		s := e.Step.Clone()
		e.Step = &s
	}
	return e
}

type eventJSON struct {
	Seq  int64           `json:"seq"`
	Type Type            `json:"event"`
	At   int64           `json:"at"`
	Data json.RawMessage `json:"data"`
}

// MarshalJSON writes {"seq":…,"event":…,"at":…,"data":{…}}.
func (e Event) MarshalJSON() ([]byte, error) {
	if e.Step == nil {
		return nil, fmt.Errorf("events: event %d (%s) has no data", e.Seq, e.Type)
	}
	data, err := e.Step.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return json.Marshal(eventJSON{e.Seq, e.Type, e.At, data})
}

// UnmarshalJSON reads an event and checks that its name matches its data:
// a step event carries a valid step in the status the name announces.
func (e *Event) UnmarshalJSON(b []byte) error {
	var w eventJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if !strings.HasPrefix(string(w.Type), "thread.run.step.") {
		return fmt.Errorf("%w: %q", ErrUnknownType, w.Type)
	}
	if len(w.Data) == 0 || string(w.Data) == "null" {
		return fmt.Errorf("events: %s event without data", w.Type)
	}
	var step lifecycle.Step
	if err := json.Unmarshal(w.Data, &step); err != nil {
		return fmt.Errorf("events: %s data: %w", w.Type, err)
	}
	if want := StepType(step.Status); want != w.Type {
		if !knownStepType(w.Type) {
			return fmt.Errorf("%w: %q", ErrUnknownType, w.Type)
		}
		return fmt.Errorf("events: %s event carries a %s step", w.Type, step.Status)
	}
	*e = Event{Seq: w.Seq, Type: w.Type, At: w.At, Step: &step}
	return nil
}

func knownStepType(t Type) bool {
	for _, st := range stepTypes {
		if st == t {
			return true
		}
	}
	return false
}
