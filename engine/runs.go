package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
)

// NewRun is what CreateRun needs to know about a run.
type NewRun struct {
	// ID is the run's id; empty gives a new "run_…" id.
	ID          string
	ThreadID    string
	AssistantID string
	Metadata    lifecycle.Metadata
	// TTL, if positive, overrides the engine's run TTL: the run expires
	// TTL after it is created.
	TTL time.Duration
}

// CreateRun creates a run, queued, with its deadline (expires_at) set to
// created_at plus the TTL, and commits it with its thread.run.created
// event. Returns a *lifecycle.ValidationError for bad input and
// store.ErrAlreadyExists if the id is taken.
func (e *Engine) CreateRun(ctx context.Context, nr NewRun) (lifecycle.Run, error) {
	if nr.ID == "" {
		nr.ID = e.ids.NewID("run_")
	}
	ttl := e.ttl
	if nr.TTL > 0 {
		ttl = nr.TTL
	}
	now := e.clock.Now()
	// Whole seconds: the deadline is the API's expires_at, and a run is due
	// when the clock reaches it.
	// Divide before rounding up: adding a second first would overflow the
	// longest TTLs into a deadline in the past.
	secs := int64(ttl / time.Second)
	if ttl%time.Second != 0 {
		secs++
	}
	deadline := now.Unix() + secs
	run := lifecycle.Run{
		ID: nr.ID, CreatedAt: now.Unix(), ThreadID: nr.ThreadID, AssistantID: nr.AssistantID,
		Status: lifecycle.RunStatusQueued, ExpiresAt: &deadline, Metadata: nr.Metadata,
	}
	if err := run.Validate(); err != nil {
		return lifecycle.Run{}, fmt.Errorf("engine: create run: %w", err)
	}
	if err := e.commit(ctx, store.Events(events.Event{Type: events.TypeRunCreated, At: run.CreatedAt, Run: &run})); err != nil {
		return lifecycle.Run{}, fmt.Errorf("engine: create run %s: %w", run.ID, err)
	}
	run.Version = 1
	return run, nil
}

// GetRun returns the run. Returns store.ErrNotFound for an unknown id.
func (e *Engine) GetRun(ctx context.Context, id string) (lifecycle.Run, error) {
	run, err := e.store.GetRun(ctx, id)
	if err != nil {
		return lifecycle.Run{}, fmt.Errorf("engine: get run %s: %w", id, err)
	}
	return run, nil
}

// StartRun moves a queued run to in_progress, stamping started_at now.
// Steps can be created only while a run is in progress.
func (e *Engine) StartRun(ctx context.Context, id string) (lifecycle.Run, error) {
	return e.TriggerRun(ctx, id, lifecycle.RunTriggerStart)
}

// RequireAction moves the run to requires_action: it waits for tool
// outputs.
func (e *Engine) RequireAction(ctx context.Context, id string) (lifecycle.Run, error) {
	return e.TriggerRun(ctx, id, lifecycle.RunTriggerRequireAction)
}

// SubmitToolOutputs moves a run that requires action back to queued, as
// OpenAI does when tool outputs arrive; StartRun then resumes it.
func (e *Engine) SubmitToolOutputs(ctx context.Context, id string) (lifecycle.Run, error) {
	return e.TriggerRun(ctx, id, lifecycle.RunTriggerSubmitToolOutputs)
}

// CompleteRun moves the run to completed. Its steps still in progress
// follow the cascade policy (by default, the run is refused while any
// is in progress).
func (e *Engine) CompleteRun(ctx context.Context, id string) (lifecycle.Run, error) {
	return e.TriggerRun(ctx, id, lifecycle.RunTriggerComplete)
}

// CancelRun moves the run to cancelling. The orchestrator stops the run's
// work and then calls FinishCancelRun; a cancel that arrives too late loses
// to CompleteRun, FailRun or expiry.
func (e *Engine) CancelRun(ctx context.Context, id string) (lifecycle.Run, error) {
	return e.TriggerRun(ctx, id, lifecycle.RunTriggerCancel)
}

// FinishCancelRun moves a cancelling run to cancelled, stamping
// cancelled_at; its steps still in progress are cancelled with it.
func (e *Engine) FinishCancelRun(ctx context.Context, id string) (lifecycle.Run, error) {
	return e.TriggerRun(ctx, id, lifecycle.RunTriggerFinishCancel)
}

