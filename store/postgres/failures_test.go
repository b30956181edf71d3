package postgres_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/postgres"
)

func TestOpenBadDSN(t *testing.T) {
	ctx := t.Context()
	_, err := postgres.Open(ctx, "postgres://user:secret@host:notaport/db")
	require.ErrorContains(t, err, "postgres: open: parse DSN")
	require.NotContains(t, err.Error(), "secret", "the password stays out of the error")

	_, err = postgres.Open(ctx, "no such=keyword")
	require.ErrorContains(t, err, "postgres: open: parse DSN")

	_, err = postgres.Open(ctx, "postgres://postgres@127.0.0.1:5432/test", postgres.WithSchema(""))
	require.ErrorContains(t, err, "empty schema name")
	_, err = postgres.Open(ctx, "postgres://postgres@127.0.0.1:5432/test", postgres.WithSchema(string(make([]byte, 64))))
	require.ErrorContains(t, err, "schema name")
}

func TestOpenUnreachableServer(t *testing.T) {
	// Nothing listens on port 1: the connection is refused at once.
	_, err := postgres.Open(t.Context(), "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5")
	require.Error(t, err)
	require.ErrorContains(t, err, "postgres: open 127.0.0.1:1/test")
}

func TestOpenUnknownDatabaseOrRole(t *testing.T) {
	u, err := url.Parse(dsn(t))
	require.NoError(t, err)

	noDB := *u
	noDB.Path = "/runstep_no_such_database"
	_, err = postgres.Open(t.Context(), noDB.String())
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "3D000", pgErr.Code, "invalid_catalog_name: %v", err)
	require.ErrorContains(t, err, "/runstep_no_such_database")

	noRole := *u
	noRole.User = url.User("runstep_no_such_role")
	_, err = postgres.Open(t.Context(), noRole.String())
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "28000", pgErr.Code, "invalid_authorization_specification: %v", err)
}

func TestSchemaTooNew(t *testing.T) {
	schema := freshSchema(t)
	require.NoError(t, open(t, schema).Close())

	newer := postgres.SchemaVersion() + 1
	_, err := admin(t).Exec(t.Context(), fmt.Sprintf("UPDATE %s SET version = $1", pgx.Identifier{schema, "schema_version"}.Sanitize()), newer)
	require.NoError(t, err)

	_, err = postgres.Open(t.Context(), dsn(t), postgres.WithSchema(schema))
	require.ErrorIs(t, err, postgres.ErrSchemaTooNew)
	var se *postgres.SchemaError
	require.ErrorAs(t, err, &se)
	require.Equal(t, postgres.SchemaError{Schema: schema, Version: newer, Known: postgres.SchemaVersion()}, *se)
	require.ErrorContains(t, err, "upgrade runstep")
}

func TestSchemaCurrentOpensAgain(t *testing.T) {
	schema := freshSchema(t)
	st := open(t, schema)
	step := testStep("step_a", 0)
	_, err := st.Commit(t.Context(), store.Events(events.Event{Type: events.TypeStepCreated, At: step.CreatedAt, Step: &step}))
	require.NoError(t, err)
	require.NoError(t, st.Close())

	again := open(t, schema)
	defer again.Close()
	got, err := again.GetStep(t.Context(), "step_a")
	require.NoError(t, err)
	step.Version = 1
	require.Equal(t, step, got)
}

// Opens racing to create one schema all succeed: the losers of the DDL
// race try again and find the schema made.
func TestOpenConcurrentlyMigrates(t *testing.T) {
	schema := freshSchema(t)
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			st, err := postgres.Open(t.Context(), dsn(t), postgres.WithSchema(schema))
			if err == nil {
				err = st.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "open %d", i)
	}
}

