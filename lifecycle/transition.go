package lifecycle

import "time"

// Change is what a trigger brings to a step.
type Change struct {
	Trigger Trigger
	// At is when the change happens; the step records it in whole Unix
	// seconds.
	At time.Time
	// Error is why the step failed: required with TriggerFail, refused with
	// any other trigger.
	Error *LastError
	// Details, if set, replaces the step's details (the final tool calls
	// and their outputs, say). Its type must match the step's.
	Details *StepDetails
	// Usage, if set, records the tokens the step used.
	Usage *Usage
}

// Apply returns the step after c. The machine decides whether c.Trigger may
// leave s.Status: if not, Apply returns a [*TransitionError]. It stamps
// exactly the *_at field of the new status, and sets last_error exactly when
// the step fails. Bad details, usage or error give a [*ValidationError].
// s itself is not changed, and the result shares no memory with c.
func (s Step) Apply(c Change) (Step, error) {
	to, ok := NextStatus(s.Status, c.Trigger)
	if !ok {
		return Step{}, &TransitionError{ID: s.ID, From: string(s.Status), Trigger: string(c.Trigger)}
	}
	if (c.Error != nil) != (to == StatusFailed) {
		if c.Error == nil {
			return Step{}, invalid("last_error", "", "a step fails with an error")
		}
		return Step{}, invalid("last_error", "", "only a failing step has an error, not a %s one", to)
	}
	next := s
	next.Status = to
	at := c.At.Unix()
	switch to {
	case StatusCompleted:
		next.CompletedAt = &at
	case StatusFailed:
		if err := c.Error.Validate(); err != nil {
			return Step{}, err
		}
		le := *c.Error
		next.FailedAt, next.LastError = &at, &le
	case StatusCancelled:
		next.CancelledAt = &at
	case StatusExpired:
		next.ExpiredAt = &at
	}
	if c.Details != nil {
		if err := c.Details.validate(s.Type); err != nil {
			return Step{}, err
		}
		next.Details = c.Details.Clone()
	}
	if c.Usage != nil {
		if err := c.Usage.validate(); err != nil {
			return Step{}, err
		}
		next.Usage = c.Usage.clone()
	}
	return next, nil
}
