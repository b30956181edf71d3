package memory

import (
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
)

// entry is one event of the log; its seq is its place in the log plus one.
// Every entry has a box of its own, but for a step's first version that
// moved on (see stepBox.moveOn): the created event and the one that moved
// it on share the box, and the created event is told from it.
type entry struct {
	at   int64
	step *stepBox
	run  *lifecycle.Run
	typ  eventCode
}

// eventCode is an event's type as a number: its place in eventTypes, or
// otherType for a type the log keeps apart (see eventLog.others).
type eventCode uint8

// eventTypes are the types the log codes, every type runstep writes.
var eventTypes = [...]events.Type{
	events.TypeStepCreated, events.TypeStepCompleted, events.TypeStepFailed,
	events.TypeStepCancelled, events.TypeStepExpired,
	events.TypeRunCreated, events.TypeRunQueued, events.TypeRunInProgress,
	events.TypeRunRequiresAction, events.TypeRunCancelling, events.TypeRunCancelled,
	events.TypeRunFailed, events.TypeRunCompleted, events.TypeRunIncomplete,
	events.TypeRunExpired,
}

const (
	createdCode eventCode = 0 // eventTypes[0]
	otherType   eventCode = 255
)

// codeOf returns t's code, or otherType.
func codeOf(t events.Type) eventCode {
	for i, known := range eventTypes {
		if t == known {
			return eventCode(i)
		}
	}
	return otherType
}

// chunkSize is how many events one chunk of the log holds.
const chunkSize = 4096

// eventLog is the event log in fixed-size chunks: appending never copies
// the events already logged, as one growing slice would.
type eventLog struct {
	chunks [][]entry
	n      int
	// others holds the types of the events coded otherType, by their
	// place in the log. A store keeps what it is given; a caller's own
	// event types cost it a map entry each.
	others map[int]events.Type
}

func (l *eventLog) len() int { return l.n }

func (l *eventLog) at(i int) *entry { return &l.chunks[i/chunkSize][i%chunkSize] }

// append adds an event of type t; e.typ is t's code.
func (l *eventLog) append(e entry, t events.Type) {
	if e.typ == otherType {
		if l.others == nil {
			l.others = make(map[int]events.Type)
		}
		l.others[l.n] = t
	}
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
	ev := events.Event{Seq: int64(i) + 1, Type: l.others[i], At: e.at}
	if e.typ != otherType {
		ev.Type = eventTypes[e.typ]
	}
	switch {
	case e.run != nil:
		run := e.run.Clone()
		ev.Run = &run
	case e.typ == createdCode && e.step.flags&movedOn != 0:
		// The box's other event, the one that moved it on, is never a
		// created event (see takesPlace).
		step := e.step.created()
		ev.Step = &step
	default:
		step := e.step.get()
		ev.Step = &step
	}
	return ev
}
