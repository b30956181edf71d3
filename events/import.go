package events

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/runstep/runstep/events/internal/equal"
	"github.com/runstep/runstep/lifecycle"
)

// Importer turns an OpenAI Assistants stream (server-sent events, as the
// API sends them and as SSEWriter writes them) into events of runstep's
// log. It is a Source: each Read returns the next event, numbered from
// ReadOptions.FirstSeq.
//
// It keeps the changes of steps and runs, and passes over the rest:
//
//   - a step's created event, and its completed, failed, cancelled or
//     expired event, at the time the step was created or reached that
//     status (created_at, completed_at, …);
//   - its thread.run.step.delta events are merged into its details, as
//     OpenAI's SDKs merge them (strings appended, tool calls matched by
//     index); the object of the step's last event is the service's final
//     word, and a Note says where the deltas disagree with it;
//   - a run's created event and each change of its status, at the time the
//     run object gives for it (created_at, started_at, completed_at,
//     failed_at, cancelled_at, expires_at for an expired run), or, for a
//     change the run does not stamp (requires_action, say), the latest
//     time the stream has given so far;
//   - thread.run.step.in_progress, a run event that repeats the run
//     unchanged (thread.run.queued right after thread.run.created), and
//     every other event of the Assistants stream (thread.created,
//     thread.message.*, done, error) are counted in Stats and passed over.
//
// Objects are rewritten in runstep's canonical form: a step as the spec's
// schema has it, a run with the lifecycle fields of OpenAI's run object.
// When an event's name does not announce its object's status (real
// traffic has a thread.run.completed that carries an incomplete run), the
// object wins, and a Note says so.
//
// An event whose data is not a valid step or run, a delta that does not
// fit its step, and a name outside the Assistants stream (an SSE stream
// from another service) are *LogErrors at the message's position; Read
// can be called again to go on past them.
//
// An Importer holds the steps still in progress (to merge their deltas)
// and the runs it has seen (to tell a change from a repeat): its memory
// grows with those, not with the length of the stream.
type Importer struct {
	sse   *SSEReader
	pos   Position
	next  int64                      // the seq of the next event
	now   int64                      // the latest time a step or run was stamped with
	steps map[string]*lifecycle.Step // in progress, with their deltas merged
	runs  map[string]*lifecycle.Run  // as last seen
	stats ImportStats
}

var _ Source = (*Importer)(nil)

// ImportStats counts what an Importer read and what it made of it.
type ImportStats struct {
	// Messages is the number of SSE messages read.
	Messages int
	// Bodies is the number of streams (HTTP bodies) that ended with
	// "event: done".
	Bodies int
	// Imported counts the events made, by name.
	Imported map[Type]int
	// Merged is the number of step deltas merged.
	Merged int
	// Passed counts the messages passed over, by event name.
	Passed map[string]int
	// Notes are what the import had to decide, in stream order.
	Notes []Note
}

// Note is something an import decided, and where.
type Note struct {
	Position
	Text string
}

func (n Note) String() string {
	if p := n.Position.String(); p != "" {
		return p + ": " + n.Text
	}
	return n.Text
}

// NewImporter returns an Importer of the SSE stream r.
func NewImporter(r io.Reader, opts ReadOptions) *Importer {
	opts = opts.withDefaults()
	return &Importer{
		sse: NewSSEReader(r, opts), next: opts.FirstSeq, pos: Position{File: opts.File},
		steps: make(map[string]*lifecycle.Step), runs: make(map[string]*lifecycle.Run),
		stats: ImportStats{Imported: make(map[Type]int), Passed: make(map[string]int)},
	}
}

// Position implements Source: where the message of the last event (or
// problem) begins.
func (im *Importer) Position() Position { return im.pos }

// Next returns the seq the next event will have.
func (im *Importer) Next() int64 { return im.next }

// Stats returns what the Importer has read so far.
func (im *Importer) Stats() ImportStats {
	s := im.stats
	s.Imported, s.Passed, s.Notes = maps.Clone(s.Imported), maps.Clone(s.Passed), slices.Clone(s.Notes)
	return s
}

