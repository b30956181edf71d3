package memory

import (
	"maps"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
)

// The log holds every event ever committed, so it is most of a memory
// store's size; and on a machine where a fresh page of memory costs
// microseconds, size is time. Most steps are created in progress and then
// only end: their created event is then told from the step as it ended,
// and the step's in-progress copy is let go, halving what a step keeps.

// entry is one event of the log; its seq is its place in the log plus one.
type entry struct {
	typ  events.Type
	at   int64
	step *lifecycle.Step
	run  *lifecycle.Run
	// form, if not zero, says that step is the version after the event's
	// own, and how the event's is told from it.
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

// supersede is told that next replaces prev, the step as the log's entry
// prev.logged wrote it. If that entry can be told from next, it is made
// to, and prev is no longer kept.
func (l *eventLog) supersede(prev stepEntry, next *lifecycle.Step) {
	e := l.at(prev.logged)
	if e.step != prev.step || e.form != 0 {
		return
	}
	if form, ok := createdFrom(prev.step, next); ok {
		e.step, e.form = next, form
	}
}

// createdFrom reports whether created, a step in progress, is next as it
// was before it moved on, and if so how to tell it from next.
func createdFrom(created, next *lifecycle.Step) (createdForm, bool) {
	c, n := created, next
	same := c.Status == lifecycle.StatusInProgress && c.Version == n.Version-1 &&
		c.ExpiredAt == nil && c.CancelledAt == nil && c.FailedAt == nil && c.CompletedAt == nil &&
		c.LastError == nil && c.Usage == nil &&
		c.ID == n.ID && c.CreatedAt == n.CreatedAt && c.AssistantID == n.AssistantID &&
		c.ThreadID == n.ThreadID && c.RunID == n.RunID && c.Type == n.Type &&
		(c.Metadata == nil) == (n.Metadata == nil) && maps.Equal(c.Metadata, n.Metadata) &&
		c.Details.Type == n.Details.Type && len(c.Details.ToolCalls) == 0 &&
		(c.Details.MessageCreation == nil) == (n.Details.MessageCreation == nil) &&
		(c.Details.MessageCreation == nil || *c.Details.MessageCreation == *n.Details.MessageCreation)
	if !same {
		return 0, false
	}
	if c.Details.ToolCalls == nil {
		return fromLater | callsNil, true
	}
	return fromLater | callsEmpty, true
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
