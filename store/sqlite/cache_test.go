package sqlite_test

import (
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/sqlite"
)

// The tests of the for-update cache: two Stores opened on one file stand
// for two processes. Each store answers its reads for update from what it
// committed itself, so it may answer stale; these tests check that a write
// on such an answer conflicts, and that the store then reads the file.

func newRun(id string) lifecycle.Run {
	deadline := t0.Add(10 * time.Minute).Unix()
	return lifecycle.Run{
		ID: id, CreatedAt: t0.Unix(), ThreadID: "thread_1", AssistantID: "asst_1",
		Status: lifecycle.RunStatusQueued, ExpiresAt: &deadline,
	}
}

func createdRun(run lifecycle.Run) events.Event {
	return events.Event{Type: events.TypeRunCreated, At: run.CreatedAt, Run: &run}
}

// stepMoved returns the event of step after trigger, a second after t0.
func stepMoved(t *testing.T, step lifecycle.Step, trigger lifecycle.Trigger) events.Event {
	t.Helper()
	next, err := step.Apply(lifecycle.Change{Trigger: trigger, At: t0.Add(time.Second)})
	require.NoError(t, err)
	return events.Event{Type: events.StepType(next.Status), At: t0.Unix() + 1, Step: &next}
}

// runMoved returns the event of run after trigger, a second after t0.
func runMoved(t *testing.T, run lifecycle.Run, trigger lifecycle.RunTrigger) events.Event {
	t.Helper()
	next, err := run.Apply(lifecycle.RunChange{Trigger: trigger, At: t0.Add(time.Second)})
	require.NoError(t, err)
	return events.Event{Type: events.RunType(next.Status), At: t0.Unix() + 1, Run: &next}
}

// touched returns an event of step with its metadata set to k=v and
// nothing else changed: it stays in progress, so the cache would keep it.
func touched(step lifecycle.Step, k, v string) events.Event {
	step = step.Clone()
	step.Metadata = lifecycle.Metadata{k: v}
	return events.Event{Type: events.TypeStepCreated, At: t0.Unix() + 1, Step: &step}
}

func mustCommit(t *testing.T, st store.Store, b store.Batch) {
	t.Helper()
	_, err := st.Commit(t.Context(), b)
	require.NoError(t, err)
}

func stepForUpdate(t *testing.T, st store.Store, id string) (lifecycle.Step, store.RunDeadline) {
	t.Helper()
	step, deadline, err := st.GetStepForUpdate(t.Context(), id)
	require.NoError(t, err, "GetStepForUpdate %s", id)
	return step, deadline
}

func runForUpdate(t *testing.T, st store.Store, id string) lifecycle.Run {
	t.Helper()
	run, err := st.GetRunForUpdate(t.Context(), id)
	require.NoError(t, err, "GetRunForUpdate %s", id)
	return run
}

func getStep(t *testing.T, st store.Store, id string) lifecycle.Step {
	t.Helper()
	step, err := st.GetStep(t.Context(), id)
	require.NoError(t, err)
	return step
}

func getRun(t *testing.T, st store.Store, id string) lifecycle.Run {
	t.Helper()
	run, err := st.GetRun(t.Context(), id)
	require.NoError(t, err)
	return run
}

func TestCacheStaleStepConflicts(t *testing.T) {
	path := tempPath(t)
	a, b := open(t, path), open(t, path)
	mustCommit(t, a, store.Events(created(newStep("step_1", "run_1"))))

	// B completes the step; A, which created it, still holds version 1.
	mustCommit(t, b, store.Events(stepMoved(t, getStep(t, b, "step_1"), lifecycle.TriggerComplete)))
	stale, _ := stepForUpdate(t, a, "step_1")
	require.Equal(t, int64(1), stale.Version, "A answers from what it committed")
	require.Equal(t, lifecycle.StatusInProgress, stale.Status)

	_, err := a.Commit(t.Context(), store.Events(stepMoved(t, stale, lifecycle.TriggerCancel)))
	require.ErrorIs(t, err, store.ErrConflict)
	fresh, _ := stepForUpdate(t, a, "step_1")
	require.Equal(t, getStep(t, b, "step_1"), fresh, "after the conflict, A reads the file")
	require.Equal(t, lifecycle.StatusCompleted, fresh.Status)
	require.Equal(t, int64(2), fresh.Version)
}

