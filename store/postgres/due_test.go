package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/postgres"
)

// createRuns commits n queued runs due at deadline, run_00 … run_nn.
func createRuns(t *testing.T, st store.Store, n int, deadline int64) []lifecycle.Run {
	t.Helper()
	var evs []events.Event
	var runs []lifecycle.Run
	for i := range n {
		at := deadline
		run := lifecycle.Run{
			ID: fmt.Sprintf("run_%02d", i), CreatedAt: deadline - 600, ThreadID: "thread_pg", AssistantID: "asst_pg",
			Status: lifecycle.RunStatusQueued, ExpiresAt: &at,
		}
		runs = append(runs, run)
		evs = append(evs, events.Event{Type: events.TypeRunCreated, At: run.CreatedAt, Run: &runs[i]})
	}
	_, err := st.Commit(t.Context(), store.Events(evs...))
	require.NoError(t, err)
	for i := range runs {
		runs[i].Version = 1
	}
	return runs
}

func ids(runs []lifecycle.Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

// A run one Store's DueRuns returned is that Store's until the claim
// ends on the other Stores' clocks: they pass it over, and their
// NextDeadline names the claim's end.
func TestDueRunsClaims(t *testing.T) {
	schema := freshSchema(t)
	a := open(t, schema, postgres.WithClaimTTL(time.Minute))
	b := open(t, schema, postgres.WithClaimTTL(time.Minute))
	unclaiming := open(t, schema, postgres.WithClaimTTL(0))
	defer a.Close()
	defer b.Close()
	defer unclaiming.Close()
	ctx := t.Context()
	const deadline = 1761862000
	runs := createRuns(t, a, 4, deadline)

	next, ok, err := b.NextDeadline(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(deadline), next)

	got, err := a.DueRuns(ctx, deadline, 2)
	require.NoError(t, err)
	require.Equal(t, []string{"run_00", "run_01"}, ids(got))
	require.Equal(t, runs[:2], got)

	got, err = b.DueRuns(ctx, deadline+10, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"run_02", "run_03"}, ids(got), "b passes a's claims over")
	got, err = a.DueRuns(ctx, deadline+10, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"run_00", "run_01"}, ids(got), "a sees its own claims, not b's")
	got, err = unclaiming.DueRuns(ctx, deadline+10, 10)
	require.NoError(t, err)
	require.Len(t, got, 4, "a store that claims nothing sees every due run")

	// Its own claims are due for each store.
	for _, st := range []*postgres.Store{a, b} {
		next, _, err := st.NextDeadline(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(deadline), next)
	}

	// b expires its runs; a dies holding its claims. b's next chance is
	// the end of a's claims (made, last, at deadline+10), when it takes
	// a's runs over.
	for _, r := range runs[2:] {
		expired, err := r.Apply(lifecycle.RunChange{Trigger: lifecycle.RunTriggerExpire, At: time.Unix(deadline, 0)})
		require.NoError(t, err)
		_, err = b.Commit(ctx, store.Events(events.Event{Type: events.TypeRunExpired, At: deadline, Run: &expired}))
		require.NoError(t, err)
	}
	next, ok, err = b.NextDeadline(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(deadline+70), next)
	got, err = b.DueRuns(ctx, deadline+69, 10)
	require.NoError(t, err)
	require.Empty(t, got)
	got, err = b.DueRuns(ctx, deadline+70, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"run_00", "run_01"}, ids(got))

	// Ended runs leave the sweep, claimed or not.
	got, err = unclaiming.DueRuns(ctx, deadline+1000, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"run_00", "run_01"}, ids(got))
}

// Sweepers that call DueRuns at once split the due runs between them:
// SKIP LOCKED passes over the rows another is claiming.
func TestDueRunsConcurrentSweepersSplit(t *testing.T) {
	schema := freshSchema(t)
	const n, sweepers = 60, 4
	stores := make([]*postgres.Store, sweepers)
	for i := range stores {
		stores[i] = open(t, schema)
		defer stores[i].Close()
	}
	createRuns(t, stores[0], n, 1761862000)
	got := make([][]lifecycle.Run, sweepers)
	errs := make([]error, sweepers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, st := range stores {
		wg.Go(func() {
			<-start
			got[i], errs[i] = st.DueRuns(t.Context(), 1761862000, n)
		})
	}
	close(start)
	wg.Wait()
	seen := map[string]int{}
	for i := range stores {
		require.NoError(t, errs[i])
		for _, r := range got[i] {
			seen[r.ID]++
		}
	}
	require.Len(t, seen, n, "every due run went to a sweeper")
	for id, c := range seen {
		require.Equal(t, 1, c, "run %s went to %d sweepers", id, c)
	}
}
