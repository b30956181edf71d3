// Package store is the contract between the engine and the places runstep
// keeps its state: the Store interface and the sentinel errors it returns.
// Backends live in subpackages (memory, …) and prove themselves with the
// conformance suite in storetest.
//
// Every backend keeps two invariants. A change of state and the event that
// describes it are one atomic write: a store never holds a step or run
// whose event is missing, nor an event whose state was rolled back. And
// writers race through optimistic concurrency: each step and run carries a
// version, a write names the version it read, and of two writers on one
// version exactly one wins.
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
	// ErrOutcomeUnknown is a Commit that may or may not have been stored:
	// the store lost its connection to the database while the commit was
	// under way, with no answer on the commit itself. The batch is stored
	// whole or not at all, but which one the caller cannot tell from the
	// objects alone: another writer may have made the same change.
	ErrOutcomeUnknown = errors.New("store: commit outcome unknown")
)

// Store keeps steps, runs and the log of events that made them.
// Implementations are safe for concurrent use, and copy in and out: a
// caller never shares memory with the store. Every method returns an
// error that errors.Is ctx's error if ctx is done before it starts; such a
// Commit writes nothing.
type Store interface {
	// Commit writes each event's step or run as the new state of that
	// object, and appends the events to the log, all in one atomic write:
	// either every change is stored or none is.
	//
	// An event's Step.Version (or Run.Version) is the version the writer
	// read: 0 for an object that must not exist yet. The store writes the
	// object with Version+1 and gives the events the next sequence numbers,
	// in the order given, and returns the first of them: the batch's events
	// took first, first+1, …. (The caller knows the rest: its objects as
	// committed are its own with Version+1, so nothing is copied back.) The
	// batch's guards are checked and their runs' versions bumped in the same
	// write. A batch without events and guards writes nothing and returns 0.
	//
	// Returns ErrInvalid for an event without exactly one of a step and a
	// run, an object its Validate refuses (the error wraps the
	// *lifecycle.ValidationError too), or a batch that names one object
	// twice, each found before the store looks at what it holds (so such a
	// refusal never depends on stored state), and for an update that
	// changes a step's run_id or created_at;
	// ErrAlreadyExists if an object with version 0 exists; ErrNotFound if
	// an object with a version above 0, or a guarded run, does not; and
	// ErrConflict if an object's or guarded run's version is not the one
	// given. A store that cannot tell whether the batch was stored returns
	// an error wrapping ErrOutcomeUnknown.
	Commit(ctx context.Context, b Batch) (first int64, err error)

	// GetStep returns the step with the given id. Returns ErrNotFound if
	// there is none.
	GetStep(ctx context.Context, id string) (lifecycle.Step, error)

	// GetRun returns the run with the given id. Returns ErrNotFound if
	// there is none.
	GetRun(ctx context.Context, id string) (lifecycle.Run, error)

	// GetStepForUpdate reads a step its caller is about to change, with
	// its run's deadline. It answers as GetStep does, except that a store
	// may answer from the objects it committed itself, which misses what
	// another process committed since: the caller's Commit then names a
	// version no longer stored, fails with ErrConflict, and the store
	// forgets its copy. A read–modify–write on it never loses an update;
	// it may only retry. Returns ErrNotFound if there is no such step.
	GetStepForUpdate(ctx context.Context, id string) (lifecycle.Step, RunDeadline, error)

	// GetRunForUpdate reads a run its caller is about to change or guard,
	// with the same freedom as GetStepForUpdate. Returns ErrNotFound if
	// there is none.
	GetRunForUpdate(ctx context.Context, id string) (lifecycle.Run, error)

	// ListSteps returns one page of a run's steps in the order q asks for:
	// by created_at, then id in byte order (as Go compares strings). With
	// Before alone, the page is the Limit steps nearest Before and HasMore
	// says whether more come before the page; otherwise the page starts
	// right after After (or at the start) and HasMore says whether more
	// follow it, before Before if set. If After does not come before Before
	// in the order, the page is empty. An unknown run gives an empty page.
	// Returns ErrNotFound if q.After or q.Before names no step of the run.
	ListSteps(ctx context.Context, q StepQuery) (StepPage, error)

	// StepsInProgress returns every step of the run that is still
	// in_progress, ordered by created_at then id.
	StepsInProgress(ctx context.Context, runID string) ([]lifecycle.Step, error)

	// DueRuns returns up to limit runs that have not ended and whose
	// expires_at is at or before now (Unix seconds), earliest deadline
	// first (then by id).
	DueRuns(ctx context.Context, now int64, limit int) ([]lifecycle.Run, error)

	// NextDeadline returns the earliest expires_at of the runs that have
	// not ended, and false if no such run has a deadline.
	NextDeadline(ctx context.Context) (int64, bool, error)

	// Events returns up to limit events with Seq > after, in Seq order. An
	// empty result means the caller has read everything committed so far.
	// A negative after reads from the start; limit ≤ 0 returns nothing.
	Events(ctx context.Context, after int64, limit int) ([]events.Event, error)

	// Close releases the store's resources.
	Close() error
}

// Watcher is implemented by stores that several processes share (such as
// Postgres): it tells an engine when any writer, in any process, commits,
// so subscriptions and the deadline loop need not poll.
type Watcher interface {
	// Watch returns a channel that receives a value after commits by any
	// writer (several commits may coalesce into one value; a spurious value
	// is harmless). The channel is closed when ctx is done or the watch
	// fails for good.
	Watch(ctx context.Context) (<-chan struct{}, error)
}

// RunDeadline is what a step's writer must know of the step's run: when
// the run expires, if it still can.
type RunDeadline struct {
	// At is the run's expires_at, in Unix seconds; set only if Armed.
	At int64
	// Armed says the run has not ended and has a deadline.
	Armed bool
}

// Due reports whether the run is past its deadline at now (Unix seconds)
// and has not ended.
func (d RunDeadline) Due(now int64) bool { return d.Armed && now >= d.At }

// Batch is one atomic write.
type Batch struct {
	// Events are the changes, each carrying the object after the change.
	Events []events.Event
	// Guards name runs the write depends on without changing them.
	Guards []Guard
}

// Events returns a batch of the given events and no guards.
func Events(evs ...events.Event) Batch { return Batch{Events: evs} }

// Guard names a run that must still be at Version when the batch commits.
// The commit bumps the run's version (and changes nothing else), so a
// writer that read the run before this commit conflicts. A step is created
// with a guard on its run: the run cannot end unseen while the step is
// being added to it.
type Guard struct {
	RunID   string
	Version int64
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
	// HasMore says whether more steps lie beyond the page, away from the
	// cursor it was asked from (see ListSteps).
	HasMore bool
}