func TestCacheStaleRunConflicts(t *testing.T) {
	path := tempPath(t)
	a, b := open(t, path), open(t, path)
	mustCommit(t, a, store.Events(createdRun(newRun("run_1"))))

	mustCommit(t, b, store.Events(runMoved(t, getRun(t, b, "run_1"), lifecycle.RunTriggerStart)))
	stale := runForUpdate(t, a, "run_1")
	require.Equal(t, int64(1), stale.Version, "A answers from what it committed")

	_, err := a.Commit(t.Context(), store.Events(runMoved(t, stale, lifecycle.RunTriggerCancel)))
	require.ErrorIs(t, err, store.ErrConflict)
	fresh := runForUpdate(t, a, "run_1")
	require.Equal(t, getRun(t, b, "run_1"), fresh, "after the conflict, A reads the file")
	require.Equal(t, lifecycle.RunStatusInProgress, fresh.Status)
}

func TestCacheStaleGuardConflicts(t *testing.T) {
	path := tempPath(t)
	a, b := open(t, path), open(t, path)
	mustCommit(t, a, store.Events(createdRun(newRun("run_1"))))

	// B adds a step to the run: the guard bumps the run's version.
	mustCommit(t, b, store.Batch{
		Events: []events.Event{created(newStep("step_b", "run_1"))},
		Guards: []store.Guard{{RunID: "run_1", Version: getRun(t, b, "run_1").Version}},
	})
	stale := runForUpdate(t, a, "run_1")
	require.Equal(t, int64(1), stale.Version, "A answers from what it committed")

	_, err := a.Commit(t.Context(), store.Batch{
		Events: []events.Event{created(newStep("step_a", "run_1"))},
		Guards: []store.Guard{{RunID: "run_1", Version: stale.Version}},
	})
	require.ErrorIs(t, err, store.ErrConflict)
	_, _, err = a.GetStepForUpdate(t.Context(), "step_a")
	require.ErrorIs(t, err, store.ErrNotFound, "the step of the failed batch")
	fresh := runForUpdate(t, a, "run_1")
	require.Equal(t, getRun(t, b, "run_1"), fresh, "after the conflict, A reads the file")
	require.Equal(t, int64(2), fresh.Version)

	// A guard this store committed moves its cached run on.
	mustCommit(t, a, store.Batch{
		Events: []events.Event{created(newStep("step_a", "run_1"))},
		Guards: []store.Guard{{RunID: "run_1", Version: fresh.Version}},
	})
	mustCommit(t, a, store.Events(runMoved(t, runForUpdate(t, a, "run_1"), lifecycle.RunTriggerStart)))
	require.Equal(t, getRun(t, b, "run_1"), runForUpdate(t, a, "run_1"))
}

// A step's deadline is its cached run's while that is cached, and the
// file's once the run has ended.
func TestCacheStepDeadline(t *testing.T) {
	st := open(t, tempPath(t))
	run := newRun("run_1")
	mustCommit(t, st, store.Events(createdRun(run)))
	mustCommit(t, st, store.Events(created(newStep("step_1", "run_1"))))
	_, deadline := stepForUpdate(t, st, "step_1")
	require.Equal(t, store.RunDeadline{At: *run.ExpiresAt, Armed: true}, deadline)

	mustCommit(t, st, store.Events(runMoved(t, runForUpdate(t, st, "run_1"), lifecycle.RunTriggerStart)))
	mustCommit(t, st, store.Events(runMoved(t, runForUpdate(t, st, "run_1"), lifecycle.RunTriggerRequireAction)))
	mustCommit(t, st, store.Events(runMoved(t, runForUpdate(t, st, "run_1"), lifecycle.RunTriggerCancel)))
	_, deadline = stepForUpdate(t, st, "step_1")
	require.Equal(t, store.RunDeadline{At: *run.ExpiresAt, Armed: true}, deadline, "a cancelling run can still expire")

	mustCommit(t, st, store.Events(runMoved(t, runForUpdate(t, st, "run_1"), lifecycle.RunTriggerFinishCancel)))
	step, deadline := stepForUpdate(t, st, "step_1")
	require.Equal(t, store.RunDeadline{}, deadline, "a cancelled run cannot")
	require.Equal(t, getStep(t, st, "step_1"), step)
}

