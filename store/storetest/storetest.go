// Package storetest is the conformance suite of store.Store: every rule the
// contract in package store states (atomic commits, optimistic versions,
// the gapless event log, list order and cursors, copying in and out,
// contexts and concurrent writers), checked against the contract alone and
// never against one backend's internals.
//
// A backend proves itself with one call from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			st, err := sqlite.Open(filepath.Join(t.TempDir(), "runstep.db"))
//			require.NoError(t, err)
//			return st
//		})
//	}
//
// Run calls newStore once in every subtest, with that subtest's t, and
// expects a new, empty store each time: no subtest sees another's data, so
// any subtest can run alone (go test -run 'Conformance/ListSteps/AfterCursor').
// newStore should fail the test if it cannot open a store, or skip it when
// the backend is not available (Postgres without RUNSTEP_POSTGRES_DSN, say),
// and register with t.Cleanup whatever it created besides the store (a
// schema, a file). Run closes every store it opens; newStore must not.
//
// Run the suite with -race: the concurrency checks rely on it to catch
// unguarded memory.
//
// The suite reads no clock: every step is stamped with fixed times, and every
// status change is made by lifecycle.Step.Apply, so each state it commits is
// one the engine could commit.
//
// Ids are ordered as Go compares strings (byte order), so a SQL backend must
// sort ids with a binary collation (COLLATE "C" in Postgres).
package storetest

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
)

// Run runs the conformance suite against the stores newStore opens. See the
// package comment.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Commit", commitTests},
		{"Events", eventsTests},
		{"ListSteps", listTests},
		{"Copy", copyTests},
		{"Context", contextTests},
		{"Concurrency", concurrencyTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(t, open(t, newStore))
				})
			}
		})
	}
}

type test struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// open returns a fresh store for one subtest, closed when the subtest ends.
func open(t *testing.T, newStore func(t *testing.T) store.Store) store.Store {
	t.Helper()
	s := newStore(t)
	require.NotNil(t, s, "newStore returned a nil store")
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	evs, err := s.Events(t.Context(), 0, 1)
	require.NoError(t, err)
	require.Empty(t, evs, "newStore must return an empty store")
	return s
}

// Fixtures.

const (
	runA = "run_A1b2C3"
	runB = "run_Zz9"
)

// t0 is the suite's epoch; at(n) is n seconds after it.
var t0 = time.Unix(1761861531, 0)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// newStep returns a step just created: in progress, version 0, with a tool
// call and metadata so that copies have memory to share if a store copies
// carelessly.
func newStep(t *testing.T, id, runID string, createdAt time.Time) lifecycle.Step {
	t.Helper()
	step := lifecycle.Step{
		ID:          id,
		CreatedAt:   createdAt.Unix(),
		AssistantID: "asst_storetest",
		ThreadID:    "thread_storetest",
		RunID:       runID,
		Type:        lifecycle.TypeToolCalls,
		Status:      lifecycle.StatusInProgress,
		Details: lifecycle.ToolCallsDetails(lifecycle.ToolCall{
			ID:       "call_" + id,
			Type:     lifecycle.ToolCallFunction,
			Function: &lifecycle.FunctionCall{Name: "lookup", Arguments: `{"q":"runstep"}`},
		}),
		Metadata: lifecycle.Metadata{"origin": "storetest", "step": id},
	}
	require.NoError(t, step.Validate())
	return step
}

// created returns the event that creates step; it shares no memory with
// step.
func created(step lifecycle.Step) events.Event {
	c := step.Clone()
	return events.Event{Type: events.TypeStepCreated, At: c.CreatedAt, Step: &c}
}

// transition returns the event of trigger applied to cur at when, as the
// engine would build it: the step after the change, still carrying the
// version cur was read at. A completed step gets its function output and
// usage, a failed one its error.
func transition(t *testing.T, cur lifecycle.Step, trigger lifecycle.Trigger, when time.Time) events.Event {
	t.Helper()
	c := lifecycle.Change{Trigger: trigger, At: when}
	switch trigger {
	case lifecycle.TriggerFail:
		c.Error = &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "storetest: tool crashed"}
	case lifecycle.TriggerComplete:
		d := cur.Details.Clone()
		for _, call := range d.ToolCalls {
			if call.Function != nil {
				out := `{"answer":42}`
				call.Function.Output = &out
			}
		}
		c.Details = &d
		c.Usage = &lifecycle.Usage{PromptTokens: 12, CompletionTokens: 30, TotalTokens: 42}
	}
	next, err := cur.Apply(c)
	require.NoError(t, err)
	require.NoError(t, next.Validate())
	next = next.Clone() // Apply shares cur's metadata
	return events.Event{Type: events.StepType(next.Status), At: when.Unix(), Step: &next}
}

// withVersion returns ev naming version v as the one its writer read.
func withVersion(ev events.Event, v int64) events.Event {
	ev = ev.Clone()
	ev.Step.Version = v
	return ev
}

// committed returns what a store should return for ev committed as seq:
// ev with that Seq and its step one version on.
func committed(ev events.Event, seq int64) events.Event {
	ev = ev.Clone()
	ev.Seq = seq
	ev.Step.Version++
	return ev
}

func commit(t *testing.T, s store.Store, evs ...events.Event) []events.Event {
	t.Helper()
	out, err := s.Commit(t.Context(), evs...)
	require.NoError(t, err)
	require.Len(t, out, len(evs))
	return out
}

// create commits the steps' created events in one batch and returns the
// steps as stored.
func create(t *testing.T, s store.Store, steps ...lifecycle.Step) []lifecycle.Step {
	t.Helper()
	evs := make([]events.Event, len(steps))
	for i, step := range steps {
		evs[i] = created(step)
	}
	out := commit(t, s, evs...)
	stored := make([]lifecycle.Step, len(out))
	for i, ev := range out {
		stored[i] = *ev.Step
	}
	return stored
}

