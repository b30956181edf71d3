package lifecycle

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// ErrStepsInProgress is a run ending while steps are still in progress,
// where the cascade policy refuses that.
var ErrStepsInProgress = errors.New("lifecycle: run has steps in progress")

// StepAction is what a run's end does to its steps still in progress.
type StepAction string

// The step actions.
const (
	StepActionExpire   StepAction = "expire"
	StepActionCancel   StepAction = "cancel"
	StepActionFail     StepAction = "fail" // with the run's error; only for failed runs
	StepActionComplete StepAction = "complete"
	// StepActionRefuse refuses the run's transition while any step is in
	// progress: the orchestrator must end its steps first.
	StepActionRefuse StepAction = "refuse"
)

// CascadePolicy says, per terminal run status, what happens to the run's
// steps still in progress, like a parent-close policy. Each cascaded step
// gets its own event, committed in the same write as the run, before it.
type CascadePolicy map[RunStatus]StepAction

// DefaultCascadePolicy expires, cancels or fails the steps of a run that
// expires, is cancelled or fails, and refuses to complete (or end
// incomplete) a run whose steps are still in progress.
func DefaultCascadePolicy() CascadePolicy {
	return CascadePolicy{
		RunStatusExpired:    StepActionExpire,
		RunStatusCancelled:  StepActionCancel,
		RunStatusFailed:     StepActionFail,
		RunStatusCompleted:  StepActionRefuse,
		RunStatusIncomplete: StepActionRefuse,
	}
}

// Validate checks that p names an action for every terminal run status and
// for nothing else, and fail only for failed runs (no other run has an
// error to pass on).
func (p CascadePolicy) Validate() error {
	// Every key, not just the known statuses: a misspelt one ("canceled")
	// would otherwise never apply, and say nothing.
	for _, s := range slices.Sorted(maps.Keys(p)) {
		if !s.Terminal() {
			return invalid("cascade_policy", string(s), "not a terminal run status")
		}
	}
	for _, s := range RunStatuses {
		if !s.Terminal() {
			continue
		}
		switch a := p[s]; a {
		case StepActionExpire, StepActionCancel, StepActionComplete, StepActionRefuse:
		case StepActionFail:
			if s != RunStatusFailed {
				return invalid("cascade_policy."+string(s), string(a), "only a failed run has an error to fail its steps with")
			}
		case "":
			return invalid("cascade_policy."+string(s), "", "no action")
		default:
			return invalid("cascade_policy."+string(s), string(a), "unknown step action")
		}
	}
	return nil
}

var stepTriggers = map[StepAction]Trigger{
	StepActionExpire:   TriggerExpire,
	StepActionCancel:   TriggerCancel,
	StepActionFail:     TriggerFail,
	StepActionComplete: TriggerComplete,
}

// Cascade returns what the policy does to steps, the run's steps still in
// progress, now that run has ended at time at. Steps no longer in progress
// are left out. A failed run passes its error on; invalid_prompt, a code
// steps cannot carry, becomes server_error and the message says so. With
// StepActionRefuse, any step in progress gives an error wrapping
// ErrStepsInProgress.
func (p CascadePolicy) Cascade(run Run, steps []Step, at time.Time) ([]Step, error) {
	return p.AppendCascade(nil, run, steps, at)
}

// AppendCascade is Cascade appending the moved steps to dst. dst may be
// steps[:0]: the moved steps then take the place of steps, which saves
// copying thousands of them when the caller no longer needs steps.
func (p CascadePolicy) AppendCascade(dst []Step, run Run, steps []Step, at time.Time) ([]Step, error) {
	if !run.Status.Terminal() {
		return nil, invalid("status", string(run.Status), "run %s has not ended", run.ID)
	}
	action := p[run.Status]
	var change Change
	switch action {
	case StepActionRefuse:
		for _, s := range steps {
			if s.Status == StatusInProgress {
				return nil, fmt.Errorf("%w: run %s cannot end %s: step %s is in progress", ErrStepsInProgress, run.ID, run.Status, s.ID)
			}
		}
		return nil, nil
	case StepActionFail:
		if run.LastError == nil {
			return nil, invalid("last_error", "", "run %s failed without an error", run.ID)
		}
		change.Error = stepError(*run.LastError)
	}
	trigger, ok := stepTriggers[action]
	if !ok {
		return nil, invalid("cascade_policy."+string(run.Status), string(action), "unknown step action")
	}
	change.Trigger, change.At = trigger, at
	out := slices.Grow(dst, len(steps))
	for i := range steps {
		// Read steps[i] whole before out's next slot, which may be it.
		if steps[i].Status != StatusInProgress {
			continue
		}
		next, err := steps[i].Apply(change)
		if err != nil {
			return nil, err
		}
		out = append(out, next)
	}
	return out, nil
}

// stepError turns a run's error into one a step may carry.
func stepError(e LastError) *LastError {
	if e.Code == ErrorCodeInvalidPrompt {
		return &LastError{Code: ErrorCodeServerError, Message: "the run failed with invalid_prompt: " + e.Message}
	}
	return &e
}
