// Package storetest is the conformance suite of store.Store: every rule the
// contract in package store states (atomic commits of steps and runs,
// optimistic versions and guards, the gapless event log, list order and
// cursors, the in-progress and deadline queries, the for-update reads,
// copying in and out, contexts and concurrent writers), checked against the
// contract alone and never against one backend's internals.
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
// The suite reads no clock: every step and run is stamped with fixed times,
// and every status change is made by lifecycle.Step.Apply or
// lifecycle.Run.Apply, so each state it commits is one the engine could
// commit. (A few checks also move a run's expires_at, which the store must
// take as given.)
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
		{"Runs", runTests},
		{"MixedBatches", mixedTests},
		{"Guards", guardTests},
		{"Events", eventsTests},
		{"ListSteps", listTests},
		{"StepsInProgress", inProgressTests},
		{"DueRuns", dueTests},
		{"NextDeadline", nextDeadlineTests},
		{"ForUpdate", forUpdateTests},
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

// unix returns when in Unix seconds, as a nullable field holds it.
func unix(when time.Time) *int64 {
	u := when.Unix()
	return &u
}

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

// newRun returns a run just created: queued, version 0, due
// lifecycle.DefaultRunTTL after createdAt, with metadata so that copies
// have memory to share if a store copies carelessly.
func newRun(t *testing.T, id string, createdAt time.Time) lifecycle.Run {
	t.Helper()
	return newRunDue(t, id, createdAt, unix(createdAt.Add(lifecycle.DefaultRunTTL)))
}

// newRunDue returns a run like newRun's that expires at expiresAt (Unix
// seconds), or never if expiresAt is nil.
func newRunDue(t *testing.T, id string, createdAt time.Time, expiresAt *int64) lifecycle.Run {
	t.Helper()
	run := lifecycle.Run{
		ID:          id,
		CreatedAt:   createdAt.Unix(),
		ThreadID:    "thread_storetest",
		AssistantID: "asst_storetest",
		Status:      lifecycle.RunStatusQueued,
		ExpiresAt:   expiresAt,
		Metadata:    lifecycle.Metadata{"origin": "storetest", "run": id},
	}
	require.NoError(t, run.Validate())
	return run
}

// runCreated returns the event that creates run; it shares no memory with
// run.
func runCreated(run lifecycle.Run) events.Event {
	c := run.Clone()
	return events.Event{Type: events.TypeRunCreated, At: c.CreatedAt, Run: &c}
}

// runTransition returns the event of trigger applied to cur at when, as
// the engine would build it: the run after the change, still carrying the
// version cur was read at. A failing run gets an error only a run can
// carry.
func runTransition(t *testing.T, cur lifecycle.Run, trigger lifecycle.RunTrigger, when time.Time) events.Event {
	t.Helper()
	c := lifecycle.RunChange{Trigger: trigger, At: when}
	if trigger == lifecycle.RunTriggerFail {
		c.Error = &lifecycle.LastError{Code: lifecycle.ErrorCodeInvalidPrompt, Message: "storetest: prompt refused"}
	}
	next, err := cur.Apply(c)
	require.NoError(t, err)
	require.NoError(t, next.Validate())
	next = next.Clone() // Apply shares cur's pointers and metadata
	return events.Event{Type: events.RunType(next.Status), At: when.Unix(), Run: &next}
}

// runPaths take a queued run to its end. Together they use every trigger
// of the run machine, pass through every status and end in every terminal
// one; RunPathsCoverTheMachine checks that they still do.
var runPaths = [][]lifecycle.RunTrigger{
	{lifecycle.RunTriggerStart, lifecycle.RunTriggerRequireAction, lifecycle.RunTriggerResume, lifecycle.RunTriggerComplete},
	{lifecycle.RunTriggerStart, lifecycle.RunTriggerRequireAction, lifecycle.RunTriggerSubmitToolOutputs, lifecycle.RunTriggerStart, lifecycle.RunTriggerIncomplete},
	{lifecycle.RunTriggerStart, lifecycle.RunTriggerRequireAction, lifecycle.RunTriggerFail},
	{lifecycle.RunTriggerStart, lifecycle.RunTriggerCancel, lifecycle.RunTriggerFinishCancel},
	{lifecycle.RunTriggerStart, lifecycle.RunTriggerCancel, lifecycle.RunTriggerComplete}, // the cancel came too late
	{lifecycle.RunTriggerStart, lifecycle.RunTriggerRequireAction, lifecycle.RunTriggerCancel, lifecycle.RunTriggerExpire},
	{lifecycle.RunTriggerFail},
	{lifecycle.RunTriggerExpire},
}

// withVersion returns ev naming version v as the one its writer read.
func withVersion(ev events.Event, v int64) events.Event {
	ev = ev.Clone()
	if ev.Step != nil {
		ev.Step.Version = v
	}
	if ev.Run != nil {
		ev.Run.Version = v
	}
	return ev
}

// committed returns ev as a store must hold it once committed as seq: with
// that Seq and its step or run one version on.
func committed(ev events.Event, seq int64) events.Event {
	ev = ev.Clone()
	ev.Seq = seq
	if ev.Step != nil {
		ev.Step.Version++
	}
	if ev.Run != nil {
		ev.Run.Version++
	}
	return ev
}

// commit commits evs in one batch without guards; see commitBatch.
func commit(t *testing.T, s store.Store, evs ...events.Event) []events.Event {
	t.Helper()
	return commitBatch(t, s, store.Events(evs...))
}

