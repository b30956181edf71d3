// Package events owns what runstep says about every change: the Event (its
// sequence number, its name as OpenAI streams it, its time and the object
// after the change) and the forms it travels in.
//
//   - The JSON-lines log: Writer appends to it, Reader reads it back in
//     constant memory and reports every line that is not the next event
//     (malformed, of an unknown type, out of seq, torn by a crash), and
//     Repair cuts off a torn last line.
//   - Server-sent events as the OpenAI streaming API sends them: SSEWriter
//     writes them, SSEReader reads any SSE stream, and Importer turns a
//     real capture of the Assistants API into runstep's events.
//
// Reader and Importer are both a Source, which the replay subpackage
// feeds through the lifecycle machines into a store. Every problem with a
// log or stream is a *LogError that says where it is and unwraps to one
// of the sentinels ErrMalformed, ErrUnknownType, ErrSeqGap, ErrSeqRepeat,
// ErrTornLine and ErrViolation.
package events

import (
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

// known holds every event runstep writes.
var known = func() map[Type]bool {
	m := map[Type]bool{TypeRunCreated: true}
	for _, t := range stepTypes {
		m[t] = true
	}
	for _, s := range lifecycle.RunStatuses {
		m[RunType(s)] = true
	}
	return m
}()

// Known reports whether t is an event runstep writes.
func (t Type) Known() bool { return known[t] }
