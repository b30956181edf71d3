package lifecycle

import (
	"cmp"
	"maps"
	"slices"
	"unicode/utf8"
)

// Status is the status of a run step.
type Status string

// The step statuses. A step is created StatusInProgress; the other four are
// terminal.
const (
	StatusInProgress Status = "in_progress"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
	StatusCancelled  Status = "cancelled"
	StatusExpired    Status = "expired"
)

// Statuses lists every step status, the initial one first.
var Statuses = []Status{StatusInProgress, StatusCompleted, StatusFailed, StatusCancelled, StatusExpired}

// Valid reports whether s is one of the five step statuses.
func (s Status) Valid() bool { return slices.Contains(Statuses, s) }

// Terminal reports whether s is a status nothing leaves.
func (s Status) Terminal() bool { return s.Valid() && s != StatusInProgress }

// Type is the type of a run step.
type Type string

// The step types.
const (
	TypeMessageCreation Type = "message_creation"
	TypeToolCalls       Type = "tool_calls"
)

// Valid reports whether t is one of the two step types.
func (t Type) Valid() bool { return t == TypeMessageCreation || t == TypeToolCalls }

// ErrorCode is the code of a step's last_error.
type ErrorCode string

// The error codes a step may fail with.
const (
	ErrorCodeServerError       ErrorCode = "server_error"
	ErrorCodeRateLimitExceeded ErrorCode = "rate_limit_exceeded"
)

// Valid reports whether c is a code a step's last_error may carry.
func (c ErrorCode) Valid() bool {
	return c == ErrorCodeServerError || c == ErrorCodeRateLimitExceeded
}

// LastError says why a step failed.
type LastError struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
}

// notUTF8 is the reason for text that is not valid UTF-8. Such text is
// refused because the JSON-backed stores would not keep it: encoding/json
// writes U+FFFD in place of each bad byte, so what such a store reads back
// would differ from what was committed.
const notUTF8 = "not valid UTF-8"

// validateID checks that an id is set and valid UTF-8. field names the id,
// for the error it returns; the error shows an id, but never free text,
// which may be long.
func validateID(field, id string) *ValidationError {
	if id != "" && utf8.ValidString(id) {
		return nil
	}
	return badID(field, id)
}

// badID is validateID's error, apart so that validateID inlines.
func badID(field, id string) *ValidationError {
	if id == "" {
		return invalid(field, "", "empty")
	}
	return invalid(field, id, notUTF8)
}

// Validate checks the code and that the message is set and valid UTF-8.
// field names where the error sits, for the error it returns.
func (e LastError) validate(field string) error {
	if !e.Code.Valid() {
		return invalid(field+".code", string(e.Code), "unknown error code: want server_error or rate_limit_exceeded")
	}
	if e.Message == "" {
		return invalid(field+".message", "", "empty message")
	}
	if !utf8.ValidString(e.Message) {
		return invalid(field+".message", "", notUTF8)
	}
	return nil
}

// Validate reports whether e can be a failed step's last_error: a known
// code and a message that is set and valid UTF-8.
func (e LastError) Validate() error { return e.validate("last_error") }

// Limits on metadata, as the API sets them.
const (
	MaxMetadataPairs    = 16
	MaxMetadataKeyLen   = 64
	MaxMetadataValueLen = 512
)

// Metadata is the set of key-value pairs attached to a step. Lengths are
// counted in characters (Unicode code points).
type Metadata map[string]string

// Validate checks the API's limits (at most 16 pairs, keys at most 64
// characters, values at most 512) and that every key and value is valid
// UTF-8.
func (m Metadata) Validate() error {
	if len(m) > MaxMetadataPairs {
		return invalid("metadata", "", "too many pairs: %d, at most %d", len(m), MaxMetadataPairs)
	}
	if len(m) == 0 {
		return nil // most steps have none: skip starting an iteration
	}
	for k, v := range m {
		if validatePair(k, v) != nil {
			return firstBadPair(m)
		}
	}
	return nil
}

// firstBadPair returns the error of m's first bad pair in key order, so
// that the error names the same pair every time. Validate calls it only
// once it knows a pair is bad: sorting allocates, and Validate runs on
// every transition.
func firstBadPair(m Metadata) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if err := validatePair(k, m[k]); err != nil {
			return err
		}
	}
	return nil
}

// validatePair checks one metadata pair. The error for a key shows the key;
// one for a value names it by its key.
func validatePair(k, v string) *ValidationError {
	if n := utf8.RuneCountInString(k); n > MaxMetadataKeyLen {
		return invalid("metadata", k, "key is %d characters, at most %d", n, MaxMetadataKeyLen)
	}
	if !utf8.ValidString(k) {
		return invalid("metadata", k, "key is %s", notUTF8)
	}
	if n := utf8.RuneCountInString(v); n > MaxMetadataValueLen {
		return invalid("metadata."+k, "", "value is %d characters, at most %d", n, MaxMetadataValueLen)
	}
	if !utf8.ValidString(v) {
		return invalid("metadata."+k, "", "value is %s", notUTF8)
	}
	return nil
}

