package postgres_test

import (
	"context"
	"net/url"
	"runtime"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/postgres"
)

// await waits for a value on ch, failing the test after a while.
func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	select {
	case _, ok := <-ch:
		require.True(t, ok, "%s: the watch channel closed", what)
	case <-ctx.Done():
		t.Fatalf("%s: no wake-up", what)
	}
}

// drain empties ch of a value already waiting.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func createStep(t *testing.T, st store.Store, id string) {
	t.Helper()
	step := testStep(id, 0)
	_, err := st.Commit(t.Context(), store.Events(events.Event{Type: events.TypeStepCreated, At: step.CreatedAt, Step: &step}))
	require.NoError(t, err)
}

func TestWatchSeesOtherStoresCommits(t *testing.T) {
	schema := freshSchema(t)
	watcher, writer := open(t, schema), open(t, schema)
	defer watcher.Close()
	defer writer.Close()
	other := open(t, freshSchema(t))
	defer other.Close()

	ch, err := watcher.Watch(t.Context())
	require.NoError(t, err)
	ch2, err := watcher.Watch(t.Context())
	require.NoError(t, err)

	createStep(t, writer, "step_a")
	await(t, ch, "a commit by another store")
	await(t, ch2, "a second watcher")

	createStep(t, watcher, "step_b")
	await(t, ch, "a commit by the watching store")

	// A commit to another schema is not this store's news.
	drain(ch)
	createStep(t, other, "step_c")
	createStep(t, writer, "step_d")
	await(t, ch, "the commit after")
	evs, err := watcher.Events(t.Context(), 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 3)
}

func TestWatchClosesWithContextAndStore(t *testing.T) {
	st := open(t, freshSchema(t))
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := st.Watch(ctx)
	require.NoError(t, err)
	cancel()
	for range ch {
	}

	ch, err = st.Watch(t.Context())
	require.NoError(t, err)
	require.NoError(t, st.Close())
	for range ch {
	}

	_, err = st.Watch(t.Context())
	require.ErrorIs(t, err, postgres.ErrClosed)
}

func TestWatchWithoutNotify(t *testing.T) {
	schema := freshSchema(t)
	st := open(t, schema, postgres.WithoutNotify())
	defer st.Close()
	_, err := st.Watch(t.Context())
	require.ErrorContains(t, err, "WithoutNotify")

	// Its commits notify no one, but are stored as ever.
	watcher := open(t, schema)
	defer watcher.Close()
	ch, err := watcher.Watch(t.Context())
	require.NoError(t, err)
	createStep(t, st, "step_a")
	createStep(t, watcher, "step_b")
	await(t, ch, "the notifying store's commit")
	evs, err := watcher.Events(t.Context(), 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2)
}

// The listener's connection ends: the listener reconnects at once and
// wakes its watchers, since it may have missed commits; if the server
// refuses it, it waits on the store's clock before trying again.
func TestWatchReconnects(t *testing.T) {
	schema := freshSchema(t)
	app := "runstep_listen_" + schema[len(schema)-6:]
	mock := clock.NewMock()
	st, err := postgres.Open(t.Context(), withApp(t, app), postgres.WithSchema(schema), postgres.WithClock(mock))
	require.NoError(t, err)
	defer st.Close()
	writer := open(t, schema)
	defer writer.Close()

	ch, err := st.Watch(t.Context())
	require.NoError(t, err)
	terminate := func() {
		var n int
		require.NoError(t, admin(t).QueryRow(t.Context(),
			`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'`, app).Scan(&n))
		require.Equal(t, 1, n, "one listener")
	}
	terminate()
	await(t, ch, "the reconnected listener")
	createStep(t, writer, "step_a")
	await(t, ch, "a commit after the reconnection")

}

// While the server refuses it, the listener waits on the store's clock
// between attempts, and reconnects once the clock moves and the server
// lets it in. The test refuses connections to a database of its own.
func TestWatchBacksOff(t *testing.T) {
	db := "runstep_test_backoff_" + freshSchema(t)[len("runstep_test_"):]
	sys := admin(t)
	if _, err := sys.Exec(t.Context(), "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		t.Skipf("cannot create a database: %v", err)
	}
	t.Cleanup(func() {
		_, err := sys.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
		require.NoError(t, err)
	})
	u, err := url.Parse(dsn(t))
	require.NoError(t, err)
	u.Path = "/" + db
	mock := clock.NewMock()
	st, err := postgres.Open(t.Context(), u.String(), postgres.WithClock(mock))
	require.NoError(t, err)
	defer st.Close()
	ch, err := st.Watch(t.Context())
	require.NoError(t, err)

	_, err = sys.Exec(t.Context(), "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" ALLOW_CONNECTIONS false")
	require.NoError(t, err)
	_, err = sys.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'`, db)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for postgres.ListenFailures(st) == 0 {
		require.NoError(t, ctx.Err(), "the listener did not try to reconnect")
		runtime.Gosched()
	}
	_, err = sys.Exec(t.Context(), "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" ALLOW_CONNECTIONS true")
	require.NoError(t, err)
	for {
		mock.Add(time.Minute)
		select {
		case _, ok := <-ch:
			require.True(t, ok)
			return
		case <-ctx.Done():
			t.Fatal("the listener did not reconnect after the clock moved")
		default:
			runtime.Gosched()
		}
	}
}