// Two engines on one file, each with its store's cache: what one does is
// never lost on the other, whose writes on stale reads conflict and are
// retried on the file.
func TestCacheTwoEngines(t *testing.T) {
	path := tempPath(t)
	a, b := newWorld(t, open(t, path), 1), newWorld(t, open(t, path), 2)
	ctx := t.Context()
	run, err := a.eng.CreateRun(ctx, engine.NewRun{ID: "run_1", ThreadID: "thread_1", AssistantID: "asst_1", TTL: time.Minute})
	require.NoError(t, err)
	_, err = a.eng.StartRun(ctx, run.ID)
	require.NoError(t, err)
	s1, err := a.eng.CreateStep(ctx, engine.NewStep{RunID: run.ID, Type: lifecycle.TypeToolCalls})
	require.NoError(t, err)
	s2, err := a.eng.CreateStep(ctx, engine.NewStep{RunID: run.ID, Type: lifecycle.TypeToolCalls})
	require.NoError(t, err)

	// B completes s1, then fails the run, which fails s2.
	_, err = b.eng.Complete(ctx, s1.ID)
	require.NoError(t, err)
	_, err = b.eng.FailRun(ctx, run.ID, lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "down"})
	require.NoError(t, err)

	// A's cache still has s1, s2 and the run as A left them.
	for _, id := range []string{s1.ID, s2.ID} {
		_, err = a.eng.Cancel(ctx, id)
		var te *lifecycle.TransitionError
		require.ErrorAs(t, err, &te, "step %s", id)
	}
	_, err = a.eng.CreateStep(ctx, engine.NewStep{RunID: run.ID, Type: lifecycle.TypeToolCalls})
	require.ErrorIs(t, err, lifecycle.ErrInvalidTransition, "a step of the failed run")
	require.Equal(t, lifecycle.StatusCompleted, getStep(t, a.st, s1.ID).Status)
	require.Equal(t, lifecycle.StatusFailed, getStep(t, a.st, s2.ID).Status)
	require.Equal(t, lifecycle.RunStatusFailed, getRun(t, a.st, run.ID).Status)

	// A second run: B completes its step, then A, past the deadline, tries
	// to complete it too. A expires the run (its cached deadline is right),
	// and its completion, on its stale step, conflicts and is refused.
	run2, err := a.eng.CreateRun(ctx, engine.NewRun{ID: "run_2", ThreadID: "thread_1", AssistantID: "asst_1", TTL: time.Minute})
	require.NoError(t, err)
	_, err = a.eng.StartRun(ctx, run2.ID)
	require.NoError(t, err)
	s3, err := a.eng.CreateStep(ctx, engine.NewStep{RunID: run2.ID, Type: lifecycle.TypeToolCalls})
	require.NoError(t, err)
	_, err = b.eng.Complete(ctx, s3.ID)
	require.NoError(t, err)
	a.clock.Add(2 * time.Minute)
	_, err = a.eng.Complete(ctx, s3.ID)
	require.ErrorIs(t, err, lifecycle.ErrInvalidTransition)
	got := getStep(t, a.st, s3.ID)
	require.Equal(t, lifecycle.StatusCompleted, got.Status, "B's completion stands")
	require.Equal(t, int64(2), got.Version)
	require.Equal(t, lifecycle.RunStatusExpired, getRun(t, a.st, run2.ID).Status)
}

