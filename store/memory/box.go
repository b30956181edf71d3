package memory

import (
	"maps"

	"github.com/runstep/runstep/lifecycle"
)

// A memory store keeps every step it was given, so a stored step's size
// is the store's size; and on a machine where a fresh page of memory costs
// microseconds, and the collector scans every pointer the store holds,
// size is time. A stepBox therefore keeps a step packed: its run, thread
// and assistant in a parent its run's steps share, its type and status as
// small codes, its one stamp as a number, and the rest (details with
// content, last_error, metadata, usage) only when the step has any. Most
// steps take 64 bytes, a quarter of a lifecycle.Step and its stamp.

// stepBox is one stored step.
type stepBox struct {
	id        string
	parent    *parent
	more      *stepMore // nil for a step that has none of it
	createdAt int64
	version   int64
	stamp     int64 // the *_at of a terminal status: a valid step has that one alone
	typ       typeCode
	status    statusCode
	flags     boxFlags
}

// parent is the run, thread and assistant of a step, shared by the steps
// that name the same three. It never changes once made.
type parent struct {
	run                   *runEntry
	threadID, assistantID string
}

// stepMore is what a step may carry beyond the usual.
type stepMore struct {
	details   lifecycle.StepDetails // unless the box's details are plain
	lastError *lifecycle.LastError
	metadata  lifecycle.Metadata
	usage     *lifecycle.Usage
}

type boxFlags uint8

const (
	// plainDetails: the details are of the step's type, with no message
	// and no tool calls, and are not in more.
	plainDetails boxFlags = 1 << iota
	// callsEmpty: plain details whose tool_calls are [] rather than null.
	callsEmpty
	// bornCreated: the box was written by a thread.run.step.created event
	// as the step's first version.
	bornCreated
	// movedOn: the box took the place of the step's first version, whose
	// created event is told from it (see created).
	movedOn
	// createdCallsEmpty: the first version's tool_calls were [] rather
	// than null.
	createdCallsEmpty
)

type (
	typeCode   uint8
	statusCode uint8
)

// The values the codes stand for, by code.
var (
	types    = [...]lifecycle.Type{lifecycle.TypeMessageCreation, lifecycle.TypeToolCalls}
	statuses = [...]lifecycle.Status{
		lifecycle.StatusInProgress, lifecycle.StatusCompleted, lifecycle.StatusFailed,
		lifecycle.StatusCancelled, lifecycle.StatusExpired,
	}
)

const inProgress statusCode = 0 // statuses[0]

// codes returns the codes of a step's type and status, and false if either
// has none (no valid step is such).
func codes(step *lifecycle.Step) (typeCode, statusCode, bool) {
	var t typeCode
	switch step.Type {
	case lifecycle.TypeMessageCreation:
	case lifecycle.TypeToolCalls:
		t = 1
	default:
		return 0, 0, false
	}
	var s statusCode
	switch step.Status {
	case lifecycle.StatusInProgress:
	case lifecycle.StatusCompleted:
		s = 1
	case lifecycle.StatusFailed:
		s = 2
	case lifecycle.StatusCancelled:
		s = 3
	case lifecycle.StatusExpired:
		s = 4
	default:
		return 0, 0, false
	}
	return t, s, true
}

// stampOf returns where a step of status s keeps its stamp, or nil for a
// status that has none.
func stampOf(step *lifecycle.Step, s lifecycle.Status) **int64 {
	switch s {
	case lifecycle.StatusCompleted:
		return &step.CompletedAt
	case lifecycle.StatusFailed:
		return &step.FailedAt
	case lifecycle.StatusCancelled:
		return &step.CancelledAt
	case lifecycle.StatusExpired:
		return &step.ExpiredAt
	}
	return nil
}

