// Package engine is what an orchestrator calls to drive run steps: create
// them, complete, fail, cancel or expire them, read and list them, and
// follow their events. Every status change goes through the lifecycle
// machine and is committed to the Store together with its event.
//
// The engine is the only part of runstep that reads a clock, and it reads
// only the one it is given (WithClock): tests pass a *clock.Mock and move
// it.
package engine

import (
	"context"
	"errors"
	"fmt"

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
	changed notifier
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the clock every transition is stamped from. The default is
// the system clock.
func WithClock(c clock.Clock) Option { return func(e *Engine) { e.clock = c } }

// WithIDs sets how new ids are made. The default is RandomIDs().
func WithIDs(g IDGenerator) Option { return func(e *Engine) { e.ids = g } }

// New returns an engine that keeps its state in st.
func New(st store.Store, opts ...Option) (*Engine, error) {
	if st == nil {
		return nil, errors.New("engine: nil store")
	}
	e := &Engine{store: st}
	for _, opt := range opts {
		opt(e)
	}
	if e.clock == nil {
		e.clock = clock.New()
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
// commits it with its thread.run.step.created event. Returns a
// *lifecycle.ValidationError for bad input, and store.ErrAlreadyExists if
// the id is taken.
func (e *Engine) CreateStep(ctx context.Context, ns NewStep) (lifecycle.Step, error) {
	if ns.Details.Type == "" && ns.Type == lifecycle.TypeToolCalls {
		ns.Details = lifecycle.ToolCallsDetails()
	}
	if ns.ID == "" {
		ns.ID = e.ids.NewID("step_")
	}
	now := e.clock.Now().Unix()
	step := lifecycle.Step{
		ID: ns.ID, CreatedAt: now, AssistantID: ns.AssistantID, ThreadID: ns.ThreadID, RunID: ns.RunID,
		Type: ns.Type, Status: lifecycle.StatusInProgress, Details: ns.Details, Metadata: ns.Metadata,
	}
	if err := step.Validate(); err != nil {
		return lifecycle.Step{}, fmt.Errorf("engine: create step: %w", err)
	}
	evs, err := e.commit(ctx, events.Event{Type: events.TypeStepCreated, At: now, Step: &step})
	if err != nil {
		return lifecycle.Step{}, fmt.Errorf("engine: create step %s: %w", step.ID, err)
	}
	return *evs[0].Step, nil
}

// Final adds what a step ended with to Complete or Fail.
type Final func(*lifecycle.Change)

// FinalDetails replaces the step's details with d, such as the tool calls
// with their outputs. d's type must match the step's.
func FinalDetails(d lifecycle.StepDetails) Final {
	return func(c *lifecycle.Change) { c.Details = &d }
}

// FinalUsage records the tokens the step used.
func FinalUsage(u lifecycle.Usage) Final {
	return func(c *lifecycle.Change) { c.Usage = &u }
}

// Complete moves the step to completed, stamping completed_at now.
func (e *Engine) Complete(ctx context.Context, id string, final ...Final) (lifecycle.Step, error) {
	c := lifecycle.Change{Trigger: lifecycle.TriggerComplete}
	for _, f := range final {
		f(&c)
	}
	return e.transition(ctx, id, c)
}

// Fail moves the step to failed, stamping failed_at now and recording why.
// lastErr must have a step error code and a message.
func (e *Engine) Fail(ctx context.Context, id string, lastErr lifecycle.LastError, final ...Final) (lifecycle.Step, error) {
	c := lifecycle.Change{Trigger: lifecycle.TriggerFail, Error: &lastErr}
	for _, f := range final {
		f(&c)
	}
	return e.transition(ctx, id, c)
}

// Cancel moves the step to cancelled, stamping cancelled_at now.
func (e *Engine) Cancel(ctx context.Context, id string) (lifecycle.Step, error) {
	return e.transition(ctx, id, lifecycle.Change{Trigger: lifecycle.TriggerCancel})
}

// Expire moves the step to expired, stamping expired_at now.
func (e *Engine) Expire(ctx context.Context, id string) (lifecycle.Step, error) {
	return e.transition(ctx, id, lifecycle.Change{Trigger: lifecycle.TriggerExpire})
}

// maxAttempts bounds the read-apply-commit loop of one transition. A
// conflict means another writer moved the step first; the next attempt
// reads what it did, and the machine then refuses or accepts on that.
const maxAttempts = 4

// transition reads the step, lets the machine apply c, and commits the
// result with its event. Every transition returns a
// *lifecycle.TransitionError if the machine refuses the trigger, a
// *lifecycle.ValidationError for bad input, store.ErrNotFound for an
// unknown id, and store.ErrConflict if other writers kept winning.
func (e *Engine) transition(ctx context.Context, id string, c lifecycle.Change) (lifecycle.Step, error) {
	var err error
	for range maxAttempts {
		var cur, next lifecycle.Step
		if cur, err = e.store.GetStep(ctx, id); err != nil {
			break
		}
		c.At = e.clock.Now()
		if next, err = cur.Apply(c); err != nil {
			break
		}
		var evs []events.Event
		evs, err = e.commit(ctx, events.Event{Type: events.StepType(next.Status), At: c.At.Unix(), Step: &next})
		if err == nil {
			return *evs[0].Step, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			break
		}
	}
	return lifecycle.Step{}, fmt.Errorf("engine: %s step %s: %w", c.Trigger, id, err)
}

// GetStep returns the step. Returns store.ErrNotFound for an unknown id.
func (e *Engine) GetStep(ctx context.Context, id string) (lifecycle.Step, error) {
	step, err := e.store.GetStep(ctx, id)
	if err != nil {
		return lifecycle.Step{}, fmt.Errorf("engine: get step %s: %w", id, err)
	}
	return step, nil
}

// commit writes evs and wakes the subscribers.
func (e *Engine) commit(ctx context.Context, evs ...events.Event) ([]events.Event, error) {
	out, err := e.store.Commit(ctx, evs...)
	if err != nil {
		return nil, err
	}
	e.changed.notify()
	return out, nil
}