func getStep(t *testing.T, s store.Store, id string) lifecycle.Step {
	t.Helper()
	step, err := s.GetStep(t.Context(), id)
	require.NoError(t, err, "get step %s", id)
	return step
}

// readLog returns the whole event log, read in pages, and checks that it
// is gapless from 1.
func readLog(t *testing.T, s store.Store) []events.Event {
	t.Helper()
	var all []events.Event
	for {
		page, err := s.Events(t.Context(), int64(len(all)), 7)
		require.NoError(t, err)
		if len(page) == 0 {
			return all
		}
		require.LessOrEqual(t, len(page), 7, "Events returned more than limit")
		for _, ev := range page {
			require.Equal(t, int64(len(all)+1), ev.Seq, "event log has a gap or is out of order")
			all = append(all, ev)
		}
	}
}

func requireNotFound(t *testing.T, s store.Store, stepIDs ...string) {
	t.Helper()
	for _, id := range stepIDs {
		_, err := s.GetStep(t.Context(), id)
		require.ErrorIs(t, err, store.ErrNotFound, "step %s should not exist", id)
	}
}

// requireSteps checks that the store holds exactly these states of them.
func requireSteps(t *testing.T, s store.Store, want ...lifecycle.Step) {
	t.Helper()
	for _, w := range want {
		require.Equal(t, w, getStep(t, s, w.ID), "step %s", w.ID)
	}
}

func ids(steps []lifecycle.Step) []string {
	out := make([]string, 0, len(steps))
	for _, s := range steps {
		out = append(out, s.ID)
	}
	return out
}

func compareSteps(a, b lifecycle.Step) int {
	return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), strings.Compare(a.ID, b.ID))
}

// inOrder returns steps sorted as ListSteps must return them in order.
func inOrder(steps []lifecycle.Step, order store.Order) []lifecycle.Step {
	out := slices.Clone(steps)
	slices.SortFunc(out, compareSteps)
	if order == store.OrderDesc {
		slices.Reverse(out)
	}
	return out
}

var orders = []store.Order{store.OrderAsc, store.OrderDesc}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomID returns an id shaped like OpenAI's, mixed case, so that a
// backend sorting ids by a locale's collation rather than by bytes fails.
func randomID(rnd *rand.Rand, prefix string) string {
	b := make([]byte, 24)
	for i := range b {
		b[i] = base62[rnd.IntN(len(base62))]
	}
	return prefix + string(b)
}

// Commit.