// Usage is OpenAI's token accounting for a step. The API sets it when a step
// ends and leaves it null while the step is in progress.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
	// The detail objects newer traffic carries; omitted when absent.
	PromptTokenDetails      *PromptTokenDetails      `json:"prompt_token_details,omitempty"`
	CompletionTokensDetails *CompletionTokensDetails `json:"completion_tokens_details,omitempty"`
}

// PromptTokenDetails breaks down a step's prompt tokens.
type PromptTokenDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

// CompletionTokensDetails breaks down a step's completion tokens.
type CompletionTokensDetails struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

func (u Usage) validate() error {
	switch {
	case u.PromptTokens < 0:
		return invalid("usage.prompt_tokens", "", "negative")
	case u.CompletionTokens < 0:
		return invalid("usage.completion_tokens", "", "negative")
	case u.TotalTokens < 0:
		return invalid("usage.total_tokens", "", "negative")
	}
	return nil
}

// ObjectStep is the value of a step's "object" field as the spec gives it.
// Decoding also accepts ObjectStepLive, which the live service sends.
const (
	ObjectStep     = "assistant.run.step"
	ObjectStepLive = "thread.run.step"
)

// Step is a run step. Its JSON form is exactly the spec's runStepObject, plus
// OpenAI's nullable usage (see [Step.MarshalJSON]).
//
// A nil pointer is a null field. A Step read from a store is the caller's own:
// changing it changes nothing stored.
type Step struct {
	ID          string
	CreatedAt   int64
	AssistantID string
	ThreadID    string
	RunID       string
	Type        Type
	Status      Status
	Details     StepDetails
	LastError   *LastError
	ExpiredAt   *int64
	CancelledAt *int64
	FailedAt    *int64
	CompletedAt *int64
	Metadata    Metadata
	Usage       *Usage

	// Version counts the committed changes of the step: 1 after it is
	// created. Stores use it for optimistic concurrency; it is not part of
	// the JSON form.
	Version int64
}

// Clone returns a deep copy of s that shares no memory with it.
func (s Step) Clone() Step {
	c := s
	c.Details = s.Details.Clone()
	c.LastError = clonePtr(s.LastError)
	cloneStamps(&c.ExpiredAt, &c.CancelledAt, &c.FailedAt, &c.CompletedAt)
	c.Metadata = maps.Clone(s.Metadata) // nil stays nil: null, not {}
	c.Usage = s.Usage.clone()
	return c
}

func (u *Usage) clone() *Usage {
	if u == nil {
		return nil
	}
	c := *u
	c.PromptTokenDetails = clonePtr(u.PromptTokenDetails)
	c.CompletionTokensDetails = clonePtr(u.CompletionTokensDetails)
	return &c
}

// cloneStamps points each non-nil stamp at a copy of its value, all the
// copies in one new array: one allocation for a step's or run's stamps,
// not one each.
func cloneStamps(stamps ...**int64) {
	n := 0
	for _, p := range stamps {
		if *p != nil {
			n++
		}
	}
	if n == 0 {
		return
	}
	block := make([]int64, 0, n)
	for _, p := range stamps {
		if *p != nil {
			block = append(block, **p)
			*p = &block[len(block)-1]
		}
	}
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// Validate checks every field of s: the ids are set, the enums, that the
// details match the type, that exactly the *_at field of a terminal status
// is set, that last_error is set exactly when the step failed, and the
// metadata limits. It refuses invalid UTF-8 in every string s carries
// (ids, details, last_error's message, metadata keys and values): a
// JSON-backed store would read such text back changed. It returns a
// [*ValidationError] naming the first bad field.
func (s *Step) Validate() error {
	if err := cmp.Or(validateID("id", s.ID), validateID("run_id", s.RunID),
		validateID("thread_id", s.ThreadID), validateID("assistant_id", s.AssistantID)); err != nil {
		return err
	}
	if !s.Type.Valid() {
		return invalid("type", string(s.Type), "unknown step type: want message_creation or tool_calls")
	}
	if !s.Status.Valid() {
		return invalid("status", string(s.Status), "unknown step status")
	}
	if err := s.Details.validate(s.Type); err != nil {
		return err
	}
	for i, ptr := range [...]*int64{s.CompletedAt, s.FailedAt, s.CancelledAt, s.ExpiredAt} {
		if (ptr != nil) != (stepStamps[i].status == s.Status) {
			if ptr == nil {
				return invalid(stepStamps[i].name, "", "null on a %s step", s.Status)
			}
			return invalid(stepStamps[i].name, "", "set on a %s step", s.Status)
		}
	}
	if s.Status == StatusFailed {
		if s.LastError == nil {
			return invalid("last_error", "", "null on a failed step")
		}
		if err := s.LastError.Validate(); err != nil {
			return err
		}
	} else if s.LastError != nil {
		return invalid("last_error", "", "set on a %s step", s.Status)
	}
	if s.Usage != nil {
		if err := s.Usage.validate(); err != nil {
			return err
		}
	}
	return s.Metadata.Validate()
}

// stepStamps pairs each terminal status with the field that records its
// time, in the order of the fields Validate checks.
var stepStamps = [...]struct {
	name   string
	status Status
}{
	{"completed_at", StatusCompleted},
	{"failed_at", StatusFailed},
	{"cancelled_at", StatusCancelled},
	{"expired_at", StatusExpired},
}
