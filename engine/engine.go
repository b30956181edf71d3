// Package engine is what an orchestrator calls to drive run steps: create
// them, complete, fail, cancel or expire them, read and list them, and
// follow their events. Every status change goes through the lifecycle
// machine and is committed to the Store together with its event.
//
// The engine is the only part of runstep that reads a clock, and it reads
// only the one it is given (WithClock): tests pass a *clock.Mock and move
// it.
//
// A call whose commit the store could not learn the outcome of (as when a
// PostgreSQL connection breaks during COMMIT) fails with an error that
// wraps store.ErrOutcomeUnknown, and is not retried: the change may be
// stored, and reading it back cannot tell it from the same change made by
// another writer.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
)

// Engine drives run steps through their lifecycle. It is safe for
// concurrent use; all its state is in the store.
type Engine struct {
	store   store.Store
	clock   clock.Clock
	ids     IDGenerator
	ttl     time.Duration
	policy  lifecycle.CascadePolicy
	logger  *slog.Logger
	changed notifier // woken by every commit
	rearm   notifier // woken by every commit that changes a run
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the clock every transition is stamped from. The default is
// the system clock.
func WithClock(c clock.Clock) Option { return func(e *Engine) { e.clock = c } }

// WithIDs sets how new ids are made. The default is RandomIDs().
func WithIDs(g IDGenerator) Option { return func(e *Engine) { e.ids = g } }

// WithRunTTL sets how long a run may take before it expires, unless
// NewRun says otherwise. The default is lifecycle.DefaultRunTTL, ten
// minutes.
func WithRunTTL(d time.Duration) Option { return func(e *Engine) { e.ttl = d } }

// WithCascadePolicy sets what a run's end does to its steps still in
// progress. The default is lifecycle.DefaultCascadePolicy().
func WithCascadePolicy(p lifecycle.CascadePolicy) Option {
	return func(e *Engine) { e.policy = maps.Clone(p) }
}

// WithLogger sets where Run reports the errors it carries on after. The
// default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.logger = l } }

// New returns an engine that keeps its state in st. It returns an error
// for a nil store, a TTL that is not positive, or an invalid cascade
// policy.
func New(st store.Store, opts ...Option) (*Engine, error) {
	if st == nil {
		return nil, errors.New("engine: nil store")
	}
	e := &Engine{store: st, ttl: lifecycle.DefaultRunTTL, policy: lifecycle.DefaultCascadePolicy(), logger: slog.Default()}
	for _, opt := range opts {
		opt(e)
	}
	if e.ttl <= 0 {
		return nil, fmt.Errorf("engine: run TTL %v is not positive", e.ttl)
	}
	if err := e.policy.Validate(); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if e.clock == nil {
		e.clock = clock.New()
	}
	if e.logger == nil {
		e.logger = slog.Default()
	}
	if e.ids == nil {
		e.ids = RandomIDs()
	}
	return e, nil
}

// NewStep is what CreateStep needs to know about a step.
type NewStep struct {
	// ID is the step's id; empty gives a new "step_…" id.
	ID          string
	RunID       string
	ThreadID    string
	AssistantID string
	Type        lifecycle.Type
	// Details are the step's details so far. A tool_calls step may leave
	// them empty (no calls yet); a message_creation step names its message.
	Details  lifecycle.StepDetails
	Metadata lifecycle.Metadata
}

// CreateStep creates a step in_progress, stamped created_at now, and
// commits it with its thread.run.step.created event. The run must exist
// (store.ErrNotFound otherwise) and be in_progress: creating a step of a
// run in any other status is a *lifecycle.TransitionError with trigger
// "create_step". A run past its deadline is expired then and there (as of
// its deadline) and refuses the step the same way. The step's thread and
// assistant are the run's; naming others is a *lifecycle.ValidationError.
// Returns a *lifecycle.ValidationError for bad input, and
// store.ErrAlreadyExists if the id is taken.
func (e *Engine) CreateStep(ctx context.Context, ns NewStep) (lifecycle.Step, error) {
	if ns.Details.Type == "" && ns.Type == lifecycle.TypeToolCalls {
		ns.Details = lifecycle.ToolCallsDetails()
	}
	if ns.ID == "" {
		ns.ID = e.ids.NewID("step_")
	}
	var err error
	for range maxAttempts {
		var run lifecycle.Run
		if run, err = e.store.GetRunForUpdate(ctx, ns.RunID); err != nil {
			break
		}
		if run.Status != lifecycle.RunStatusInProgress {
			err = &lifecycle.TransitionError{ID: run.ID, From: string(run.Status), Trigger: "create_step"}
			break
		}
		now := e.clock.Now().Unix()
		if overdue(run, now) {
			// Rather than add a step that would expire before it was
			// created, expire the run; the next attempt reads it and
			// refuses.
			if err = e.expireOverdue(ctx, run.ID); err != nil {
				break
			}
			continue
		}
		if err = sameParent(ns, run); err != nil {
			break
		}
		step := lifecycle.Step{
			ID: ns.ID, CreatedAt: now, AssistantID: cmp.Or(ns.AssistantID, run.AssistantID), ThreadID: cmp.Or(ns.ThreadID, run.ThreadID),
			RunID: ns.RunID, Type: ns.Type, Status: lifecycle.StatusInProgress, Details: ns.Details, Metadata: ns.Metadata,
		}
		// No Validate here: every store's Commit validates the step before
		// it looks at anything stored (store.Store), and a second check was
		// a tenth of a transition on the memory store.
		//
		// The guard makes the run's end and this step's birth exclusive:
		// if the run ends first, this commit conflicts and the next attempt
		// sees the ended run; if the step commits first, the run's cascade
		// conflicts and reads it.
		err = e.commitStep(ctx, step, events.TypeStepCreated, now, store.Guard{RunID: run.ID, Version: run.Version})
		if err == nil {
			step.Version = 1
			return step, nil
		}
		if verr, ok := errors.AsType[*lifecycle.ValidationError](err); ok && errors.Is(err, store.ErrInvalid) {
			err = verr // the store refused the step itself: bad input, not a store's failure
			break
		}
		if !errors.Is(err, store.ErrConflict) {
			break
		}
	}
	if err == nil {
		err = store.ErrConflict // every attempt lost a race
	}
	return lifecycle.Step{}, fmt.Errorf("engine: create step %s: %w", ns.ID, err)
}

// overdue reports whether run is past its deadline but no sweep has
// expired it yet.
func overdue(run lifecycle.Run, now int64) bool {
	return run.ExpiresAt != nil && !run.Status.Terminal() && now >= *run.ExpiresAt
}

// expireOverdue expires an overdue run as of its deadline, so that nothing
// happens to it or its steps after the time it should have ended. A run
// another writer ended meanwhile is no error.
func (e *Engine) expireOverdue(ctx context.Context, runID string) error {
	_, err := e.transitionRun(ctx, runID, lifecycle.RunChange{Trigger: lifecycle.RunTriggerExpire}, true)
	if errors.Is(err, lifecycle.ErrInvalidTransition) {
		return nil
	}
	return err
}

// sameParent refuses a step whose thread or assistant is not its run's.
func sameParent(ns NewStep, run lifecycle.Run) error {
	if ns.ThreadID != "" && ns.ThreadID != run.ThreadID {
		return &lifecycle.ValidationError{Field: "thread_id", Value: ns.ThreadID, Reason: "not the thread of run " + run.ID}
	}
	if ns.AssistantID != "" && ns.AssistantID != run.AssistantID {
		return &lifecycle.ValidationError{Field: "assistant_id", Value: ns.AssistantID, Reason: "not the assistant of run " + run.ID}
	}
	return nil
}

// Final adds what a step ended with to Complete or Fail.
type Final struct {
	details *lifecycle.StepDetails
	usage   *lifecycle.Usage
}

// FinalDetails replaces the step's details with d, such as the tool calls
// with their outputs. d's type must match the step's.
func FinalDetails(d lifecycle.StepDetails) Final { return Final{details: &d} }

// FinalUsage records the tokens the step used.
func FinalUsage(u lifecycle.Usage) Final { return Final{usage: &u} }

// withFinal adds final to c; of two Finals that set one thing, the later
// wins.
func withFinal(c lifecycle.Change, final []Final) lifecycle.Change {
	for _, f := range final {
		c.Details = cmp.Or(f.details, c.Details)
		c.Usage = cmp.Or(f.usage, c.Usage)
	}
	return c
}

// Complete moves the step to completed, stamping completed_at now.
func (e *Engine) Complete(ctx context.Context, id string, final ...Final) (lifecycle.Step, error) {
	return e.transition(ctx, id, withFinal(lifecycle.Change{Trigger: lifecycle.TriggerComplete}, final))
}

// Fail moves the step to failed, stamping failed_at now and recording why.
// lastErr must have a step error code and a message.
func (e *Engine) Fail(ctx context.Context, id string, lastErr lifecycle.LastError, final ...Final) (lifecycle.Step, error) {
	return e.transition(ctx, id, withFinal(lifecycle.Change{Trigger: lifecycle.TriggerFail, Error: &lastErr}, final))
}

// Cancel moves the step to cancelled, stamping cancelled_at now.
func (e *Engine) Cancel(ctx context.Context, id string) (lifecycle.Step, error) {
	return e.transition(ctx, id, lifecycle.Change{Trigger: lifecycle.TriggerCancel})
}

// Expire moves the step to expired, stamping expired_at now.
func (e *Engine) Expire(ctx context.Context, id string) (lifecycle.Step, error) {
	return e.transition(ctx, id, lifecycle.Change{Trigger: lifecycle.TriggerExpire})
}

// maxAttempts bounds the read-apply-commit loop of one write. A conflict
// means another writer changed the object first; the next attempt reads
// what it did, and the machine then refuses or accepts on that.
const maxAttempts = 8

// transition reads the step, lets the machine apply c, and commits the
// result with its event. Every transition returns a
// *lifecycle.TransitionError if the machine refuses the trigger, a
// *lifecycle.ValidationError for bad input, store.ErrNotFound for an
// unknown id, and store.ErrConflict if other writers kept winning.
func (e *Engine) transition(ctx context.Context, id string, c lifecycle.Change) (lifecycle.Step, error) {
	var err error
	for range maxAttempts {
		var cur, next lifecycle.Step
		var deadline store.RunDeadline
		if cur, deadline, err = e.store.GetStepForUpdate(ctx, id); err != nil {
			break
		}
		c.At = e.clock.Now()
		if cur.Status == lifecycle.StatusInProgress && deadline.Due(c.At.Unix()) {
			// A step of a run past its deadline expired with it, even if no
			// sweep has said so yet: expire the run, then the next attempt
			// finds the step expired and the machine refuses.
			if err = e.expireOverdue(ctx, cur.RunID); err != nil {
				break
			}
			continue
		}
		if next, err = cur.Apply(c); err != nil {
			break
		}
		if err = e.commitStep(ctx, next, events.StepType(next.Status), c.At.Unix(), store.Guard{}); err == nil {
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
	return lifecycle.Step{}, fmt.Errorf("engine: %s step %s: %w", c.Trigger, id, err)
}

// stepWrite is the batch of one step's change: the step, its event and
// the guard a creation needs, in one piece. The store copies what it
// keeps, so a stepWrite is reused from one commit to the next.
type stepWrite struct {
	step  lifecycle.Step
	event [1]events.Event
	guard [1]store.Guard
}

var stepWrites = sync.Pool{New: func() any { return new(stepWrite) }}

// commitStep commits step with its event of type t at at, and the guard
// if it names a run.
func (e *Engine) commitStep(ctx context.Context, step lifecycle.Step, t events.Type, at int64, guard store.Guard) error {
	w := stepWrites.Get().(*stepWrite)
	defer func() {
		*w = stepWrite{} // hold on to none of the caller's memory
		stepWrites.Put(w)
	}()
	w.step = step
	w.event[0] = events.Event{Type: t, At: at, Step: &w.step}
	b := store.Batch{Events: w.event[:]}
	if guard.RunID != "" {
		w.guard[0] = guard
		b.Guards = w.guard[:]
	}
	return e.commit(ctx, b)
}

// GetStep returns the step. Returns store.ErrNotFound for an unknown id.
func (e *Engine) GetStep(ctx context.Context, id string) (lifecycle.Step, error) {
	step, err := e.store.GetStep(ctx, id)
	if err != nil {
		return lifecycle.Step{}, fmt.Errorf("engine: get step %s: %w", id, err)
	}
	return step, nil
}

// commit writes b and wakes the subscribers, and the deadline loop if a
// run changed.
func (e *Engine) commit(ctx context.Context, b store.Batch) error {
	if _, err := e.store.Commit(ctx, b); err != nil {
		return err
	}
	e.changed.notify()
	for _, ev := range b.Events {
		if ev.Run != nil {
			e.rearm.notify()
			break
		}
	}
	return nil
}
