// Package memory is the in-process Store: fast, safe for concurrent use, and
// gone when the process ends. It is the default for tests and for programs
// that need no durability.
package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/google/btree"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
)

// Store is a store.Store held in memory.
type Store struct {
	// mu guards every field below and what they point at. A commit
	// stores fresh copies of the objects it writes, which the log and the
	// state share; only a change that moves a step on from its first,
	// created version overwrites that copy, whose event the log then
	// tells from it (see takesPlace and box.go). Readers copy out under
	// the lock.
	mu        sync.RWMutex
	steps     stepIndex
	runs      map[string]*runEntry
	deadlines *btree.BTreeG[deadlineKey] // runs that can still expire, by expires_at, id
	log       eventLog
	// nodes is the free list the B-trees of large runs (see runSteps)
	// take their nodes from: one per tree, as btree.NewG would make,
	// cost a run as much as its first steps.
	nodes *btree.FreeListG[*stepBox]
}

// runEntry is a stored run and its version, and its steps, one per run id,
// changed in place. A guard bumps the version alone: the run, which the
// log may share, stays as it was committed. A step may be stored before
// its run: its entry then holds no run yet.
type runEntry struct {
	id      string
	run     *lifecycle.Run // nil until the run is committed
	version int64
	steps   *runSteps // nil until its first step: many runs have none yet
	parent  *parent   // the parent last made for one of its steps, for the next to share
}

type deadlineKey struct {
	at    int64
	runID string
}

func lessDeadlines(a, b deadlineKey) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.runID < b.runID
}

// deadlineOf returns the key a run is armed under, and false if the run
// cannot expire (it has ended, or has no deadline).
func deadlineOf(r *lifecycle.Run) (deadlineKey, bool) {
	if r == nil || r.ExpiresAt == nil || r.Status.Terminal() {
		return deadlineKey{}, false
	}
	return deadlineKey{*r.ExpiresAt, r.ID}, true
}

