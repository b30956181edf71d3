// Package memory is the in-process Store: fast, safe for concurrent use, and
// gone when the process ends. It is the default for tests and for programs
// that need no durability.
package memory

import (
	"cmp"
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
	// mu guards every field below. Steps and events behind it are never
	// changed in place: a commit stores fresh copies, so the log and the
	// state may share them.
	mu    sync.RWMutex
	steps map[string]*lifecycle.Step
	runs  map[string]*btree.BTreeG[stepKey] // each run's steps, by created_at, id
	log   []events.Event                    // log[i].Seq == i+1
}

type stepKey struct {
	createdAt int64
	id        string
}

func lessKeys(a, b stepKey) bool {
	return cmp.Or(cmp.Compare(a.createdAt, b.createdAt), cmp.Compare(a.id, b.id)) < 0
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{steps: make(map[string]*lifecycle.Step), runs: make(map[string]*btree.BTreeG[stepKey])}
}

// Commit implements store.Store.
func (s *Store) Commit(ctx context.Context, evs ...events.Event) ([]events.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Copy in before taking the lock: the copies are ours alone.
	stored := make([]events.Event, len(evs))
	for i, ev := range evs {
		if ev.Step == nil {
			return nil, fmt.Errorf("memory: commit event %d (%s): %w: no step", i, ev.Type, store.ErrInvalid)
		}
		stored[i] = ev.Clone()
		stored[i].Step.Version++
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkLocked(stored); err != nil {
		return nil, err
	}
	out := make([]events.Event, len(stored))
	for i := range stored {
		ev := &stored[i]
		ev.Seq = int64(len(s.log)) + 1
		if ev.Step.Version == 1 {
			s.insertLocked(ev.Step)
		}
		s.steps[ev.Step.ID] = ev.Step
		s.log = append(s.log, *ev)
		out[i] = ev.Clone()
	}
	return out, nil
}

// checkLocked verifies every version of a batch before any of it is
// written, so a batch is stored whole or not at all.
func (s *Store) checkLocked(batch []events.Event) error {
	for i, ev := range batch {
		step := ev.Step
		for _, prev := range batch[:i] {
			if prev.Step.ID == step.ID {
				return fmt.Errorf("memory: commit step %s: %w: named twice in one commit", step.ID, store.ErrInvalid)
			}
		}
		cur, exists := s.steps[step.ID]
		switch {
		case step.Version == 1 && exists:
			return fmt.Errorf("memory: create step %s: %w", step.ID, store.ErrAlreadyExists)
		case step.Version > 1 && !exists:
			return fmt.Errorf("memory: update step %s: %w", step.ID, store.ErrNotFound)
		case step.Version > 1 && cur.Version != step.Version-1:
			return fmt.Errorf("memory: update step %s at version %d (stored %d): %w",
				step.ID, step.Version-1, cur.Version, store.ErrConflict)
		case step.Version > 1 && (cur.RunID != step.RunID || cur.CreatedAt != step.CreatedAt):
			return fmt.Errorf("memory: update step %s: %w: run_id and created_at never change", step.ID, store.ErrInvalid)
		case step.Version < 1:
			return fmt.Errorf("memory: commit step %s: %w: negative version", step.ID, store.ErrInvalid)
		}
	}
	return nil
}

func (s *Store) insertLocked(step *lifecycle.Step) {
	index, ok := s.runs[step.RunID]
	if !ok {
		index = btree.NewG(32, lessKeys)
		s.runs[step.RunID] = index
	}
	index.ReplaceOrInsert(stepKey{step.CreatedAt, step.ID})
}

// GetStep implements store.Store.
func (s *Store) GetStep(ctx context.Context, id string) (lifecycle.Step, error) {
	if err := ctx.Err(); err != nil {
		return lifecycle.Step{}, err
	}
	s.mu.RLock()
	step, ok := s.steps[id]
	s.mu.RUnlock()
	if !ok {
		return lifecycle.Step{}, fmt.Errorf("memory: get step %s: %w", id, store.ErrNotFound)
	}
	// The stored step is never changed in place, so it can be copied
	// outside the lock.
	return step.Clone(), nil
}

// ListSteps implements store.Store.
func (s *Store) ListSteps(ctx context.Context, q store.StepQuery) (store.StepPage, error) {
	if err := ctx.Err(); err != nil {
		return store.StepPage{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	index := s.runs[q.RunID]
	cursor := func(id string) (*stepKey, error) {
		if id == "" {
			return nil, nil
		}
		step, ok := s.steps[id]
		if !ok || step.RunID != q.RunID {
			return nil, fmt.Errorf("memory: list steps of run %s: cursor %s: %w", q.RunID, id, store.ErrNotFound)
		}
		return &stepKey{step.CreatedAt, step.ID}, nil
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
	var keys []stepKey
	collect := func(k stepKey) bool {
		if before != nil && after != nil && k == *before {
			return false
		}
		keys = append(keys, k)
		return len(keys) <= q.Limit
	}
	if before != nil && after == nil {
		// Only Before: the Limit steps just before it, walked backwards.
		walk(index, !ascending, before, collect)
		slices.Reverse(keys)
	} else if before == nil || ascending && lessKeys(*after, *before) || !ascending && lessKeys(*before, *after) {
		// Unless After comes strictly before Before in Order, nothing lies
		// between them: the page is empty.
		walk(index, ascending, after, collect)
	}
	page := store.StepPage{HasMore: len(keys) > q.Limit}
	if page.HasMore {
		if before != nil && after == nil {
			keys = keys[1:] // the extra one is the farthest from the cursor
		} else {
			keys = keys[:q.Limit]
		}
	}
	page.Steps = make([]lifecycle.Step, len(keys))
	for i, k := range keys {
		page.Steps[i] = s.steps[k.id].Clone()
	}
	return page, nil
}

// walk visits index in ascending or descending order, starting just past
// from (or at the first key if from is nil), until visit returns false.
func walk(index *btree.BTreeG[stepKey], ascending bool, from *stepKey, visit func(stepKey) bool) {
	pastFrom := func(k stepKey) bool { return k == *from || visit(k) }
	switch {
	case from == nil && ascending:
		index.Ascend(visit)
	case from == nil:
		index.Descend(visit)
	case ascending:
		index.AscendGreaterOrEqual(*from, pastFrom)
	default:
		index.DescendLessOrEqual(*from, pastFrom)
	}
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, after int64, limit int) ([]events.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	from := int(min(max(after, 0), int64(len(s.log))))
	// Count what is left rather than add limit to from: a caller may ask
	// for math.MaxInt events, and from+limit would overflow.
	n := min(max(limit, 0), len(s.log)-from)
	out := make([]events.Event, n)
	for i := range out {
		out[i] = s.log[from+i].Clone()
	}
	return out, nil
}

// Close implements store.Store; a memory store holds nothing to release.
func (s *Store) Close() error { return nil }