// commitBatch commits b and returns its events as committed, built the way
// the contract tells a caller to: the i-th took Seq first+i, and its object
// is the caller's own with Version+1. It checks that the log holds exactly
// those events at those Seqs, and that the store holds each object as its
// event says.
func commitBatch(t *testing.T, s store.Store, b store.Batch) []events.Event {
	t.Helper()
	first, err := s.Commit(t.Context(), b)
	require.NoError(t, err)
	if len(b.Events) == 0 {
		return nil
	}
	require.Positive(t, first, "Commit of %d events returned first Seq %d", len(b.Events), first)
	out := make([]events.Event, len(b.Events))
	for i, ev := range b.Events {
		out[i] = committed(ev, first+int64(i))
	}
	logged, err := s.Events(t.Context(), first-1, len(out))
	require.NoError(t, err)
	require.Equal(t, out, logged, "the log from the first Seq Commit returned (%d) is not the batch as committed", first)
	for _, ev := range out {
		if ev.Step != nil {
			require.Equal(t, *ev.Step, getStep(t, s, ev.Step.ID), "step %s as committed", ev.Step.ID)
		} else {
			require.Equal(t, *ev.Run, getRun(t, s, ev.Run.ID), "run %s as committed", ev.Run.ID)
		}
	}
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

// createRuns commits the runs' created events in one batch and returns the
// runs as stored.
func createRuns(t *testing.T, s store.Store, runs ...lifecycle.Run) []lifecycle.Run {
	t.Helper()
	evs := make([]events.Event, len(runs))
	for i, run := range runs {
		evs[i] = runCreated(run)
	}
	out := commit(t, s, evs...)
	stored := make([]lifecycle.Run, len(out))
	for i, ev := range out {
		stored[i] = *ev.Run
	}
	return stored
}

// moveRun commits the triggers one after the other, each at when, and
// returns the run as stored after the last.
func moveRun(t *testing.T, s store.Store, cur lifecycle.Run, when time.Time, triggers ...lifecycle.RunTrigger) lifecycle.Run {
	t.Helper()
	for _, trigger := range triggers {
		cur = *commit(t, s, runTransition(t, cur, trigger, when))[0].Run
	}
	return cur
}

// guarded returns a batch of evs guarded on the runs.
func guarded(evs []events.Event, guards ...store.Guard) store.Batch {
	return store.Batch{Events: evs, Guards: guards}
}

func getStep(t *testing.T, s store.Store, id string) lifecycle.Step {
	t.Helper()
	step, err := s.GetStep(t.Context(), id)
	require.NoError(t, err, "get step %s", id)
	return step
}

func getRun(t *testing.T, s store.Store, id string) lifecycle.Run {
	t.Helper()
	run, err := s.GetRun(t.Context(), id)
	require.NoError(t, err, "get run %s", id)
	return run
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

func requireRunsNotFound(t *testing.T, s store.Store, runIDs ...string) {
	t.Helper()
	for _, id := range runIDs {
		_, err := s.GetRun(t.Context(), id)
		require.ErrorIs(t, err, store.ErrNotFound, "run %s should not exist", id)
	}
}

// requireSteps checks that the store holds exactly these states of them.
func requireSteps(t *testing.T, s store.Store, want ...lifecycle.Step) {
	t.Helper()
	for _, w := range want {
		require.Equal(t, w, getStep(t, s, w.ID), "step %s", w.ID)
	}
}

// requireRuns checks that the store holds exactly these states of them.
func requireRuns(t *testing.T, s store.Store, want ...lifecycle.Run) {
	t.Helper()
	for _, w := range want {
		require.Equal(t, w, getRun(t, s, w.ID), "run %s", w.ID)
	}
}

func ids(steps []lifecycle.Step) []string {
	out := make([]string, 0, len(steps))
	for _, s := range steps {
		out = append(out, s.ID)
	}
	return out
}

func runIDs(runs []lifecycle.Run) []string {
	out := make([]string, 0, len(runs))
	for _, r := range runs {
		out = append(out, r.ID)
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

		_, err := s.Commit(t.Context(), store.Events(created(newStep(t, "step_a", runA, at(0)))))
		require.ErrorIs(t, err, store.ErrAlreadyExists)
		_, err = s.Commit(t.Context(), store.Events(created(newStep(t, "step_a", runB, at(9)))))
		require.ErrorIs(t, err, store.ErrAlreadyExists, "the same id in another run")
		_, err = s.Commit(t.Context(), store.Events(created(newStep(t, "step_b", runA, at(1))), created(newStep(t, "step_a", runA, at(2)))))
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

		_, err := s.Commit(t.Context(), store.Events(withVersion(transition(t, read, lifecycle.TriggerCancel, at(3)), 2)))
		require.ErrorIs(t, err, store.ErrConflict, "a version the step has not reached")
		requireSteps(t, s, read)

		won := commit(t, s, transition(t, read, lifecycle.TriggerComplete, at(5)))[0]
		before := readLog(t, s)

		for _, trigger := range lifecycle.Triggers {
			_, err := s.Commit(t.Context(), store.Events(transition(t, read, trigger, at(6))))
			require.ErrorIs(t, err, store.ErrConflict, "%s at the version read before another writer won", trigger)
		}
		_, err = s.Commit(t.Context(), store.Events(withVersion(transition(t, read, lifecycle.TriggerCancel, at(7)), 0)))
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
			_, err := s.Commit(t.Context(), store.Events(transition(t, ghost, trigger, at(2))))
			require.ErrorIs(t, err, store.ErrNotFound, "%s", trigger)
		}
		_, err := s.Commit(t.Context(), store.Events(withVersion(transition(t, ghost, lifecycle.TriggerExpire, at(2)), 5)))
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
			_, err := s.Commit(t.Context(), store.Events(tc.batch...))
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
			_, err := s.Commit(t.Context(), store.Events(tc.batch...))
			require.ErrorIs(t, err, store.ErrInvalid, tc.name)
			requireSteps(t, s, a)
			requireNotFound(t, s, "step_x", "step_y")
			require.Equal(t, before, readLog(t, s), "%s: the log changed", tc.name)
		}
	}},
	{"EventWithoutStepInvalid", func(t *testing.T, s store.Store) {
		a := newStep(t, "step_a", runA, at(0))
		_, err := s.Commit(t.Context(), store.Events(events.Event{Type: events.TypeStepCreated, At: at(0).Unix()}))
		require.ErrorIs(t, err, store.ErrInvalid)
		_, err = s.Commit(t.Context(), store.Events(created(a), events.Event{Type: events.TypeStepCompleted, At: at(1).Unix()}))
		require.ErrorIs(t, err, store.ErrInvalid, "a batch with one event without a step")
		requireNotFound(t, s, a.ID)
		require.Empty(t, readLog(t, s))
	}},
	{"EventWithStepAndRunInvalid", func(t *testing.T, s store.Store) {
		a := newStep(t, "step_a", runA, at(0))
		r := newRun(t, runA, at(0))
		both := created(a)
		both.Run = runCreated(r).Run
		_, err := s.Commit(t.Context(), store.Events(both))
		require.ErrorIs(t, err, store.ErrInvalid, "an event with a step and a run")
		_, err = s.Commit(t.Context(), store.Events(runCreated(r), both))
		require.ErrorIs(t, err, store.ErrInvalid, "a batch with one event carrying both")
		_, err = s.Commit(t.Context(), store.Events(runCreated(r), events.Event{Type: events.TypeRunCreated, At: at(0).Unix()}))
		require.ErrorIs(t, err, store.ErrInvalid, "a run event without a run")
		requireNotFound(t, s, a.ID)
		requireRunsNotFound(t, s, r.ID)
		require.Empty(t, readLog(t, s))
	}},
	{"InvalidObjectInvalid", func(t *testing.T, s store.Store) {
		// A store keeps only what it can give back as committed: an object
		// its own Validate refuses is refused whole, whatever else the
		// batch holds.
		a := create(t, s, newStep(t, "step_a", runA, at(0)))[0]
		before := readLog(t, s)
		unknownStatus := newStep(t, "step_x", runA, at(1))
		unknownStatus.Status = "done"
		completedUnstamped := transition(t, a, lifecycle.TriggerComplete, at(2))
		completedUnstamped.Step.CompletedAt = nil
		noThread := newRun(t, runA, at(0))
		noThread.ThreadID = ""
		for _, tc := range []struct {
			name  string
			batch []events.Event
		}{
			{"a new step with an unknown status", []events.Event{created(unknownStatus)}},
			{"a completed step without completed_at", []events.Event{completedUnstamped}},
			{"a run without a thread", []events.Event{runCreated(noThread)}},
			{"an invalid step after a valid one", []events.Event{
				created(newStep(t, "step_y", runA, at(1))), created(unknownStatus),
			}},
		} {
			_, err := s.Commit(t.Context(), store.Events(tc.batch...))
			var verr *lifecycle.ValidationError
			require.ErrorIs(t, err, store.ErrInvalid, tc.name)
			require.ErrorAs(t, err, &verr, "%s: the error says which field", tc.name)
			requireSteps(t, s, a)
			requireNotFound(t, s, "step_x", "step_y")
			requireRunsNotFound(t, s, runA)
			require.Equal(t, before, readLog(t, s), "%s: the log changed", tc.name)
		}
	}},
	{"EmptyBatchWritesNothing", func(t *testing.T, s store.Store) {
		empties := []store.Batch{{}, store.Events(), {Events: []events.Event{}, Guards: []store.Guard{}}}
		for i, b := range empties {
			first, err := s.Commit(t.Context(), b)
			require.NoError(t, err, "empty batch %d", i)
			require.Zero(t, first, "empty batch %d", i)
		}
		require.Empty(t, readLog(t, s))

		create(t, s, newStep(t, "step_a", runA, at(0)))
		run := createRuns(t, s, newRun(t, runA, at(0)))[0]
		before := readLog(t, s)
		for i, b := range empties {
			first, err := s.Commit(t.Context(), b)
			require.NoError(t, err, "empty batch %d", i)
			require.Zero(t, first, "empty batch %d in a store with events", i)
		}
		requireRuns(t, s, run)
		require.Equal(t, before, readLog(t, s))
		// The next write takes the next Seq: the empty commits took none.
		out := commit(t, s, created(newStep(t, "step_b", runA, at(1))))
		require.Equal(t, int64(len(before)+1), out[0].Seq)
	}},
	{"UpdateChangingRunIDOrCreatedAtInvalid", func(t *testing.T, s store.Store) {
		a := create(t, s, newStep(t, "step_a", runA, at(0)))[0]
		before := readLog(t, s)

		moved := transition(t, a, lifecycle.TriggerComplete, at(5))
		moved.Step.RunID = runB
		redated := transition(t, a, lifecycle.TriggerCancel, at(5))
		redated.Step.CreatedAt = at(1).Unix()
		for _, tc := range []struct {
			name  string
			batch []events.Event
		}{
			{"run_id changed", []events.Event{moved}},
			{"created_at changed", []events.Event{redated}},
			{"run_id changed after a new step", []events.Event{created(newStep(t, "step_b", runB, at(1))), moved}},
		} {
			_, err := s.Commit(t.Context(), store.Events(tc.batch...))
			require.ErrorIs(t, err, store.ErrInvalid, tc.name)
			requireSteps(t, s, a)
			requireNotFound(t, s, "step_b")
			require.Equal(t, before, readLog(t, s), "%s: the log changed", tc.name)
		}
		for _, order := range orders {
			require.Empty(t, list(t, s, store.StepQuery{RunID: runB, Order: order, Limit: 10}).Steps, "a step moved to another run")
			require.Equal(t, []lifecycle.Step{a}, list(t, s, store.StepQuery{RunID: runA, Order: order, Limit: 10}).Steps)
		}
	}},
	{"NegativeVersionRefused", func(t *testing.T, s store.Store) {
		// The contract names no sentinel for a negative version; whatever
		// the error, nothing may be written (a backend that took -1 as "not
		// 0, so an update" or wrote Version+1 = 0 would corrupt the store).
		a := create(t, s, newStep(t, "step_a", runA, at(0)))[0]
		run := createRuns(t, s, newRun(t, runA, at(0)))[0]
		before := readLog(t, s)
		for _, ev := range []events.Event{
			withVersion(created(newStep(t, "step_b", runA, at(1))), -1),
			withVersion(transition(t, a, lifecycle.TriggerComplete, at(2)), -1),
			withVersion(runCreated(newRun(t, runB, at(1))), -1),
			withVersion(runTransition(t, run, lifecycle.RunTriggerStart, at(2)), -1),
		} {
			_, err := s.Commit(t.Context(), store.Events(ev))
			require.Error(t, err, "%s at version -1", ev.Type)
		}
		requireSteps(t, s, a)
		requireRuns(t, s, run)
		requireNotFound(t, s, "step_b")
		requireRunsNotFound(t, s, runB)
		require.Equal(t, before, readLog(t, s))
	}},
}

// Runs.

var runTests = []test{
	{"RunPathsCoverTheMachine", func(t *testing.T, s store.Store) {
		// Not a check of the store: the run checks below walk runPaths and
		// trust them to reach every trigger and status.
		triggers := map[lifecycle.RunTrigger]bool{}
		statuses := map[lifecycle.RunStatus]bool{lifecycle.RunStatusQueued: true}
		for _, path := range runPaths {
			cur := newRun(t, runA, at(0))
			for _, trigger := range path {
				cur = *runTransition(t, cur, trigger, at(1)).Run
				triggers[trigger], statuses[cur.Status] = true, true
			}
			require.True(t, cur.Status.Terminal(), "path %v ends %s", path, cur.Status)
		}
		for _, trigger := range lifecycle.RunTriggers {
			require.True(t, triggers[trigger], "no path uses %s", trigger)
		}
		for _, status := range lifecycle.RunStatuses {
			require.True(t, statuses[status], "no path reaches %s", status)
		}
	}},
	{"CreateAssignsSeqAndVersion", func(t *testing.T, s store.Store) {
		a := runCreated(newRun(t, runA, at(0)))
		b := runCreated(newRun(t, runB, at(1)))
		c := runCreated(newRunDue(t, "run_c", at(1), nil))

		out := commit(t, s, a)
		require.Equal(t, []events.Event{committed(a, 1)}, out)
		require.Equal(t, int64(1), out[0].Run.Version)

		out2 := commit(t, s, b, c)
		require.Equal(t, []events.Event{committed(b, 2), committed(c, 3)}, out2)

		requireRuns(t, s, *out[0].Run, *out2[0].Run, *out2[1].Run)
		require.Equal(t, append(out, out2...), readLog(t, s))
	}},
	{"CreateExistingIDFails", func(t *testing.T, s store.Store) {
		a := createRuns(t, s, newRun(t, runA, at(0)))[0]
		a = moveRun(t, s, a, at(5), lifecycle.RunTriggerStart)
		before := readLog(t, s)

		_, err := s.Commit(t.Context(), store.Events(runCreated(newRun(t, runA, at(0)))))
		require.ErrorIs(t, err, store.ErrAlreadyExists)
		_, err = s.Commit(t.Context(), store.Events(runCreated(newRunDue(t, runA, at(9), nil))))
		require.ErrorIs(t, err, store.ErrAlreadyExists, "the same id, other fields")
		_, err = s.Commit(t.Context(), store.Events(runCreated(newRun(t, runB, at(1))), runCreated(newRun(t, runA, at(2)))))
		require.ErrorIs(t, err, store.ErrAlreadyExists, "an existing id after a new one in a batch")

		requireRuns(t, s, a)
		requireRunsNotFound(t, s, runB)
		require.Equal(t, before, readLog(t, s))
	}},
	{"UpdateAtReadVersion", func(t *testing.T, s store.Store) {
		runs := make([]lifecycle.Run, len(runPaths))
		for i := range runPaths {
			runs[i] = newRun(t, fmt.Sprintf("run_%d", i), at(i))
		}
		createRuns(t, s, runs...)
		log := readLog(t, s)
		for i, path := range runPaths {
			for j, trigger := range path {
				cur := getRun(t, s, runs[i].ID)
				require.Equal(t, int64(j+1), cur.Version, "run %d before %s: one version per committed change", i, trigger)
				ev := runTransition(t, cur, trigger, at(10+j))
				out := commit(t, s, ev)
				want := committed(ev, int64(len(log)+1))
				require.Equal(t, []events.Event{want}, out, "run %d: %s", i, trigger)
				require.Equal(t, int64(j+2), out[0].Run.Version)
				requireRuns(t, s, *want.Run)
				log = append(log, want)
			}
		}
		require.Equal(t, log, readLog(t, s))
	}},
	{"UpdateStaleVersionConflicts", func(t *testing.T, s store.Store) {
		read := createRuns(t, s, newRun(t, runA, at(0)))[0]
		fromQueued := []lifecycle.RunTrigger{
			lifecycle.RunTriggerStart, lifecycle.RunTriggerFail, lifecycle.RunTriggerCancel, lifecycle.RunTriggerExpire,
		}

		_, err := s.Commit(t.Context(), store.Events(withVersion(runTransition(t, read, lifecycle.RunTriggerCancel, at(3)), 2)))
		require.ErrorIs(t, err, store.ErrConflict, "a version the run has not reached")
		requireRuns(t, s, read)

		won := commit(t, s, runTransition(t, read, lifecycle.RunTriggerStart, at(5)))[0]
		before := readLog(t, s)

		for _, trigger := range fromQueued {
			_, err := s.Commit(t.Context(), store.Events(runTransition(t, read, trigger, at(6))))
			require.ErrorIs(t, err, store.ErrConflict, "%s at the version read before another writer won", trigger)
		}
		_, err = s.Commit(t.Context(), store.Events(withVersion(runTransition(t, read, lifecycle.RunTriggerCancel, at(7)), 0)))
		require.ErrorIs(t, err, store.ErrAlreadyExists, "version 0 of an existing run")

		requireRuns(t, s, *won.Run)
		require.Equal(t, before, readLog(t, s))
	}},
	{"UpdateUnknownIDNotFound", func(t *testing.T, s store.Store) {
		a := createRuns(t, s, newRun(t, runA, at(0)))[0]
		create(t, s, newStep(t, "step_ghost", runA, at(0)))
		before := readLog(t, s)

		ghost := newRun(t, "run_ghost", at(1))
		ghost.Version = 1
		for _, trigger := range []lifecycle.RunTrigger{
			lifecycle.RunTriggerStart, lifecycle.RunTriggerFail, lifecycle.RunTriggerCancel, lifecycle.RunTriggerExpire,
		} {
			_, err := s.Commit(t.Context(), store.Events(runTransition(t, ghost, trigger, at(2))))
			require.ErrorIs(t, err, store.ErrNotFound, "%s", trigger)
		}
		_, err := s.Commit(t.Context(), store.Events(withVersion(runTransition(t, ghost, lifecycle.RunTriggerExpire, at(2)), 5)))
		require.ErrorIs(t, err, store.ErrNotFound)
		// A step's id is not a run's.
		ghost.ID = "step_ghost"
		_, err = s.Commit(t.Context(), store.Events(runTransition(t, ghost, lifecycle.RunTriggerStart, at(2))))
		require.ErrorIs(t, err, store.ErrNotFound, "a run update naming a step's id")

		requireRunsNotFound(t, s, "run_ghost", "step_ghost")
		requireRuns(t, s, a)
		require.Equal(t, before, readLog(t, s))
	}},
	{"GetRunUnknownNotFound", func(t *testing.T, s store.Store) {
		requireRunsNotFound(t, s, "run_none", "", runA)
		createRuns(t, s, newRun(t, runA, at(0)))
		create(t, s, newStep(t, "step_a", runA, at(0)))
		requireRunsNotFound(t, s, "run_none", strings.ToLower(runA), runA+" ", "step_a")
		requireNotFound(t, s, runA)
	}},
	{"BatchNamingRunTwiceInvalid", func(t *testing.T, s store.Store) {
		a := createRuns(t, s, newRun(t, runA, at(0)))[0]
		before := readLog(t, s)
		x := newRun(t, "run_x", at(1))

		for _, tc := range []struct {
			name  string
			batch []events.Event
		}{
			{"two transitions of one run", []events.Event{
				runTransition(t, a, lifecycle.RunTriggerStart, at(2)),
				runTransition(t, a, lifecycle.RunTriggerCancel, at(2)),
			}},
			{"the same transition twice", []events.Event{
				runTransition(t, a, lifecycle.RunTriggerExpire, at(2)),
				runTransition(t, a, lifecycle.RunTriggerExpire, at(2)),
			}},
			{"create one run twice", []events.Event{runCreated(x), runCreated(x)}},
			{"apart in a longer batch", []events.Event{
				runTransition(t, a, lifecycle.RunTriggerStart, at(2)),
				runCreated(x),
				created(newStep(t, "step_y", runA, at(1))),
				runTransition(t, a, lifecycle.RunTriggerFail, at(2)),
			}},
		} {
			_, err := s.Commit(t.Context(), store.Events(tc.batch...))
			require.ErrorIs(t, err, store.ErrInvalid, tc.name)
			requireRuns(t, s, a)
			requireRunsNotFound(t, s, "run_x")
			requireNotFound(t, s, "step_y")
			require.Equal(t, before, readLog(t, s), "%s: the log changed", tc.name)
		}
	}},
}