var commitTests = []test{
	{"CreateAssignsSeqAndVersion", func(t *testing.T, s store.Store) {
		a := created(newStep(t, "step_a", runA, at(0)))
		b := created(newStep(t, "step_b", runA, at(1)))
		c := created(newStep(t, "step_c", runB, at(1)))

		out := commit(t, s, a)
		require.Equal(t, []events.Event{committed(a, 1)}, out)
		require.Equal(t, int64(1), out[0].Step.Version)

		out2 := commit(t, s, b, c)
		require.Equal(t, []events.Event{committed(b, 2), committed(c, 3)}, out2)

		requireSteps(t, s, *out[0].Step, *out2[0].Step, *out2[1].Step)
		require.Equal(t, append(out, out2...), readLog(t, s))
	}},
	{"CreateExistingIDFails", func(t *testing.T, s store.Store) {
		a := create(t, s, newStep(t, "step_a", runA, at(0)))[0]
		a = *commit(t, s, transition(t, a, lifecycle.TriggerComplete, at(5)))[0].Step
		before := readLog(t, s)

		_, err := s.Commit(t.Context(), created(newStep(t, "step_a", runA, at(0))))
		require.ErrorIs(t, err, store.ErrAlreadyExists)
		_, err = s.Commit(t.Context(), created(newStep(t, "step_a", runB, at(9))))
		require.ErrorIs(t, err, store.ErrAlreadyExists, "the same id in another run")
		_, err = s.Commit(t.Context(), created(newStep(t, "step_b", runA, at(1))), created(newStep(t, "step_a", runA, at(2))))
		require.ErrorIs(t, err, store.ErrAlreadyExists, "an existing id after a new one in a batch")

		requireSteps(t, s, a)
		requireNotFound(t, s, "step_b")
		require.Equal(t, before, readLog(t, s))
	}},
	{"UpdateAtReadVersion", func(t *testing.T, s store.Store) {
		var steps []lifecycle.Step
		for i := range lifecycle.Triggers {
			steps = append(steps, newStep(t, fmt.Sprintf("step_%d", i), runA, at(i)))
		}
		create(t, s, steps...)
		log := readLog(t, s)
		for i, trigger := range lifecycle.Triggers {
			cur := getStep(t, s, steps[i].ID)
			require.Equal(t, int64(1), cur.Version, "a created step is at version 1")
			ev := transition(t, cur, trigger, at(10+i))
			out := commit(t, s, ev)
			want := committed(ev, int64(len(log)+1))
			require.Equal(t, []events.Event{want}, out, "%s", trigger)
			require.Equal(t, int64(2), out[0].Step.Version)
			requireSteps(t, s, *want.Step)
			log = append(log, want)
		}
		require.Equal(t, log, readLog(t, s))
	}},
	{"UpdateStaleVersionConflicts", func(t *testing.T, s store.Store) {
		read := create(t, s, newStep(t, "step_a", runA, at(0)))[0]

		_, err := s.Commit(t.Context(), withVersion(transition(t, read, lifecycle.TriggerCancel, at(3)), 2))
		require.ErrorIs(t, err, store.ErrConflict, "a version the step has not reached")
		requireSteps(t, s, read)

		won := commit(t, s, transition(t, read, lifecycle.TriggerComplete, at(5)))[0]
		before := readLog(t, s)

		for _, trigger := range lifecycle.Triggers {
			_, err := s.Commit(t.Context(), transition(t, read, trigger, at(6)))
			require.ErrorIs(t, err, store.ErrConflict, "%s at the version read before another writer won", trigger)
		}
		_, err = s.Commit(t.Context(), withVersion(transition(t, read, lifecycle.TriggerCancel, at(7)), 0))
		require.ErrorIs(t, err, store.ErrAlreadyExists, "version 0 of an existing step")

		requireSteps(t, s, *won.Step)
		require.Equal(t, before, readLog(t, s))
	}},
	{"UpdateUnknownIDNotFound", func(t *testing.T, s store.Store) {
		a := create(t, s, newStep(t, "step_a", runA, at(0)))[0]
		before := readLog(t, s)

		ghost := newStep(t, "step_ghost", runA, at(1))
		ghost.Version = 1
		for _, trigger := range lifecycle.Triggers {
			_, err := s.Commit(t.Context(), transition(t, ghost, trigger, at(2)))
			require.ErrorIs(t, err, store.ErrNotFound, "%s", trigger)
		}
		_, err := s.Commit(t.Context(), withVersion(transition(t, ghost, lifecycle.TriggerExpire, at(2)), 5))
		require.ErrorIs(t, err, store.ErrNotFound)

		requireNotFound(t, s, "step_ghost")
		requireSteps(t, s, a)
		require.Equal(t, before, readLog(t, s))
	}},
	{"GetStepUnknownNotFound", func(t *testing.T, s store.Store) {
		requireNotFound(t, s, "step_none", "")
		create(t, s, newStep(t, "step_a", runA, at(0)))
		requireNotFound(t, s, "step_none", "step_A", "step_a ")
	}},
	{"BatchIsAtomic", func(t *testing.T, s store.Store) {
		steps := create(t, s,
			newStep(t, "step_a", runA, at(0)),
			newStep(t, "step_b", runA, at(1)),
			newStep(t, "step_c", runB, at(2)),
			newStep(t, "step_d", runB, at(3)),
		)
		aRead, b, c, d := steps[0], steps[1], steps[2], steps[3]
		a := *commit(t, s, transition(t, aRead, lifecycle.TriggerComplete, at(4)))[0].Step
		before := readLog(t, s)
		ghost := newStep(t, "step_ghost", runA, at(5))
		ghost.Version = 1
		e := newStep(t, "step_e", runB, at(6))

		for _, tc := range []struct {
			name  string
			batch []events.Event
			want  error
		}{
			{"conflict in the middle", []events.Event{
				transition(t, b, lifecycle.TriggerCancel, at(7)),
				transition(t, aRead, lifecycle.TriggerFail, at(7)),
				transition(t, c, lifecycle.TriggerExpire, at(7)),
			}, store.ErrConflict},
			{"conflict last", []events.Event{
				created(e),
				transition(t, b, lifecycle.TriggerCancel, at(7)),
				transition(t, aRead, lifecycle.TriggerCancel, at(7)),
			}, store.ErrConflict},
			{"not found in the middle", []events.Event{
				transition(t, b, lifecycle.TriggerExpire, at(7)),
				transition(t, ghost, lifecycle.TriggerFail, at(7)),
				created(e),
			}, store.ErrNotFound},
			{"already exists last", []events.Event{
				transition(t, c, lifecycle.TriggerCancel, at(7)),
				created(e),
				created(newStep(t, d.ID, runB, at(3))),
			}, store.ErrAlreadyExists},
		} {
			_, err := s.Commit(t.Context(), tc.batch...)
			require.ErrorIs(t, err, tc.want, tc.name)
			requireSteps(t, s, a, b, c, d)
			requireNotFound(t, s, e.ID, ghost.ID)
			require.Equal(t, before, readLog(t, s), "%s: the log changed", tc.name)
		}

		// Nothing of the failed batches stayed: the versions they named
		// are still current.
		batch := []events.Event{
			transition(t, b, lifecycle.TriggerCancel, at(8)),
			created(e),
			transition(t, c, lifecycle.TriggerExpire, at(8)),
			transition(t, d, lifecycle.TriggerFail, at(8)),
		}
		out := commit(t, s, batch...)
		want := make([]events.Event, len(batch))
		for i, ev := range batch {
			want[i] = committed(ev, int64(len(before)+1+i))
		}
		require.Equal(t, want, out, "a batch takes the next Seqs in the order given")
		require.Equal(t, append(before, want...), readLog(t, s))
	}},
	{"BatchNamingStepTwiceInvalid", func(t *testing.T, s store.Store) {
		a := create(t, s, newStep(t, "step_a", runA, at(0)))[0]
		before := readLog(t, s)
		x := newStep(t, "step_x", runA, at(1))

		for _, tc := range []struct {
			name  string
			batch []events.Event
		}{
			{"two transitions of one step", []events.Event{
				transition(t, a, lifecycle.TriggerComplete, at(2)),
				transition(t, a, lifecycle.TriggerCancel, at(2)),
			}},
			{"the same transition twice", []events.Event{
				transition(t, a, lifecycle.TriggerExpire, at(2)),
				transition(t, a, lifecycle.TriggerExpire, at(2)),
			}},
			{"create one step twice", []events.Event{created(x), created(x)}},
			{"apart in a longer batch", []events.Event{
				transition(t, a, lifecycle.TriggerCancel, at(2)),
				created(x),
				created(newStep(t, "step_y", runA, at(1))),
				transition(t, a, lifecycle.TriggerExpire, at(2)),
			}},
		} {
			_, err := s.Commit(t.Context(), tc.batch...)
			require.ErrorIs(t, err, store.ErrInvalid, tc.name)
			requireSteps(t, s, a)
			requireNotFound(t, s, "step_x", "step_y")
			require.Equal(t, before, readLog(t, s), "%s: the log changed", tc.name)
		}
	}},
	{"EventWithoutStepInvalid", func(t *testing.T, s store.Store) {
		a := newStep(t, "step_a", runA, at(0))
		_, err := s.Commit(t.Context(), events.Event{Type: events.TypeStepCreated, At: at(0).Unix()})
		require.ErrorIs(t, err, store.ErrInvalid)
		_, err = s.Commit(t.Context(), created(a), events.Event{Type: events.TypeStepCompleted, At: at(1).Unix()})
		require.ErrorIs(t, err, store.ErrInvalid, "a batch with one event without a step")
		requireNotFound(t, s, a.ID)
		require.Empty(t, readLog(t, s))
	}},
}

