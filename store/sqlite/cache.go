package sqlite

import (
	"sync"

	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
)

// cache holds the steps and runs this store committed that can still
// change (a step in progress, a run that has not ended), as committed. Only
// the for-update reads answer from it, as the contract allows: a copy that
// another process has made stale makes its reader's Commit conflict, and
// every batch that fails forgets its objects, so the retry reads the file.
//
// The writer goroutine fills it, in commit order, after the transaction
// commits and before it answers the batches; so an entry is the latest
// state this store committed, or absent.
type cache struct {
	max int // the most entries, steps and runs together; 0: no cache

	// mu guards steps and runs. The values' pointers and maps are never
	// written once stored (an entry is replaced, not changed), so a reader
	// copies the value under mu and deep-copies it after.
	mu    sync.Mutex
	steps map[string]lifecycle.Step
	runs  map[string]lifecycle.Run
}

func newCache(max int) *cache {
	return &cache{max: max, steps: map[string]lifecycle.Step{}, runs: map[string]lifecycle.Run{}}
}

// step returns a copy of the cached step, with its run's deadline if the
// run is cached too (known).
func (c *cache) step(id string) (step lifecycle.Step, deadline store.RunDeadline, known, ok bool) {
	if c.max == 0 {
		return lifecycle.Step{}, store.RunDeadline{}, false, false
	}
	c.mu.Lock()
	step, ok = c.steps[id]
	var run lifecycle.Run
	if ok {
		run, known = c.runs[step.RunID]
	}
	c.mu.Unlock()
	if !ok {
		return lifecycle.Step{}, store.RunDeadline{}, false, false
	}
	if known && run.ExpiresAt != nil {
		// A cached run has not ended: its expires_at is its deadline.
		deadline = store.RunDeadline{At: *run.ExpiresAt, Armed: true}
	}
	return step.Clone(), deadline, known, true
}

// run returns a copy of the cached run.
func (c *cache) run(id string) (lifecycle.Run, bool) {
	if c.max == 0 {
		return lifecycle.Run{}, false
	}
	c.mu.Lock()
	run, ok := c.runs[id]
	c.mu.Unlock()
	if !ok {
		return lifecycle.Run{}, false
	}
	return run.Clone(), true
}

// settle records the outcome of a group's batches, in commit order: a
// committed batch's objects as committed, and a failed batch's forgotten.
// Only the writer goroutine calls it.
func (c *cache) settle(group []*request, results []result) {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, req := range group {
		if results[i].err != nil {
			c.forgetLocked(req)
			continue
		}
		for j := range req.rows {
			c.committedLocked(&req.rows[j])
		}
		for _, g := range req.guards {
			// The guard bumped the run's version and nothing else.
			if run, ok := c.runs[g.RunID]; ok && run.Version == g.Version {
				run.Version++
				c.runs[g.RunID] = run
			} else {
				delete(c.runs, g.RunID)
			}
		}
	}
}

// committedLocked records the object r committed: it replaces the entry,
// or removes it if the object can no longer change.
func (c *cache) committedLocked(r *row) {
	switch {
	case r.stepCopy != nil:
		c.makeRoomLocked(r.id, true)
		c.steps[r.id] = *r.stepCopy
	case r.runCopy != nil:
		c.makeRoomLocked(r.id, false)
		c.runs[r.id] = *r.runCopy
	case r.step:
		delete(c.steps, r.id)
	default:
		delete(c.runs, r.id)
	}
}

// forgetLocked removes every object req names.
func (c *cache) forgetLocked(req *request) {
	for j := range req.rows {
		if r := &req.rows[j]; r.step {
			delete(c.steps, r.id)
		} else {
			delete(c.runs, r.id)
		}
	}
	for _, g := range req.guards {
		delete(c.runs, g.RunID)
	}
}

// makeRoomLocked evicts an entry, if the cache is full and id (a step's
// or a run's) is not in it: an arbitrary step (map order is random), or a
// run if no step is cached. Runs are kept longer, since all a run's steps
// read its deadline.
func (c *cache) makeRoomLocked(id string, step bool) {
	if len(c.steps)+len(c.runs) < c.max {
		return
	}
	if _, ok := c.steps[id]; ok && step {
		return
	}
	if _, ok := c.runs[id]; ok && !step {
		return
	}
	for k := range c.steps {
		delete(c.steps, k)
		return
	}
	for k := range c.runs {
		delete(c.runs, k)
		return
	}
}