func TestClosedStore(t *testing.T) {
	st := open(t, freshSchema(t))
	require.NoError(t, st.Close())
	require.NoError(t, st.Close(), "Close twice")
	step := testStep("step_a", 0)
	_, err := st.Commit(t.Context(), store.Events(events.Event{Type: events.TypeStepCreated, At: step.CreatedAt, Step: &step}))
	require.ErrorIs(t, err, postgres.ErrClosed)
	_, err = st.GetStep(t.Context(), "step_a")
	require.Error(t, err)
	_, err = st.Watch(t.Context())
	require.ErrorIs(t, err, postgres.ErrClosed)
}

// Text PostgreSQL cannot hold is refused as invalid on the way in, and
// names nothing on the way out.
func TestUnstorableText(t *testing.T) {
	st := open(t, freshSchema(t))
	defer st.Close()
	for _, id := range []string{"step_\x00", "step_\xff"} {
		step := testStep(id, 0)
		_, err := st.Commit(t.Context(), store.Events(events.Event{Type: events.TypeStepCreated, At: step.CreatedAt, Step: &step}))
		require.ErrorIs(t, err, store.ErrInvalid, "%q", id)
		_, err = st.GetStep(t.Context(), id)
		require.ErrorIs(t, err, store.ErrNotFound, "%q", id)
		page, err := st.ListSteps(t.Context(), store.StepQuery{RunID: id, Limit: 10})
		require.NoError(t, err)
		require.Empty(t, page.Steps)
	}
	_, err := st.Commit(t.Context(), store.Batch{Guards: []store.Guard{{RunID: "run_\x00", Version: 1}}})
	require.ErrorIs(t, err, store.ErrNotFound, "a guard on a run that cannot exist")

	// Values are JSON, which escapes NUL: they round-trip.
	step := testStep("step_nul", 0)
	step.Metadata = lifecycle.Metadata{"k": "a\x00b"}
	_, err = st.Commit(t.Context(), store.Events(events.Event{Type: events.TypeStepCreated, At: step.CreatedAt, Step: &step}))
	require.NoError(t, err)
	got, err := st.GetStep(t.Context(), "step_nul")
	require.NoError(t, err)
	require.Equal(t, "a\x00b", got.Metadata["k"])
}

// testStep returns a step of run_x just created, at t0+sec.
func testStep(id string, sec int64) lifecycle.Step {
	return lifecycle.Step{
		ID: id, CreatedAt: 1761861531 + sec, AssistantID: "asst_pg", ThreadID: "thread_pg", RunID: "run_x",
		Type: lifecycle.TypeToolCalls, Status: lifecycle.StatusInProgress, Details: lifecycle.ToolCallsDetails(),
	}
}

// backendWaitingOnLock returns the pid of the backend of application app
// that waits for a lock, once there is one.
func backendWaitingOnLock(ctx context.Context, t *testing.T, app string) int32 {
	t.Helper()
	pool := admin(t)
	for {
		var pid int32
		err := pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&pid)
		if err == nil {
			return pid
		}
		require.ErrorIs(t, err, pgx.ErrNoRows)
		require.NoError(t, ctx.Err(), "no backend of %s came to wait on a lock", app)
	}
}

// withApp returns the test DSN naming an application, so its backends can
// be found in pg_stat_activity.
func withApp(t *testing.T, app string) string {
	u, err := url.Parse(dsn(t))
	require.NoError(t, err)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	return u.String()
}