// A batch that fails within a group leaves nothing of itself in the
// cache: neither the objects it would have created nor its view of those
// it would have changed.
func TestCacheFailedBatchesLeaveNothing(t *testing.T) {
	st := open(t, tempPath(t))
	ctx := t.Context()
	target := newStep("step_target", "run_g")
	mustCommit(t, st, store.Events(created(target)))
	target.Version = 1

	// Many writers change one step from the same version, in as few
	// groups as the writer makes: one wins. Each also creates a step of
	// its own in the same batch, which is rolled back with it.
	const writers = 32
	var wg sync.WaitGroup
	errs := make([]error, writers)
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			evs := []events.Event{
				created(newStep(fmt.Sprintf("step_%02d", w), "run_g")),
				touched(target, "writer", fmt.Sprint(w)),
			}
			_, errs[w] = st.Commit(ctx, store.Events(evs...))
		})
	}
	close(start)
	wg.Wait()

	won := 0
	for w, err := range errs {
		_, _, errU := st.GetStepForUpdate(ctx, fmt.Sprintf("step_%02d", w))
		if err != nil {
			require.ErrorIs(t, err, store.ErrConflict, "writer %d", w)
			require.ErrorIs(t, errU, store.ErrNotFound, "writer %d: the step of its failed batch", w)
			continue
		}
		won++
		require.NoError(t, errU, "writer %d", w)
	}
	require.Equal(t, 1, won)
	got, _ := stepForUpdate(t, st, "step_target")
	require.Equal(t, getStep(t, st, "step_target"), got, "the winner's change, not a loser's")
	require.Equal(t, int64(2), got.Version)
}

// A commit whose transaction fails as a whole (here: another connection
// holds the write lock) leaves the cache as the file is.
func TestCacheFailedTransactionLeavesNothing(t *testing.T) {
	path := tempPath(t)
	st := open(t, path, sqlite.WithBusyTimeout(0))
	ctx := t.Context()
	mustCommit(t, st, store.Events(created(newStep("step_1", "run_1"))))
	read, _ := stepForUpdate(t, st, "step_1")

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	require.NoError(t, err)
	_, err = st.Commit(ctx, store.Events(touched(read, "k", "v")))
	require.Error(t, err, "the write lock is taken")
	_, err = conn.ExecContext(ctx, "ROLLBACK")
	require.NoError(t, err)

	got, _ := stepForUpdate(t, st, "step_1")
	require.Equal(t, getStep(t, st, "step_1"), got)
	require.Equal(t, read, got)
	mustCommit(t, st, store.Events(stepMoved(t, got, lifecycle.TriggerComplete)))
}

// The cache copies in: changing what was committed changes nothing the
// store answers.
func TestCacheCopiesIn(t *testing.T) {
	st := open(t, tempPath(t))
	step := newStep("step_1", "run_1")
	step.Metadata = lifecycle.Metadata{"k": "v"}
	step.Details = lifecycle.ToolCallsDetails(lifecycle.ToolCall{
		ID: "call_1", Type: lifecycle.ToolCallFunction,
		Function: &lifecycle.FunctionCall{Name: "f", Arguments: "{}"},
	})
	run := newRun("run_1")
	mustCommit(t, st, store.Events(created(step), createdRun(run)))
	want, _ := stepForUpdate(t, st, "step_1")
	wantRun := runForUpdate(t, st, "run_1")

	step.Metadata["k"] = "changed"
	step.Details.ToolCalls[0].Function.Name = "changed"
	*run.ExpiresAt = 1
	got, _ := stepForUpdate(t, st, "step_1")
	require.Equal(t, want, got)
	require.Equal(t, getStep(t, st, "step_1"), got)
	require.Equal(t, wantRun, runForUpdate(t, st, "run_1"))
	require.Equal(t, getRun(t, st, "run_1"), wantRun)
}

// With the cache off, the reads for update read the file.
func TestCacheOff(t *testing.T) {
	path := tempPath(t)
	a, b := open(t, path, sqlite.WithCache(0)), open(t, path)
	mustCommit(t, a, store.Events(created(newStep("step_1", "run_1"))))
	mustCommit(t, b, store.Events(stepMoved(t, getStep(t, b, "step_1"), lifecycle.TriggerComplete)))
	got, _ := stepForUpdate(t, a, "step_1")
	require.Equal(t, lifecycle.StatusCompleted, got.Status)
}

// A cache too small for all it is given still answers right.
func TestCacheSmall(t *testing.T) {
	st := open(t, tempPath(t), sqlite.WithCache(2))
	var evs []events.Event
	for i := range 10 {
		evs = append(evs, created(newStep(fmt.Sprintf("step_%d", i), "run_1")))
	}
	mustCommit(t, st, store.Events(evs...))
	for i := range 10 {
		id := fmt.Sprintf("step_%d", i)
		got, _ := stepForUpdate(t, st, id)
		require.Equal(t, getStep(t, st, id), got)
		mustCommit(t, st, store.Events(stepMoved(t, got, lifecycle.TriggerComplete)))
	}
}
