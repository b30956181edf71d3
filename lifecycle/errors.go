package lifecycle

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinels; the typed errors below unwrap to them.
var (
	// ErrInvalid is bad input: a field with a value the spec does not allow.
	ErrInvalid = errors.New("lifecycle: invalid")
	// ErrInvalidTransition is a trigger the machine refuses in the step's
	// current status.
	ErrInvalidTransition = errors.New("lifecycle: invalid transition")
)

// ValidationError says which field of an object is wrong, and why.
type ValidationError struct {
	Field  string // the JSON path of the field, such as "last_error.code"
	Value  string // the offending value, when there is one worth showing
	Reason string
}

func invalid(field, value, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
}

func (e *ValidationError) Error() string {
	if e.Value != "" {
		return fmt.Sprintf("lifecycle: invalid %s %s: %s", e.Field, strconv.Quote(e.Value), e.Reason)
	}
	return fmt.Sprintf("lifecycle: invalid %s: %s", e.Field, e.Reason)
}

// Unwrap returns ErrInvalid.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// TransitionError is a trigger the machine refuses.
type TransitionError struct {
	ID      string // the step (or run) the trigger was for
	From    string // its status when the trigger arrived
	Trigger string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("lifecycle: %s: cannot %s from status %s", e.ID, e.Trigger, e.From)
}

// Unwrap returns ErrInvalidTransition.
func (e *TransitionError) Unwrap() error { return ErrInvalidTransition }
