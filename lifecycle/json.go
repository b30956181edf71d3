package lifecycle

import (
	"encoding/json"
	"errors"
)

// stepJSON is the wire form, in the spec's field order.
type stepJSON struct {
	ID          string      `json:"id"`
	Object      string      `json:"object"`
	CreatedAt   int64       `json:"created_at"`
	AssistantID string      `json:"assistant_id"`
	ThreadID    string      `json:"thread_id"`
	RunID       string      `json:"run_id"`
	Type        Type        `json:"type"`
	Status      Status      `json:"status"`
	Details     StepDetails `json:"step_details"`
	LastError   *LastError  `json:"last_error"`
	ExpiredAt   *int64      `json:"expired_at"`
	CancelledAt *int64      `json:"cancelled_at"`
	FailedAt    *int64      `json:"failed_at"`
	CompletedAt *int64      `json:"completed_at"`
	Metadata    Metadata    `json:"metadata"`
	Usage       *Usage      `json:"usage"`
}

// MarshalJSON writes the spec's form: every required field, null for the
// unset nullable ones, object "assistant.run.step", and usage (null until
// set).
func (s Step) MarshalJSON() ([]byte, error) {
	return json.Marshal(stepJSON{
		ID: s.ID, Object: ObjectStep, CreatedAt: s.CreatedAt,
		AssistantID: s.AssistantID, ThreadID: s.ThreadID, RunID: s.RunID,
		Type: s.Type, Status: s.Status, Details: s.Details, LastError: s.LastError,
		ExpiredAt: s.ExpiredAt, CancelledAt: s.CancelledAt, FailedAt: s.FailedAt, CompletedAt: s.CompletedAt,
		Metadata: s.Metadata, Usage: s.Usage,
	})
}

// stepWireIn is what decoding accepts: pointers tell a missing field from a
// zero one.
type stepWireIn struct {
	ID          *string      `json:"id"`
	Object      *string      `json:"object"`
	CreatedAt   *int64       `json:"created_at"`
	AssistantID *string      `json:"assistant_id"`
	ThreadID    *string      `json:"thread_id"`
	RunID       *string      `json:"run_id"`
	Type        *Type        `json:"type"`
	Status      *Status      `json:"status"`
	Details     *StepDetails `json:"step_details"`
	LastError   *LastError   `json:"last_error"`
	ExpiredAt   *int64       `json:"expired_at"`
	ExpiresAt   *int64       `json:"expires_at"`
	CancelledAt *int64       `json:"cancelled_at"`
	FailedAt    *int64       `json:"failed_at"`
	CompletedAt *int64       `json:"completed_at"`
	Metadata    Metadata     `json:"metadata"`
	Usage       *Usage       `json:"usage"`
}

// UnmarshalJSON reads a step and validates it (see [Step.Validate]). It is
// lenient where the live service differs from the spec: object may be
// "thread.run.step"; metadata and the nullable *_at fields may be missing
// (read as null); and expires_at, the deadline live steps carry instead of
// expired_at, is read as expired_at on an expired step and otherwise
// ignored. Errors are [*ValidationError]s naming the field, or the
// [*json.SyntaxError] of malformed input.
func (s *Step) UnmarshalJSON(b []byte) error {
	var w stepWireIn
	if err := json.Unmarshal(b, &w); err != nil {
		return typeError(err)
	}
	required := []struct {
		name    string
		present bool
	}{
		{"id", w.ID != nil}, {"object", w.Object != nil}, {"created_at", w.CreatedAt != nil},
		{"assistant_id", w.AssistantID != nil}, {"thread_id", w.ThreadID != nil}, {"run_id", w.RunID != nil},
		{"type", w.Type != nil}, {"status", w.Status != nil}, {"step_details", w.Details != nil},
	}
	for _, r := range required {
		if !r.present {
			return invalid(r.name, "", "missing")
		}
	}
	if *w.Object != ObjectStep && *w.Object != ObjectStepLive {
		return invalid("object", *w.Object, "not a run step: want %s", ObjectStep)
	}
	expiredAt := w.ExpiredAt
	if expiredAt == nil && w.Status != nil && *w.Status == StatusExpired {
		expiredAt = w.ExpiresAt
	}
	step := Step{
		ID: *w.ID, CreatedAt: *w.CreatedAt, AssistantID: *w.AssistantID, ThreadID: *w.ThreadID, RunID: *w.RunID,
		Type: *w.Type, Status: *w.Status, Details: *w.Details, LastError: w.LastError,
		ExpiredAt: expiredAt, CancelledAt: w.CancelledAt, FailedAt: w.FailedAt, CompletedAt: w.CompletedAt,
		Metadata: w.Metadata, Usage: w.Usage,
	}
	if err := step.Validate(); err != nil {
		return err
	}
	*s = step
	return nil
}

// typeError turns a JSON value of the wrong type into a ValidationError
// naming the field; other errors pass unchanged.
func typeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "(root)"
		}
		return invalid(field, te.Value, "want %s", te.Type)
	}
	return err
}