// InProgress returns the steps the stream has left in progress, with their
// deltas merged, by created_at and id.
func (im *Importer) InProgress() []lifecycle.Step {
	var out []lifecycle.Step
	for _, s := range im.steps {
		if s.Status == lifecycle.StatusInProgress {
			out = append(out, s.Clone())
		}
	}
	slices.SortFunc(out, func(a, b lifecycle.Step) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Read implements Source.
func (im *Importer) Read() (Event, error) {
	for {
		msg, err := im.sse.Read()
		if err != nil {
			if le, ok := err.(*LogError); ok {
				im.pos = le.Position
			}
			return Event{}, err
		}
		im.pos = msg.Position
		im.stats.Messages++
		ev, ok, perr := im.convert(msg)
		if perr != nil {
			perr.Position = msg.Position
			return Event{}, perr
		}
		if ok {
			ev.Seq = im.next
			im.next++
			im.stats.Imported[ev.Type]++
			return ev, nil
		}
	}
}

func (im *Importer) note(format string, args ...any) {
	im.stats.Notes = append(im.stats.Notes, Note{im.pos, fmt.Sprintf(format, args...)})
}

func (im *Importer) pass(name string) (Event, bool, *LogError) {
	im.stats.Passed[name]++
	return Event{}, false, nil
}

func (im *Importer) tick(at int64) int64 {
	im.now = max(im.now, at)
	return at
}

// convert returns the event msg makes, if any.
func (im *Importer) convert(msg SSEMessage) (Event, bool, *LogError) {
	name := msg.Event
	switch {
	case name == SSEDone:
		im.stats.Bodies++
		if string(msg.Data) != SSEDoneData {
			im.note("done with data %q, not %s", clip(msg.Data), SSEDoneData)
		}
		return im.pass(name)
	case name == "error":
		im.note("the stream reported an error: %s", clip(msg.Data))
		return im.pass(name)
	case name == "thread.run.step.delta":
		return im.delta(msg)
	case strings.HasPrefix(name, "thread.run.step."):
		return im.step(msg)
	case strings.HasPrefix(name, "thread.run."):
		return im.run(msg)
	case strings.HasPrefix(name, "thread."):
		return im.pass(name) // the thread and its messages
	case name == "":
		return Event{}, false, problem(Position{}, 0, ErrUnknownType, "a message without an event name: not an OpenAI Assistants stream")
	}
	return Event{}, false, problem(Position{}, 0, ErrUnknownType, "%q is not an event of the OpenAI Assistants stream", name)
}

func (im *Importer) step(msg SSEMessage) (Event, bool, *LogError) {
	name := Type(msg.Event)
	inProgress := name == "thread.run.step.in_progress"
	if !name.Known() && !inProgress {
		return Event{}, false, problem(Position{}, 0, ErrUnknownType, "%q", name)
	}
	var step lifecycle.Step
	if err := json.Unmarshal(msg.Data, &step); err != nil {
		return Event{}, false, problem(Position{}, 0, ErrMalformed, "%s data: %w", name, err)
	}
	cur, known := im.steps[step.ID]
	switch {
	case inProgress:
		if step.Status != lifecycle.StatusInProgress {
			return Event{}, false, problem(Position{}, 0, ErrMalformed, "%s event carries a step in status %s", name, step.Status)
		}
		if !known {
			im.note("step %s is in progress before it was created", step.ID)
			im.steps[step.ID] = &step
		}
		return im.pass(string(name))
	case name == TypeStepCreated:
		if step.Status != lifecycle.StatusInProgress {
			return Event{}, false, problem(Position{}, 0, ErrMalformed, "%s event carries a step in status %s", name, step.Status)
		}
		im.steps[step.ID] = &step
		return Event{Type: name, At: im.tick(step.CreatedAt), Step: cloneStep(step)}, true, nil
	}
	if !step.Status.Terminal() {
		return Event{}, false, problem(Position{}, 0, ErrMalformed, "%s event carries a step in status %s", name, step.Status)
	}
	typ := StepType(step.Status)
	if typ != name {
		im.note("%s event carries a step in status %s: imported as %s", name, step.Status, typ)
	}
	if known {
		for _, d := range detailsDiff(&cur.Details, &step.Details) {
			im.note("step %s: its deltas %s", step.ID, d)
		}
	}
	delete(im.steps, step.ID) // it cannot change any more: let it go
	return Event{Type: typ, At: im.tick(stepStamp(&step)), Step: cloneStep(step)}, true, nil
}

// stepStamp returns when a terminal step reached its status.
func stepStamp(s *lifecycle.Step) int64 {
	for _, p := range []*int64{s.CompletedAt, s.FailedAt, s.CancelledAt, s.ExpiredAt} {
		if p != nil {
			return *p // a valid step has exactly the one of its status
		}
	}
	return s.CreatedAt
}

func (im *Importer) run(msg SSEMessage) (Event, bool, *LogError) {
	name := Type(msg.Event)
	if !name.Known() {
		return Event{}, false, problem(Position{}, 0, ErrUnknownType, "%q", name)
	}
	var run lifecycle.Run
	if err := json.Unmarshal(msg.Data, &run); err != nil {
		return Event{}, false, problem(Position{}, 0, ErrMalformed, "%s data: %w", name, err)
	}
	prev, known := im.runs[run.ID]
	im.runs[run.ID] = &run
	if name == TypeRunCreated {
		if run.Status != lifecycle.RunStatusQueued {
			return Event{}, false, problem(Position{}, 0, ErrMalformed, "%s event carries a run in status %s", name, run.Status)
		}
		return Event{Type: name, At: im.tick(run.CreatedAt), Run: cloneRun(run)}, true, nil
	}
	if known && equal.Runs(prev, &run) {
		return im.pass(string(name)) // no change
	}
	typ := RunType(run.Status)
	if typ != name {
		im.note("%s event carries a run in status %s: imported as %s", name, run.Status, typ)
	}
	return Event{Type: typ, At: im.runTime(prev, &run), Run: cloneRun(run)}, true, nil
}

// runTime returns when run reached its status, coming from prev (nil if
// the run is new to the stream).
func (im *Importer) runTime(prev, run *lifecycle.Run) int64 {
	var stamp *int64
	switch run.Status {
	case lifecycle.RunStatusInProgress:
		// Starting stamps started_at; resuming does not change it.
		if prev == nil || prev.StartedAt == nil || run.StartedAt == nil || *prev.StartedAt != *run.StartedAt {
			stamp = run.StartedAt
		}
	case lifecycle.RunStatusCompleted, lifecycle.RunStatusIncomplete:
		stamp = run.CompletedAt
	case lifecycle.RunStatusFailed:
		stamp = run.FailedAt
	case lifecycle.RunStatusCancelled:
		stamp = run.CancelledAt
	case lifecycle.RunStatusExpired:
		stamp = run.ExpiresAt // an expired run keeps the deadline it expired at
	}
	if stamp != nil {
		return im.tick(*stamp)
	}
	return max(im.now, run.CreatedAt)
}

func clip(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

func cloneStep(s lifecycle.Step) *lifecycle.Step {
	c := s.Clone()
	return &c
}

func cloneRun(r lifecycle.Run) *lifecycle.Run {
	c := r.Clone()
	return &c
}