// Batches of steps and runs.

var mixedTests = []test{
	{"StepsAndRunCommitTogether", func(t *testing.T, s store.Store) {
		// A run is created with its first step, in one write.
		out := commit(t, s,
			runCreated(newRun(t, runB, at(0))),
			created(newStep(t, "step_b0", runB, at(0))),
		)
		require.Equal(t, int64(1), out[0].Seq)
		require.Equal(t, int64(1), out[0].Run.Version)
		require.Equal(t, int64(1), out[1].Step.Version)

		// A run fails, and its steps in progress follow it (the default
		// cascade), before it in the same write.
		run := createRuns(t, s, newRun(t, runA, at(0)))[0]
		run = moveRun(t, s, run, at(1), lifecycle.RunTriggerStart)
		steps := create(t, s,
			newStep(t, "step_a", runA, at(2)),
			newStep(t, "step_b", runA, at(2)),
			newStep(t, "step_c", runA, at(3)),
		)
		finished := *commit(t, s, transition(t, steps[0], lifecycle.TriggerComplete, at(4)))[0].Step
		inProgress := stepsInProgress(t, s, runA)
		require.Equal(t, steps[1:], inProgress)

		failed := runTransition(t, run, lifecycle.RunTriggerFail, at(5))
		cascaded, err := lifecycle.DefaultCascadePolicy().Cascade(*failed.Run, inProgress, at(5))
		require.NoError(t, err)
		require.Len(t, cascaded, 2)
		var batch []events.Event
		for _, step := range cascaded {
			step = step.Clone()
			batch = append(batch, events.Event{Type: events.StepType(step.Status), At: at(5).Unix(), Step: &step})
		}
		batch = append(batch, failed)
		before := readLog(t, s)
		out = commit(t, s, batch...)
		require.Equal(t, append(before, out...), readLog(t, s))

		require.Empty(t, stepsInProgress(t, s, runA))
		require.Equal(t, lifecycle.RunStatusFailed, getRun(t, s, runA).Status)
		require.Equal(t, int64(3), getRun(t, s, runA).Version)
		for _, id := range []string{"step_b", "step_c"} {
			step := getStep(t, s, id)
			require.Equal(t, lifecycle.StatusFailed, step.Status, id)
			require.Equal(t, int64(2), step.Version, id)
		}
		requireSteps(t, s, finished)
	}},
	{"FailureIsAtomic", func(t *testing.T, s store.Store) {
		run := createRuns(t, s, newRun(t, runA, at(0)))[0]
		runRead := run
		run = moveRun(t, s, run, at(1), lifecycle.RunTriggerStart)
		steps := create(t, s,
			newStep(t, "step_a", runA, at(2)),
			newStep(t, "step_b", runA, at(2)),
			newStep(t, "step_c", runA, at(3)),
		)
		aRead, b, c := steps[0], steps[1], steps[2]
		a := *commit(t, s, transition(t, aRead, lifecycle.TriggerComplete, at(4)))[0].Step
		before := readLog(t, s)
		ghost := newRun(t, "run_ghost", at(0))
		ghost.Version = 1
		e := newStep(t, "step_e", runA, at(5))
		r2 := newRun(t, runB, at(5))

		for _, tc := range []struct {
			name  string
			batch []events.Event
			want  error
		}{
			{"run conflicts after good steps", []events.Event{
				transition(t, b, lifecycle.TriggerCancel, at(6)),
				created(e),
				runTransition(t, runRead, lifecycle.RunTriggerCancel, at(6)),
			}, store.ErrConflict},
			{"step conflicts before a good run", []events.Event{
				transition(t, aRead, lifecycle.TriggerFail, at(6)),
				runTransition(t, run, lifecycle.RunTriggerCancel, at(6)),
			}, store.ErrConflict},
			{"a good run before a step that conflicts", []events.Event{
				runCreated(r2),
				transition(t, c, lifecycle.TriggerExpire, at(6)),
				transition(t, aRead, lifecycle.TriggerExpire, at(6)),
			}, store.ErrConflict},
			{"run not found", []events.Event{
				created(e),
				runTransition(t, ghost, lifecycle.RunTriggerStart, at(6)),
				transition(t, b, lifecycle.TriggerExpire, at(6)),
			}, store.ErrNotFound},
			{"run already exists", []events.Event{
				transition(t, b, lifecycle.TriggerExpire, at(6)),
				runCreated(newRun(t, runA, at(0))),
			}, store.ErrAlreadyExists},
			{"step already exists next to a new run", []events.Event{
				runCreated(r2),
				created(newStep(t, "step_b", runB, at(6))),
			}, store.ErrAlreadyExists},
			{"run named twice among steps", []events.Event{
				runTransition(t, run, lifecycle.RunTriggerRequireAction, at(6)),
				created(e),
				runTransition(t, run, lifecycle.RunTriggerCancel, at(6)),
			}, store.ErrInvalid},
			{"an event without an object", []events.Event{
				runTransition(t, run, lifecycle.RunTriggerCancel, at(6)),
				created(e),
				{Type: events.TypeRunCancelling, At: at(6).Unix()},
			}, store.ErrInvalid},
		} {
			_, err := s.Commit(t.Context(), store.Events(tc.batch...))
			require.ErrorIs(t, err, tc.want, tc.name)
			requireSteps(t, s, a, b, c)
			requireRuns(t, s, run)
			requireNotFound(t, s, e.ID)
			requireRunsNotFound(t, s, r2.ID, ghost.ID)
			require.Equal(t, before, readLog(t, s), "%s: the log changed", tc.name)
		}

		// Nothing of the failed batches stayed: the versions they named
		// are still current.
		commit(t, s,
			transition(t, b, lifecycle.TriggerCancel, at(7)),
			transition(t, c, lifecycle.TriggerCancel, at(7)),
			runCreated(r2),
			runTransition(t, run, lifecycle.RunTriggerCancel, at(7)),
			created(e),
		)
	}},
}

// Guards.

