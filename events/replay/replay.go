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
// A Replayer without a store (New(nil, …)) only checks: it keeps its own
// state of every object, as it must to check the events after, and
// commits nothing.
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
	st    store.Store // nil: check only
	audit bool

	// The state of every step and run the log created (see state.go): the
	// ids numbered in the order the log created them, and their states by
	// number.
	stepIDs, runIDs ids
	steps           list[stepState]
	runs            list[runState]
	spare           []*liveRun // of runs that have ended, to reuse

	events, applied, lastSeq int64
	problems                 []*events.LogError
	stopped                  bool  // strict mode has met its problem
	failed                   error // the store's: the state is ahead of it
}

// New returns a Replayer that commits to st. With a nil st, the Replayer
// checks every event, keeps its own state and Report as with a store, and
// commits nothing: Report.Applied counts the events that passed.
func New(st store.Store, opts Options) *Replayer {
	return &Replayer{
		st: st, audit: opts.Audit,
		stepIDs: newIDs(), runIDs: newIDs(),
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
// committing, as many events at once as follow each other without naming
// one object twice; so a replay takes about as long as its slowest stage.
// Without a store, there is no third. It returns only once the others have
// stopped, with every event that passed before it stopped committed.
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
	var le *events.LogError // here, not in the loop: errors.As makes it escape
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
	if r.st == nil {
		r.applied++
		return nil
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
// order, until its first error. Without a store, it only counts them, on
// the sender's goroutine.
type committer struct {
	ctx    context.Context
	st     store.Store
	in     chan []pending
	free   chan []pending
	wg     sync.WaitGroup
	failed atomic.Bool
	evs    []events.Event // the events of one commit, reused: the store copies in
	// n and err are the committer's until stop returns.
	n   int64
	err error
}

func startCommitter(ctx context.Context, st store.Store) *committer {
	c := &committer{ctx: ctx, st: st, in: make(chan []pending, 4), free: make(chan []pending, 8)}
	if st != nil {
		c.wg.Go(c.run)
	}
	return c
}

func (c *committer) run() {
	for batch := range c.in {
		if c.err == nil {
			c.commit(batch)
		}
		c.recycle(batch)
	}
}

// recycle lets go of the events of batch and keeps it to fill again.
func (c *committer) recycle(batch []pending) {
	clear(batch)
	select {
	case c.free <- batch[:0]:
	default:
	}
}

// maxGroup is the most events committed at once.
const maxGroup = 64

// commit commits batch a group at a time: as many events as follow each
// other without naming one object twice, which a store refuses in one
// commit. If the store refuses a group (and so stores none of it), its
// events are committed one at a time, so that those before the one it
// refuses are stored and that one is reported, as if every event had been
// committed alone.
func (c *committer) commit(batch []pending) {
	for len(batch) > 0 && c.err == nil {
		n := group(batch)
		if n == 1 || c.commitGroup(batch[:n]) != nil {
			for i := range batch[:n] {
				if c.commitGroup(batch[i:i+1]) != nil {
					c.err = storeFailure(batch[i].pos, batch[i].ev, c.err)
					c.failed.Store(true)
					return
				}
			}
		}
		batch = batch[n:]
	}
}

// commitGroup commits the events of group in one commit, and counts them.
// It sets c.err to the store's error.
func (c *committer) commitGroup(group []pending) error {
	c.evs = c.evs[:0]
	for i := range group {
		c.evs = append(c.evs, group[i].ev)
	}
	_, c.err = c.st.Commit(c.ctx, store.Batch{Events: c.evs})
	clear(c.evs)
	if c.err == nil {
		c.n += int64(len(group))
	}
	return c.err
}

// group returns how many of the first events of batch name no object
// twice, up to maxGroup.
func group(batch []pending) int {
	n := 1
	for ; n < len(batch) && n < maxGroup; n++ {
		id, run := object(batch[n].ev)
		for i := range batch[:n] {
			if id2, run2 := object(batch[i].ev); run == run2 && id == id2 {
				return n
			}
		}
	}
	return n
}

// object names the step or run an event that passed carries.
func object(ev events.Event) (id string, run bool) {
	if ev.Run != nil {
		return ev.Run.ID, true
	}
	return ev.Step.ID, false
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
	switch {
	case len(b) == 0:
	case c.st == nil: // only checking: nothing to commit
		c.n += int64(len(b))
		c.recycle(b)
	default:
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

// statusIndex and runStatusIndex return the index of a status in
// lifecycle.Statuses (lifecycle.RunStatuses), and false for a status that
// is none of them.
func statusIndex(s lifecycle.Status) (uint8, bool) {
	i := slices.Index(lifecycle.Statuses, s)
	return uint8(i), i >= 0
}

func runStatusIndex(s lifecycle.RunStatus) (uint8, bool) {
	i := slices.Index(lifecycle.RunStatuses, s)
	return uint8(i), i >= 0
}

func (r *Replayer) checkStep(ev events.Event) (events.Event, error) {
	data := ev.Step
	index, known, hash := r.stepIDs.find(data.ID)
	status, valid := statusIndex(data.Status)
	if ev.Type == events.TypeStepCreated {
		ri, ok, _ := r.runIDs.find(data.RunID)
		var run *runState
		if ok {
			run = r.runs.at(ri)
		}
		switch {
		case known:
			return events.Event{}, fmt.Errorf("step %s is created again", data.ID)
		case !ok:
			return events.Event{}, fmt.Errorf("step %s of run %s, which the log has not created", data.ID, data.RunID)
		case run.status != runInProgress:
			return events.Event{}, &lifecycle.TransitionError{ID: data.RunID, From: string(lifecycle.RunStatuses[run.status]), Trigger: "create_step"}
		case data.CreatedAt != ev.At:
			return events.Event{}, fmt.Errorf("step %s: created_at %d, but the event is at %d", data.ID, data.CreatedAt, ev.At)
		case !valid:
			return events.Event{}, fmt.Errorf("step %s: unknown status %q", data.ID, data.Status)
		}
		data.Version = 0
		index = r.stepIDs.add(data.ID, hash)
		r.steps.add(stepState{version: 1, run: ri, status: status})
		run.steps[status]++
		run.live.running = append(run.live.running, runningStep{index, data}) // a run in progress is live
		return ev, nil
	}
	if !known {
		return events.Event{}, fmt.Errorf("step %s, which the log has not created", data.ID)
	}
	cur := r.steps.at(index)
	run := r.runs.at(cur.run)
	trigger := stepTriggers[data.Status]
	k := -1
	if run.live != nil {
		k = slices.IndexFunc(run.live.running, func(rs runningStep) bool { return rs.index == index })
	}
	if k < 0 || !valid {
		return events.Event{}, &lifecycle.TransitionError{ID: data.ID, From: string(lifecycle.Statuses[cur.status]), Trigger: string(trigger)}
	}
	step := run.live.running[k].step
	change := lifecycle.Change{
		Trigger: trigger, At: time.Unix(ev.At, 0),
		Error: data.LastError, Details: &data.Details, Usage: data.Usage,
	}
	// Apply checks the event's details and usage against the step and
	// copies them in, and the copies are only compared with the event's
	// own. A valid step of the same type has passed those checks: then
	// compare the event's details and usage with themselves, without
	// copying them (most of what checking a step allocates).
	borrowed := data.Type == step.Type && data.Validate() == nil
	if borrowed {
		change.Details, change.Usage = nil, nil
	}
	next, err := step.Apply(change)
	if err != nil {
		return events.Event{}, err
	}
	if borrowed {
		next.Details = data.Details
		if data.Usage != nil { // without usage, the step keeps its own
			next.Usage = data.Usage
		}
	}
	if diff := equal.StepDiff(&next, data, 0); len(diff) > 0 {
		return events.Event{}, fmt.Errorf("step %s: %s, not what the machine makes of it: %s", data.ID, ev.Type, strings.Join(diff, "; "))
	}
	data.Version = cur.version
	run.steps[cur.status]--
	run.steps[status]++
	running := run.live.running
	last := len(running) - 1
	running[k], running[last] = running[last], runningStep{}
	run.live.running = running[:last]
	cur.version++
	cur.status = status // it cannot change any more
	return ev, nil
}

// runInProgress is the index of lifecycle.RunStatusInProgress.
var runInProgress, _ = runStatusIndex(lifecycle.RunStatusInProgress)

func (r *Replayer) checkRun(ev events.Event) (events.Event, error) {
	data := ev.Run
	index, known, hash := r.runIDs.find(data.ID)
	to := data.Status
	status, valid := runStatusIndex(to)
	if ev.Type == events.TypeRunCreated {
		switch {
		case known:
			return events.Event{}, fmt.Errorf("run %s is created again", data.ID)
		case data.CreatedAt != ev.At:
			return events.Event{}, fmt.Errorf("run %s: created_at %d, but the event is at %d", data.ID, data.CreatedAt, ev.At)
		case data.StartedAt != nil:
			return events.Event{}, fmt.Errorf("run %s: started_at %d on a new run", data.ID, *data.StartedAt)
		case !valid:
			return events.Event{}, fmt.Errorf("run %s: unknown status %q", data.ID, data.Status)
		}
		data.Version = 0
		rs := runState{version: 1, status: status}
		if !to.Terminal() {
			rs.live = r.newLive()
			rs.live.set(data)
		}
		r.runIDs.add(data.ID, hash)
		r.runs.add(rs)
		return ev, nil
	}
	if !known {
		return events.Event{}, fmt.Errorf("run %s, which the log has not created", data.ID)
	}
	cur := r.runs.at(index)
	from := lifecycle.RunStatuses[cur.status]
	trigger, ok := runTriggers[runEdge{from, to}]
	if !ok || cur.live == nil { // nothing leads on from a run that has ended
		name := "reach " + string(to)
		if into := runInto[to]; len(into) > 0 {
			name = string(into[0])
		}
		return events.Event{}, &lifecycle.TransitionError{ID: data.ID, From: string(from), Trigger: name}
	}
	live := cur.live
	next, err := live.run.Apply(lifecycle.RunChange{Trigger: trigger, At: time.Unix(ev.At, 0), Error: data.LastError})
	if err != nil {
		return events.Event{}, err
	}
	if diff := equal.RunDiff(&next, data, 0); len(diff) > 0 {
		return events.Event{}, fmt.Errorf("run %s: %s, not what the machine makes of it: %s", data.ID, ev.Type, strings.Join(diff, "; "))
	}
	if to.Terminal() && len(live.running) > 0 {
		ids := make([]string, len(live.running))
		for i, rs := range live.running {
			ids[i] = rs.step.ID
		}
		slices.Sort(ids)
		if len(ids) > 3 {
			ids = append(ids[:3], "…")
		}
		return events.Event{}, fmt.Errorf("run %s ends %s with %d steps in progress (%s): its cascade must end them first",
			data.ID, to, len(live.running), strings.Join(ids, ", "))
	}
	data.Version = cur.version
	cur.version++
	cur.status = status
	if to.Terminal() {
		r.end(cur)
	} else {
		live.set(data)
	}
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
	var le *events.LogError // here, not in the loop: errors.As makes it escape
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
	// of those that passed and were committed (without a store, that
	// passed).
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
		RunSteps: make([]RunSummary, 0, r.runs.len()), Problems: slices.Clone(r.problems),
	}
	for i := range r.runs.len() {
		rs := r.runs.at(i)
		status := lifecycle.RunStatuses[rs.status]
		sum := RunSummary{ID: r.runIDs.id(i), Status: status, Steps: make(map[lifecycle.Status]int)}
		for j, n := range rs.steps {
			if n > 0 {
				sum.Steps[lifecycle.Statuses[j]] = int(n)
				rep.Steps[lifecycle.Statuses[j]] += int(n)
			}
		}
		rep.Runs[status]++
		rep.RunSteps = append(rep.RunSteps, sum)
	}
	return rep
}
