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
	runs  map[string][]stepKey // each run's steps, sorted by created_at, id
	log   []events.Event       // log[i].Seq == i+1
}

type stepKey struct {
	createdAt int64
	id        string
}

func compareKeys(a, b stepKey) int {
	return cmp.Or(cmp.Compare(a.createdAt, b.createdAt), cmp.Compare(a.id, b.id))
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{steps: make(map[string]*lifecycle.Step), runs: make(map[string][]stepKey)}
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
	keys := s.runs[step.RunID]
	k := stepKey{step.CreatedAt, step.ID}
	// Steps mostly arrive in time order, so this is usually an append.
	i, _ := slices.BinarySearchFunc(keys, k, compareKeys)
	s.runs[step.RunID] = slices.Insert(keys, i, k)
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
	keys := s.runs[q.RunID]
	desc := q.Order == store.OrderDesc
	// at maps a position in the requested order to an index in keys.
	at := func(pos int) int {
		if desc {
			return len(keys) - 1 - pos
		}
		return pos
	}
	position := func(id string) (int, error) {
		step, ok := s.steps[id]
		if !ok || step.RunID != q.RunID {
			return 0, fmt.Errorf("memory: list steps of run %s: cursor %s: %w", q.RunID, id, store.ErrNotFound)
		}
		i, _ := slices.BinarySearchFunc(keys, stepKey{step.CreatedAt, step.ID}, compareKeys)
		return at(i), nil // at is its own inverse
	}
	// The cursors cut the window [lo, hi) out of the ordered steps.
	lo, hi := 0, len(keys)
	if q.After != "" {
		p, err := position(q.After)
		if err != nil {
			return store.StepPage{}, err
		}
		lo = p + 1
	}
	if q.Before != "" {
		p, err := position(q.Before)
		if err != nil {
			return store.StepPage{}, err
		}
		hi = p
	}
	if lo > hi {
		lo = hi
	}
	// A page holds the Limit steps next to the cursor it was asked from:
	// after After, or, with only Before, just before Before.
	var page store.StepPage
	from, to := lo, min(hi, lo+q.Limit)
	if q.Before != "" && q.After == "" {
		from, to = max(lo, hi-q.Limit), hi
	}
	page.HasMore = to-from < hi-lo
	page.Steps = make([]lifecycle.Step, 0, to-from)
	for pos := from; pos < to; pos++ {
		page.Steps = append(page.Steps, s.steps[keys[at(pos)].id].Clone())
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
	from := int(min(max(after, 0), int64(len(s.log))))
	to := min(from+max(limit, 0), len(s.log))
	out := make([]events.Event, to-from)
	for i := range out {
		out[i] = s.log[from+i].Clone()
	}
	return out, nil
}

// Close implements store.Store; a memory store holds nothing to release.
func (s *Store) Close() error { return nil }