// The server ends the committing connection while its transaction waits
// for the log's head, after it wrote its steps: the commit fails with a
// clear error, nothing of it is stored, and the next commit takes the
// next sequence number as if it had never been.
func TestServerEndsConnectionMidCommit(t *testing.T) {
	schema := freshSchema(t)
	app := "runstep_midcommit_" + schema[len(schema)-6:]
	st, err := postgres.Open(t.Context(), withApp(t, app), postgres.WithSchema(schema))
	require.NoError(t, err)
	defer st.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	a := testStep("step_a", 0)
	_, err = st.Commit(ctx, store.Events(events.Event{Type: events.TypeStepCreated, At: a.CreatedAt, Step: &a}))
	require.NoError(t, err)
	a.Version = 1
	logBefore := readAll(t, st)

	// Hold the log's head from another connection.
	blocker, err := admin(t).Begin(ctx)
	require.NoError(t, err)
	defer blocker.Rollback(context.Background())
	_, err = blocker.Exec(ctx, "SELECT seq FROM "+pgx.Identifier{schema, "log_head"}.Sanitize()+" FOR UPDATE")
	require.NoError(t, err)

	completed, err := a.Apply(lifecycle.Change{Trigger: lifecycle.TriggerComplete, At: time.Unix(a.CreatedAt+5, 0)})
	require.NoError(t, err)
	b := testStep("step_b", 1)
	done := make(chan error, 1)
	go func() {
		_, err := st.Commit(ctx, store.Events(
			events.Event{Type: events.TypeStepCompleted, At: *completed.CompletedAt, Step: &completed},
			events.Event{Type: events.TypeStepCreated, At: b.CreatedAt, Step: &b},
		))
		done <- err
	}()
	pid := backendWaitingOnLock(ctx, t, app)
	var ok bool
	require.NoError(t, admin(t).QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok))
	require.True(t, ok)

	select {
	case err = <-done:
	case <-ctx.Done():
		t.Fatal("the commit did not return after its connection ended")
	}
	require.Error(t, err)
	require.NotErrorIs(t, err, store.ErrConflict)
	require.NotErrorIs(t, err, postgres.ErrOutcomeUnknown, "the server ended the session before COMMIT")
	t.Logf("commit error: %v", err)
	require.NoError(t, blocker.Rollback(ctx))

	got, err := st.GetStep(ctx, "step_a")
	require.NoError(t, err)
	require.Equal(t, a, got, "the completion was not stored")
	_, err = st.GetStep(ctx, "step_b")
	require.ErrorIs(t, err, store.ErrNotFound, "the creation was not stored")
	require.Equal(t, logBefore, readAll(t, st), "no event was stored")

	// The pool replaces the connection; the log goes on without a gap.
	first, err := st.Commit(ctx, store.Events(events.Event{Type: events.TypeStepCompleted, At: *completed.CompletedAt, Step: &completed}))
	require.NoError(t, err)
	require.Equal(t, int64(len(logBefore)+1), first)
}