// fill packs a deep copy of step, with parent p, into b. It leaves b's
// bornCreated, movedOn and createdCallsEmpty flags as they are. The
// caller has checked step with codes.
func (b *stepBox) fill(step *lifecycle.Step, p *parent) {
	b.typ, b.status, _ = codes(step)
	b.id, b.parent, b.createdAt, b.version = step.ID, p, step.CreatedAt, step.Version
	b.stamp = 0
	if f := stampOf(step, step.Status); f != nil && *f != nil {
		b.stamp = **f
	}
	b.flags &^= plainDetails | callsEmpty
	d := step.Details
	plain := d.Type == step.Type && d.MessageCreation == nil && len(d.ToolCalls) == 0
	if plain {
		b.flags |= plainDetails
		if d.ToolCalls != nil {
			b.flags |= callsEmpty
		}
		d = lifecycle.StepDetails{}
	}
	b.more = nil
	if !plain || step.LastError != nil || step.Metadata != nil || step.Usage != nil {
		// Step.Clone makes the deep copies; only these fields are set.
		c := lifecycle.Step{Details: d, LastError: step.LastError, Metadata: step.Metadata, Usage: step.Usage}.Clone()
		b.more = &stepMore{details: c.Details, lastError: c.LastError, metadata: c.Metadata, usage: c.Usage}
	}
}

// details returns b's details, sharing b's memory: for reading under the
// store's lock only.
func (b *stepBox) details() lifecycle.StepDetails {
	if b.flags&plainDetails == 0 {
		return b.more.details
	}
	d := lifecycle.StepDetails{Type: types[b.typ]}
	if b.flags&callsEmpty != 0 {
		d.ToolCalls = []lifecycle.ToolCall{}
	}
	return d
}

// get returns a deep copy of the stored step. Call it with the lock held.
func (b *stepBox) get() lifecycle.Step {
	s := lifecycle.Step{
		ID: b.id, CreatedAt: b.createdAt, AssistantID: b.parent.assistantID, ThreadID: b.parent.threadID,
		RunID: b.parent.run.id, Type: types[b.typ], Status: statuses[b.status], Details: b.details(),
		Version: b.version,
	}
	if f := stampOf(&s, s.Status); f != nil {
		*f = &b.stamp
	}
	if m := b.more; m != nil {
		s.LastError, s.Metadata, s.Usage = m.lastError, m.metadata, m.usage
	}
	return s.Clone() // copies the stamp and everything in more out of b
}

// created returns a copy of the step's first version, which b, having
// moved on, tells: b in progress, with no stamp, error or usage, the
// version before, and the first version's null or empty tool calls (see
// movesOn for why nothing else can differ).
func (b *stepBox) created() lifecycle.Step {
	s := b.get()
	s.Status = lifecycle.StatusInProgress
	s.ExpiredAt, s.CancelledAt, s.FailedAt, s.CompletedAt = nil, nil, nil, nil
	s.LastError, s.Usage = nil, nil
	s.Version--
	s.Details.ToolCalls = nil
	if b.flags&createdCallsEmpty != 0 {
		s.Details.ToolCalls = []lifecycle.ToolCall{}
	}
	return s
}

// isFirst reports whether b is a step's first version as its created
// event wrote it, not yet moved on.
func (b *stepBox) isFirst() bool {
	return b != nil && b.version == 1 && b.flags&(bornCreated|movedOn) == bornCreated
}

// movesOn reports whether next, a change of b as a writer read it (its
// Version is b's), only moves b on from in progress, so that b's version
// can be told from next: b is next in progress, with no stamp, error or
// usage, and no tool calls.
func (b *stepBox) movesOn(next *lifecycle.Step) bool {
	n := next
	if b.status != inProgress || b.version != n.Version || b.id != n.ID || b.createdAt != n.CreatedAt ||
		b.parent.run.id != n.RunID || b.parent.threadID != n.ThreadID || b.parent.assistantID != n.AssistantID ||
		types[b.typ] != n.Type {
		return false
	}
	var metadata lifecycle.Metadata
	if m := b.more; m != nil {
		if m.lastError != nil || m.usage != nil {
			return false
		}
		metadata = m.metadata
	}
	d := b.details()
	return (metadata == nil) == (n.Metadata == nil) && maps.Equal(metadata, n.Metadata) &&
		d.Type == n.Details.Type && len(d.ToolCalls) == 0 &&
		(d.MessageCreation == nil) == (n.Details.MessageCreation == nil) &&
		(d.MessageCreation == nil || *d.MessageCreation == *n.Details.MessageCreation)
}

// moveOn packs next, which movesOn accepted, into b in b's place.
func (b *stepBox) moveOn(next *lifecycle.Step) {
	if b.details().ToolCalls != nil {
		b.flags |= createdCallsEmpty
	}
	b.flags |= movedOn
	b.fill(next, b.parent)
}