// ExpireRun expires the run now, whatever its deadline; its steps still in
// progress expire with it. Runs expire by themselves at their deadline
// (see ExpireDue and Run).
func (e *Engine) ExpireRun(ctx context.Context, id string) (lifecycle.Run, error) {
	return e.TriggerRun(ctx, id, lifecycle.RunTriggerExpire)
}

// FailRun moves the run to failed, stamping failed_at and recording why;
// its steps still in progress fail with the run's error (invalid_prompt,
// which steps cannot carry, becomes server_error).
func (e *Engine) FailRun(ctx context.Context, id string, lastErr lifecycle.LastError) (lifecycle.Run, error) {
	return e.transitionRun(ctx, id, lifecycle.RunChange{Trigger: lifecycle.RunTriggerFail, Error: &lastErr}, false)
}

// TriggerRun applies any run trigger but fail (which needs an error: use
// FailRun), stamped now. When the run ends, its steps still in progress
// follow the cascade policy, in the same atomic write: each cascaded step
// gets its own event, and the steps' events come before the run's, as in
// OpenAI's stream. Returns a *lifecycle.TransitionError if the machine
// refuses the trigger, an error wrapping lifecycle.ErrStepsInProgress if
// the policy refuses to end a run with steps in progress, and
// store.ErrNotFound for an unknown id.
func (e *Engine) TriggerRun(ctx context.Context, id string, t lifecycle.RunTrigger) (lifecycle.Run, error) {
	return e.transitionRun(ctx, id, lifecycle.RunChange{Trigger: t}, false)
}

// transitionRun reads the run and its steps in progress, lets the machines
// decide, and commits the run and every cascaded step at once. With
// atDeadline, the change is stamped at the run's deadline instead of now:
// an expiry that is noticed late still happened at the deadline.
func (e *Engine) transitionRun(ctx context.Context, id string, c lifecycle.RunChange, atDeadline bool) (lifecycle.Run, error) {
	var err error
	for range maxAttempts {
		var run, next lifecycle.Run
		if run, err = e.store.GetRunForUpdate(ctx, id); err != nil {
			break
		}
		c.At = e.clock.Now()
		if atDeadline && run.ExpiresAt != nil {
			c.At = time.Unix(*run.ExpiresAt, 0)
		} else if c.Trigger != lifecycle.RunTriggerExpire && overdue(run, c.At.Unix()) {
			// The run should have expired already: expire it as of its
			// deadline; the next attempt reads it and the machine refuses.
			if err = e.expireOverdue(ctx, run.ID); err != nil {
				break
			}
			continue
		}
		if next, err = run.Apply(c); err != nil {
			break
		}
		var evs []events.Event
		if next.Status.Terminal() {
			if evs, err = e.cascade(ctx, next, c.At); err != nil {
				break
			}
		}
		evs = append(evs, events.Event{Type: events.RunType(next.Status), At: c.At.Unix(), Run: &next})
		if err = e.commit(ctx, store.Batch{Events: evs}); err == nil {
			next.Version++
			return next, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			break
		}
	}
	if err == nil {
		err = store.ErrConflict // every attempt lost a race
	}
	return lifecycle.Run{}, fmt.Errorf("engine: %s run %s: %w", c.Trigger, id, err)
}

