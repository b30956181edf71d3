package lifecycle

import (
	"cmp"
	"maps"
	"slices"
	"time"

	"github.com/looplab/fsm"
)

// RunStatus is the status of a run, as OpenAI names it.
type RunStatus string

// The run statuses. A run is created queued. Completed, incomplete,
// failed, cancelled and expired are terminal.
const (
	RunStatusQueued         RunStatus = "queued"
	RunStatusInProgress     RunStatus = "in_progress"
	RunStatusRequiresAction RunStatus = "requires_action"
	RunStatusCancelling     RunStatus = "cancelling"
	RunStatusCancelled      RunStatus = "cancelled"
	RunStatusFailed         RunStatus = "failed"
	RunStatusCompleted      RunStatus = "completed"
	RunStatusIncomplete     RunStatus = "incomplete"
	RunStatusExpired        RunStatus = "expired"
)

// RunStatuses lists every run status, the initial one first.
var RunStatuses = []RunStatus{
	RunStatusQueued, RunStatusInProgress, RunStatusRequiresAction, RunStatusCancelling,
	RunStatusCancelled, RunStatusFailed, RunStatusCompleted, RunStatusIncomplete, RunStatusExpired,
}

// Valid reports whether s is one of the run statuses.
func (s RunStatus) Valid() bool { return slices.Contains(RunStatuses, s) }

// Terminal reports whether s is a status nothing leaves.
func (s RunStatus) Terminal() bool {
	switch s {
	case RunStatusCancelled, RunStatusFailed, RunStatusCompleted, RunStatusIncomplete, RunStatusExpired:
		return true
	}
	return false
}

// RunTrigger moves a run from one status to another. Its value is the
// looplab event name.
type RunTrigger string

// The run triggers.
const (
	RunTriggerStart             RunTrigger = "start"               // queued → in_progress
	RunTriggerRequireAction     RunTrigger = "require_action"      // in_progress → requires_action
	RunTriggerSubmitToolOutputs RunTrigger = "submit_tool_outputs" // requires_action → queued
	RunTriggerResume            RunTrigger = "resume"              // requires_action → in_progress
	RunTriggerComplete          RunTrigger = "complete"
	RunTriggerIncomplete        RunTrigger = "incomplete"
	RunTriggerFail              RunTrigger = "fail"
	RunTriggerCancel            RunTrigger = "cancel"        // → cancelling
	RunTriggerFinishCancel      RunTrigger = "finish_cancel" // cancelling → cancelled
	RunTriggerExpire            RunTrigger = "expire"
)

// RunTriggers lists every run trigger.
var RunTriggers = []RunTrigger{
	RunTriggerStart, RunTriggerRequireAction, RunTriggerSubmitToolOutputs, RunTriggerResume,
	RunTriggerComplete, RunTriggerIncomplete, RunTriggerFail, RunTriggerCancel, RunTriggerFinishCancel,
	RunTriggerExpire,
}

func src(ss ...RunStatus) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// runEvents is the one definition of the run machine; the package doc
// draws it as a table.
var runEvents = fsm.Events{
	{Name: string(RunTriggerStart), Src: src(RunStatusQueued), Dst: string(RunStatusInProgress)},
	{Name: string(RunTriggerRequireAction), Src: src(RunStatusInProgress), Dst: string(RunStatusRequiresAction)},
	{Name: string(RunTriggerSubmitToolOutputs), Src: src(RunStatusRequiresAction), Dst: string(RunStatusQueued)},
	{Name: string(RunTriggerResume), Src: src(RunStatusRequiresAction), Dst: string(RunStatusInProgress)},
	// A cancel that arrives too late loses to the outcome it raced.
	{Name: string(RunTriggerComplete), Src: src(RunStatusInProgress, RunStatusCancelling), Dst: string(RunStatusCompleted)},
	{Name: string(RunTriggerIncomplete), Src: src(RunStatusInProgress), Dst: string(RunStatusIncomplete)},
	{Name: string(RunTriggerFail), Src: src(RunStatusQueued, RunStatusInProgress, RunStatusRequiresAction, RunStatusCancelling), Dst: string(RunStatusFailed)},
	{Name: string(RunTriggerCancel), Src: src(RunStatusQueued, RunStatusInProgress, RunStatusRequiresAction), Dst: string(RunStatusCancelling)},
	{Name: string(RunTriggerFinishCancel), Src: src(RunStatusCancelling), Dst: string(RunStatusCancelled)},
	{Name: string(RunTriggerExpire), Src: src(RunStatusQueued, RunStatusInProgress, RunStatusRequiresAction, RunStatusCancelling), Dst: string(RunStatusExpired)},
}

var runMachine = newMachine[RunStatus, RunTrigger](runEvents)

// RunMachine returns a new looplab FSM of the run machine, standing in
// status from.
func RunMachine(from RunStatus) *fsm.FSM { return runMachine.fsm(from) }

// NextRunStatus returns the status trigger t moves a run in status from
// to, and false if the machine refuses t there.
func NextRunStatus(from RunStatus, t RunTrigger) (RunStatus, bool) { return runMachine.next(from, t) }

// RunDiagram renders the run machine like [StepDiagram].
func RunDiagram(format DiagramFormat) (string, error) {
	return runMachine.diagram(RunStatusQueued, format)
}

// ErrorCodeInvalidPrompt is a code only a run's last_error may carry.
const ErrorCodeInvalidPrompt ErrorCode = "invalid_prompt"