// Every connection of the store ends (a server restart looks like this to
// it): the calls that hit a dead connection fail with an error, and the
// store carries on once pgxpool has replaced them.
func TestServerEndsEveryConnection(t *testing.T) {
	schema := freshSchema(t)
	app := "runstep_restart_" + schema[len(schema)-6:]
	st, err := postgres.Open(t.Context(), withApp(t, app), postgres.WithSchema(schema))
	require.NoError(t, err)
	defer st.Close()
	ctx := t.Context()
	watch, err := st.Watch(ctx)
	require.NoError(t, err)

	steps := make([]lifecycle.Step, 8)
	for i := range steps {
		steps[i] = testStep(fmt.Sprintf("step_%d", i), int64(i))
		_, err := st.Commit(ctx, store.Events(events.Event{Type: events.TypeStepCreated, At: steps[i].CreatedAt, Step: &steps[i]}))
		require.NoError(t, err)
	}
	var n int
	require.NoError(t, admin(t).QueryRow(ctx,
		"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n))
	require.Positive(t, n)

	// Each call either fails with an error or succeeds; none panics, and
	// once the pool has fresh connections all succeed.
	var failures int
	for i := range steps {
		cur, err := st.GetStep(ctx, steps[i].ID)
		if err != nil {
			failures++
			cur, err = st.GetStep(ctx, steps[i].ID)
			require.NoError(t, err)
		}
		next, err := cur.Apply(lifecycle.Change{Trigger: lifecycle.TriggerCancel, At: time.Unix(cur.CreatedAt+9, 0)})
		require.NoError(t, err)
		if _, err := st.Commit(ctx, store.Events(events.Event{Type: events.TypeStepCancelled, At: next.CreatedAt + 9, Step: &next})); err != nil {
			failures++
			_, err = st.Commit(ctx, store.Events(events.Event{Type: events.TypeStepCancelled, At: next.CreatedAt + 9, Step: &next}))
			require.NoError(t, err)
		}
	}
	t.Logf("calls that met a dead connection: %d", failures)
	log := readAll(t, st)
	require.Len(t, log, 16, "each step created and cancelled once")

	// The listener reconnected and woke its watcher.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	select {
	case <-watch:
	case <-wctx.Done():
		t.Fatal("the watcher was not woken after the listener's connection ended")
	}
}

// A Commit whose context ends while it waits for its turn writes nothing.
func TestCommitContextEndsWhileQueued(t *testing.T) {
	schema := freshSchema(t)
	app := "runstep_queued_" + schema[len(schema)-6:]
	st, err := postgres.Open(t.Context(), withApp(t, app), postgres.WithSchema(schema), postgres.WithCommitters(1))
	require.NoError(t, err)
	defer st.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// Hold the head so the one committer is stuck with a first commit.
	blocker, err := admin(t).Begin(ctx)
	require.NoError(t, err)
	defer blocker.Rollback(context.Background())
	_, err = blocker.Exec(ctx, "SELECT seq FROM "+pgx.Identifier{schema, "log_head"}.Sanitize()+" FOR UPDATE")
	require.NoError(t, err)

	a := testStep("step_a", 0)
	firstDone := make(chan error, 1)
	go func() {
		_, err := st.Commit(ctx, store.Events(events.Event{Type: events.TypeStepCreated, At: a.CreatedAt, Step: &a}))
		firstDone <- err
	}()
	backendWaitingOnLock(ctx, t, app)

	b := testStep("step_b", 1)
	queued, cancelQueued := context.WithCancel(ctx)
	secondDone := make(chan error, 1)
	go func() {
		_, err := st.Commit(queued, store.Events(events.Event{Type: events.TypeStepCreated, At: b.CreatedAt, Step: &b}))
		secondDone <- err
	}()
	cancelQueued()
	require.ErrorIs(t, <-secondDone, context.Canceled)

	require.NoError(t, blocker.Rollback(ctx))
	require.NoError(t, <-firstDone)
	_, err = st.GetStep(ctx, "step_b")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Len(t, readAll(t, st), 1)
}

// Commits that share a transaction still stand alone: each gets its own
// answer, and those that fail write nothing.
func TestGroupedCommitsStandAlone(t *testing.T) {
	st := open(t, freshSchema(t))
	defer st.Close()
	ctx := t.Context()
	existing := testStep("step_existing", 0)
	_, err := st.Commit(ctx, store.Events(events.Event{Type: events.TypeStepCreated, At: existing.CreatedAt, Step: &existing}))
	require.NoError(t, err)

	const n = 48
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			step := testStep(fmt.Sprintf("step_%02d", i), int64(i))
			switch i % 3 {
			case 1: // already exists
				step = testStep("step_existing", 0)
			case 2: // an update of a step that does not exist
				step.Version = 1
			}
			_, errs[i] = st.Commit(ctx, store.Events(events.Event{Type: events.TypeStepCreated, At: step.CreatedAt, Step: &step}))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		switch i % 3 {
		case 0:
			require.NoError(t, err, "commit %d", i)
		case 1:
			require.ErrorIs(t, err, store.ErrAlreadyExists, "commit %d", i)
		case 2:
			require.ErrorIs(t, err, store.ErrNotFound, "commit %d", i)
		}
	}
	log := readAll(t, st)
	require.Len(t, log, 1+n/3)
	for i := 0; i < n; i += 3 {
		_, err := st.GetStep(ctx, fmt.Sprintf("step_%02d", i))
		require.NoError(t, err)
	}
}
