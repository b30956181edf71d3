package engine

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrInvalidArgument is a request parameter the engine cannot take.
var ErrInvalidArgument = errors.New("engine: invalid argument")

// ArgumentError names the parameter that was wrong, and why.
type ArgumentError struct {
	Param  string // the API's name for it, such as "limit" or "after"
	Value  string
	Reason string
	Err    error // the cause, if another layer found it
}

func (e *ArgumentError) Error() string {
	return fmt.Sprintf("engine: invalid %s %s: %s", e.Param, strconv.Quote(e.Value), e.Reason)
}

// Unwrap returns ErrInvalidArgument and the cause.
func (e *ArgumentError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalidArgument}
	}
	return []error{ErrInvalidArgument, e.Err}
}
