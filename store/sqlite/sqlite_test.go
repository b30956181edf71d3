package sqlite_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/sqlite"
	"github.com/runstep/runstep/store/storetest"
)

// t0 is when the tests' mock clocks start.
var t0 = time.Unix(1761861531, 0)

// tempPath returns a path for a database file in the test's temporary
// directory.
func tempPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "runstep.db")
}

// open opens path and closes the store when the test ends.
func open(t *testing.T, path string, opts ...sqlite.Option) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(path, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		st, err := sqlite.Open(tempPath(t))
		require.NoError(t, err)
		return st
	})
}

// The same suite with every commit in a transaction of its own.
func TestConformanceWithoutGroupCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite once more, without group commit")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		st, err := sqlite.Open(tempPath(t), sqlite.WithMaxGroup(1), sqlite.WithSync(sqlite.SyncNormal))
		require.NoError(t, err)
		return st
	})
}

// rawExec runs statements on path through the driver, outside the store.
func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	for _, q := range stmts {
		_, err := db.Exec(q)
		require.NoError(t, err, q)
	}
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return sha256.Sum256(b)
}

func TestSchemaTooNewRefused(t *testing.T) {
	path := tempPath(t)
	st, err := sqlite.Open(path)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	rawExec(t, path, "PRAGMA user_version = 2")
	before := fileHash(t, path)

	_, err = sqlite.Open(path)
	require.ErrorIs(t, err, sqlite.ErrSchemaTooNew)
	require.NotErrorIs(t, err, sqlite.ErrForeign)
	require.ErrorContains(t, err, "schema version 2")
	require.ErrorContains(t, err, "knows up to 1")
	require.Equal(t, before, fileHash(t, path), "the refused file changed")
}

func TestForeignFileRefused(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		make func(t *testing.T, path string)
		want string
	}{
		{"random bytes", func(t *testing.T, path string) {
			b := make([]byte, 8192)
			for i := range b {
				b[i] = byte(rnd.UintN(256))
			}
			require.NoError(t, os.WriteFile(path, b, 0o600))
		}, "not a SQLite database"},
		{"text", func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, []byte("{\"seq\":1}\n"), 0o600))
		}, "not a SQLite database"},
		{"a SQLite database with other tables", func(t *testing.T, path string) {
			rawExec(t, path, "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT)", "INSERT INTO accounts (owner) VALUES ('alice')")
		}, "another program"},
		{"a SQLite database of another application", func(t *testing.T, path string) {
			rawExec(t, path, "PRAGMA application_id = 1179861842")
		}, "another program"},
		{"a runstep database missing a table", func(t *testing.T, path string) {
			st, err := sqlite.Open(path)
			require.NoError(t, err)
			require.NoError(t, st.Close())
			rawExec(t, path, "DROP TABLE events")
		}, "tables [runs steps]"},
		{"a runstep header on garbage", func(t *testing.T, path string) {
			st, err := sqlite.Open(path)
			require.NoError(t, err)
			require.NoError(t, st.Close())
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			for i := 100; i < len(b); i++ {
				b[i] = byte(rnd.UintN(256))
			}
			require.NoError(t, os.WriteFile(path, b, 0o600))
		}, "corrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tempPath(t)
			tc.make(t, path)
			before := fileHash(t, path)

			st, err := sqlite.Open(path)
			require.ErrorIs(t, err, sqlite.ErrForeign)
			require.Nil(t, st)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, path)
			require.Equal(t, before, fileHash(t, path), "the refused file changed")
		})
	}
}

func TestOpenRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		path string
		opts []sqlite.Option
		want string
	}{
		{"in memory", ":memory:", nil, "want a file path"},
		{"empty path", "", nil, "empty path"},
		{"unknown sync", tempPath(t), []sqlite.Option{sqlite.WithSync("sometimes")}, "unknown sync level"},
		{"no readers", tempPath(t), []sqlite.Option{sqlite.WithReaders(0)}, "readers"},
		{"no group", tempPath(t), []sqlite.Option{sqlite.WithMaxGroup(0)}, "max group"},
		{"negative cache", tempPath(t), []sqlite.Option{sqlite.WithCache(-1)}, "cache"},
		{"a directory", t.TempDir(), nil, ""},
		{"a missing directory", filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := sqlite.Open(tc.path, tc.opts...)
			require.Error(t, err)
			require.Nil(t, st)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestEmptyFileIsNew(t *testing.T) {
	path := tempPath(t)
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	st := open(t, path)
	evs, err := st.Events(t.Context(), 0, 10)
	require.NoError(t, err)
	require.Empty(t, evs)
}

// world is an engine on a store, with a mock clock.
type world struct {
	st    *sqlite.Store
	eng   *engine.Engine
	clock *clock.Mock
}

func newWorld(t *testing.T, st *sqlite.Store, seed uint64) world {
	t.Helper()
	clk := clock.NewMock()
	clk.Set(t0)
	eng, err := engine.New(st, engine.WithClock(clk), engine.WithIDs(engine.SeededIDs(seed)))
	require.NoError(t, err)
	return world{st, eng, clk}
}

// scenario drives runs and steps through most of their statuses and
// returns the ids it made.
func (w world) scenario(t *testing.T) (runIDs, stepIDs []string) {
	t.Helper()
	ctx := t.Context()
	newRun := func() lifecycle.Run {
		run, err := w.eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_1", AssistantID: "asst_1", Metadata: lifecycle.Metadata{"k": "v"}})
		require.NoError(t, err)
		w.clock.Add(time.Second)
		run, err = w.eng.StartRun(ctx, run.ID)
		require.NoError(t, err)
		runIDs = append(runIDs, run.ID)
		return run
	}
	newStep := func(runID string) lifecycle.Step {
		step, err := w.eng.CreateStep(ctx, engine.NewStep{RunID: runID, Type: lifecycle.TypeToolCalls})
		require.NoError(t, err)
		stepIDs = append(stepIDs, step.ID)
		w.clock.Add(time.Second)
		return step
	}

	done := newRun()
	a, b, c := newStep(done.ID), newStep(done.ID), newStep(done.ID)
	_, err := w.eng.Complete(ctx, a.ID, engine.FinalUsage(lifecycle.Usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3}))
	require.NoError(t, err)
	_, err = w.eng.Fail(ctx, b.ID, lifecycle.LastError{Code: lifecycle.ErrorCodeRateLimitExceeded, Message: "slow down"})
	require.NoError(t, err)
	_, err = w.eng.Cancel(ctx, c.ID)
	require.NoError(t, err)
	_, err = w.eng.CompleteRun(ctx, done.ID)
	require.NoError(t, err)

	cancelled := newRun()
	newStep(cancelled.ID)
	_, err = w.eng.CancelRun(ctx, cancelled.ID)
	require.NoError(t, err)
	_, err = w.eng.FinishCancelRun(ctx, cancelled.ID)
	require.NoError(t, err)

	expiring := newRun()
	newStep(expiring.ID)
	newStep(expiring.ID)
	w.clock.Add(lifecycle.DefaultRunTTL)
	n, err := w.eng.ExpireDue(ctx)
	require.NoError(t, err)
	require.Positive(t, n)
	expired, err := w.eng.GetRun(ctx, expiring.ID)
	require.NoError(t, err)
	require.Equal(t, lifecycle.RunStatusExpired, expired.Status)

	pending := newRun()
	newStep(pending.ID)
	return runIDs, stepIDs
}

// snapshot is everything a store shows about the objects named.
type snapshot struct {
	runs     []lifecycle.Run
	steps    []lifecycle.Step
	pages    map[string]store.StepPage
	log      []events.Event
	deadline int64
	armed    bool
}

func take(t *testing.T, st store.Store, runIDs, stepIDs []string) snapshot {
	t.Helper()
	ctx := t.Context()
	snap := snapshot{pages: map[string]store.StepPage{}}
	for _, id := range runIDs {
		run, err := st.GetRun(ctx, id)
		require.NoError(t, err)
		snap.runs = append(snap.runs, run)
		page, err := st.ListSteps(ctx, store.StepQuery{RunID: id, Order: store.OrderAsc, Limit: 100})
		require.NoError(t, err)
		snap.pages[id] = page
	}
	for _, id := range stepIDs {
		step, err := st.GetStep(ctx, id)
		require.NoError(t, err)
		snap.steps = append(snap.steps, step)
	}
	snap.log = readLog(t, st)
	var err error
	snap.deadline, snap.armed, err = st.NextDeadline(ctx)
	require.NoError(t, err)
	return snap
}

// readLog reads the whole log in pages and checks it is gapless from 1.
func readLog(t *testing.T, st store.Store) []events.Event {
	t.Helper()
	var all []events.Event
	for {
		page, err := st.Events(t.Context(), int64(len(all)), 50)
		require.NoError(t, err)
		if len(page) == 0 {
			return all
		}
		for _, ev := range page {
			require.Equal(t, int64(len(all)+1), ev.Seq, "the log has a gap")
			all = append(all, ev)
		}
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	path := tempPath(t)
	st, err := sqlite.Open(path)
	require.NoError(t, err)
	w := newWorld(t, st, 7)
	runIDs, stepIDs := w.scenario(t)
	before := take(t, st, runIDs, stepIDs)
	require.True(t, before.armed, "the pending run has a deadline")
	require.NoError(t, st.Close())

	st = open(t, path)
	require.Equal(t, before, take(t, st, runIDs, stepIDs))

	// The reopened store goes on where the other left off.
	w = newWorld(t, st, 8)
	w.clock.Set(t0.Add(time.Hour))
	moreRuns, moreSteps := w.scenario(t)
	after := take(t, st, append(runIDs, moreRuns...), append(stepIDs, moreSteps...))
	require.Equal(t, before.log, after.log[:len(before.log)])
	require.Greater(t, len(after.log), len(before.log))
}

func TestClosedStoreRefuses(t *testing.T) {
	st, err := sqlite.Open(tempPath(t))
	require.NoError(t, err)
	w := newWorld(t, st, 1)
	_, stepIDs := w.scenario(t)
	require.NoError(t, st.Close())
	require.NoError(t, st.Close(), "a second Close")

	ctx := t.Context()
	step := lifecycle.Step{ID: "step_x"}
	_, err = st.Commit(ctx, store.Events(events.Event{Type: events.TypeStepCreated, Step: &step}))
	require.ErrorIs(t, err, sqlite.ErrClosed)
	_, err = st.GetStep(ctx, stepIDs[0])
	require.ErrorIs(t, err, sqlite.ErrClosed)
	_, err = st.GetRun(ctx, "run_x")
	require.ErrorIs(t, err, sqlite.ErrClosed)
	_, err = st.ListSteps(ctx, store.StepQuery{RunID: "run_x", Limit: 10})
	require.ErrorIs(t, err, sqlite.ErrClosed)
	_, err = st.StepsInProgress(ctx, "run_x")
	require.ErrorIs(t, err, sqlite.ErrClosed)
	_, err = st.DueRuns(ctx, 0, 10)
	require.ErrorIs(t, err, sqlite.ErrClosed)
	_, _, err = st.NextDeadline(ctx)
	require.ErrorIs(t, err, sqlite.ErrClosed)
	_, err = st.Events(ctx, 0, 10)
	require.ErrorIs(t, err, sqlite.ErrClosed)
}

// Close while writers commit: each commit either commits whole or fails
// with ErrClosed, and what Commit reported committed is in the file.
func TestCloseDuringCommits(t *testing.T) {
	path := tempPath(t)
	st, err := sqlite.Open(path)
	require.NoError(t, err)
	const writers, each = 16, 40
	var wg sync.WaitGroup
	committed := make([][]string, writers)
	errs := make([]error, writers)
	started := make(chan struct{}, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				step := newStep(fmt.Sprintf("step_w%02d_%02d", w, i), "run_close")
				_, err := st.Commit(context.Background(), store.Events(created(step)))
				started <- struct{}{}
				if err != nil {
					errs[w] = err
					return
				}
				committed[w] = append(committed[w], step.ID)
			}
		})
	}
	// Close once a tenth of the commits are done, while the rest run.
	for range writers * each / 10 {
		<-started
	}
	require.NoError(t, st.Close())
	wg.Wait()

	st = open(t, path)
	total := 0
	for w := range writers {
		if errs[w] != nil {
			require.ErrorIs(t, errs[w], sqlite.ErrClosed, "writer %d", w)
		}
		for _, id := range committed[w] {
			_, err := st.GetStep(t.Context(), id)
			require.NoError(t, err, "step %s was reported committed", id)
		}
		total += len(committed[w])
	}
	require.Len(t, readLog(t, st), total, "only what was reported committed")
}