// Events.

// eventsFixture commits creations and transitions of steps in two runs, in
// several commits, and returns what the commits returned, in order.
func eventsFixture(t *testing.T, s store.Store) []events.Event {
	t.Helper()
	a := newStep(t, "step_a", runA, at(0))
	b := newStep(t, "step_b", runB, at(1))
	c := newStep(t, "step_c", runA, at(2))
	d := newStep(t, "step_d", runB, at(3))
	var log []events.Event
	log = append(log, commit(t, s, created(a))...)
	log = append(log, commit(t, s, created(b), created(c))...)
	log = append(log, commit(t, s, transition(t, *log[0].Step, lifecycle.TriggerComplete, at(4)))...)
	log = append(log, commit(t, s, created(d), transition(t, *log[2].Step, lifecycle.TriggerFail, at(5)))...)
	log = append(log, commit(t, s, transition(t, *log[1].Step, lifecycle.TriggerCancel, at(6)))...)
	log = append(log, commit(t, s, transition(t, *log[4].Step, lifecycle.TriggerExpire, at(7)))...)
	return log
}

var eventsTests = []test{
	{"GaplessInCommitOrder", func(t *testing.T, s store.Store) {
		require.Empty(t, readLog(t, s))
		want := eventsFixture(t, s)
		for i, ev := range want {
			require.Equal(t, int64(i+1), ev.Seq, "Commit returned Seq %d for the event committed %d-th", ev.Seq, i+1)
		}
		got, err := s.Events(t.Context(), 0, 100)
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.Equal(t, want, readLog(t, s))
	}},
	{"Paging", func(t *testing.T, s store.Store) {
		all := eventsFixture(t, s)
		n := len(all)
		for after := -1; after <= n; after++ {
			from := max(after, 0)
			for _, limit := range []int{1, 2, 3, n - 1, n, n + 1, 1000, math.MaxInt} {
				to := n
				if limit < n-from {
					to = from + limit
				}
				got, err := s.Events(t.Context(), int64(after), limit)
				require.NoError(t, err, "after %d, limit %d", after, limit)
				if from == to {
					require.Empty(t, got, "after %d, limit %d", after, limit)
					continue
				}
				require.Equal(t, all[from:to], got, "after %d, limit %d", after, limit)
			}
		}
	}},
	{"AfterEndEmpty", func(t *testing.T, s store.Store) {
		for _, after := range []int64{0, 1, 100} {
			got, err := s.Events(t.Context(), after, 10)
			require.NoError(t, err)
			require.Empty(t, got, "an empty store, after %d", after)
		}
		n := int64(len(eventsFixture(t, s)))
		for _, after := range []int64{n, n + 1, n + 1000, math.MaxInt64} {
			got, err := s.Events(t.Context(), after, 10)
			require.NoError(t, err)
			require.Empty(t, got, "after %d of %d events", after, n)
		}
	}},
	{"LimitZeroEmpty", func(t *testing.T, s store.Store) {
		n := int64(len(eventsFixture(t, s)))
		for _, after := range []int64{0, 2, n} {
			got, err := s.Events(t.Context(), after, 0)
			require.NoError(t, err)
			require.Empty(t, got, "after %d, limit 0", after)
		}
	}},
	{"DataIsStateAtCommit", func(t *testing.T, s store.Store) {
		a := newStep(t, "step_a", runA, at(0))
		first := commit(t, s, created(a))
		second := commit(t, s, transition(t, *first[0].Step, lifecycle.TriggerComplete, at(9)))
		require.Equal(t, lifecycle.StatusCompleted, getStep(t, s, a.ID).Status)

		log := readLog(t, s)
		require.Len(t, log, 2)
		require.Equal(t, first[0], log[0])
		require.Equal(t, lifecycle.StatusInProgress, log[0].Step.Status, "the created event still shows the step as created")
		require.Equal(t, int64(1), log[0].Step.Version)
		require.Nil(t, log[0].Step.CompletedAt)
		require.Equal(t, second[0], log[1])
	}},
}

// ListSteps.

