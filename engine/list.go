package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
)

// Order is the direction of a list, by created_at and then id.
type Order = store.Order

// The list orders.
const (
	OrderAsc  = store.OrderAsc
	OrderDesc = store.OrderDesc
)

// List limits, as the API sets them.
const (
	DefaultListLimit = 20
	MaxListLimit     = 100
)

// ListParams asks for one page of a run's steps, with the API's
// parameters.
type ListParams struct {
	RunID string
	// Limit is the page size, 1–100; 0 means 20.
	Limit int
	// Order is asc or desc; empty means desc (newest first).
	Order Order
	// After is a step id: the page starts after it. Before is a step id:
	// the page ends before it.
	After, Before string
}

// StepList is a page of steps in the API's list shape.
type StepList struct {
	Object  string           `json:"object"` // always "list"
	Data    []lifecycle.Step `json:"data"`
	FirstID *string          `json:"first_id"`
	LastID  *string          `json:"last_id"`
	HasMore bool             `json:"has_more"`
}

// ListSteps returns one page of the run's steps. Returns an *ArgumentError
// for a limit outside 1–100, an unknown order, or a cursor that names no
// step of the run.
func (e *Engine) ListSteps(ctx context.Context, p ListParams) (StepList, error) {
	q := store.StepQuery{RunID: p.RunID, Order: p.Order, After: p.After, Before: p.Before, Limit: p.Limit}
	if q.Limit == 0 {
		q.Limit = DefaultListLimit
	}
	if q.Order == "" {
		q.Order = OrderDesc
	}
	switch {
	case p.RunID == "":
		return StepList{}, &ArgumentError{Param: "run_id", Reason: "empty"}
	case q.Limit < 1 || q.Limit > MaxListLimit:
		return StepList{}, &ArgumentError{Param: "limit", Value: fmt.Sprint(p.Limit), Reason: "must be between 1 and 100"}
	case q.Order != OrderAsc && q.Order != OrderDesc:
		return StepList{}, &ArgumentError{Param: "order", Value: string(p.Order), Reason: "must be asc or desc"}
	}
	page, err := e.store.ListSteps(ctx, q)
	if errors.Is(err, store.ErrNotFound) {
		return StepList{}, e.cursorError(ctx, p, err)
	}
	if err != nil {
		return StepList{}, fmt.Errorf("engine: list steps of run %s: %w", p.RunID, err)
	}
	list := StepList{Object: "list", Data: page.Steps, HasMore: page.HasMore}
	if list.Data == nil {
		list.Data = []lifecycle.Step{} // the API writes an empty page as [], not null
	}
	if n := len(page.Steps); n > 0 {
		list.FirstID, list.LastID = &page.Steps[0].ID, &page.Steps[n-1].ID
	}
	return list, nil
}

// cursorError names the cursor the store could not find: After if it is
// not a step of the run, else Before.
func (e *Engine) cursorError(ctx context.Context, p ListParams, err error) error {
	param, value := "before", p.Before
	if p.After != "" {
		if step, gerr := e.store.GetStep(ctx, p.After); gerr != nil || step.RunID != p.RunID {
			param, value = "after", p.After
		}
	}
	return &ArgumentError{Param: param, Value: value, Reason: "no step of run " + p.RunID + " has this id", Err: err}
}