var guardTests = []test{
	{"GuardBumpsRunVersionWithoutEvent", func(t *testing.T, s store.Store) {
		run := createRuns(t, s, newRun(t, runA, at(0)))[0]
		before := readLog(t, s)

		out := commitBatch(t, s, guarded(
			[]events.Event{created(newStep(t, "step_a", runA, at(1)))},
			store.Guard{RunID: runA, Version: 1},
		))
		require.Equal(t, append(before, out...), readLog(t, s), "a guard writes no event")
		bumped := run
		bumped.Version = 2
		requireRuns(t, s, bumped) // and nothing else changed
		require.Equal(t, int64(1), readLog(t, s)[0].Run.Version, "the run's event still shows the run as created")

		// A writer that read the run before the guarded commit conflicts;
		// one that read it after wins.
		_, err := s.Commit(t.Context(), store.Events(runTransition(t, run, lifecycle.RunTriggerStart, at(2))))
		require.ErrorIs(t, err, store.ErrConflict, "a run write at the version before the guard")
		requireRuns(t, s, bumped)
		started := moveRun(t, s, bumped, at(2), lifecycle.RunTriggerStart)
		require.Equal(t, int64(3), started.Version)

		// A batch of guards alone bumps them too, and still writes no event.
		log := readLog(t, s)
		commitBatch(t, s, guarded(nil, store.Guard{RunID: runA, Version: 3}))
		started.Version = 4
		requireRuns(t, s, started)
		require.Equal(t, log, readLog(t, s))
		// The next event still takes the next Seq.
		next := commit(t, s, created(newStep(t, "step_b", runA, at(3))))
		require.Equal(t, int64(len(log)+1), next[0].Seq)
	}},
	{"GuardsOnSeveralRuns", func(t *testing.T, s store.Store) {
		runs := createRuns(t, s, newRun(t, runA, at(0)), newRun(t, runB, at(0)), newRun(t, "run_c", at(0)))
		a, b, c := runs[0], runs[1], runs[2]

		// Guards on two runs, and an event moving a third.
		out := commitBatch(t, s, guarded(
			[]events.Event{
				created(newStep(t, "step_a", runA, at(1))),
				runTransition(t, c, lifecycle.RunTriggerStart, at(1)),
			},
			store.Guard{RunID: runA, Version: 1},
			store.Guard{RunID: runB, Version: 1},
		))
		a.Version, b.Version = 2, 2
		c = *out[1].Run
		requireRuns(t, s, a, b, c)
		before := readLog(t, s)

		// One stale guard among good ones: nothing is bumped or written.
		for _, guards := range [][]store.Guard{
			{{RunID: runA, Version: 2}, {RunID: runB, Version: 1}},
			{{RunID: runB, Version: 1}, {RunID: runA, Version: 2}},
			{{RunID: runA, Version: 2}, {RunID: runB, Version: 2}, {RunID: "run_c", Version: 1}},
		} {
			_, err := s.Commit(t.Context(), guarded([]events.Event{created(newStep(t, "step_x", runA, at(2)))}, guards...))
			require.ErrorIs(t, err, store.ErrConflict, "%+v", guards)
			_, err = s.Commit(t.Context(), guarded(nil, guards...))
			require.ErrorIs(t, err, store.ErrConflict, "%+v without events", guards)
			requireRuns(t, s, a, b, c)
			requireNotFound(t, s, "step_x")
			require.Equal(t, before, readLog(t, s))
		}
	}},
	{"StaleGuardConflicts", func(t *testing.T, s store.Store) {
		run := createRuns(t, s, newRun(t, runA, at(0)))[0]
		run = moveRun(t, s, run, at(1), lifecycle.RunTriggerStart) // version 2
		other := createRuns(t, s, newRun(t, runB, at(0)))[0]
		before := readLog(t, s)

		for _, v := range []int64{1, 3, 0, -1, 99} {
			for _, b := range []store.Batch{
				guarded([]events.Event{created(newStep(t, "step_x", runA, at(2)))}, store.Guard{RunID: runA, Version: v}),
				guarded([]events.Event{runTransition(t, other, lifecycle.RunTriggerStart, at(2))}, store.Guard{RunID: runA, Version: v}),
				guarded(nil, store.Guard{RunID: runA, Version: v}),
			} {
				_, err := s.Commit(t.Context(), b)
				require.ErrorIs(t, err, store.ErrConflict, "guard at version %d of a run at 2, %d events", v, len(b.Events))
			}
		}
		requireRuns(t, s, run, other)
		requireNotFound(t, s, "step_x")
		require.Equal(t, before, readLog(t, s))
	}},
	{"GuardOnMissingRunNotFound", func(t *testing.T, s store.Store) {
		run := createRuns(t, s, newRun(t, runA, at(0)))[0]
		create(t, s, newStep(t, "step_a", runA, at(0)))
		before := readLog(t, s)

		for _, tc := range []struct {
			name   string
			guards []store.Guard
		}{
			{"unknown run", []store.Guard{{RunID: "run_nobody", Version: 1}}},
			{"unknown run at version 0", []store.Guard{{RunID: "run_nobody", Version: 0}}},
			{"a step's id", []store.Guard{{RunID: "step_a", Version: 1}}},
			{"after a good guard", []store.Guard{{RunID: runA, Version: 1}, {RunID: "run_nobody", Version: 1}}},
			{"before a good guard", []store.Guard{{RunID: "run_nobody", Version: 1}, {RunID: runA, Version: 1}}},
		} {
			_, err := s.Commit(t.Context(), guarded([]events.Event{created(newStep(t, "step_x", runA, at(1)))}, tc.guards...))
			require.ErrorIs(t, err, store.ErrNotFound, tc.name)
			_, err = s.Commit(t.Context(), guarded(nil, tc.guards...))
			require.ErrorIs(t, err, store.ErrNotFound, "%s, without events", tc.name)
			requireRuns(t, s, run)
			requireNotFound(t, s, "step_x")
			requireRunsNotFound(t, s, "run_nobody", "step_a")
			require.Equal(t, before, readLog(t, s), "%s: the log changed", tc.name)
		}
	}},
	{"DuplicateGuardsInvalid", func(t *testing.T, s store.Store) {
		runs := createRuns(t, s, newRun(t, runA, at(0)), newRun(t, runB, at(0)))
		a, b := runs[0], runs[1]
		before := readLog(t, s)
		step := created(newStep(t, "step_x", runA, at(1)))

		for _, tc := range []struct {
			name  string
			batch store.Batch
		}{
			{"two guards on one run", guarded([]events.Event{step},
				store.Guard{RunID: runA, Version: 1}, store.Guard{RunID: runA, Version: 1})},
			{"two guards on one run, at different versions", guarded([]events.Event{step},
				store.Guard{RunID: runA, Version: 1}, store.Guard{RunID: runB, Version: 1}, store.Guard{RunID: runA, Version: 2})},
			{"two guards alone", guarded(nil,
				store.Guard{RunID: runB, Version: 1}, store.Guard{RunID: runB, Version: 1})},
			{"a guard on a run an event moves", guarded(
				[]events.Event{step, runTransition(t, a, lifecycle.RunTriggerStart, at(1))},
				store.Guard{RunID: runA, Version: 1})},
			{"a guard on a run an event creates", guarded(
				[]events.Event{runCreated(newRun(t, "run_new", at(1)))},
				store.Guard{RunID: "run_new", Version: 0})},
		} {
			_, err := s.Commit(t.Context(), tc.batch)
			require.ErrorIs(t, err, store.ErrInvalid, tc.name)
			requireRuns(t, s, a, b)
			requireNotFound(t, s, "step_x")
			requireRunsNotFound(t, s, "run_new")
			require.Equal(t, before, readLog(t, s), "%s: the log changed", tc.name)
		}
	}},
}

// Events.