// listFixture commits steps of runA and runB, out of order, several
// sharing a created_at, with mixed-case ids, and moves some of them on. It
// returns runA's steps as stored now, in no particular order.
func listFixture(t *testing.T, s store.Store) []lifecycle.Step {
	t.Helper()
	a := []lifecycle.Step{
		newStep(t, "step_alpha", runA, at(0)),
		newStep(t, "step_Zeta", runA, at(0)),
		newStep(t, "step_Beta", runA, at(0)),
		newStep(t, "step_0delta", runA, at(1)),
		newStep(t, "step_zz", runA, at(-3)),
		newStep(t, "step_gamma", runA, at(5)),
		newStep(t, "step_epsilon", runA, at(5)),
		newStep(t, "step_AAA", runA, at(2)),
		newStep(t, "step_eta", runA, at(0)),
	}
	b := []lifecycle.Step{
		newStep(t, "step_b1", runB, at(0)),
		newStep(t, "step_Mid", runB, at(1)),
		newStep(t, "step_f", runB, at(5)),
		newStep(t, "step_a", runB, at(-10)),
	}
	create(t, s, a[3], b[0], a[0])
	create(t, s, a[5])
	create(t, s, b[1], a[1], a[2], b[2], a[4])
	create(t, s, a[6], a[7], b[3], a[8])
	commit(t, s,
		transition(t, getStep(t, s, a[0].ID), lifecycle.TriggerComplete, at(10)),
		transition(t, getStep(t, s, b[0].ID), lifecycle.TriggerCancel, at(10)),
	)
	commit(t, s, transition(t, getStep(t, s, a[4].ID), lifecycle.TriggerFail, at(11)))
	stored := make([]lifecycle.Step, len(a))
	for i, step := range a {
		stored[i] = getStep(t, s, step.ID)
	}
	return stored
}

// requirePage checks that got is want[from:to] with HasMore wantMore; an
// empty range (from >= to) is an empty page.
func requirePage(t *testing.T, want []lifecycle.Step, from, to int, wantMore bool, got store.StepPage, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	from = min(from, to)
	require.Equal(t, ids(want[from:to]), ids(got.Steps), msg)
	if from < to {
		require.Equal(t, want[from:to], got.Steps, msg)
	}
	require.Equal(t, wantMore, got.HasMore, "HasMore: %s", msg)
}

func list(t *testing.T, s store.Store, q store.StepQuery) store.StepPage {
	t.Helper()
	page, err := s.ListSteps(t.Context(), q)
	require.NoError(t, err, "%+v", q)
	return page
}

// walk reads every step of run in order with after-cursors, limit steps at
// a time, checking each page, and returns the ids in the order read.
func walk(t *testing.T, s store.Store, run string, order store.Order, limit, total int) []string {
	t.Helper()
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.LessOrEqual(t, pages, total/limit+1, "too many pages: HasMore stays true")
		page := list(t, s, store.StepQuery{RunID: run, Order: order, After: cursor, Limit: limit})
		got = append(got, ids(page.Steps)...)
		if !page.HasMore {
			require.Len(t, got, total, "HasMore false before the last page")
			return got
		}
		require.Len(t, page.Steps, limit, "a page with more after it is full")
		cursor = page.Steps[len(page.Steps)-1].ID
	}
}

// walkBack reads every step of run from the last one in order backwards,
// with before-cursors, and returns the ids in order.
func walkBack(t *testing.T, s store.Store, run string, order store.Order, limit int, want []lifecycle.Step) []string {
	t.Helper()
	got := []string{want[len(want)-1].ID}
	for pages := 0; ; pages++ {
		require.LessOrEqual(t, pages, len(want)/limit+1, "too many pages: HasMore stays true")
		page := list(t, s, store.StepQuery{RunID: run, Order: order, Before: got[0], Limit: limit})
		got = append(ids(page.Steps), got...)
		if !page.HasMore {
			require.Len(t, got, len(want), "HasMore false before the first page")
			return got
		}
		require.Len(t, page.Steps, limit, "a page with more before it is full")
	}
}

