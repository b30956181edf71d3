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

// The run events. A run is created queued; every later status has its
// own event, as OpenAI streams them.
const (
	TypeRunCreated        Type = "thread.run.created"
	TypeRunQueued         Type = "thread.run.queued"
	TypeRunInProgress     Type = "thread.run.in_progress"
	TypeRunRequiresAction Type = "thread.run.requires_action"
	TypeRunCancelling     Type = "thread.run.cancelling"
	TypeRunCancelled      Type = "thread.run.cancelled"
	TypeRunFailed         Type = "thread.run.failed"
	TypeRunCompleted      Type = "thread.run.completed"
	TypeRunIncomplete     Type = "thread.run.incomplete"
	TypeRunExpired        Type = "thread.run.expired"
)

// RunType returns the event that announces a run reaching status s.
func RunType(s lifecycle.RunStatus) Type { return Type("thread.run." + string(s)) }

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
	// Step is the step after the change, for a step event; Run is the run
	// after the change, for a run event. Exactly one is set.
	Step *lifecycle.Step
	Run  *lifecycle.Run
}

// IsStep reports whether the event is about a step (its name starts with
// "thread.run.step.").
func (t Type) IsStep() bool { return strings.HasPrefix(string(t), "thread.run.step.") }

// Clone returns a deep copy of e.
func (e Event) Clone() Event {
	if e.Step != nil {
		s := e.Step.Clone()
		e.Step = &s
	}
	if e.Run != nil {
		r := e.Run.Clone()
		e.Run = &r
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
		return nil, err
	}
	return json.Marshal(eventJSON{e.Seq, e.Type, e.At, data})
}

// UnmarshalJSON reads an event and checks that its name matches its data:
// a step event carries a valid step, a run event a valid run, in the status
// the name announces.
func (e *Event) UnmarshalJSON(b []byte) error {
	var w eventJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if !w.Type.Known() {
		return fmt.Errorf("%w: %q", ErrUnknownType, w.Type)
	}
	if len(w.Data) == 0 || string(w.Data) == "null" {
		return fmt.Errorf("events: %s event without data", w.Type)
	}
	ev := Event{Seq: w.Seq, Type: w.Type, At: w.At}
	if w.Type.IsStep() {
		var step lifecycle.Step
		if err := json.Unmarshal(w.Data, &step); err != nil {
			return fmt.Errorf("events: %s data: %w", w.Type, err)
		}
		if StepType(step.Status) != w.Type {
			return fmt.Errorf("events: %s event carries a %s step", w.Type, step.Status)
		}
		ev.Step = &step
	} else {
		var run lifecycle.Run
		if err := json.Unmarshal(w.Data, &run); err != nil {
			return fmt.Errorf("events: %s data: %w", w.Type, err)
		}
		if RunType(run.Status) != w.Type && (w.Type != TypeRunCreated || run.Status != lifecycle.RunStatusQueued) {
			return fmt.Errorf("events: %s event carries a %s run", w.Type, run.Status)
		}
		ev.Run = &run
	}
	*e = ev
	return nil
}

var known = map[Type]bool{TypeRunCreated: true}

func init() {
	for _, t := range stepTypes {
		known[t] = true
	}
	for _, s := range lifecycle.RunStatuses {
		known[RunType(s)] = true
	}
}

// Known reports whether t is an event runstep writes.
func (t Type) Known() bool { return known[t] }