// eventsFixture commits creations and transitions of runs and of steps in
// two runs, in several commits, some guarded, and returns the events as
// committed, in order.
func eventsFixture(t *testing.T, s store.Store) []events.Event {
	t.Helper()
	var log []events.Event
	add := func(b store.Batch) []events.Event {
		out := commitBatch(t, s, b)
		log = append(log, out...)
		return out
	}
	a := newStep(t, "step_a", runA, at(0))
	b := newStep(t, "step_b", runB, at(1))
	c := newStep(t, "step_c", runA, at(2))
	d := newStep(t, "step_d", runB, at(3))

	ra := *add(store.Events(runCreated(newRun(t, runA, at(0)))))[0].Run
	sa := *add(guarded([]events.Event{created(a)}, store.Guard{RunID: runA, Version: 1}))[0].Step
	ra.Version = 2
	out := add(store.Events(created(b), created(c)))
	sb, sc := *out[0].Step, *out[1].Step
	ra = *add(store.Events(runTransition(t, ra, lifecycle.RunTriggerStart, at(3)), transition(t, sa, lifecycle.TriggerComplete, at(4))))[0].Run
	sd := *add(guarded([]events.Event{created(d), transition(t, sc, lifecycle.TriggerFail, at(5))}, store.Guard{RunID: runA, Version: 3}))[0].Step
	ra.Version = 4
	add(store.Events(transition(t, sb, lifecycle.TriggerCancel, at(6))))
	add(store.Events(transition(t, sd, lifecycle.TriggerExpire, at(7)), runTransition(t, ra, lifecycle.RunTriggerComplete, at(7))))
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
			for _, limit := range []int{0, -1, math.MinInt} {
				got, err := s.Events(t.Context(), after, limit)
				require.NoError(t, err)
				require.Empty(t, got, "after %d, limit %d", after, limit)
			}
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
	{"RunDataIsStateAtCommit", func(t *testing.T, s store.Store) {
		first := commit(t, s, runCreated(newRun(t, runA, at(0))))
		commitBatch(t, s, guarded(nil, store.Guard{RunID: runA, Version: 1}))
		second := commit(t, s, runTransition(t, getRun(t, s, runA), lifecycle.RunTriggerStart, at(5)))
		third := commit(t, s, runTransition(t, *second[0].Run, lifecycle.RunTriggerComplete, at(9)))
		require.Equal(t, lifecycle.RunStatusCompleted, getRun(t, s, runA).Status)

		log := readLog(t, s)
		require.Equal(t, slices.Concat(first, second, third), log)
		require.Equal(t, events.TypeRunCreated, log[0].Type)
		require.Equal(t, lifecycle.RunStatusQueued, log[0].Run.Status, "the created event still shows the run as created")
		require.Equal(t, int64(1), log[0].Run.Version, "the guard left the logged run alone")
		require.Nil(t, log[0].Run.StartedAt)
		require.NotNil(t, log[0].Run.ExpiresAt)
		require.Equal(t, int64(3), log[1].Run.Version)
		require.Equal(t, at(5).Unix(), *log[1].Run.StartedAt)
		require.NotNil(t, log[1].Run.ExpiresAt)
		require.Nil(t, log[2].Run.ExpiresAt, "a completed run has no deadline")
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

// StepsInProgress.

func stepsInProgress(t *testing.T, s store.Store, runID string) []lifecycle.Step {
	t.Helper()
	steps, err := s.StepsInProgress(t.Context(), runID)
	require.NoError(t, err, "steps in progress of %s", runID)
	return steps
}

// requireInProgress checks that StepsInProgress of the run returns exactly
// want, as stored now, in order.
func requireInProgress(t *testing.T, s store.Store, runID string, want []lifecycle.Step, msg string) {
	t.Helper()
	got := stepsInProgress(t, s, runID)
	require.Equal(t, ids(want), ids(got), msg)
	if len(want) > 0 {
		require.Equal(t, want, got, msg)
	}
}

// inProgress returns the steps still in progress, in created_at, id order.
func inProgress(steps []lifecycle.Step) []lifecycle.Step {
	var out []lifecycle.Step
	for _, step := range inOrder(steps, store.OrderAsc) {
		if step.Status == lifecycle.StatusInProgress {
			out = append(out, step)
		}
	}
	return out
}

var inProgressTests = []test{
	{"OnlyInProgressInOrder", func(t *testing.T, s store.Store) {
		listFixture(t, s) // runA: step_alpha completed, step_zz failed
		commit(t, s,
			transition(t, getStep(t, s, "step_AAA"), lifecycle.TriggerCancel, at(12)),
			transition(t, getStep(t, s, "step_gamma"), lifecycle.TriggerExpire, at(12)),
		)
		stored := list(t, s, store.StepQuery{RunID: runA, Order: store.OrderDesc, Limit: 100}).Steps
		requireInProgress(t, s, runA, inProgress(stored), "runA")
		require.Equal(t, []string{
			"step_Beta", "step_Zeta", "step_eta", // ties at 0, by id bytes
			"step_0delta",  // 1
			"step_epsilon", // 5
		}, ids(stepsInProgress(t, s, runA)))

		storedB := list(t, s, store.StepQuery{RunID: runB, Order: store.OrderAsc, Limit: 100}).Steps
		requireInProgress(t, s, runB, inProgress(storedB), "runB: step_b1 was cancelled")
		require.Len(t, stepsInProgress(t, s, runB), 3)
	}},
	{"UnknownOrEndedRunEmpty", func(t *testing.T, s store.Store) {
		require.Empty(t, stepsInProgress(t, s, runA), "an empty store")
		createRuns(t, s, newRun(t, runA, at(0)))
		require.Empty(t, stepsInProgress(t, s, runA), "a run without steps")
		steps := create(t, s, newStep(t, "step_a", runB, at(0)), newStep(t, "step_b", runB, at(1)))
		require.Empty(t, stepsInProgress(t, s, "run_nobody"))
		require.Empty(t, stepsInProgress(t, s, "step_a"), "a step's id is not a run's")
		commit(t, s,
			transition(t, steps[0], lifecycle.TriggerComplete, at(2)),
			transition(t, steps[1], lifecycle.TriggerFail, at(2)),
		)
		require.Empty(t, stepsInProgress(t, s, runB), "a run whose steps all ended")
	}},
	{"FollowsCommits", func(t *testing.T, s store.Store) {
		run := createRuns(t, s, newRun(t, runA, at(0)))[0]
		steps := create(t, s,
			newStep(t, "step_b", runA, at(1)),
			newStep(t, "step_a", runA, at(1)),
			newStep(t, "step_c", runA, at(2)),
		)
		b, a, c := steps[0], steps[1], steps[2]
		requireInProgress(t, s, runA, []lifecycle.Step{a, b, c}, "created")

		commit(t, s, transition(t, b, lifecycle.TriggerComplete, at(3)))
		requireInProgress(t, s, runA, []lifecycle.Step{a, c}, "step_b completed")

		// A guarded create; a step created earlier than the others comes first.
		d := commitBatch(t, s, guarded([]events.Event{created(newStep(t, "step_d", runA, at(0)))}, store.Guard{RunID: runA, Version: run.Version}))
		requireInProgress(t, s, runA, []lifecycle.Step{*d[0].Step, a, c}, "step_d created")

		// A failed commit changes nothing.
		_, err := s.Commit(t.Context(), store.Events(transition(t, a, lifecycle.TriggerCancel, at(4)), transition(t, b, lifecycle.TriggerCancel, at(4))))
		require.ErrorIs(t, err, store.ErrConflict)
		requireInProgress(t, s, runA, []lifecycle.Step{*d[0].Step, a, c}, "after a failed commit")

		commit(t, s,
			transition(t, a, lifecycle.TriggerCancel, at(5)),
			transition(t, c, lifecycle.TriggerExpire, at(5)),
			transition(t, *d[0].Step, lifecycle.TriggerFail, at(5)),
		)
		requireInProgress(t, s, runA, nil, "all ended")
	}},
}

// DueRuns.

func dueRuns(t *testing.T, s store.Store, now int64, limit int) []lifecycle.Run {
	t.Helper()
	runs, err := s.DueRuns(t.Context(), now, limit)
	require.NoError(t, err, "due runs at %d, limit %d", now, limit)
	require.LessOrEqual(t, len(runs), max(limit, 0), "DueRuns returned more than limit")
	return runs
}

// requireDue checks that DueRuns at now returns exactly the runs named, in
// that order, each as stored now.
func requireDue(t *testing.T, s store.Store, now int64, want ...string) {
	t.Helper()
	got := dueRuns(t, s, now, 100)
	require.Equal(t, append([]string{}, want...), runIDs(got), "due at %d", now)
	for _, run := range got {
		require.Equal(t, getRun(t, s, run.ID), run, "due run %s as stored", run.ID)
	}
}

func compareDeadlines(a, b lifecycle.Run) int {
	return cmp.Or(cmp.Compare(*a.ExpiresAt, *b.ExpiresAt), strings.Compare(a.ID, b.ID))
}

// dueAt returns the runs with a deadline at or before now, earliest
// deadline first, then by id: what DueRuns must return (runs must not have
// ended).
func dueAt(runs []lifecycle.Run, now int64) []lifecycle.Run {
	var out []lifecycle.Run
	for _, run := range runs {
		if run.ExpiresAt != nil && *run.ExpiresAt <= now {
			out = append(out, run)
		}
	}
	slices.SortFunc(out, compareDeadlines)
	return out
}

// dueFixture creates runs that can expire, in every status a run can
// expire from, several sharing a deadline, with mixed-case ids, one of them
// bumped by a guard; and a run without a deadline. It returns the runs that
// have a deadline, as stored now, in no particular order.
func dueFixture(t *testing.T, s store.Store) []lifecycle.Run {
	t.Helper()
	runs := createRuns(t, s,
		newRunDue(t, "run_b", at(0), unix(at(10))),
		newRunDue(t, "run_never", at(0), nil),
		newRunDue(t, "run_A", at(0), unix(at(10))),
		newRunDue(t, "run_late", at(0), unix(at(100))),
		newRunDue(t, "run_a", at(0), unix(at(10))),
	)
	runs = append(runs, createRuns(t, s,
		newRunDue(t, "run_c", at(1), unix(at(5))),
		newRunDue(t, "run_early", at(-30), unix(at(-20))),
	)...)
	moveRun(t, s, runs[0], at(2), lifecycle.RunTriggerStart)
	moveRun(t, s, runs[1], at(2), lifecycle.RunTriggerStart)
	moveRun(t, s, runs[2], at(2), lifecycle.RunTriggerStart, lifecycle.RunTriggerRequireAction)
	moveRun(t, s, runs[3], at(2), lifecycle.RunTriggerStart, lifecycle.RunTriggerCancel)
	moveRun(t, s, runs[6], at(2), lifecycle.RunTriggerStart, lifecycle.RunTriggerRequireAction, lifecycle.RunTriggerSubmitToolOutputs)
	commitBatch(t, s, guarded([]events.Event{created(newStep(t, "step_c", "run_c", at(3)))}, store.Guard{RunID: "run_c", Version: 1}))
	var out []lifecycle.Run
	for _, run := range runs {
		if run.ExpiresAt != nil {
			out = append(out, getRun(t, s, run.ID))
		}
	}
	return out
}

var dueTests = []test{
	{"EarliestDeadlineFirst", func(t *testing.T, s store.Store) {
		runs := dueFixture(t, s)
		got := dueRuns(t, s, math.MaxInt64, 100)
		require.Equal(t, []string{
			"run_early",               // -20
			"run_c",                   // 5
			"run_A", "run_a", "run_b", // ties at 10, by id bytes
			"run_late", // 100
		}, runIDs(got))
		require.Equal(t, dueAt(runs, math.MaxInt64), got, "the runs as stored now")
		require.Equal(t, int64(2), got[1].Version, "run_c as bumped by its guard")
	}},
	{"Limit", func(t *testing.T, s store.Store) {
		runs := dueFixture(t, s)
		for _, now := range []int64{at(10).Unix(), math.MaxInt64} {
			want := dueAt(runs, now)
			n := len(want)
			for limit := 1; limit <= n+1; limit++ {
				require.Equal(t, want[:min(limit, n)], dueRuns(t, s, now, limit), "now %d, limit %d", now, limit)
			}
		}
	}},
	{"DueAtDeadlineNotBefore", func(t *testing.T, s store.Store) {
		runs := dueFixture(t, s)
		nows := []int64{math.MinInt64, 0, math.MaxInt64}
		for _, run := range runs {
			d := *run.ExpiresAt
			nows = append(nows, d-1, d, d+1)
			require.Contains(t, runIDs(dueRuns(t, s, d, 100)), run.ID, "now is its deadline")
			require.NotContains(t, runIDs(dueRuns(t, s, d-1, 100)), run.ID, "a second before its deadline")
		}
		for _, now := range nows {
			requireDue(t, s, now, runIDs(dueAt(runs, now))...)
		}
	}},
	{"NoDeadlineNeverDue", func(t *testing.T, s store.Store) {
		requireDue(t, s, math.MaxInt64) // an empty store
		run := createRuns(t, s, newRunDue(t, runA, at(0), nil))[0]
		moveRun(t, s, run, at(1), lifecycle.RunTriggerStart)
		create(t, s, newStep(t, "step_a", runA, at(1)))
		requireDue(t, s, math.MaxInt64)
		dueFixture(t, s)
		require.NotContains(t, runIDs(dueRuns(t, s, math.MaxInt64, 100)), "run_never")
	}},
	{"EndedRunsNotDue", func(t *testing.T, s store.Store) {
		due := at(10).Unix()
		for i, path := range runPaths {
			cur := createRuns(t, s, newRunDue(t, fmt.Sprintf("run_%d", i), at(0), &due))[0]
			for _, trigger := range path {
				require.Contains(t, runIDs(dueRuns(t, s, due, 100)), cur.ID, "%s, before %s", cur.Status, trigger)
				cur = moveRun(t, s, cur, at(1), trigger)
			}
			require.True(t, cur.Status.Terminal())
			if cur.Status == lifecycle.RunStatusExpired {
				// It expired early (at 1, due at 10): whatever expires_at
				// it keeps lies before now, and still it is not due.
				require.NotNil(t, cur.ExpiresAt, "an expired run keeps an expires_at")
			}
			require.NotContains(t, runIDs(dueRuns(t, s, math.MaxInt64, 100)), cur.ID, "a %s run", cur.Status)
		}
		requireDue(t, s, math.MaxInt64)
	}},
	{"FollowsDeadlineChanges", func(t *testing.T, s store.Store) {
		runs := createRuns(t, s,
			newRunDue(t, "run_x", at(0), unix(at(10))),
			newRunDue(t, "run_y", at(0), unix(at(20))),
		)
		x, y := runs[0], runs[1]
		requireDue(t, s, at(10).Unix(), "run_x")
		requireDue(t, s, at(20).Unix(), "run_x", "run_y")

		// x's deadline moves later as it starts.
		ev := runTransition(t, x, lifecycle.RunTriggerStart, at(1))
		ev.Run.ExpiresAt = unix(at(30))
		x = *commit(t, s, ev)[0].Run
		requireDue(t, s, at(10).Unix())
		requireDue(t, s, at(29).Unix(), "run_y")
		requireDue(t, s, at(30).Unix(), "run_y", "run_x")

		// y's moves earlier, past x's.
		ev = runTransition(t, y, lifecycle.RunTriggerStart, at(2))
		ev.Run.ExpiresAt = unix(at(5))
		y = *commit(t, s, ev)[0].Run
		requireDue(t, s, at(4).Unix())
		requireDue(t, s, at(5).Unix(), "run_y")
		requireDue(t, s, at(20).Unix(), "run_y")
		requireDue(t, s, at(30).Unix(), "run_y", "run_x")

		// A failed commit moves nothing.
		stale := runTransition(t, runs[0], lifecycle.RunTriggerExpire, at(3))
		_, err := s.Commit(t.Context(), store.Events(stale))
		require.ErrorIs(t, err, store.ErrConflict)
		requireDue(t, s, at(30).Unix(), "run_y", "run_x")

		// A guard keeps the run due, at its new version.
		commitBatch(t, s, guarded(nil, store.Guard{RunID: "run_x", Version: x.Version}))
		requireDue(t, s, at(30).Unix(), "run_y", "run_x")
		x.Version++

		// x's deadline is cleared: it can no longer expire.
		ev = runTransition(t, x, lifecycle.RunTriggerRequireAction, at(3))
		ev.Run.ExpiresAt = nil
		commit(t, s, ev)
		requireDue(t, s, math.MaxInt64, "run_y")

		// y ends.
		moveRun(t, s, y, at(4), lifecycle.RunTriggerComplete)
		requireDue(t, s, math.MaxInt64)
	}},
}

// NextDeadline.

func requireNoDeadline(t *testing.T, s store.Store, msg string) {
	t.Helper()
	_, ok, err := s.NextDeadline(t.Context())
	require.NoError(t, err)
	require.False(t, ok, msg)
}

func requireNextDeadline(t *testing.T, s store.Store, want time.Time, msg string) {
	t.Helper()
	next, ok, err := s.NextDeadline(t.Context())
	require.NoError(t, err)
	require.True(t, ok, msg)
	require.Equal(t, want.Unix(), next, msg)
}

var nextDeadlineTests = []test{
	{"NoneWithoutDeadlines", func(t *testing.T, s store.Store) {
		requireNoDeadline(t, s, "an empty store")
		create(t, s, newStep(t, "step_a", runA, at(0)))
		requireNoDeadline(t, s, "steps only")
		run := createRuns(t, s, newRunDue(t, runA, at(0), nil))[0]
		moveRun(t, s, run, at(1), lifecycle.RunTriggerStart)
		requireNoDeadline(t, s, "a run without a deadline")
		for i, path := range runPaths {
			moveRun(t, s, createRuns(t, s, newRunDue(t, fmt.Sprintf("run_%d", i), at(0), unix(at(10+i))))[0], at(1), path...)
		}
		requireNoDeadline(t, s, "runs that have ended, one of them expired")
	}},
	{"Earliest", func(t *testing.T, s store.Store) {
		runs := createRuns(t, s,
			newRunDue(t, "run_50", at(0), unix(at(50))),
			newRunDue(t, "run_10", at(0), unix(at(10))),
			newRunDue(t, "run_30", at(0), unix(at(30))),
			newRunDue(t, "run_none", at(0), nil),
		)
		requireNextDeadline(t, s, at(10), "three deadlines")
		createRuns(t, s, newRunDue(t, "run_d", at(-60), unix(at(-5))))
		requireNextDeadline(t, s, at(-5), "an earlier one, already past")
		moveRun(t, s, runs[1], at(1), lifecycle.RunTriggerStart)
		requireNextDeadline(t, s, at(-5), "a start leaves the deadline")
		dueFixture(t, s)
		requireNextDeadline(t, s, at(-20), "after the due fixture")
	}},
	{"NextAfterEarliestEnds", func(t *testing.T, s store.Store) {
		runs := createRuns(t, s,
			newRunDue(t, "run_10", at(0), unix(at(10))),
			newRunDue(t, "run_20", at(0), unix(at(20))),
			newRunDue(t, "run_30", at(0), unix(at(30))),
			newRunDue(t, "run_40", at(0), unix(at(40))),
		)
		requireNextDeadline(t, s, at(10), "four runs")
		moveRun(t, s, runs[0], at(1), lifecycle.RunTriggerStart, lifecycle.RunTriggerComplete)
		requireNextDeadline(t, s, at(20), "the earliest completed")
		moveRun(t, s, runs[1], at(20), lifecycle.RunTriggerExpire)
		require.NotNil(t, getRun(t, s, "run_20").ExpiresAt)
		requireNextDeadline(t, s, at(30), "the earliest expired, keeping an expires_at")
		c := moveRun(t, s, runs[2], at(21), lifecycle.RunTriggerStart, lifecycle.RunTriggerCancel)
		requireNextDeadline(t, s, at(30), "a cancelling run can still expire")
		moveRun(t, s, c, at(22), lifecycle.RunTriggerFinishCancel)
		requireNextDeadline(t, s, at(40), "the earliest cancelled")
		moveRun(t, s, runs[3], at(23), lifecycle.RunTriggerFail)
		requireNoDeadline(t, s, "all ended")
	}},
	{"FollowsDeadlineChanges", func(t *testing.T, s store.Store) {
		runs := createRuns(t, s,
			newRunDue(t, "run_x", at(0), unix(at(10))),
			newRunDue(t, "run_y", at(0), unix(at(20))),
		)
		ev := runTransition(t, runs[0], lifecycle.RunTriggerStart, at(1))
		ev.Run.ExpiresAt = unix(at(30))
		x := *commit(t, s, ev)[0].Run
		requireNextDeadline(t, s, at(20), "the earliest moved later")
		ev = runTransition(t, runs[1], lifecycle.RunTriggerStart, at(1))
		ev.Run.ExpiresAt = unix(at(5))
		commit(t, s, ev)
		requireNextDeadline(t, s, at(5), "the other moved earlier")
		_, err := s.Commit(t.Context(), store.Events(withVersion(ev, 1)))
		require.ErrorIs(t, err, store.ErrConflict)
		requireNextDeadline(t, s, at(5), "after a failed commit")
		commitBatch(t, s, guarded(nil, store.Guard{RunID: "run_y", Version: 2}))
		requireNextDeadline(t, s, at(5), "after a guard")
		ev = runTransition(t, getRun(t, s, "run_y"), lifecycle.RunTriggerRequireAction, at(2))
		ev.Run.ExpiresAt = nil
		commit(t, s, ev)
		requireNextDeadline(t, s, at(30), "the earliest cleared")
		moveRun(t, s, x, at(3), lifecycle.RunTriggerExpire)
		requireNoDeadline(t, s, "the last expired")
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

// scribbleRun changes everything reachable from run, like scribble.
func scribbleRun(run *lifecycle.Run) {
	run.ID += "_scribbled"
	run.ThreadID = "thread_scribbled"
	run.CreatedAt = -1
	run.Status = lifecycle.RunStatusExpired
	run.Version = 99
	if run.Metadata != nil {
		run.Metadata["origin"] = "scribbled"
		run.Metadata["extra"] = "scribbled"
	}
	if run.LastError != nil {
		run.LastError.Message = "scribbled"
	}
	for _, p := range []*int64{run.StartedAt, run.ExpiresAt, run.CancelledAt, run.FailedAt, run.CompletedAt} {
		if p != nil {
			*p = -1
		}
	}
}

// scribbleEvent changes ev and everything reachable from it.
func scribbleEvent(ev *events.Event) {
	ev.Seq, ev.Type, ev.At = 99, "scribbled", -1
	if ev.Step != nil {
		scribble(ev.Step)
	}
	if ev.Run != nil {
		scribbleRun(ev.Run)
	}
}

// snapshot is everything a store shows, deep-copied.
type snapshot struct {
	steps      []lifecycle.Step
	runs       []lifecycle.Run
	page       store.StepPage
	inProgress []lifecycle.Step
	due        []lifecycle.Run
	next       int64
	hasNext    bool
	log        []events.Event
}

// objects names the steps and runs a snapshot reads.
type objects struct {
	steps, runs []string
}

func take(t *testing.T, s store.Store, o objects) snapshot {
	t.Helper()
	var snap snapshot
	for _, id := range o.steps {
		snap.steps = append(snap.steps, getStep(t, s, id).Clone())
	}
	for _, id := range o.runs {
		snap.runs = append(snap.runs, getRun(t, s, id).Clone())
	}
	page := list(t, s, store.StepQuery{RunID: runA, Order: store.OrderAsc, Limit: 100})
	snap.page.HasMore = page.HasMore
	for _, step := range page.Steps {
		snap.page.Steps = append(snap.page.Steps, step.Clone())
	}
	for _, step := range stepsInProgress(t, s, runA) {
		snap.inProgress = append(snap.inProgress, step.Clone())
	}
	for _, run := range dueRuns(t, s, math.MaxInt64, 100) {
		snap.due = append(snap.due, run.Clone())
	}
	var err error
	snap.next, snap.hasNext, err = s.NextDeadline(t.Context())
	require.NoError(t, err)
	for _, ev := range readLog(t, s) {
		snap.log = append(snap.log, ev.Clone())
	}
	return snap
}

// copyFixture commits steps and runs so that every pointer a step or a run
// can carry is set on one of them: a completed, a failed and an in-progress
// step; an in-progress, a failed, a completed, a cancelled and a queued
// run. Two runs can still expire.
func copyFixture(t *testing.T, s store.Store) objects {
	t.Helper()
	runs := createRuns(t, s,
		newRun(t, runA, at(0)),
		newRun(t, runB, at(0)),
		newRun(t, "run_done", at(0)),
		newRun(t, "run_cancelled", at(0)),
		newRun(t, "run_queued", at(0)),
	)
	moveRun(t, s, runs[0], at(1), lifecycle.RunTriggerStart)
	moveRun(t, s, runs[1], at(1), lifecycle.RunTriggerFail)
	moveRun(t, s, runs[2], at(1), lifecycle.RunTriggerStart, lifecycle.RunTriggerComplete)
	moveRun(t, s, runs[3], at(1), lifecycle.RunTriggerStart, lifecycle.RunTriggerCancel, lifecycle.RunTriggerFinishCancel)
	steps := create(t, s,
		newStep(t, "step_a", runA, at(0)),
		newStep(t, "step_b", runA, at(1)),
		newStep(t, "step_c", runA, at(2)),
	)
	commitBatch(t, s, guarded([]events.Event{
		transition(t, steps[0], lifecycle.TriggerComplete, at(5)),
		transition(t, steps[1], lifecycle.TriggerFail, at(5)),
	}, store.Guard{RunID: runA, Version: 2}))
	return objects{
		steps: []string{"step_a", "step_b", "step_c"},
		runs:  []string{runA, runB, "run_done", "run_cancelled", "run_queued"},
	}
}

// copyBatch returns a batch on top of copyFixture that creates and moves
// a step and a run, guarded on runA: every kind of object Commit takes.
func copyBatch(t *testing.T, s store.Store) store.Batch {
	t.Helper()
	return guarded([]events.Event{
		created(newStep(t, "step_d", runA, at(3))),
		transition(t, getStep(t, s, "step_c"), lifecycle.TriggerComplete, at(6)),
		runTransition(t, getRun(t, s, "run_queued"), lifecycle.RunTriggerStart, at(6)),
		runCreated(newRun(t, "run_new", at(6))),
	}, store.Guard{RunID: runA, Version: getRun(t, s, runA).Version})
}

func cloneBatch(b store.Batch) store.Batch {
	c := store.Batch{Guards: slices.Clone(b.Guards)}
	for _, ev := range b.Events {
		c.Events = append(c.Events, ev.Clone())
	}
	return c
}

var copyTests = []test{
	{"CommitCopiesIn", func(t *testing.T, s store.Store) {
		o := copyFixture(t, s)
		b := copyBatch(t, s)
		commitBatch(t, s, b)
		o.steps = append(o.steps, "step_d")
		o.runs = append(o.runs, "run_new")

		before := take(t, s, o)
		for i := range b.Events {
			scribbleEvent(&b.Events[i])
		}
		b.Guards[0] = store.Guard{RunID: "run_scribbled", Version: 99}
		require.Equal(t, before, take(t, s, o), "changing the committed batch's events and objects changed the store")
		for i := range b.Events {
			b.Events[i] = events.Event{Seq: 99, Type: events.TypeStepCreated, Step: &lifecycle.Step{ID: "step_scribbled"}}
		}
		require.Equal(t, before, take(t, s, o), "changing the committed batch's slice changed the store")
	}},
	{"CommitLeavesBatchAlone", func(t *testing.T, s store.Store) {
		// The caller knows its objects as committed (its own with
		// Version+1) only if Commit changes nothing it was given.
		copyFixture(t, s)
		b := copyBatch(t, s)
		given := cloneBatch(b)
		commitBatch(t, s, b)
		require.Equal(t, given, b, "Commit changed the batch it was given")

		_, err := s.Commit(t.Context(), b) // the same batch again: stale
		require.Error(t, err)
		require.Equal(t, given, b, "a failed Commit changed the batch it was given")
	}},
	{"GetStepCopiesOut", func(t *testing.T, s store.Store) {
		o := copyFixture(t, s)
		before := take(t, s, o)
		for _, id := range o.steps {
			step := getStep(t, s, id)
			scribble(&step)
		}
		require.Equal(t, before, take(t, s, o), "changing a step GetStep returned changed the store")
	}},
	{"GetRunCopiesOut", func(t *testing.T, s store.Store) {
		o := copyFixture(t, s)
		before := take(t, s, o)
		for _, id := range o.runs {
			run := getRun(t, s, id)
			scribbleRun(&run)
		}
		require.Equal(t, before, take(t, s, o), "changing a run GetRun returned changed the store")
	}},
	{"ListStepsCopiesOut", func(t *testing.T, s store.Store) {
		o := copyFixture(t, s)
		before := take(t, s, o)
		for _, order := range orders {
			page := list(t, s, store.StepQuery{RunID: runA, Order: order, Limit: 100})
			require.Len(t, page.Steps, len(o.steps))
			for i := range page.Steps {
				scribble(&page.Steps[i])
			}
		}
		require.Equal(t, before, take(t, s, o), "changing steps ListSteps returned changed the store")
	}},
	{"StepsInProgressCopiesOut", func(t *testing.T, s store.Store) {
		o := copyFixture(t, s)
		before := take(t, s, o)
		steps := stepsInProgress(t, s, runA)
		require.NotEmpty(t, steps)
		for i := range steps {
			scribble(&steps[i])
		}
		require.Equal(t, before, take(t, s, o), "changing steps StepsInProgress returned changed the store")
	}},
	{"DueRunsCopiesOut", func(t *testing.T, s store.Store) {
		o := copyFixture(t, s)
		before := take(t, s, o)
		runs := dueRuns(t, s, math.MaxInt64, 100)
		require.Len(t, runs, 2)
		for i := range runs {
			scribbleRun(&runs[i])
		}
		require.Equal(t, before, take(t, s, o), "changing runs DueRuns returned changed the store")
	}},
	{"EventsCopiesOut", func(t *testing.T, s store.Store) {
		o := copyFixture(t, s)
		before := take(t, s, o)
		evs, err := s.Events(t.Context(), 0, 100)
		require.NoError(t, err)
		require.Len(t, evs, len(before.log))
		for i := range evs {
			scribbleEvent(&evs[i])
		}
		require.Equal(t, before, take(t, s, o), "changing events Events returned changed the store")
	}},
}

// For-update reads.

func stepForUpdate(t *testing.T, s store.Store, id string) (lifecycle.Step, store.RunDeadline) {
	t.Helper()
	step, deadline, err := s.GetStepForUpdate(t.Context(), id)
	require.NoError(t, err, "GetStepForUpdate %s", id)
	return step, deadline
}

// The for-update reads answer as the plain reads do on a store no other
// process writes, and a write on a read that went stale conflicts.
var forUpdateTests = []test{
	{"StepWithRunDeadline", func(t *testing.T, s store.Store) {
		dueFixture(t, s) // run_c is in progress with step_c, due at 5
		ended := createRuns(t, s, newRunDue(t, "run_ended", at(0), unix(at(10))))[0]
		moveRun(t, s, ended, at(2), lifecycle.RunTriggerStart, lifecycle.RunTriggerComplete)
		create(t, s,
			newStep(t, "step_never", "run_never", at(3)), // a run without a deadline
			newStep(t, "step_late", "run_late", at(3)),   // a cancelling run: it can still expire
			newStep(t, "step_ended", "run_ended", at(3)),
			newStep(t, "step_orphan", "run_missing", at(3)),
		)
		for _, tc := range []struct {
			step string
			want store.RunDeadline
		}{
			{"step_c", store.RunDeadline{At: at(5).Unix(), Armed: true}},
			{"step_never", store.RunDeadline{}},
			{"step_late", store.RunDeadline{At: at(100).Unix(), Armed: true}},
			{"step_ended", store.RunDeadline{}},
			{"step_orphan", store.RunDeadline{}},
		} {
			step, deadline := stepForUpdate(t, s, tc.step)
			require.Equal(t, getStep(t, s, tc.step), step, "%s: the step as GetStep reads it", tc.step)
			require.Equal(t, tc.want, deadline, "%s: its run's deadline", tc.step)
		}
	}},
	{"DeadlineFollowsRun", func(t *testing.T, s store.Store) {
		run := createRuns(t, s, newRunDue(t, runA, at(0), unix(at(10))))[0]
		run = moveRun(t, s, run, at(1), lifecycle.RunTriggerStart)
		create(t, s, newStep(t, "step_a", runA, at(1)))
		_, deadline := stepForUpdate(t, s, "step_a")
		require.Equal(t, store.RunDeadline{At: at(10).Unix(), Armed: true}, deadline)
		require.False(t, deadline.Due(at(10).Unix()-1), "a second before the deadline")
		require.True(t, deadline.Due(at(10).Unix()), "at the deadline")

		run = moveRun(t, s, run, at(2), lifecycle.RunTriggerRequireAction, lifecycle.RunTriggerCancel)
		_, deadline = stepForUpdate(t, s, "step_a")
		require.Equal(t, store.RunDeadline{At: at(10).Unix(), Armed: true}, deadline, "a cancelling run can still expire")

		moveRun(t, s, run, at(3), lifecycle.RunTriggerFinishCancel)
		_, deadline = stepForUpdate(t, s, "step_a")
		require.Equal(t, store.RunDeadline{}, deadline, "a cancelled run cannot")
	}},
	{"RunAsGetRun", func(t *testing.T, s store.Store) {
		for _, want := range dueFixture(t, s) {
			got, err := s.GetRunForUpdate(t.Context(), want.ID)
			require.NoError(t, err)
			require.Equal(t, want, got)
		}
	}},
	{"UnknownNotFound", func(t *testing.T, s store.Store) {
		_, _, err := s.GetStepForUpdate(t.Context(), "step_missing")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.GetRunForUpdate(t.Context(), "run_missing")
		require.ErrorIs(t, err, store.ErrNotFound)
	}},
	{"StaleReadConflicts", func(t *testing.T, s store.Store) {
		a := create(t, s, newStep(t, "step_a", runA, at(0)))[0]
		read, _ := stepForUpdate(t, s, "step_a")
		commit(t, s, transition(t, a, lifecycle.TriggerCancel, at(1))) // another writer wins
		_, err := s.Commit(t.Context(), store.Events(transition(t, read, lifecycle.TriggerComplete, at(2))))
		require.ErrorIs(t, err, store.ErrConflict)
		again, _ := stepForUpdate(t, s, "step_a")
		require.Equal(t, lifecycle.StatusCancelled, again.Status, "the read after the conflict")
		require.Equal(t, getStep(t, s, "step_a"), again)

		run := createRuns(t, s, newRun(t, runB, at(0)))[0]
		readRun, err := s.GetRunForUpdate(t.Context(), runB)
		require.NoError(t, err)
		moveRun(t, s, run, at(1), lifecycle.RunTriggerStart)
		_, err = s.Commit(t.Context(), store.Events(runTransition(t, readRun, lifecycle.RunTriggerCancel, at(2))))
		require.ErrorIs(t, err, store.ErrConflict)
		_, err = s.Commit(t.Context(), guarded(nil, store.Guard{RunID: runB, Version: readRun.Version}))
		require.ErrorIs(t, err, store.ErrConflict, "a guard on the stale read")
		againRun, err := s.GetRunForUpdate(t.Context(), runB)
		require.NoError(t, err)
		require.Equal(t, getRun(t, s, runB), againRun)
	}},
	{"CopiesOut", func(t *testing.T, s store.Store) {
		o := copyFixture(t, s)
		before := take(t, s, o)
		for _, id := range o.steps {
			step, _ := stepForUpdate(t, s, id)
			scribble(&step)
		}
		for _, id := range o.runs {
			run, err := s.GetRunForUpdate(t.Context(), id)
			require.NoError(t, err)
			scribbleRun(&run)
		}
		require.Equal(t, before, take(t, s, o), "changing what a for-update read returned changed the store")
	}},
	{"Cancelled", func(t *testing.T, s store.Store) {
		create(t, s, newStep(t, "step_a", runA, at(0)))
		createRuns(t, s, newRun(t, runA, at(0)))
		for _, ctx := range done(t) {
			_, _, err := s.GetStepForUpdate(ctx, "step_a")
			require.ErrorIs(t, err, ctx.Err())
			_, err = s.GetRunForUpdate(ctx, runA)
			require.ErrorIs(t, err, ctx.Err())
		}
	}},
}

// Context.

// done returns contexts that are done before any call: one cancelled, and
// one whose deadline (a fixed instant long past, not the clock's now) has
// passed.
func done(t *testing.T) []context.Context {
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel := context.WithDeadline(t.Context(), time.Unix(1, 0))
	t.Cleanup(cancel)
	return []context.Context{cancelled, expired}
}

var contextTests = []test{
	{"CommitCancelled", func(t *testing.T, s store.Store) {
		a := create(t, s, newStep(t, "step_a", runA, at(0)))[0]
		run := createRuns(t, s, newRun(t, runA, at(0)))[0]
		before := readLog(t, s)
		for _, ctx := range done(t) {
			for _, tc := range []struct {
				name string
				b    store.Batch
			}{
				{"create step", store.Events(created(newStep(t, "step_b", runA, at(1))))},
				{"update step", store.Events(transition(t, a, lifecycle.TriggerComplete, at(2)))},
				{"create run", store.Events(runCreated(newRun(t, runB, at(1))))},
				{"update run", store.Events(runTransition(t, run, lifecycle.RunTriggerStart, at(2)))},
				{"guarded create", guarded([]events.Event{created(newStep(t, "step_b", runA, at(1)))}, store.Guard{RunID: runA, Version: 1})},
				{"guard alone", guarded(nil, store.Guard{RunID: runA, Version: 1})},
				{"empty batch", store.Batch{}},
			} {
				_, err := s.Commit(ctx, tc.b)
				require.ErrorIs(t, err, ctx.Err(), tc.name)
			}
		}
		requireSteps(t, s, a)
		requireRuns(t, s, run)
		requireNotFound(t, s, "step_b")
		requireRunsNotFound(t, s, runB)
		require.Equal(t, before, readLog(t, s))
	}},
	{"GetStepCancelled", func(t *testing.T, s store.Store) {
		create(t, s, newStep(t, "step_a", runA, at(0)))
		for _, ctx := range done(t) {
			_, err := s.GetStep(ctx, "step_a")
			require.ErrorIs(t, err, ctx.Err())
		}
	}},
	{"GetRunCancelled", func(t *testing.T, s store.Store) {
		createRuns(t, s, newRun(t, runA, at(0)))
		for _, ctx := range done(t) {
			_, err := s.GetRun(ctx, runA)
			require.ErrorIs(t, err, ctx.Err())
		}
	}},
	{"ListStepsCancelled", func(t *testing.T, s store.Store) {
		create(t, s, newStep(t, "step_a", runA, at(0)), newStep(t, "step_b", runA, at(1)))
		for _, ctx := range done(t) {
			for _, q := range []store.StepQuery{
				{RunID: runA, Order: store.OrderAsc, Limit: 10},
				{RunID: runA, Order: store.OrderDesc, After: "step_a", Limit: 10},
			} {
				_, err := s.ListSteps(ctx, q)
				require.ErrorIs(t, err, ctx.Err(), "%+v", q)
			}
		}
	}},
	{"StepsInProgressCancelled", func(t *testing.T, s store.Store) {
		create(t, s, newStep(t, "step_a", runA, at(0)))
		for _, ctx := range done(t) {
			_, err := s.StepsInProgress(ctx, runA)
			require.ErrorIs(t, err, ctx.Err())
		}
	}},
	{"DueRunsCancelled", func(t *testing.T, s store.Store) {
		createRuns(t, s, newRunDue(t, runA, at(0), unix(at(10))))
		for _, ctx := range done(t) {
			_, err := s.DueRuns(ctx, at(10).Unix(), 10)
			require.ErrorIs(t, err, ctx.Err())
		}
	}},
	{"NextDeadlineCancelled", func(t *testing.T, s store.Store) {
		createRuns(t, s, newRunDue(t, runA, at(0), unix(at(10))))
		for _, ctx := range done(t) {
			_, _, err := s.NextDeadline(ctx)
			require.ErrorIs(t, err, ctx.Err())
		}
	}},
	{"EventsCancelled", func(t *testing.T, s store.Store) {
		create(t, s, newStep(t, "step_a", runA, at(0)))
		for _, ctx := range done(t) {
			_, err := s.Events(ctx, 0, 10)
			require.ErrorIs(t, err, ctx.Err())
		}
	}},
}

// Concurrency.

// race commits every batch at once, each from its own goroutine, and
// returns what each Commit returned.
func race(ctx context.Context, s store.Store, batches []store.Batch) ([]int64, []error) {
	firsts := make([]int64, len(batches))
	errs := make([]error, len(batches))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, b := range batches {
		wg.Go(func() {
			<-start
			firsts[i], errs[i] = s.Commit(ctx, b)
		})
	}
	close(start)
	wg.Wait()
	return firsts, errs
}

// oneWinner checks that exactly one of errs is nil and every other one is
// ErrConflict, and returns the index of the winner.
func oneWinner(t *testing.T, errs []error, what string) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "%s: writers %d and %d both won", what, winner, i)
			winner = i
			continue
		}
		require.ErrorIs(t, err, store.ErrConflict, "%s: writer %d", what, i)
	}
	require.NotEqual(t, -1, winner, "%s: no writer won", what)
	return winner
}

var concurrencyTests = []test{
	{"OneWinnerPerVersion", func(t *testing.T, s store.Store) {
		const writers = 64
		read := create(t, s, newStep(t, "step_a", runA, at(0)))[0]
		// Every writer read version 1 and brings a different terminal
		// transition: its own trigger and time.
		evs := make([]events.Event, writers)
		batches := make([]store.Batch, writers)
		for i := range evs {
			evs[i] = transition(t, read, lifecycle.Triggers[i%len(lifecycle.Triggers)], at(10+i))
			batches[i] = store.Events(evs[i])
		}
		firsts, errs := race(t.Context(), s, batches)
		winner := oneWinner(t, errs, "version 1")
		require.Equal(t, int64(2), firsts[winner])
		want := committed(evs[winner], 2)
		requireSteps(t, s, *want.Step)

		log := readLog(t, s)
		require.Len(t, log, 2, "exactly one terminal event")
		require.Equal(t, events.TypeStepCreated, log[0].Type)
		require.Equal(t, want, log[1])
	}},
	{"OneRunWriterPerVersion", func(t *testing.T, s store.Store) {
		const writers = 64
		fresh := newRun(t, runA, at(0))
		read := createRuns(t, s, fresh)[0]
		fromQueued := []lifecycle.RunTrigger{
			lifecycle.RunTriggerStart, lifecycle.RunTriggerFail, lifecycle.RunTriggerCancel, lifecycle.RunTriggerExpire,
		}
		evs := make([]events.Event, writers)
		batches := make([]store.Batch, writers)
		for i := range evs {
			evs[i] = runTransition(t, read, fromQueued[i%len(fromQueued)], at(10+i))
			batches[i] = store.Events(evs[i])
		}
		firsts, errs := race(t.Context(), s, batches)
		winner := oneWinner(t, errs, "version 1")
		require.Equal(t, int64(2), firsts[winner])
		want := committed(evs[winner], 2)
		requireRuns(t, s, *want.Run)
		require.Equal(t, []events.Event{committed(runCreated(fresh), 1), want}, readLog(t, s))
	}},
	{"GuardedCreatesOneWinnerPerRound", func(t *testing.T, s store.Store) {
		// Writers that read the run at one version each add a step guarded
		// on it: one wins the round, and every other one must read the run
		// again.
		const rounds, writers = 64, 16
		run := createRuns(t, s, newRun(t, runA, at(0)))[0]
		var winners []lifecycle.Step
		for r := range rounds {
			what := fmt.Sprintf("round %d, run at version %d", r, run.Version)
			evs := make([]events.Event, writers)
			batches := make([]store.Batch, writers)
			for w := range writers {
				evs[w] = created(newStep(t, fmt.Sprintf("step_r%02d_w%02d", r, w), runA, at(r)))
				batches[w] = guarded([]events.Event{evs[w]}, store.Guard{RunID: runA, Version: run.Version})
			}
			firsts, errs := race(t.Context(), s, batches)
			winner := oneWinner(t, errs, what)
			require.Equal(t, int64(r+2), firsts[winner], what)
			won := committed(evs[winner], firsts[winner])
			requireSteps(t, s, *won.Step)
			for w, ev := range evs {
				if w != winner {
					requireNotFound(t, s, ev.Step.ID)
				}
			}
			winners = append(winners, *won.Step)
			run.Version++
			requireRuns(t, s, run)
		}
		log := readLog(t, s)
		require.Len(t, log, 1+rounds, "the run's event and one step per round")
		requireInProgress(t, s, runA, winners, "the winners")
	}},
	{"GuardRacesRunWriters", func(t *testing.T, s store.Store) {
		// Half the writers add a step guarded on the run, half change the
		// run, all at the version they read: the run cannot end (or start
		// cancelling) unseen while a step is being added to it.
		const rounds, writers = 32, 16
		changes := []lifecycle.RunTrigger{lifecycle.RunTriggerExpire, lifecycle.RunTriggerFail, lifecycle.RunTriggerCancel}
		for r := range rounds {
			id := fmt.Sprintf("run_round%02d", r)
			run := createRuns(t, s, newRun(t, id, at(r)))[0]
			what := fmt.Sprintf("round %d", r)
			evs := make([]events.Event, writers)
			batches := make([]store.Batch, writers)
			for w := range writers {
				if w%2 == 0 {
					evs[w] = created(newStep(t, fmt.Sprintf("step_r%02d_w%02d", r, w), id, at(r)))
					batches[w] = guarded([]events.Event{evs[w]}, store.Guard{RunID: id, Version: run.Version})
				} else {
					evs[w] = runTransition(t, run, changes[w/2%len(changes)], at(r+1))
					batches[w] = store.Events(evs[w])
				}
			}
			_, errs := race(t.Context(), s, batches)
			winner := oneWinner(t, errs, what)
			if evs[winner].Step != nil {
				run.Version++
				requireRuns(t, s, run)
				requireInProgress(t, s, id, []lifecycle.Step{*committed(evs[winner], 0).Step}, what)
			} else {
				requireRuns(t, s, *committed(evs[winner], 0).Run)
				requireInProgress(t, s, id, nil, what)
			}
			for w, ev := range evs {
				if w != winner && ev.Step != nil {
					requireNotFound(t, s, ev.Step.ID)
				}
			}
		}
		require.Len(t, readLog(t, s), 2*rounds, "each run's event and one winner's per round")
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

		firsts := make([][]int64, writers)
		werrs := make([]error, writers)
		rerrs := make([]error, readers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-start
				for _, batch := range batches[w] {
					first, err := s.Commit(t.Context(), store.Events(batch...))
					if err != nil {
						werrs[w] = err
						return
					}
					firsts[w] = append(firsts[w], first)
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
			for b, first := range firsts[w] {
				require.Greater(t, first, last, "writer %d: a later commit got an earlier Seq", w)
				for i, ev := range batches[w][b] {
					// The batch's events took first, first+1, …: the log
					// holds them there, so no other commit came between.
					want := committed(ev, first+int64(i))
					require.Equal(t, want, log[want.Seq-1], "writer %d, batch %d: the log holds the batch from the Seq Commit returned", w, b)
					last = want.Seq
				}
			}
			page := list(t, s, store.StepQuery{RunID: fmt.Sprintf("run_w%02d", w), Order: store.OrderAsc, Limit: 100})
			require.Len(t, page.Steps, perRun, "writer %d", w)
		}
	}},
	{"QueriesWhileRunsChange", func(t *testing.T, s store.Store) {
		// Writers take runs through their lives (created, a step added
		// under a guard, started, then expired with their step in one
		// write) while readers query steps in progress, due runs and the
		// next deadline: every answer must be one the store held.
		const (
			writers = 8
			perW    = 8
			readers = 4
			now     = 1 << 40 // after every deadline
		)
		type life struct{ create, addStep, start, expire store.Batch }
		lives := make([][]life, writers)
		for w := range writers {
			for i := range perW {
				id := fmt.Sprintf("run_w%02d_%02d", w, i)
				run := newRunDue(t, id, at(i), unix(at(100+(w*perW+i)%13)))
				create := store.Events(runCreated(run))
				step := newStep(t, "step_"+id, id, at(i))
				run.Version = 2 // once the step's guard has bumped it
				start := runTransition(t, run, lifecycle.RunTriggerStart, at(i+1))
				started := *start.Run
				started.Version = 3
				expired := runTransition(t, started, lifecycle.RunTriggerExpire, at(200))
				stepRead := step
				stepRead.Version = 1
				lives[w] = append(lives[w], life{
					create:  create,
					addStep: guarded([]events.Event{created(step)}, store.Guard{RunID: id, Version: 1}),
					start:   store.Events(start),
					expire:  store.Events(transition(t, stepRead, lifecycle.TriggerExpire, at(200)), expired),
				})
			}
		}

		werrs := make([]error, writers)
		rerrs := make([]error, readers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-start
				for _, l := range lives[w] {
					for _, b := range []store.Batch{l.create, l.addStep, l.start, l.expire} {
						if _, err := s.Commit(t.Context(), b); err != nil {
							werrs[w] = err
							return
						}
					}
				}
			})
		}
		for r := range readers {
			wg.Go(func() {
				<-start
				rerrs[r] = func() error {
					for i := range 50 {
						due, err := s.DueRuns(t.Context(), now, 1000)
						if err != nil {
							return err
						}
						for j, run := range due {
							switch {
							case run.Status.Terminal():
								return fmt.Errorf("due: a %s run", run.Status)
							case run.ExpiresAt == nil || *run.ExpiresAt > now:
								return fmt.Errorf("due: run %s is not due", run.ID)
							case j > 0 && compareDeadlines(due[j-1], run) >= 0:
								return fmt.Errorf("due: %s before %s", due[j-1].ID, run.ID)
							}
						}
						if _, _, err := s.NextDeadline(t.Context()); err != nil {
							return err
						}
						steps, err := s.StepsInProgress(t.Context(), fmt.Sprintf("run_w%02d_%02d", i%writers, i%perW))
						if err != nil {
							return err
						}
						for _, step := range steps {
							if step.Status != lifecycle.StatusInProgress {
								return fmt.Errorf("in progress: a %s step", step.Status)
							}
						}
					}
					return nil
				}()
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

		requireDue(t, s, math.MaxInt64)
		requireNoDeadline(t, s, "every run expired")
		require.Len(t, readLog(t, s), writers*perW*5)
		for w := range writers {
			for i := range perW {
				id := fmt.Sprintf("run_w%02d_%02d", w, i)
				run := getRun(t, s, id)
				require.Equal(t, lifecycle.RunStatusExpired, run.Status, id)
				require.Equal(t, int64(4), run.Version, id)
				requireInProgress(t, s, id, nil, id)
			}
		}
	}},
}
