// Package store is the contract between the engine and the places runstep
// keeps its state: the Store interface and the sentinel errors it returns.
// Backends live in subpackages (memory, …) and prove themselves with the
// conformance suite in storetest.
//
// Every backend keeps two invariants. A change of state and the event that
// describes it are one atomic write: a store never holds a step whose event
// is missing, nor an event whose state was rolled back. And writers race
// through optimistic concurrency: each step carries a version, a write names
// the version it read, and of two writers on one version exactly one wins.
package store

import (
	"context"
	"errors"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
)

// The sentinel errors of every Store.
var (
	ErrNotFound      = errors.New("store: not found")
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrConflict is a write that names a version the object no longer has:
	// another writer changed it first.
	ErrConflict = errors.New("store: version conflict")
	// ErrInvalid is a write or query the store cannot take as given, such
	// as an event without data.
	ErrInvalid = errors.New("store: invalid request")
)

// Store keeps steps and the log of events that made them. Implementations
// are safe for concurrent use, and copy in and out: a caller never shares
// memory with the store.
type Store interface {
	// Commit writes each event's step as the new state of that step, and
	// appends the events to the log, all in one atomic write: either every
	// change is stored or none is.
	//
	// An event's Step.Version is the version the writer read: 0 for a step
	// that must not exist yet. The store writes the step with Version+1 and
	// gives the events the next sequence numbers, in the order given. It
	// returns the committed events (with their Seq and the steps' new
	// Version).
	//
	// Returns ErrAlreadyExists if a step with version 0 exists, ErrNotFound
	// if a step with a version above 0 does not, ErrConflict if a step's
	// version is not the one given, and ErrInvalid for an event without a
	// step or a batch that names one step twice.
	Commit(ctx context.Context, evs ...events.Event) ([]events.Event, error)

	// GetStep returns the step with the given id. Returns ErrNotFound if
	// there is none.
	GetStep(ctx context.Context, id string) (lifecycle.Step, error)

	// ListSteps returns one page of a run's steps in the order q asks for
	// (by created_at, then id). Returns ErrNotFound if q.After or q.Before
	// names no step of the run.
	ListSteps(ctx context.Context, q StepQuery) (StepPage, error)

	// Events returns up to limit events with Seq > after, in Seq order. An
	// empty result means the caller has read everything committed so far.
	Events(ctx context.Context, after int64, limit int) ([]events.Event, error)

	// Close releases the store's resources.
	Close() error
}

// Order is the direction of a list.
type Order string

// The list orders, by created_at and then id.
const (
	OrderAsc  Order = "asc"
	OrderDesc Order = "desc"
)

// StepQuery asks for one page of a run's steps.
type StepQuery struct {
	RunID string
	Order Order
	// After and Before, if set, are step ids: the page holds only steps that
	// come after After and before Before in Order.
	After, Before string
	// Limit is the page size; the store may trust it to be 1–100.
	Limit int
}

// StepPage is one page of steps.
type StepPage struct {
	Steps []lifecycle.Step
	// HasMore says whether more steps follow the page in Order (and before
	// Before, if set).
	HasMore bool
}