func newStep(id, runID string) lifecycle.Step {
	return lifecycle.Step{
		ID: id, CreatedAt: t0.Unix(), AssistantID: "asst_1", ThreadID: "thread_1", RunID: runID,
		Type: lifecycle.TypeToolCalls, Status: lifecycle.StatusInProgress, Details: lifecycle.ToolCallsDetails(),
	}
}

func created(step lifecycle.Step) events.Event {
	return events.Event{Type: events.TypeStepCreated, At: step.CreatedAt, Step: &step}
}

// Batches that share a transaction each get their own outcome: one that
// fails its checks, after writing part of itself, is rolled back alone.
func TestGroupedBatchesFailAlone(t *testing.T) {
	st := open(t, tempPath(t))
	ctx := t.Context()
	existing := newStep("step_existing", "run_g")
	_, err := st.Commit(ctx, store.Events(created(existing)))
	require.NoError(t, err)

	const writers = 64
	var wg sync.WaitGroup
	errs := make([]error, writers)
	start := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			<-start
			evs := []events.Event{created(newStep(fmt.Sprintf("step_%02d_a", w), "run_g"))}
			if w%3 == 0 {
				// Its first event is written before the second fails.
				evs = append(evs, created(existing))
			} else {
				evs = append(evs, created(newStep(fmt.Sprintf("step_%02d_b", w), "run_g")))
			}
			_, errs[w] = st.Commit(ctx, store.Events(evs...))
		})
	}
	close(start)
	wg.Wait()

	log := readLog(t, st)
	want := 1
	for w, err := range errs {
		_, errA := st.GetStep(ctx, fmt.Sprintf("step_%02d_a", w))
		if w%3 == 0 {
			require.ErrorIs(t, err, store.ErrAlreadyExists, "writer %d", w)
			require.ErrorIs(t, errA, store.ErrNotFound, "writer %d: half its batch stayed", w)
			continue
		}
		require.NoError(t, err, "writer %d", w)
		require.NoError(t, errA, "writer %d", w)
		want += 2
	}
	require.Len(t, log, want)
}

// A commit whose context ends before the writer takes it writes nothing.
func TestCommitCancelledWritesNothing(t *testing.T) {
	st := open(t, tempPath(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := st.Commit(ctx, store.Events(created(newStep("step_c", "run_c"))))
	require.ErrorIs(t, err, context.Canceled)
	_, err = st.GetStep(t.Context(), "step_c")
	require.ErrorIs(t, err, store.ErrNotFound)
}