// ObjectRun is the value of a run's "object" field.
const ObjectRun = "thread.run"

// DefaultRunTTL is how long a run may take before it expires, unless the
// engine or the run says otherwise: OpenAI's ten minutes.
const DefaultRunTTL = 10 * time.Minute

// Run is the lifecycle part of OpenAI's run object: what runstep needs to
// decide its steps' fate. A nil pointer is a null field.
type Run struct {
	ID          string
	CreatedAt   int64
	ThreadID    string
	AssistantID string
	Status      RunStatus
	// StartedAt is when the run last started: OpenAI stamps it again when
	// a run resumes from the queue.
	StartedAt *int64
	// ExpiresAt is the run's absolute deadline while it can still expire.
	// It is cleared when the run ends, as OpenAI does, except by expiring:
	// an expired run's expires_at is when it expired (its deadline, unless
	// it was expired early).
	ExpiresAt   *int64
	CancelledAt *int64
	FailedAt    *int64
	// CompletedAt is stamped when the run completes or ends incomplete.
	CompletedAt *int64
	LastError   *LastError
	Metadata    Metadata

	// Version counts the committed changes of the run; see Step.Version.
	Version int64
}

// Clone returns a deep copy of r.
func (r Run) Clone() Run {
	c := r
	cloneStamps(&c.StartedAt, &c.ExpiresAt, &c.CancelledAt, &c.FailedAt, &c.CompletedAt)
	c.LastError = clonePtr(r.LastError)
	c.Metadata = maps.Clone(r.Metadata) // nil stays nil: null, not {}
	return c
}

// validateRunError checks a run's last_error: a step code or invalid_prompt.
func validateRunError(e LastError) error {
	if e.Code == ErrorCodeInvalidPrompt {
		e.Code = ErrorCodeServerError // the message check is the same
	}
	if !e.Code.Valid() {
		return invalid("last_error.code", string(e.Code), "unknown error code: want server_error, rate_limit_exceeded or invalid_prompt")
	}
	return e.validate("last_error")
}

// Validate checks every field of r: the ids are set, the status, that the
// stamps fit the status, last_error exactly on failure, and the metadata
// limits. Like [Step.Validate], it refuses invalid UTF-8 in every string r
// carries (ids, last_error's message, metadata keys and values). It
// returns a [*ValidationError] naming the first bad field.
func (r *Run) Validate() error {
	if err := cmp.Or(validateID("id", r.ID), validateID("thread_id", r.ThreadID),
		validateID("assistant_id", r.AssistantID)); err != nil {
		return err
	}
	if !r.Status.Valid() {
		return invalid("status", string(r.Status), "unknown run status")
	}
	stamps := []struct {
		name string
		ptr  *int64
		want bool
	}{
		{"cancelled_at", r.CancelledAt, r.Status == RunStatusCancelled},
		{"failed_at", r.FailedAt, r.Status == RunStatusFailed},
		{"completed_at", r.CompletedAt, r.Status == RunStatusCompleted || r.Status == RunStatusIncomplete},
	}
	for _, s := range stamps {
		if (s.ptr != nil) != s.want {
			if s.ptr == nil {
				return invalid(s.name, "", "null on a %s run", r.Status)
			}
			return invalid(s.name, "", "set on a %s run", r.Status)
		}
	}
	if r.Status == RunStatusFailed {
		if r.LastError == nil {
			return invalid("last_error", "", "null on a failed run")
		}
		if err := validateRunError(*r.LastError); err != nil {
			return err
		}
	} else if r.LastError != nil {
		return invalid("last_error", "", "set on a %s run", r.Status)
	}
	return r.Metadata.Validate()
}

// RunChange is what a trigger brings to a run.
type RunChange struct {
	Trigger RunTrigger
	At      time.Time
	// Error is why the run failed: required with RunTriggerFail, refused
	// otherwise.
	Error *LastError
}

// Apply returns the run after c, as the run machine decides; see
// [Step.Apply]. Starting stamps started_at; completing or ending
// incomplete stamps completed_at; failing stamps failed_at and sets
// last_error; finishing a cancel stamps cancelled_at; expiring sets
// expires_at to the time it expired (the run's object has no expired_at).
// Every other terminal status clears expires_at, as OpenAI does.
func (r Run) Apply(c RunChange) (Run, error) {
	to, ok := NextRunStatus(r.Status, c.Trigger)
	if !ok {
		return Run{}, &TransitionError{ID: r.ID, From: string(r.Status), Trigger: string(c.Trigger)}
	}
	if (c.Error != nil) != (to == RunStatusFailed) {
		if c.Error == nil {
			return Run{}, invalid("last_error", "", "a run fails with an error")
		}
		return Run{}, invalid("last_error", "", "only a failing run has an error, not a %s one", to)
	}
	next := r
	next.Status = to
	at := c.At.Unix()
	switch to {
	case RunStatusInProgress:
		if c.Trigger == RunTriggerStart {
			next.StartedAt = &at
		}
	case RunStatusCompleted, RunStatusIncomplete:
		next.CompletedAt = &at
	case RunStatusFailed:
		if err := validateRunError(*c.Error); err != nil {
			return Run{}, err
		}
		le := *c.Error
		next.FailedAt, next.LastError = &at, &le
	case RunStatusCancelled:
		next.CancelledAt = &at
	case RunStatusExpired:
		next.ExpiresAt = &at
	}
	if to.Terminal() && to != RunStatusExpired {
		next.ExpiresAt = nil
	}
	return next, nil
}
