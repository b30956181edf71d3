// Package replay rebuilds state from a stream of events: it feeds each
// event through the lifecycle machines, checks that the event's data is
// exactly what the machine makes of the object's previous state and the
// event's time, and commits it to a store.Store. Replaying the log an
// engine wrote rebuilds that engine's steps and runs exactly; replaying a
// log that anything else wrote says whether the machines would have
// written it, and where not.
//
// What the machines allow, event by event:
//
//   - thread.run.created: a run the log has not created yet, created at
//     the event's time, not started.
//   - a later run event: the run exists, and Run.Apply of the trigger that
//     leads from its status to the event's (the machine knows one at most)
//     at the event's time, with the event's error, gives the event's run.
//     A run that ends has no step left in progress: the cascade moves them
//     first.
//   - thread.run.step.created: a step the log has not created yet, of a
//     run that is in progress, created at the event's time.
//   - a terminal step event: the step is in progress, and Step.Apply of
//     the trigger of the event's status at the event's time, with the
//     event's error, details and usage, gives the event's step.
//
// Replay stops at the first problem, or, in audit mode, goes on and
// reports them all. Problems of the stream itself (malformed lines, seqs
// out of turn, a torn last line) are reported the same way, as
// *events.LogErrors with their positions.
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/events/internal/equal"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
)

// Options configure a Replayer.
type Options struct {
	// Audit goes on past every problem and collects them all. Without it,
	// a replay stops at the first.
	Audit bool
}

// Replayer replays events into a store. It keeps what the machines need
// of every object: the whole object while it can still change, and its
// status and run after it cannot. The store receives each event that
// passes, with its object, and nothing else. It should start empty: a
// Replayer knows only what it replayed itself, and the commit of an object
// the store holds already fails (store.ErrAlreadyExists), which stops the
// replay.
//
// A Replayer is not safe for concurrent use.
type Replayer struct {
	st    store.Store
	audit bool

	steps map[string]*stepState
	runs  map[string]*runState
	order []*runState // runs in the order they were created

	events, applied, lastSeq int64
	problems                 []*events.LogError
	stopped                  bool  // strict mode has met its problem
	failed                   error // the store's: the state is ahead of it
}

type stepState struct {
	step    *lifecycle.Step // while in progress; nil once it has ended
	status  lifecycle.Status
	version int64
	run     *runState
}

type runState struct {
	run     lifecycle.Run
	version int64
	steps   [5]int   // by status, in the order of lifecycle.Statuses
	running []string // the ids of its steps in progress: few at a time
}

// New returns a Replayer that commits to st.
func New(st store.Store, opts Options) *Replayer {
	return &Replayer{
		st: st, audit: opts.Audit,
		steps: make(map[string]*stepState), runs: make(map[string]*runState),
	}
}

// Run replays src into st and reports; see Replayer.Replay.
func Run(ctx context.Context, st store.Store, src events.Source, opts Options) (Report, error) {
	r := New(st, opts)
	err := r.Replay(ctx, src)
	return r.Report(), err
}

// Replay replays src to its end: it reads each event, checks it and
// commits it. It returns nil if every event passed. Otherwise it returns
// the first problem, a *events.LogError (in audit mode it has gone on to
// the end, and Report lists every problem), or the error that stopped it:
// the source's, the store's or ctx's. After a store error the Replayer
// stays failed: its state is ahead of the store's. Several sources replay
// one after the other into one Replayer as one stream (see
// events.ReadOptions.FirstSeq).
//
// Replay runs in three stages, each on a goroutine of its own, a few
// hundred events apart: reading and decoding src, checking, and
// committing; so a replay takes about as long as its slowest stage. It
// returns only once the other two have stopped, with every event that
// passed before it stopped committed.
func (r *Replayer) Replay(ctx context.Context, src events.Source) error {
	switch {
	case r.failed != nil:
		return r.failed
	case r.stopped:
		return r.problems[0]
	}
	chunks := make(chan *chunk, 4)
	free := make(chan *chunk, 8)
	done := make(chan struct{})
	var reader sync.WaitGroup
	reader.Go(func() { read(src, chunks, free, done) })
	c := startCommitter(ctx, r.st)

	seen := len(r.problems)
	err := r.check(ctx, chunks, free, c)

	close(done)
	for range chunks {
		// Let the reader see done and stop.
	}
	reader.Wait()
	r.applied += c.stop()
	switch {
	case c.err != nil:
		r.failed = c.err
		return c.err
	case err != nil:
		return err
	case len(r.problems) > seen:
		return r.problems[seen]
	}
	return nil
}