// get returns a copy of the run at its version. Call it with the lock
// held, or on a copy of the entry taken with it.
func (e runEntry) get() lifecycle.Run {
	run := e.run.Clone()
	run.Version = e.version
	return run
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store { return newStore(nil) }

// newStore returns an empty store whose step index hashes ids with hash
// (nil for the default), so that tests can make every id collide.
func newStore(hash func(string) uint64) *Store {
	return &Store{
		steps:     newStepIndex(hash),
		runs:      make(map[string]*runEntry),
		deadlines: btree.NewG(32, lessDeadlines),
		nodes:     btree.NewFreeListG[*stepBox](btree.DefaultFreeListSize),
	}
}

// Commit implements store.Store.
func (s *Store) Commit(ctx context.Context, b store.Batch) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	for i, ev := range b.Events {
		if err := validate(i, ev); err != nil {
			return 0, err
		}
	}
	if len(b.Events) == 0 && len(b.Guards) == 0 {
		return 0, nil
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// The stored steps the batch changes, looked up once: prev[i] is
	// b.Events[i]'s (nil for a run or a new step).
	var small [4]*stepBox
	prev := small[:0]
	if len(b.Events) > len(small) {
		prev = make([]*stepBox, 0, len(b.Events))
	}
	prev, err := s.checkLocked(b.Events, b.Guards, prev)
	if err != nil {
		return 0, err
	}
	for _, g := range b.Guards {
		s.runs[g.RunID].version++
	}
	// Copy in: the stored objects are the store's alone. A change that
	// only moves a step on from its first, created version takes the
	// place of that copy (see takesPlace); the other copies are allocated
	// together: a cascade of thousands of steps makes one allocation, not
	// thousands.
	nBoxes, nRuns := 0, 0
	for i, ev := range b.Events {
		switch {
		case ev.Run != nil:
			nRuns++
		case !takesPlace(ev.Type, prev[i], ev.Step):
			nBoxes++
		}
	}
	stepBoxes := make([]stepBox, nBoxes)
	runBoxes := make([]runBox, nRuns)
	first := int64(s.log.len()) + 1
	for i, ev := range b.Events {
		e := entry{typ: codeOf(ev.Type), at: ev.At}
		if ev.Step != nil {
			e.step = s.putStepLocked(ev.Type, ev.Step, prev[i], &stepBoxes)
		} else {
			e.run = runBoxes[0].copy(ev.Run)
			runBoxes = runBoxes[1:]
			e.run.Version++
			s.putRunLocked(e.run)
		}
		s.log.append(e, ev.Type)
	}
	return first, nil
}

// validate checks what the i-th event of a batch carries on its own: one
// object, which its Validate accepts.
func validate(i int, ev events.Event) error {
	switch {
	case (ev.Step == nil) == (ev.Run == nil):
		return fmt.Errorf("memory: commit event %d (%s): %w: want exactly one of a step and a run", i, ev.Type, store.ErrInvalid)
	case ev.Step != nil:
		if err := ev.Step.Validate(); err != nil {
			return fmt.Errorf("memory: commit step %s: %w: %w", ev.Step.ID, store.ErrInvalid, err)
		}
		if _, _, ok := codes(ev.Step); !ok { // never so for a valid step
			return fmt.Errorf("memory: commit step %s: %w: type %q or status %q not storable", ev.Step.ID, store.ErrInvalid, ev.Step.Type, ev.Step.Status)
		}
	default:
		if err := ev.Run.Validate(); err != nil {
			return fmt.Errorf("memory: commit run %s: %w: %w", ev.Run.ID, store.ErrInvalid, err)
		}
	}
	return nil
}

// takesPlace reports whether step, a change of prev as a writer read it,
// only moves prev on from its first version: then step takes prev's
// place, and the log tells the created event from it. A change typed
// created never does: the log tells the two events of a box apart by
// their types.
func takesPlace(typ events.Type, prev *stepBox, step *lifecycle.Step) bool {
	return typ != events.TypeStepCreated && prev.isFirst() && prev.movesOn(step)
}

// putStepLocked stores a copy of step, a change of prev (nil for a new
// step), whose event of type typ is about to be appended to the log, and
// returns the copy. A copy that does not take prev's place goes to the
// first of boxes.
func (s *Store) putStepLocked(typ events.Type, step *lifecycle.Step, prev *stepBox, boxes *[]stepBox) *stepBox {
	if takesPlace(typ, prev, step) {
		prev.moveOn(step)
		prev.version++
		return prev
	}
	box := &(*boxes)[0]
	*boxes = (*boxes)[1:]
	var p *parent
	if prev != nil {
		p = prev.parent
	}
	box.fill(step, s.parentLocked(p, step))
	box.version++
	s.steps.put(box)
	if box.version == 1 && typ == events.TypeStepCreated {
		box.flags |= bornCreated
	}
	run := box.parent.run
	if run.steps == nil {
		run.steps = new(runSteps)
	}
	run.steps.put(box, s.nodes)
	return box
}

// parentLocked returns a parent of the run, thread and assistant step
// names: p (its earlier version's) or the one its run made last, if either
// names the same three; otherwise a new one, which the run keeps for the
// steps after it.
func (s *Store) parentLocked(p *parent, step *lifecycle.Step) *parent {
	same := func(p *parent) bool {
		return p != nil && p.run.id == step.RunID && p.threadID == step.ThreadID && p.assistantID == step.AssistantID
	}
	if same(p) {
		return p
	}
	run := s.runEntryLocked(step.RunID)
	if !same(run.parent) {
		run.parent = &parent{run: run, threadID: step.ThreadID, assistantID: step.AssistantID}
	}
	return run.parent
}

// runEntryLocked returns the entry of the run with the given id, made
// (with no run yet) if there is none.
func (s *Store) runEntryLocked(id string) *runEntry {
	e, ok := s.runs[id]
	if !ok {
		e = &runEntry{id: id}
		s.runs[id] = e
	}
	return e
}

func (s *Store) putRunLocked(run *lifecycle.Run) {
	e := s.runEntryLocked(run.ID)
	if k, ok := deadlineOf(e.run); ok {
		s.deadlines.Delete(k)
	}
	if k, ok := deadlineOf(run); ok {
		s.deadlines.ReplaceOrInsert(k)
	}
	e.run, e.version = run, run.Version
}

// runBox is a stored run and its stamps, in one piece of memory.
type runBox struct {
	run    lifecycle.Run
	stamps [5]int64
}

// copy fills b with a deep copy of run and returns the copy.
func (b *runBox) copy(run *lifecycle.Run) *lifecycle.Run {
	rest := *run
	rest.StartedAt, rest.ExpiresAt, rest.CancelledAt, rest.FailedAt, rest.CompletedAt = nil, nil, nil, nil, nil
	b.run = rest.Clone()
	c := &b.run
	copyStamps(b.stamps[:],
		stamp{&c.StartedAt, run.StartedAt}, stamp{&c.ExpiresAt, run.ExpiresAt},
		stamp{&c.CancelledAt, run.CancelledAt}, stamp{&c.FailedAt, run.FailedAt},
		stamp{&c.CompletedAt, run.CompletedAt})
	return c
}

// stamp is a nullable time field of a copy and the original's value.
type stamp struct {
	dst **int64
	src *int64
}

// copyStamps copies each non-nil stamp into block and points its field at
// the copy.
func copyStamps(block []int64, stamps ...stamp) {
	for i, st := range stamps {
		if st.src != nil {
			block[i] = *st.src
			*st.dst = &block[i]
		}
	}
}

// checkLocked verifies every version of a batch before any of it is
// written, so a batch is stored whole or not at all. It appends to prev
// the stored box of each event's step (nil for a run or a new step).
func (s *Store) checkLocked(batch []events.Event, guards []store.Guard, prev []*stepBox) ([]*stepBox, error) {
	if err := checkDistinct(batch, guards); err != nil {
		return nil, err
	}
	for _, ev := range batch {
		var e *stepBox
		if ev.Step != nil {
			var err error
			if e, err = s.checkStepLocked(ev.Step); err != nil {
				return nil, err
			}
		} else if err := s.checkRunLocked(ev.Run); err != nil {
			return nil, err
		}
		prev = append(prev, e)
	}
	for _, g := range guards {
		cur, ok := s.runs[g.RunID]
		switch {
		case !ok || cur.run == nil:
			return nil, fmt.Errorf("memory: guard run %s: %w", g.RunID, store.ErrNotFound)
		case cur.version != g.Version:
			return nil, fmt.Errorf("memory: guard run %s at version %d (stored %d): %w", g.RunID, g.Version, cur.version, store.ErrConflict)
		}
	}
	return prev, nil
}

// checkDistinct refuses a batch that names one object twice.
func checkDistinct(batch []events.Event, guards []store.Guard) error {
	switch n := len(batch) + len(guards); {
	case n < 2:
		return nil // the usual single transition: nothing to compare
	case n <= smallBatch:
		return checkDistinctSmall(batch, guards)
	}
	// Steps and runs apart, keyed by id alone: string keys take the map's
	// fast path, which matters for a cascade of thousands of steps.
	steps := make(map[string]struct{}, len(batch))
	runs := make(map[string]struct{}, len(guards)+1)
	once := func(seen map[string]struct{}, id string) error {
		if _, dup := seen[id]; dup {
			return fmt.Errorf("memory: commit %s: %w: named twice in one commit", id, store.ErrInvalid)
		}
		seen[id] = struct{}{}
		return nil
	}
	for _, ev := range batch {
		var err error
		if ev.Run != nil {
			err = once(runs, ev.Run.ID)
		} else {
			err = once(steps, ev.Step.ID)
		}
		if err != nil {
			return err
		}
	}
	for _, g := range guards {
		if err := once(runs, g.RunID); err != nil {
			return err
		}
	}
	return nil
}

// smallBatch is the size up to which checkDistinct compares every pair
// rather than build maps: a replay commits a few events at a time.
const smallBatch = 8

// checkDistinctSmall is checkDistinct for a batch of a few objects.
func checkDistinctSmall(batch []events.Event, guards []store.Guard) error {
	var objects [smallBatch]struct {
		run bool
		id  string
	}
	n := 0
	for _, ev := range batch {
		if ev.Run != nil {
			objects[n].run, objects[n].id = true, ev.Run.ID
		} else {
			objects[n].id = ev.Step.ID
		}
		n++
	}
	for _, g := range guards {
		objects[n].run, objects[n].id = true, g.RunID
		n++
	}
	for i := 1; i < n; i++ {
		for j := range i {
			if objects[i] == objects[j] {
				return fmt.Errorf("memory: commit %s: %w: named twice in one commit", objects[i].id, store.ErrInvalid)
			}
		}
	}
	return nil
}

// checkStepLocked checks a step's version and returns its stored box
// (nil if it is new).
func (s *Store) checkStepLocked(step *lifecycle.Step) (*stepBox, error) {
	e := s.steps.get(step.ID)
	exists := e != nil
	if err := checkVersion("step", step.ID, step.Version, exists, func() int64 { return e.version }); err != nil {
		return nil, err
	}
	if exists && (e.parent.run.id != step.RunID || e.createdAt != step.CreatedAt) {
		return nil, fmt.Errorf("memory: update step %s: %w: run_id and created_at never change", step.ID, store.ErrInvalid)
	}
	return e, nil
}

func (s *Store) checkRunLocked(run *lifecycle.Run) error {
	cur, ok := s.runs[run.ID]
	return checkVersion("run", run.ID, run.Version, ok && cur.run != nil, func() int64 { return cur.version })
}

// checkVersion checks the version a writer read against what is stored.
func checkVersion(kind, id string, read int64, exists bool, stored func() int64) error {
	switch {
	case read < 0:
		return fmt.Errorf("memory: commit %s %s: %w: negative version", kind, id, store.ErrInvalid)
	case read == 0 && exists:
		return fmt.Errorf("memory: create %s %s: %w", kind, id, store.ErrAlreadyExists)
	case read > 0 && !exists:
		return fmt.Errorf("memory: update %s %s: %w", kind, id, store.ErrNotFound)
	case read > 0 && stored() != read:
		return fmt.Errorf("memory: update %s %s at version %d (stored %d): %w", kind, id, read, stored(), store.ErrConflict)
	}
	return nil
}

// GetStep implements store.Store.
func (s *Store) GetStep(ctx context.Context, id string) (lifecycle.Step, error) {
	if err := ctx.Err(); err != nil {
		return lifecycle.Step{}, err
	}
	s.mu.RLock()
	e := s.steps.get(id)
	ok := e != nil
	var step lifecycle.Step
	if ok {
		step = e.get() // under the lock: a step moving on is copied in place
	}
	s.mu.RUnlock()
	if !ok {
		return lifecycle.Step{}, fmt.Errorf("memory: get step %s: %w", id, store.ErrNotFound)
	}
	return step, nil
}

// GetStepForUpdate implements store.Store: GetStep and the run's deadline
// under one lock.
func (s *Store) GetStepForUpdate(ctx context.Context, id string) (lifecycle.Step, store.RunDeadline, error) {
	if err := ctx.Err(); err != nil {
		return lifecycle.Step{}, store.RunDeadline{}, err
	}
	s.mu.RLock()
	e := s.steps.get(id)
	ok := e != nil
	var step lifecycle.Step
	var deadline store.RunDeadline
	if ok {
		step = e.get() // under the lock: a step moving on is copied in place
		if k, armed := deadlineOf(e.parent.run.run); armed {
			deadline = store.RunDeadline{At: k.at, Armed: true}
		}
	}
	s.mu.RUnlock()
	if !ok {
		return lifecycle.Step{}, store.RunDeadline{}, fmt.Errorf("memory: get step %s: %w", id, store.ErrNotFound)
	}
	return step, deadline, nil
}

// GetRunForUpdate implements store.Store: a plain GetRun.
func (s *Store) GetRunForUpdate(ctx context.Context, id string) (lifecycle.Run, error) {
	return s.GetRun(ctx, id)
}

// ListSteps implements store.Store.
func (s *Store) ListSteps(ctx context.Context, q store.StepQuery) (store.StepPage, error) {
	if err := ctx.Err(); err != nil {
		return store.StepPage{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var index *runSteps
	if run := s.runs[q.RunID]; run != nil && run.steps != nil {
		index = run.steps
	}
	cursor := func(id string) (*stepBox, error) {
		if id == "" {
			return nil, nil
		}
		e := s.steps.get(id)
		ok := e != nil
		if !ok || e.parent.run.id != q.RunID {
			return nil, fmt.Errorf("memory: list steps of run %s: cursor %s: %w", q.RunID, id, store.ErrNotFound)
		}
		return e, nil
	}
	after, err := cursor(q.After)
	if err != nil {
		return store.StepPage{}, err
	}
	before, err := cursor(q.Before)
	if err != nil {
		return store.StepPage{}, err
	}
	// Only after the cursors are checked: a run with no steps has no step
	// a cursor could name.
	if index == nil {
		return store.StepPage{Steps: []lifecycle.Step{}}, nil
	}

	// Walk away from the cursor the page was asked from, Limit+1 steps at
	// most: the extra one only says whether there are more.
	ascending := q.Order != store.OrderDesc
	var boxes []*stepBox
	collect := func(b *stepBox) bool {
		if before != nil && after != nil && b.id == before.id {
			return false
		}
		boxes = append(boxes, b)
		return len(boxes) <= q.Limit
	}
	if before != nil && after == nil {
		// Only Before: the Limit steps just before it, walked backwards.
		index.walk(!ascending, before, collect)
		slices.Reverse(boxes)
	} else if before == nil || ascending && lessBoxes(after, before) || !ascending && lessBoxes(before, after) {
		// Unless After comes strictly before Before in Order, nothing lies
		// between them: the page is empty.
		index.walk(ascending, after, collect)
	}
	page := store.StepPage{HasMore: len(boxes) > q.Limit}
	if page.HasMore {
		if before != nil && after == nil {
			boxes = boxes[1:] // the extra one is the farthest from the cursor
		} else {
			boxes = boxes[:q.Limit]
		}
	}
	page.Steps = make([]lifecycle.Step, len(boxes))
	for i, b := range boxes {
		page.Steps[i] = b.get()
	}
	return page, nil
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, after int64, limit int) ([]events.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	from := int(min(max(after, 0), int64(s.log.len())))
	// Count what is left rather than add limit to from: a caller may ask
	// for math.MaxInt events, and from+limit would overflow.
	n := min(max(limit, 0), s.log.len()-from)
	out := make([]events.Event, n)
	for i := range out {
		out[i] = s.log.event(from + i)
	}
	return out, nil
}

// GetRun implements store.Store.
func (s *Store) GetRun(ctx context.Context, id string) (lifecycle.Run, error) {
	if err := ctx.Err(); err != nil {
		return lifecycle.Run{}, err
	}
	s.mu.RLock()
	var e runEntry
	p, ok := s.runs[id]
	ok = ok && p.run != nil
	if ok {
		e = *p // the run it points at never changes; the entry does
	}
	s.mu.RUnlock()
	if !ok {
		return lifecycle.Run{}, fmt.Errorf("memory: get run %s: %w", id, store.ErrNotFound)
	}
	return e.get(), nil
}

// StepsInProgress implements store.Store.
func (s *Store) StepsInProgress(ctx context.Context, runID string) ([]lifecycle.Step, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []lifecycle.Step
	if run := s.runs[runID]; run != nil && run.steps != nil {
		// Sized for the run: growing a slice of 10,000 steps copied them
		// over and over, half the cost of expiring such a run.
		out = make([]lifecycle.Step, 0, run.steps.len())
		run.steps.walk(true, nil, func(box *stepBox) bool {
			if box.status == inProgress {
				out = append(out, box.get())
			}
			return true
		})
	}
	return out, nil
}

// DueRuns implements store.Store.
func (s *Store) DueRuns(ctx context.Context, now int64, limit int) ([]lifecycle.Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []lifecycle.Run
	s.deadlines.Ascend(func(k deadlineKey) bool {
		if k.at > now || len(out) >= limit {
			return false
		}
		out = append(out, s.runs[k.runID].get())
		return true
	})
	return out, nil
}

// NextDeadline implements store.Store.
func (s *Store) NextDeadline(ctx context.Context) (int64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.deadlines.Min()
	return k.at, ok, nil
}

// Close implements store.Store; a memory store holds nothing to release.
func (s *Store) Close() error { return nil }