var listTests = []test{
	{"OrderByCreatedAtThenID", func(t *testing.T, s store.Store) {
		stored := listFixture(t, s)
		asc := list(t, s, store.StepQuery{RunID: runA, Order: store.OrderAsc, Limit: 100})
		require.Equal(t, []string{
			"step_zz",                                          // created at -3
			"step_Beta", "step_Zeta", "step_alpha", "step_eta", // ties at 0, by id bytes
			"step_0delta",                // 1
			"step_AAA",                   // 2
			"step_epsilon", "step_gamma", // ties at 5
		}, ids(asc.Steps))
		require.False(t, asc.HasMore)
		require.Equal(t, inOrder(stored, store.OrderAsc), asc.Steps, "steps of runA only, as stored now")

		desc := list(t, s, store.StepQuery{RunID: runA, Order: store.OrderDesc, Limit: 100})
		require.Equal(t, inOrder(stored, store.OrderDesc), desc.Steps)
		require.False(t, desc.HasMore)
	}},
	{"OneRunOnly", func(t *testing.T, s store.Store) {
		listFixture(t, s)
		for _, order := range orders {
			page := list(t, s, store.StepQuery{RunID: runB, Order: order, Limit: 100})
			require.Len(t, page.Steps, 4)
			for _, step := range page.Steps {
				require.Equal(t, runB, step.RunID)
			}
			require.False(t, page.HasMore)
		}
	}},
	{"LimitAndHasMore", func(t *testing.T, s store.Store) {
		stored := listFixture(t, s)
		for _, order := range orders {
			want := inOrder(stored, order)
			n := len(want)
			for limit := 1; limit <= n+1; limit++ {
				page := list(t, s, store.StepQuery{RunID: runA, Order: order, Limit: limit})
				requirePage(t, want, 0, min(limit, n), limit < n, page, "%s, limit %d", order, limit)
			}
		}
	}},
	{"AfterCursor", func(t *testing.T, s store.Store) {
		stored := listFixture(t, s)
		for _, order := range orders {
			want := inOrder(stored, order)
			n := len(want)
			for i, cursor := range want {
				for _, limit := range []int{1, 2, 3, n} {
					page := list(t, s, store.StepQuery{RunID: runA, Order: order, After: cursor.ID, Limit: limit})
					to := min(i+1+limit, n)
					requirePage(t, want, i+1, to, to < n, page, "%s, after %s, limit %d", order, cursor.ID, limit)
				}
			}
		}
	}},
	{"BeforeCursor", func(t *testing.T, s store.Store) {
		// With Before alone, the page is the limit steps just before the
		// cursor, and HasMore says whether more lie beyond them.
		stored := listFixture(t, s)
		for _, order := range orders {
			want := inOrder(stored, order)
			n := len(want)
			for j, cursor := range want {
				for _, limit := range []int{1, 2, 3, n} {
					page := list(t, s, store.StepQuery{RunID: runA, Order: order, Before: cursor.ID, Limit: limit})
					from := max(j-limit, 0)
					requirePage(t, want, from, j, from > 0, page, "%s, before %s, limit %d", order, cursor.ID, limit)
				}
			}
		}
	}},
	{"AfterAndBeforeCursors", func(t *testing.T, s store.Store) {
		stored := listFixture(t, s)
		for _, order := range orders {
			want := inOrder(stored, order)
			n := len(want)
			for i, after := range want {
				for j, before := range want {
					for _, limit := range []int{1, 2, n} {
						q := store.StepQuery{RunID: runA, Order: order, After: after.ID, Before: before.ID, Limit: limit}
						page := list(t, s, q)
						to := min(i+1+limit, j)
						requirePage(t, want, i+1, to, to < j, page,
							"%s, after %s (%d), before %s (%d), limit %d", order, after.ID, i, before.ID, j, limit)
					}
				}
			}
		}
	}},
	{"WalkAllPages", func(t *testing.T, s store.Store) {
		const total = 250
		rnd := rand.New(rand.NewPCG(1761861531, total))
		var steps, others []lifecycle.Step
		seen := map[string]bool{}
		for len(steps) < total {
			id := randomID(rnd, "step_")
			if seen[id] {
				continue
			}
			seen[id] = true
			// 40 distinct times for 250 steps: most share a created_at.
			steps = append(steps, newStep(t, id, runA, at(rnd.IntN(40))))
			if len(steps)%8 == 0 {
				others = append(others, newStep(t, randomID(rnd, "step_"), runB, at(rnd.IntN(40))))
			}
		}
		all := append(slices.Clone(steps), others...)
		rnd.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		var stored []lifecycle.Step
		for chunk := range slices.Chunk(all, 25) {
			for _, step := range create(t, s, chunk...) {
				if step.RunID == runA {
					stored = append(stored, step)
				}
			}
		}
		require.Len(t, stored, total)

		for _, order := range orders {
			want := inOrder(stored, order)
			for _, limit := range []int{100, 7, 1} {
				got := walk(t, s, runA, order, limit, total)
				require.Equal(t, ids(want), got, "%s, limit %d: a step is missing, repeated or out of place", order, limit)
				got = walkBack(t, s, runA, order, limit, want)
				require.Equal(t, ids(want), got, "%s, limit %d, walking back: a step is missing, repeated or out of place", order, limit)
			}
		}
	}},
	{"UnknownCursorNotFound", func(t *testing.T, s store.Store) {
		stored := listFixture(t, s)
		known := stored[0].ID
		for _, order := range orders {
			for _, q := range []store.StepQuery{
				{After: "step_unknown"},
				{Before: "step_unknown"},
				{After: known, Before: "step_unknown"},
				{After: "step_unknown", Before: known},
				{After: strings.ToUpper(known)},
			} {
				q.RunID, q.Order, q.Limit = runA, order, 10
				_, err := s.ListSteps(t.Context(), q)
				require.ErrorIs(t, err, store.ErrNotFound, "%+v", q)
			}
		}
	}},
	{"CursorOfAnotherRunNotFound", func(t *testing.T, s store.Store) {
		stored := listFixture(t, s)
		known := stored[0].ID
		for _, order := range orders {
			for _, q := range []store.StepQuery{
				{RunID: runA, After: "step_b1"},
				{RunID: runA, Before: "step_Mid"},
				{RunID: runA, After: known, Before: "step_f"},
				{RunID: runA, After: "step_a", Before: known},
				{RunID: runB, After: known},
				{RunID: "run_nobody", Before: known},
			} {
				q.Order, q.Limit = order, 10
				_, err := s.ListSteps(t.Context(), q)
				require.ErrorIs(t, err, store.ErrNotFound, "%+v", q)
			}
		}
	}},
	{"UnknownRunEmpty", func(t *testing.T, s store.Store) {
		for _, order := range orders {
			page := list(t, s, store.StepQuery{RunID: runA, Order: order, Limit: 10})
			require.Empty(t, page.Steps, "an empty store")
			require.False(t, page.HasMore)
		}
		listFixture(t, s)
		for _, order := range orders {
			page := list(t, s, store.StepQuery{RunID: "run_nobody", Order: order, Limit: 1})
			require.Empty(t, page.Steps)
			require.False(t, page.HasMore)
		}
	}},
}

// Copy in, copy out.