// check checks the events of chunks and hands those that pass to c, until
// the chunks end, a problem stops a strict replay, or c fails.
func (r *Replayer) check(ctx context.Context, chunks <-chan *chunk, free chan<- *chunk, c *committer) error {
	for ch := range chunks {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		if c.failed.Load() {
			return nil // Replay returns the committer's error
		}
		batch := c.batch()
		for i := range ch.items {
			it := &ch.items[i]
			var le *events.LogError
			if it.err != nil {
				if !errors.As(it.err, &le) {
					c.send(batch)
					return it.err // the source's: nothing to go on with
				}
				r.problems = append(r.problems, le)
				if !r.audit {
					r.stopped = true
					c.send(batch)
					return le
				}
				if it.ev.Step == nil && it.ev.Run == nil {
					continue // nothing whole to apply
				}
				// A seq out of turn: the event itself is whole, and the
				// audit goes on with the log as it is written.
			}
			ev, err := r.checkEvent(it.ev, it.pos, true)
			if err != nil {
				if !r.audit {
					r.stopped = true
					c.send(batch)
					return err
				}
				continue
			}
			batch = append(batch, pending{ev, it.pos})
		}
		c.send(batch)
		select {
		case free <- ch:
		default:
		}
	}
	return nil
}

// Apply checks one event, read at pos, and commits it if it passes. It
// returns a *events.LogError of kind events.ErrViolation if the machines
// would not have written it (which Report then lists), or the store's
// error, after which the Replayer stays failed. Apply does not change ev,
// but keeps its object as the state to check the next events against: the
// caller must not change it afterwards.
func (r *Replayer) Apply(ctx context.Context, ev events.Event, pos events.Position) error {
	if r.failed != nil {
		return r.failed
	}
	out, err := r.checkEvent(ev, pos, false)
	if err != nil {
		return err
	}
	if _, err := r.st.Commit(ctx, store.Events(out)); err != nil {
		r.failed = storeFailure(pos, out, err)
		return r.failed
	}
	r.applied++
	return nil
}

// checkEvent checks one event against the state, and moves the state on
// if it passes. It returns the event to commit: the object with the
// version the store holds. An owned event's object is the Replayer's to
// keep and change (a Source's events are its reader's); another is
// copied first.
func (r *Replayer) checkEvent(ev events.Event, pos events.Position, owned bool) (events.Event, error) {
	if !owned {
		if ev.Step != nil {
			s := *ev.Step
			ev.Step = &s
		}
		if ev.Run != nil {
			run := *ev.Run
			ev.Run = &run
		}
	}
	r.events++
	r.lastSeq = max(r.lastSeq, ev.Seq)
	var out events.Event
	var cause error
	switch {
	case ev.Step != nil && ev.Run == nil:
		out, cause = r.checkStep(ev)
	case ev.Run != nil && ev.Step == nil:
		out, cause = r.checkRun(ev)
	default:
		cause = fmt.Errorf("%s event must carry exactly one of a step and a run", ev.Type)
	}
	if cause != nil {
		le := &events.LogError{Position: pos, Seq: ev.Seq, Kind: events.ErrViolation, Err: cause}
		r.problems = append(r.problems, le)
		return events.Event{}, le
	}
	return out, nil
}

func storeFailure(pos events.Position, ev events.Event, err error) error {
	return fmt.Errorf("replay: %s: seq %d: %w", pos, ev.Seq, err)
}

// pending is an event that passed, on its way to the store.
type pending struct {
	ev  events.Event
	pos events.Position
}

// committer commits batches of events on a goroutine of its own, in
// order, until its first error.
type committer struct {
	ctx    context.Context
	st     store.Store
	in     chan []pending
	free   chan []pending
	wg     sync.WaitGroup
	failed atomic.Bool
	// n and err are the committer's until stop returns.
	n   int64
	err error
}

func startCommitter(ctx context.Context, st store.Store) *committer {
	c := &committer{ctx: ctx, st: st, in: make(chan []pending, 4), free: make(chan []pending, 8)}
	c.wg.Go(c.run)
	return c
}

func (c *committer) run() {
	for batch := range c.in {
		for i := 0; i < len(batch) && c.err == nil; i++ {
			if _, err := c.st.Commit(c.ctx, store.Events(batch[i].ev)); err != nil {
				c.err = storeFailure(batch[i].pos, batch[i].ev, err)
				c.failed.Store(true)
				break
			}
			c.n++
		}
		clear(batch) // let go of the events
		select {
		case c.free <- batch[:0]:
		default:
		}
	}
}

// batch returns an empty batch to fill.
func (c *committer) batch() []pending {
	select {
	case b := <-c.free:
		return b
	default:
		return make([]pending, 0, chunkSize)
	}
}

