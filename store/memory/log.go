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
	typ  events.Type
	at   int64
	step *stepBox
	run  *lifecycle.Run
}

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
	case e.typ == events.TypeStepCreated && e.step.flags&movedOn != 0:
		// The box's other event, the one that moved it on, is never a
		// created event (see Store.takesPlace).
		step := e.step.created()
		ev.Step = &step
	default:
		step := e.step.get()
		ev.Step = &step
	}
	return ev
}