// scribble changes everything reachable from step: its fields and the
// memory its pointers, maps and slices share.
func scribble(step *lifecycle.Step) {
	step.ID += "_scribbled"
	step.RunID = "run_scribbled"
	step.CreatedAt = -1
	step.Status = lifecycle.StatusExpired
	step.Version = 99
	if step.Metadata != nil {
		step.Metadata["origin"] = "scribbled"
		step.Metadata["extra"] = "scribbled"
	}
	for i := range step.Details.ToolCalls {
		call := &step.Details.ToolCalls[i]
		call.ID = "call_scribbled"
		if f := call.Function; f != nil {
			f.Name = "scribbled"
			if f.Output != nil {
				*f.Output = "scribbled"
			}
		}
	}
	if step.LastError != nil {
		step.LastError.Message = "scribbled"
	}
	for _, p := range []*int64{step.CompletedAt, step.FailedAt, step.CancelledAt, step.ExpiredAt} {
		if p != nil {
			*p = -1
		}
	}
	if step.Usage != nil {
		step.Usage.TotalTokens = -1
	}
}

// snapshot is everything a store shows, deep-copied.
type snapshot struct {
	steps []lifecycle.Step
	page  store.StepPage
	log   []events.Event
}

func take(t *testing.T, s store.Store, stepIDs ...string) snapshot {
	t.Helper()
	var snap snapshot
	for _, id := range stepIDs {
		snap.steps = append(snap.steps, getStep(t, s, id).Clone())
	}
	page := list(t, s, store.StepQuery{RunID: runA, Order: store.OrderAsc, Limit: 100})
	snap.page.HasMore = page.HasMore
	for _, step := range page.Steps {
		snap.page.Steps = append(snap.page.Steps, step.Clone())
	}
	for _, ev := range readLog(t, s) {
		snap.log = append(snap.log, ev.Clone())
	}
	return snap
}

// copyFixture commits a completed, a failed and an in-progress step, so
// that every pointer a step can carry is set on one of them.
func copyFixture(t *testing.T, s store.Store) (stepIDs []string) {
	t.Helper()
	steps := create(t, s,
		newStep(t, "step_a", runA, at(0)),
		newStep(t, "step_b", runA, at(1)),
		newStep(t, "step_c", runA, at(2)),
	)
	commit(t, s,
		transition(t, steps[0], lifecycle.TriggerComplete, at(5)),
		transition(t, steps[1], lifecycle.TriggerFail, at(5)),
	)
	return []string{"step_a", "step_b", "step_c"}
}

var copyTests = []test{
	{"CommitCopiesIn", func(t *testing.T, s store.Store) {
		stepIDs := copyFixture(t, s)
		cur := getStep(t, s, stepIDs[2])
		batch := []events.Event{
			created(newStep(t, "step_d", runA, at(3))),
			transition(t, cur, lifecycle.TriggerComplete, at(6)),
		}
		given := []events.Event{batch[0].Clone(), batch[1].Clone()}
		commit(t, s, batch...)
		require.Equal(t, given, batch, "Commit changed the events it was given")

		stepIDs = append(stepIDs, "step_d")
		before := take(t, s, stepIDs...)
		for _, ev := range batch {
			scribble(ev.Step)
		}
		require.Equal(t, before, take(t, s, stepIDs...), "changing the committed events' steps changed the store")
	}},
	{"CommitCopiesOut", func(t *testing.T, s store.Store) {
		stepIDs := copyFixture(t, s)
		out := commit(t, s,
			created(newStep(t, "step_d", runA, at(3))),
			transition(t, getStep(t, s, stepIDs[2]), lifecycle.TriggerComplete, at(6)),
		)
		stepIDs = append(stepIDs, "step_d")
		before := take(t, s, stepIDs...)
		for _, ev := range out {
			scribble(ev.Step)
		}
		require.Equal(t, before, take(t, s, stepIDs...), "changing the events Commit returned changed the store")
	}},
	{"GetStepCopiesOut", func(t *testing.T, s store.Store) {
		stepIDs := copyFixture(t, s)
		before := take(t, s, stepIDs...)
		for _, id := range stepIDs {
			step := getStep(t, s, id)
			scribble(&step)
		}
		require.Equal(t, before, take(t, s, stepIDs...), "changing a step GetStep returned changed the store")
	}},
	{"ListStepsCopiesOut", func(t *testing.T, s store.Store) {
		stepIDs := copyFixture(t, s)
		before := take(t, s, stepIDs...)
		for _, order := range orders {
			page := list(t, s, store.StepQuery{RunID: runA, Order: order, Limit: 100})
			require.Len(t, page.Steps, len(stepIDs))
			for i := range page.Steps {
				scribble(&page.Steps[i])
			}
		}
		require.Equal(t, before, take(t, s, stepIDs...), "changing steps ListSteps returned changed the store")
	}},
	{"EventsCopiesOut", func(t *testing.T, s store.Store) {
		stepIDs := copyFixture(t, s)
		before := take(t, s, stepIDs...)
		evs, err := s.Events(t.Context(), 0, 100)
		require.NoError(t, err)
		require.Len(t, evs, len(before.log))
		for i := range evs {
			scribble(evs[i].Step)
			evs[i].Seq = 99
		}
		require.Equal(t, before, take(t, s, stepIDs...), "changing events Events returned changed the store")
	}},
}

// Context.

func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