func (c *committer) send(b []pending) {
	if len(b) > 0 {
		c.in <- b
	}
}

// stop waits for every batch sent to be committed (or for the first
// error), and returns how many events were.
func (c *committer) stop() int64 {
	close(c.in)
	c.wg.Wait()
	return c.n
}

// stepTriggers maps each terminal step status to the trigger that reaches
// it, as the machine says.
var stepTriggers = func() map[lifecycle.Status]lifecycle.Trigger {
	m := make(map[lifecycle.Status]lifecycle.Trigger)
	for _, t := range lifecycle.Triggers {
		if to, ok := lifecycle.NextStatus(lifecycle.StatusInProgress, t); ok {
			m[to] = t
		}
	}
	return m
}()

type runEdge struct{ from, to lifecycle.RunStatus }

// runTriggers maps each (from, to) pair of run statuses the machine links
// to its trigger, and runInto each status to the triggers that reach it.
var runTriggers, runInto = func() (map[runEdge]lifecycle.RunTrigger, map[lifecycle.RunStatus][]lifecycle.RunTrigger) {
	edges := make(map[runEdge]lifecycle.RunTrigger)
	into := make(map[lifecycle.RunStatus][]lifecycle.RunTrigger)
	for _, from := range lifecycle.RunStatuses {
		for _, t := range lifecycle.RunTriggers {
			to, ok := lifecycle.NextRunStatus(from, t)
			if !ok {
				continue
			}
			if _, dup := edges[runEdge{from, to}]; !dup {
				edges[runEdge{from, to}] = t // the machine has one per pair; a test keeps it so
			}
			if !slices.Contains(into[to], t) {
				into[to] = append(into[to], t)
			}
		}
	}
	return edges, into
}()

func statusIndex(s lifecycle.Status) int { return slices.Index(lifecycle.Statuses, s) }

func (r *Replayer) checkStep(ev events.Event) (events.Event, error) {
	data := ev.Step
	cur, known := r.steps[data.ID]
	if ev.Type == events.TypeStepCreated {
		run, ok := r.runs[data.RunID]
		switch {
		case known:
			return events.Event{}, fmt.Errorf("step %s is created again", data.ID)
		case !ok:
			return events.Event{}, fmt.Errorf("step %s of run %s, which the log has not created", data.ID, data.RunID)
		case run.run.Status != lifecycle.RunStatusInProgress:
			return events.Event{}, &lifecycle.TransitionError{ID: run.run.ID, From: string(run.run.Status), Trigger: "create_step"}
		case data.CreatedAt != ev.At:
			return events.Event{}, fmt.Errorf("step %s: created_at %d, but the event is at %d", data.ID, data.CreatedAt, ev.At)
		}
		data.Version = 0
		r.steps[data.ID] = &stepState{step: data, status: data.Status, version: 1, run: run}
		run.steps[statusIndex(data.Status)]++
		run.running = append(run.running, data.ID)
		return ev, nil
	}
	if !known {
		return events.Event{}, fmt.Errorf("step %s, which the log has not created", data.ID)
	}
	trigger := stepTriggers[data.Status]
	if cur.step == nil {
		return events.Event{}, &lifecycle.TransitionError{ID: data.ID, From: string(cur.status), Trigger: string(trigger)}
	}
	next, err := cur.step.Apply(lifecycle.Change{
		Trigger: trigger, At: time.Unix(ev.At, 0),
		Error: data.LastError, Details: &data.Details, Usage: data.Usage,
	})
	if err != nil {
		return events.Event{}, err
	}
	if diff := equal.StepDiff(&next, data, 0); len(diff) > 0 {
		return events.Event{}, fmt.Errorf("step %s: %s, not what the machine makes of it: %s", data.ID, ev.Type, strings.Join(diff, "; "))
	}
	data.Version = cur.version
	run := cur.run
	run.steps[statusIndex(cur.status)]--
	run.steps[statusIndex(data.Status)]++
	if i := slices.Index(run.running, data.ID); i >= 0 {
		run.running[i] = run.running[len(run.running)-1]
		run.running = run.running[:len(run.running)-1]
	}
	cur.version++
	cur.status = data.Status
	cur.step = nil // it cannot change any more
	return ev, nil
}

