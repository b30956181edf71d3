package memory

import (
	"maps"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
)

// The log holds every event ever committed, so it is most of a memory
// store's size; and on a machine where a fresh page of memory costs
// microseconds, size is time. Most steps are created in progress and then
// only end: the step as it ended then takes the place of its in-progress
// copy, and the created event is told from it, halving what a step keeps
// and what its end allocates.

// entry is one event of the log; its seq is its place in the log plus one.
type entry struct {
	typ  events.Type
	at   int64
	step *lifecycle.Step
	run  *lifecycle.Run
	// form, if not zero, says that step is the version after the event's
	// own (it took that one's place), and how the event's is told from it.
	form createdForm
}

// createdForm says how a step's created event is told from the version
// that ended it.
type createdForm uint8

const (
	// fromLater: the event's step is the later step in progress: no
	// stamps, no error, no usage, the version before.
	fromLater createdForm = 1 << iota
	// callsNil and callsEmpty: the event's details had no tool calls,
	// null or empty.
	callsNil
	callsEmpty
)

// chunkSize is how many events one chunk of the log holds.
const chunkSize = 4096

// eventLog is the event log in fixed-size chunks: appending never copies
// the events already logged, as one growing slice would.
type eventLog struct {
	chunks [][]entry
	n      int
}

func (l *eventLog) len() int { return l.n }

func (l *eventLog) at(i int) *entry { return &l.chunks[i/chunkSize][i%chunkSize] }

func (l *eventLog) append(e entry) {
	if l.n%chunkSize == 0 {
		l.chunks = append(l.chunks, make([]entry, 0, chunkSize))
	}
	last := &l.chunks[len(l.chunks)-1]
	*last = append(*last, e)
	l.n++
}

// event returns a copy of the event with Seq i+1.
func (l *eventLog) event(i int) events.Event {
	e := l.at(i)
	ev := events.Event{Seq: int64(i) + 1, Type: e.typ, At: e.at}
	switch {
	case e.run != nil:
		run := e.run.Clone()
		ev.Run = &run
	case e.form != 0:
		step := e.form.of(e.step)
		ev.Step = &step
	default:
		step := e.step.Clone()
		ev.Step = &step
	}
	return ev
}

// isCreated reports whether b's step is as its creation left it: version
// 1, written by a created event that tells nothing from a later copy yet.
// (An update that keeps a step in progress is typed created too; its copy
// is version 2 or more, and never takes another's place.)
func (l *eventLog) isCreated(b *stepBox) bool {
	if b == nil || b.step.Version != 1 {
		return false
	}
	logged := l.at(b.logged)
	return logged.step == &b.step && logged.form == 0 && logged.typ == events.TypeStepCreated
}

// movesOn reports whether next, a change of created as a writer read it
// (its Version is created's), only moves created on from in progress, so
// that created can be told from next: it is next in progress, with no
// stamps, error or usage, and no tool calls.
func movesOn(created, next *lifecycle.Step) bool {
	c, n := created, next
	return c.Status == lifecycle.StatusInProgress && c.Version == n.Version &&
		c.ExpiredAt == nil && c.CancelledAt == nil && c.FailedAt == nil && c.CompletedAt == nil &&
		c.LastError == nil && c.Usage == nil &&
		c.ID == n.ID && c.CreatedAt == n.CreatedAt && c.AssistantID == n.AssistantID &&
		c.ThreadID == n.ThreadID && c.RunID == n.RunID && c.Type == n.Type &&
		(c.Metadata == nil) == (n.Metadata == nil) && maps.Equal(c.Metadata, n.Metadata) &&
		c.Details.Type == n.Details.Type && len(c.Details.ToolCalls) == 0 &&
		(c.Details.MessageCreation == nil) == (n.Details.MessageCreation == nil) &&
		(c.Details.MessageCreation == nil || *c.Details.MessageCreation == *n.Details.MessageCreation)
}

// formOf returns the form that tells created, a step movesOn
// accepted, from its next copy.
func formOf(created *lifecycle.Step) createdForm {
	if created.Details.ToolCalls == nil {
		return fromLater | callsNil
	}
	return fromLater | callsEmpty
}

// of returns a copy of the step the form tells from next.
func (f createdForm) of(next *lifecycle.Step) lifecycle.Step {
	s := next.Clone()
	s.Status = lifecycle.StatusInProgress
	s.ExpiredAt, s.CancelledAt, s.FailedAt, s.CompletedAt = nil, nil, nil, nil
	s.LastError, s.Usage = nil, nil
	s.Version--
	if f&callsNil != 0 {
		s.Details.ToolCalls = nil
	} else {
		s.Details.ToolCalls = []lifecycle.ToolCall{}
	}
	return s
}