var contextTests = []test{
	{"CommitCancelled", func(t *testing.T, s store.Store) {
		a := create(t, s, newStep(t, "step_a", runA, at(0)))[0]
		before := readLog(t, s)
		_, err := s.Commit(cancelled(t), created(newStep(t, "step_b", runA, at(1))))
		require.ErrorIs(t, err, context.Canceled, "create")
		_, err = s.Commit(cancelled(t), transition(t, a, lifecycle.TriggerComplete, at(2)))
		require.ErrorIs(t, err, context.Canceled, "update")
		requireSteps(t, s, a)
		requireNotFound(t, s, "step_b")
		require.Equal(t, before, readLog(t, s))
	}},
	{"GetStepCancelled", func(t *testing.T, s store.Store) {
		create(t, s, newStep(t, "step_a", runA, at(0)))
		_, err := s.GetStep(cancelled(t), "step_a")
		require.ErrorIs(t, err, context.Canceled)
	}},
	{"ListStepsCancelled", func(t *testing.T, s store.Store) {
		create(t, s, newStep(t, "step_a", runA, at(0)), newStep(t, "step_b", runA, at(1)))
		for _, q := range []store.StepQuery{
			{RunID: runA, Order: store.OrderAsc, Limit: 10},
			{RunID: runA, Order: store.OrderDesc, After: "step_a", Limit: 10},
		} {
			_, err := s.ListSteps(cancelled(t), q)
			require.ErrorIs(t, err, context.Canceled, "%+v", q)
		}
	}},
	{"EventsCancelled", func(t *testing.T, s store.Store) {
		create(t, s, newStep(t, "step_a", runA, at(0)))
		_, err := s.Events(cancelled(t), 0, 10)
		require.ErrorIs(t, err, context.Canceled)
	}},
}

// Concurrency.

var concurrencyTests = []test{
	{"OneWinnerPerVersion", func(t *testing.T, s store.Store) {
		const writers = 64
		read := create(t, s, newStep(t, "step_a", runA, at(0)))[0]
		// Every writer read version 1 and brings a different terminal
		// transition: its own trigger and time.
		evs := make([]events.Event, writers)
		for i := range evs {
			evs[i] = transition(t, read, lifecycle.Triggers[i%len(lifecycle.Triggers)], at(10+i))
		}
		outs := make([][]events.Event, writers)
		errs := make([]error, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				<-start
				outs[i], errs[i] = s.Commit(t.Context(), evs[i])
			})
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "writers %d and %d both won version 1", winner, i)
				winner = i
				continue
			}
			require.ErrorIs(t, err, store.ErrConflict, "writer %d", i)
		}
		require.NotEqual(t, -1, winner, "no writer won")
		want := committed(evs[winner], 2)
		require.Equal(t, []events.Event{want}, outs[winner])
		requireSteps(t, s, *want.Step)

		log := readLog(t, s)
		require.Len(t, log, 2, "exactly one terminal event")
		require.Equal(t, events.TypeStepCreated, log[0].Type)
		require.Equal(t, want, log[1])
	}},
	{"ConcurrentCreatesGapless", func(t *testing.T, s store.Store) {
		const (
			writers = 16
			singles = 8 // commits of one step per writer
			pairs   = 4 // commits of two steps per writer
			readers = 4
			perRun  = singles + 2*pairs
			total   = writers * perRun
			// pairFirst ends the id of the first step of a pair.
			pairFirst = "_first"
		)
		// Writer w creates the steps of its own run, each commit after the
		// last, alternating single steps and pairs.
		batches := make([][][]events.Event, writers)
		for w := range writers {
			run := fmt.Sprintf("run_w%02d", w)
			n := 0
			next := func(suffix string) events.Event {
				n++
				return created(newStep(t, fmt.Sprintf("step_w%02d_%02d%s", w, n, suffix), run, at(n)))
			}
			for i := range singles + pairs {
				if i%3 == 2 {
					batches[w] = append(batches[w], []events.Event{next(pairFirst), next("")})
				} else {
					batches[w] = append(batches[w], []events.Event{next("")})
				}
			}
		}

		outs := make([][][]events.Event, writers)
		werrs := make([]error, writers)
		rerrs := make([]error, readers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-start
				for _, batch := range batches[w] {
					out, err := s.Commit(t.Context(), batch...)
					if err != nil {
						werrs[w] = err
						return
					}
					outs[w] = append(outs[w], out)
				}
			})
		}
		// Readers watch the log while it grows: every read is gapless from
		// 1, and never ends between the two events of a pair.
		for r := range readers {
			wg.Go(func() {
				<-start
				for range 20 {
					evs, err := s.Events(t.Context(), 0, total+1)
					if err != nil {
						rerrs[r] = err
						return
					}
					for i, ev := range evs {
						if ev.Seq != int64(i+1) {
							rerrs[r] = fmt.Errorf("read %d events: Seq %d at position %d", len(evs), ev.Seq, i+1)
							return
						}
					}
					if n := len(evs); n > 0 && evs[n-1].Step != nil && strings.HasSuffix(evs[n-1].Step.ID, pairFirst) {
						rerrs[r] = fmt.Errorf("read half a batch")
						return
					}
				}
			})
		}
		close(start)
		wg.Wait()
		for w, err := range werrs {
			require.NoError(t, err, "writer %d", w)
		}
		for r, err := range rerrs {
			require.NoError(t, err, "reader %d", r)
		}

		log := readLog(t, s)
		require.Len(t, log, total)
		count := map[string]int{}
		for _, ev := range log {
			count[ev.Step.ID]++
		}
		require.Len(t, count, total, "each step once in the log")
		for w := range writers {
			last := int64(0)
			for b, out := range outs[w] {
				for i, ev := range out {
					require.Equal(t, committed(batches[w][b][i], ev.Seq), ev, "writer %d, batch %d", w, b)
					require.Equal(t, ev, log[ev.Seq-1], "the log holds what Commit returned")
					if i == 0 {
						require.Greater(t, ev.Seq, last, "writer %d: a later commit got an earlier Seq", w)
					} else {
						require.Equal(t, last+1, ev.Seq, "writer %d: a batch's Seqs are consecutive", w)
					}
					last = ev.Seq
				}
			}
			page := list(t, s, store.StepQuery{RunID: fmt.Sprintf("run_w%02d", w), Order: store.OrderAsc, Limit: 100})
			require.Len(t, page.Steps, perRun, "writer %d", w)
		}
	}},
}