func (r *Replayer) checkRun(ev events.Event) (events.Event, error) {
	data := ev.Run
	cur, known := r.runs[data.ID]
	if ev.Type == events.TypeRunCreated {
		switch {
		case known:
			return events.Event{}, fmt.Errorf("run %s is created again", data.ID)
		case data.CreatedAt != ev.At:
			return events.Event{}, fmt.Errorf("run %s: created_at %d, but the event is at %d", data.ID, data.CreatedAt, ev.At)
		case data.StartedAt != nil:
			return events.Event{}, fmt.Errorf("run %s: started_at %d on a new run", data.ID, *data.StartedAt)
		}
		data.Version = 0
		rs := &runState{run: *data, version: 1}
		r.runs[data.ID] = rs
		r.order = append(r.order, rs)
		return ev, nil
	}
	if !known {
		return events.Event{}, fmt.Errorf("run %s, which the log has not created", data.ID)
	}
	from, to := cur.run.Status, data.Status
	trigger, ok := runTriggers[runEdge{from, to}]
	if !ok {
		name := "reach " + string(to)
		if into := runInto[to]; len(into) > 0 {
			name = string(into[0])
		}
		return events.Event{}, &lifecycle.TransitionError{ID: data.ID, From: string(from), Trigger: name}
	}
	next, err := cur.run.Apply(lifecycle.RunChange{Trigger: trigger, At: time.Unix(ev.At, 0), Error: data.LastError})
	if err != nil {
		return events.Event{}, err
	}
	if diff := equal.RunDiff(&next, data, 0); len(diff) > 0 {
		return events.Event{}, fmt.Errorf("run %s: %s, not what the machine makes of it: %s", data.ID, ev.Type, strings.Join(diff, "; "))
	}
	if to.Terminal() && len(cur.running) > 0 {
		ids := slices.Sorted(slices.Values(cur.running))
		if len(ids) > 3 {
			ids = append(ids[:3], "…")
		}
		return events.Event{}, fmt.Errorf("run %s ends %s with %d steps in progress (%s): its cascade must end them first",
			data.ID, to, len(cur.running), strings.Join(ids, ", "))
	}
	data.Version = cur.version
	cur.run = *data
	cur.version++
	return ev, nil
}

// chunkSize is how many events the reading goroutine hands over at once:
// enough to make the hand-over cheap, few enough to hold little.
const chunkSize = 256

type item struct {
	ev  events.Event
	pos events.Position
	err error
}

type chunk struct{ items []item }

// read reads src into chunks until its end, its first error that is no
// *events.LogError, or done.
func read(src events.Source, out chan<- *chunk, free <-chan *chunk, done <-chan struct{}) {
	defer close(out)
	for {
		var c *chunk
		select {
		case c = <-free:
			c.items = c.items[:0]
		default:
			c = &chunk{items: make([]item, 0, chunkSize)}
		}
		end := false
		for len(c.items) < chunkSize && !end {
			ev, err := src.Read()
			if err == io.EOF {
				end = true
				break
			}
			c.items = append(c.items, item{ev, src.Position(), err})
			var le *events.LogError
			end = err != nil && !errors.As(err, &le)
		}
		if len(c.items) > 0 {
			select {
			case out <- c:
			case <-done:
				return
			}
		}
		if end {
			return
		}
	}
}

// Report says what a replay found.
type Report struct {
	// Events is the number of whole events read, and Applied the number
	// of those that passed and were committed.
	Events, Applied int64
	// LastSeq is the highest seq read.
	LastSeq int64
	// Steps and Runs count the steps and runs by their status at the end.
	Steps map[lifecycle.Status]int
	Runs  map[lifecycle.RunStatus]int
	// RunSteps has each run, in the order the log created them, with its
	// steps.
	RunSteps []RunSummary
	// Problems lists every problem found, in the order found: at most one
	// unless in audit mode.
	Problems []*events.LogError
}

// RunSummary is one run at the end of a replay, and its steps.
type RunSummary struct {
	ID     string
	Status lifecycle.RunStatus
	// Steps counts the run's steps by status.
	Steps map[lifecycle.Status]int
}

// Total returns the number of the run's steps.
func (s RunSummary) Total() int {
	n := 0
	for _, c := range s.Steps {
		n += c
	}
	return n
}

// Report returns what the replay has found so far.
func (r *Replayer) Report() Report {
	rep := Report{
		Events: r.events, Applied: r.applied, LastSeq: r.lastSeq,
		Steps: make(map[lifecycle.Status]int), Runs: make(map[lifecycle.RunStatus]int),
		RunSteps: make([]RunSummary, 0, len(r.order)), Problems: slices.Clone(r.problems),
	}
	for _, rs := range r.order {
		sum := RunSummary{ID: rs.run.ID, Status: rs.run.Status, Steps: make(map[lifecycle.Status]int)}
		for i, n := range rs.steps {
			if n > 0 {
				sum.Steps[lifecycle.Statuses[i]] = n
				rep.Steps[lifecycle.Statuses[i]] += n
			}
		}
		rep.Runs[rs.run.Status]++
		rep.RunSteps = append(rep.RunSteps, sum)
	}
	return rep
}
