package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/postgres"
)

// readAll reads a store's whole log, in pages, checking it is gapless.
func readAll(t *testing.T, st store.Store) []events.Event {
	t.Helper()
	var all []events.Event
	for {
		page, err := st.Events(t.Context(), int64(len(all)), 97)
		require.NoError(t, err)
		if len(page) == 0 {
			return all
		}
		for _, ev := range page {
			require.Equal(t, int64(len(all)+1), ev.Seq, "the log has a gap or is out of order")
			all = append(all, ev)
		}
	}
}

// Four engines, each with its own Store (its own pool) on one schema and
// one shared mock clock, race terminal transitions on the same steps, then
// sweep the same runs past their deadlines while the last steps are still
// being raced. Two of the Stores claim due runs, two claim nothing, so
// sweepers both pass each other over and collide.
func TestEnginesShareOneSchema(t *testing.T) {
	const (
		nEngines = 4
		nRuns    = 12
		perRun   = 6
		ttl      = time.Minute
	)
	schema := freshSchema(t)
	mock := clock.NewMock()
	mock.Set(time.Unix(1761861531, 0))
	stores := make([]*postgres.Store, nEngines)
	engines := make([]*engine.Engine, nEngines)
	for i := range stores {
		var opts []postgres.Option
		if i >= 2 {
			opts = append(opts, postgres.WithClaimTTL(0))
		}
		stores[i] = open(t, schema, opts...)
		t.Cleanup(func() { require.NoError(t, stores[i].Close()) })
		var err error
		engines[i], err = engine.New(stores[i], engine.WithClock(mock), engine.WithRunTTL(ttl))
		require.NoError(t, err)
	}
	ctx := t.Context()

	// Runs and their steps, made through every engine in turn.
	var runs []lifecycle.Run
	var steps []lifecycle.Step
	for r := range nRuns {
		e := engines[r%nEngines]
		run, err := e.CreateRun(ctx, engine.NewRun{ID: fmt.Sprintf("run_%02d", r), ThreadID: "thread_pg", AssistantID: "asst_pg"})
		require.NoError(t, err)
		run, err = e.StartRun(ctx, run.ID)
		require.NoError(t, err)
		runs = append(runs, run)
		for s := range perRun {
			step, err := engines[(r+s)%nEngines].CreateStep(ctx, engine.NewStep{
				ID: fmt.Sprintf("step_%02d_%d", r, s), RunID: run.ID, Type: lifecycle.TypeToolCalls,
			})
			require.NoError(t, err)
			steps = append(steps, step)
		}
	}
	mock.Add(time.Second)

	// race has every engine try its own terminal trigger on each step, all
	// at once, and returns how many won each step.
	race := func(ids []string) (map[string]int, error) {
		var mu sync.Mutex
		wins := map[string]int{}
		var errs []error
		var wg sync.WaitGroup
		for i, e := range engines {
			wg.Go(func() {
				for _, id := range ids {
					var err error
					switch i % 3 {
					case 0:
						_, err = e.Complete(ctx, id)
					case 1:
						_, err = e.Fail(ctx, id, lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: fmt.Sprintf("engine %d", i)})
					default:
						_, err = e.Cancel(ctx, id)
					}
					mu.Lock()
					switch {
					case err == nil:
						wins[id]++
					case errors.Is(err, lifecycle.ErrInvalidTransition):
						// another engine (or the run's expiry) ended it first
					default:
						errs = append(errs, fmt.Errorf("engine %d on %s: %w", i, id, err))
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return wins, errors.Join(errs...)
	}

	// Round 1: two steps of every three are raced to an end.
	var first, second []string
	for i, step := range steps {
		if i%3 == 0 {
			second = append(second, step.ID)
		} else {
			first = append(first, step.ID)
		}
	}
	wins, err := race(first)
	require.NoError(t, err)
	for _, id := range first {
		require.Equal(t, 1, wins[id], "step %s: exactly one engine ends it", id)
	}

	// Round 2: the deadlines pass; every engine sweeps while the rest of
	// the steps are raced, so expiry cascades collide with transitions.
	mock.Add(ttl)
	var mu sync.Mutex
	expired := 0
	perEngine := make([]int, nEngines)
	var sweepErrs []error
	sweep := func(i int) {
		n, err := engines[i].ExpireDue(ctx)
		mu.Lock()
		defer mu.Unlock()
		expired += n
		perEngine[i] += n
		if err != nil {
			sweepErrs = append(sweepErrs, err)
		}
	}
	var wg sync.WaitGroup
	for i := range engines {
		wg.Go(func() { sweep(i) })
	}
	var raceErr error
	wg.Go(func() { wins, raceErr = race(second) })
	wg.Wait()
	require.NoError(t, raceErr)
	// A sweep that kept losing to transitions (ErrConflict after the
	// engine's attempts) leaves its runs due, and a transition past the
	// deadline expires its run itself (the engine lets nothing change after
	// a run's deadline), so the sweeps' own count can fall short. Sweep until
	// every run is expired; that each expired once is checked on the log.
	allExpired := func() bool {
		for _, run := range runs {
			got, err := stores[0].GetRun(ctx, run.ID)
			require.NoError(t, err)
			if got.Status != lifecycle.RunStatusExpired {
				return false
			}
		}
		return true
	}
	for round := 0; !allExpired() && round < 5; round++ {
		for i := range engines {
			sweep(i)
		}
	}
	for _, err := range sweepErrs {
		require.ErrorIs(t, err, store.ErrConflict, "a sweep fails only by losing races")
	}
	require.True(t, allExpired(), "every run expired")
	require.LessOrEqual(t, expired, nRuns, "no run expired twice by the sweeps")
	t.Logf("runs expired by each engine: %v; sweeps that lost every attempt: %d", perEngine, len(sweepErrs))

	// Every engine reads the same log.
	log := readAll(t, stores[0])
	for i := 1; i < nEngines; i++ {
		require.Equal(t, log, readAll(t, stores[i]), "engine %d reads another log", i)
	}

	// Each step ended exactly once, each run expired exactly once at its
	// deadline, and what is stored is what the log says last: no update
	// lost.
	terminal := map[string]int{}
	runExpired := map[string]int{}
	lastStep := map[string]events.Event{}
	lastRun := map[string]events.Event{}
	runEvents := map[string]int64{}
	for _, ev := range log {
		switch {
		case ev.Step != nil:
			if ev.Step.Status.Terminal() {
				terminal[ev.Step.ID]++
			}
			require.Equal(t, int64(len(filterStep(log[:ev.Seq], ev.Step.ID))), ev.Step.Version, "%s: a version per event", ev.Step.ID)
			lastStep[ev.Step.ID] = ev
		case ev.Run != nil:
			if ev.Type == events.TypeRunExpired {
				runExpired[ev.Run.ID]++
				require.Equal(t, *ev.Run.ExpiresAt, ev.At, "%s expired at its deadline", ev.Run.ID)
			}
			runEvents[ev.Run.ID]++
			lastRun[ev.Run.ID] = ev
		}
	}
	for _, step := range steps {
		require.Equal(t, 1, terminal[step.ID], "step %s: one terminal event", step.ID)
		got, err := stores[int(step.CreatedAt)%nEngines].GetStep(ctx, step.ID)
		require.NoError(t, err)
		require.Equal(t, *lastStep[step.ID].Step, got, "step %s is what its last event says", step.ID)
	}
	for _, run := range runs {
		require.Equal(t, 1, runExpired[run.ID], "run %s: one expired event", run.ID)
		got, err := stores[1].GetRun(ctx, run.ID)
		require.NoError(t, err)
		require.Equal(t, lifecycle.RunStatusExpired, got.Status)
		want := *lastRun[run.ID].Run
		// Each step's creation guarded the run: a version bump with no
		// event of its own.
		require.Equal(t, runEvents[run.ID]+perRun, got.Version, "run %s: a version per event and per guard", run.ID)
		want.Version = got.Version
		require.Equal(t, want, got, "run %s is what its last event says", run.ID)
	}
	for _, st := range stores {
		due, err := st.DueRuns(ctx, mock.Now().Unix(), 100)
		require.NoError(t, err)
		require.Empty(t, due)
	}
}

func filterStep(log []events.Event, id string) []events.Event {
	var out []events.Event
	for _, ev := range log {
		if ev.Step != nil && ev.Step.ID == id {
			out = append(out, ev)
		}
	}
	return out
}