// cascade returns the events of the run's steps still in progress, moved as
// the policy says now that run has ended at time at.
func (e *Engine) cascade(ctx context.Context, run lifecycle.Run, at time.Time) ([]events.Event, error) {
	steps, err := e.store.StepsInProgress(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	// The steps read are the engine's own: the moved steps take their place.
	moved, err := e.policy.AppendCascade(steps[:0], run, steps, at)
	if err != nil {
		return nil, err
	}
	evs := make([]events.Event, len(moved), len(moved)+1)
	for i := range moved {
		evs[i] = events.Event{Type: events.StepType(moved[i].Status), At: at.Unix(), Step: &moved[i]}
	}
	return evs, nil
}

// dueBatch is how many due runs ExpireDue reads at a time.
const dueBatch = 100

// ExpireDue expires every run whose deadline has come on the engine's
// clock, stamping each (and its cascaded steps) with its deadline, not the
// time it was noticed. It returns how many runs it expired. A run another
// writer ended or expired first is passed over; other errors are joined
// and returned after the sweep.
func (e *Engine) ExpireDue(ctx context.Context) (int, error) {
	now := e.clock.Now().Unix()
	expired := 0
	var errs []error
	failed := map[string]bool{} // runs that would not expire this sweep
	for {
		limit := dueBatch + len(failed) // the failed are read again: skip them
		due, err := e.store.DueRuns(ctx, now, limit)
		if err != nil {
			return expired, errors.Join(append(errs, fmt.Errorf("engine: expire due runs: %w", err))...)
		}
		progress := false
		for _, run := range due {
			if failed[run.ID] {
				continue
			}
			_, err := e.transitionRun(ctx, run.ID, lifecycle.RunChange{Trigger: lifecycle.RunTriggerExpire}, true)
			switch {
			case err == nil:
				expired++
				progress = true
			case errors.Is(err, lifecycle.ErrInvalidTransition):
				progress = true // ended by someone else meanwhile
			default:
				failed[run.ID] = true
				errs = append(errs, err)
			}
		}
		if !progress || len(due) < limit {
			return expired, errors.Join(errs...)
		}
	}
}

// Run expires runs at their deadlines until ctx is done, then returns nil.
// It keeps one timer on the engine's clock, armed for the earliest deadline
// in the store, and re-arms it whenever a run changes through this engine.
// On start it expires at once whatever fell due while no engine was
// running. Errors of a sweep are logged and the loop goes on.
//
// If the store is a store.Watcher (one several processes share), Run also
// follows the other processes' commits: it re-arms on them and wakes this
// engine's subscriptions, which otherwise see other processes' events only
// when this engine commits. A process that serves subscriptions from a
// shared store should therefore run Run.
func (e *Engine) Run(ctx context.Context) error {
	var remote <-chan struct{}
	if w, ok := e.store.(store.Watcher); ok {
		changes, err := w.Watch(ctx)
		if err != nil {
			return fmt.Errorf("engine: watch the store: %w", err)
		}
		// Commits made before the watch began were not announced: wake the
		// subscriptions once so they read them.
		e.changed.notify()
		forwarded := make(chan struct{}, 1)
		go func() {
			for range changes {
				e.changed.notify() // subscriptions read what others wrote
				select {
				case forwarded <- struct{}{}:
				default: // a wake-up is already pending
				}
			}
			if ctx.Err() == nil {
				e.logger.ErrorContext(ctx, "runstep: the store's watch ended; other processes' commits are seen only when this engine commits")
			}
		}()
		remote = forwarded
	}
	sweep := true // at start: expire what fell due while no engine ran
	for {
		// Take the wake-up channel first, so a run committed during the
		// sweep still re-arms the timer.
		rearm := e.rearm.wait()
		// What the sweep treats as due: at least the runs due by now.
		swept := int64(math.MinInt64)
		if sweep {
			swept = e.clock.Now().Unix()
			if _, err := e.ExpireDue(ctx); err != nil && ctx.Err() == nil {
				e.logger.ErrorContext(ctx, "runstep: expiring due runs", "err", err)
			}
		}
		// Sleep until the earliest deadline, or until a run changes. A
		// change only re-arms the timer; the sweep runs when it fires.
		// After a store error, or a due run the sweep could not expire, try
		// again a little later.
		next, ok, err := e.store.NextDeadline(ctx)
		var timer *clock.Timer
		switch {
		case err != nil:
			if ctx.Err() == nil {
				e.logger.ErrorContext(ctx, "runstep: reading the next deadline", "err", err)
			}
			timer = e.clock.Timer(retryAfter)
		case ok && next <= swept:
			timer = e.clock.Timer(retryAfter) // due when the sweep ran, and not expired by it
		case ok:
			var passed bool
			if timer, passed = e.timerUntil(time.Unix(next, 0)); passed {
				sweep = true // fell due since the sweep
				continue
			}
		}
		var fire <-chan time.Time
		if timer != nil {
			fire = timer.C
		}
		sweep = false
		select {
		case <-ctx.Done():
		case <-fire:
			sweep = true
		case <-rearm:
		case <-remote:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// timerUntil returns a timer that fires when the clock reaches at, or
// passed true if it has. Between reading the clock and setting the timer,
// another goroutine may move a mock clock, which would leave the timer
// late by as much: a timer set while the clock moved a millisecond or more
// is set again.
func (e *Engine) timerUntil(at time.Time) (timer *clock.Timer, passed bool) {
	for {
		now := e.clock.Now()
		if !now.Before(at) {
			return nil, true
		}
		timer = e.clock.Timer(at.Sub(now))
		if e.clock.Since(now) < time.Millisecond {
			return timer, false
		}
		timer.Stop()
	}
}

// retryAfter is how long Run waits after the store failed it.
const retryAfter = time.Second
