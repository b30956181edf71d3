package lifecycle

import "encoding/json"

// runJSON is the wire form, in OpenAI's field order.
type runJSON struct {
	ID          string     `json:"id"`
	Object      string     `json:"object"`
	CreatedAt   int64      `json:"created_at"`
	AssistantID string     `json:"assistant_id"`
	ThreadID    string     `json:"thread_id"`
	Status      RunStatus  `json:"status"`
	StartedAt   *int64     `json:"started_at"`
	ExpiresAt   *int64     `json:"expires_at"`
	CancelledAt *int64     `json:"cancelled_at"`
	FailedAt    *int64     `json:"failed_at"`
	CompletedAt *int64     `json:"completed_at"`
	LastError   *LastError `json:"last_error"`
	Metadata    Metadata   `json:"metadata"`
}

// MarshalJSON writes the run's lifecycle fields as OpenAI's run object
// carries them, with object "thread.run" and null for unset fields.
func (r Run) MarshalJSON() ([]byte, error) {
	return json.Marshal(runJSON{
		ID: r.ID, Object: ObjectRun, CreatedAt: r.CreatedAt, AssistantID: r.AssistantID, ThreadID: r.ThreadID,
		Status: r.Status, StartedAt: r.StartedAt, ExpiresAt: r.ExpiresAt, CancelledAt: r.CancelledAt,
		FailedAt: r.FailedAt, CompletedAt: r.CompletedAt, LastError: r.LastError, Metadata: r.Metadata,
	})
}

// runWireIn is what decoding accepts: pointers tell a missing field from a
// zero one. It spells out runJSON's fields instead of embedding runJSON:
// encoding/json names a type error inside an embedded struct after the Go
// type ("runJSON.started_at"), and the error must name the JSON field.
type runWireIn struct {
	ID          *string    `json:"id"`
	Object      *string    `json:"object"`
	CreatedAt   *int64     `json:"created_at"`
	AssistantID *string    `json:"assistant_id"`
	ThreadID    *string    `json:"thread_id"`
	Status      *RunStatus `json:"status"`
	StartedAt   *int64     `json:"started_at"`
	ExpiresAt   *int64     `json:"expires_at"`
	CancelledAt *int64     `json:"cancelled_at"`
	FailedAt    *int64     `json:"failed_at"`
	CompletedAt *int64     `json:"completed_at"`
	LastError   *LastError `json:"last_error"`
	Metadata    Metadata   `json:"metadata"`
}

// UnmarshalJSON reads a run and validates it. The other fields of
// OpenAI's run object (model, tools, usage, …) are passed over; a missing
// nullable field is read as null.
func (r *Run) UnmarshalJSON(b []byte) error {
	var w runWireIn
	if err := json.Unmarshal(b, &w); err != nil {
		return typeError(err)
	}
	for _, f := range []struct {
		name    string
		present bool
	}{
		{"id", w.ID != nil}, {"object", w.Object != nil}, {"created_at", w.CreatedAt != nil},
		{"assistant_id", w.AssistantID != nil}, {"thread_id", w.ThreadID != nil}, {"status", w.Status != nil},
	} {
		if !f.present {
			return invalid(f.name, "", "missing")
		}
	}
	if *w.Object != ObjectRun {
		return invalid("object", *w.Object, "not a run: want %s", ObjectRun)
	}
	run := Run{
		ID: *w.ID, CreatedAt: *w.CreatedAt, AssistantID: *w.AssistantID, ThreadID: *w.ThreadID, Status: *w.Status,
		StartedAt: w.StartedAt, ExpiresAt: w.ExpiresAt, CancelledAt: w.CancelledAt, FailedAt: w.FailedAt,
		CompletedAt: w.CompletedAt, LastError: w.LastError, Metadata: w.Metadata,
	}
	if err := run.Validate(); err != nil {
		return err
	}
	*r = run
	return nil
}
