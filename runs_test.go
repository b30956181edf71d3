package runstep_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
)

var t0 = time.Unix(1761861531, 0)

// world is one engine on a store and a mock clock standing at t0.
type world struct {
	eng   *engine.Engine
	st    store.Store
	clock *clock.Mock
}

func newWorld(t *testing.T, st store.Store, opts ...engine.Option) world {
	t.Helper()
	clk := clock.NewMock()
	clk.Set(t0)
	eng, err := engine.New(st, append([]engine.Option{engine.WithClock(clk), engine.WithIDs(engine.SeededIDs(3))}, opts...)...)
	require.NoError(t, err)
	return world{eng: eng, st: st, clock: clk}
}

// startedRun creates a run at the clock's time and starts it a second later.
func (w world) startedRun(t *testing.T) lifecycle.Run {
	t.Helper()
	ctx := context.Background()
	run, err := w.eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_1", AssistantID: "asst_1"})
	require.NoError(t, err)
	w.clock.Add(time.Second)
	run, err = w.eng.StartRun(ctx, run.ID)
	require.NoError(t, err)
	return run
}

func (w world) step(t *testing.T, runID string, typ lifecycle.Type) lifecycle.Step {
	t.Helper()
	ns := engine.NewStep{RunID: runID, Type: typ}
	if typ == lifecycle.TypeMessageCreation {
		ns.Details = lifecycle.MessageCreationDetails("msg_1")
	}
	step, err := w.eng.CreateStep(context.Background(), ns)
	require.NoError(t, err)
	return step
}

func (w world) get(t *testing.T, id string) lifecycle.Step {
	t.Helper()
	step, err := w.eng.GetStep(context.Background(), id)
	require.NoError(t, err)
	return step
}

func (w world) run(t *testing.T, id string) lifecycle.Run {
	t.Helper()
	run, err := w.eng.GetRun(context.Background(), id)
	require.NoError(t, err)
	return run
}

// log returns every event committed so far.
func (w world) log(t *testing.T) []events.Event {
	t.Helper()
	evs, err := w.st.Events(context.Background(), 0, 1<<20)
	require.NoError(t, err)
	return evs
}

func names(evs []events.Event) []events.Type {
	out := make([]events.Type, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// A run with a completed step, a tool_calls step in progress and a wait
// for tool outputs expires at created_at + 600 s exactly: not a second
// earlier. Its step in progress expires with it, stamped with the
// deadline, and the step's event comes before the run's.
func TestRunExpiresAtItsDeadline(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		run := w.startedRun(t)
		deadline := run.CreatedAt + 600
		require.Equal(t, &deadline, run.ExpiresAt)

		message := w.step(t, run.ID, lifecycle.TypeMessageCreation)
		w.clock.Add(2 * time.Second)
		_, err := w.eng.Complete(ctx, message.ID)
		require.NoError(t, err)
		tool := w.step(t, run.ID, lifecycle.TypeToolCalls)
		_, err = w.eng.RequireAction(ctx, run.ID)
		require.NoError(t, err)

		w.clock.Set(time.Unix(deadline-1, 999_000_000))
		n, err := w.eng.ExpireDue(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "999 ms before the deadline nothing is due")
		assert.Equal(t, lifecycle.RunStatusRequiresAction, w.run(t, run.ID).Status)

		w.clock.Add(time.Millisecond)
		n, err = w.eng.ExpireDue(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, n)

		expired := w.run(t, run.ID)
		assert.Equal(t, lifecycle.RunStatusExpired, expired.Status)
		assert.Equal(t, &deadline, expired.ExpiresAt)
		step := w.get(t, tool.ID)
		assert.Equal(t, lifecycle.StatusExpired, step.Status)
		assert.Equal(t, &deadline, step.ExpiredAt)
		assert.Equal(t, lifecycle.StatusCompleted, w.get(t, message.ID).Status, "an ended step stays as it was")

		log := w.log(t)
		tail := log[len(log)-2:]
		assert.Equal(t, []events.Type{events.TypeStepExpired, events.TypeRunExpired}, names(tail))
		assert.Equal(t, deadline, tail[0].At)
		assert.Equal(t, deadline, tail[1].At)

		n, err = w.eng.ExpireDue(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "a run expires once")
	})
}

// The deadline loop arms one timer and fires it when the mock clock
// reaches the deadline.
func TestRunLoopExpiresOnTheMockClock(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		w := newWorld(t, st)
		run := w.startedRun(t)
		tool := w.step(t, run.ID, lifecycle.TypeToolCalls)

		done := make(chan error)
		go func() { done <- w.eng.Run(ctx) }()
		defer func() {
			cancel()
			require.NoError(t, <-done)
		}()

		w.clock.Add(10 * time.Minute)
		for ev, err := range w.eng.Subscribe(ctx, 0) {
			require.NoError(t, err)
			if ev.Type == events.TypeRunExpired {
				assert.Equal(t, *run.ExpiresAt, ev.At)
				break
			}
		}
		assert.Equal(t, run.ExpiresAt, w.get(t, tool.ID).ExpiredAt)
	})
}

// Cancelling and failing a run take its steps in progress with them, each
// with its own event before the run's; an ended run is disarmed.
func TestRunEndsCascadeToSteps(t *testing.T) {
	cases := []struct {
		name      string
		end       func(ctx context.Context, eng *engine.Engine, id string) error
		runStatus lifecycle.RunStatus
		step      lifecycle.Status
		events    []events.Type
		lastError *lifecycle.LastError
	}{
		{
			name: "cancel",
			end: func(ctx context.Context, eng *engine.Engine, id string) error {
				if _, err := eng.CancelRun(ctx, id); err != nil {
					return err
				}
				_, err := eng.FinishCancelRun(ctx, id)
				return err
			},
			runStatus: lifecycle.RunStatusCancelled, step: lifecycle.StatusCancelled,
			events: []events.Type{events.TypeRunCancelling, events.TypeStepCancelled, events.TypeStepCancelled, events.TypeRunCancelled},
		},
		{
			name: "fail",
			end: func(ctx context.Context, eng *engine.Engine, id string) error {
				_, err := eng.FailRun(ctx, id, lifecycle.LastError{Code: lifecycle.ErrorCodeInvalidPrompt, Message: "prompt too long"})
				return err
			},
			runStatus: lifecycle.RunStatusFailed, step: lifecycle.StatusFailed,
			events:    []events.Type{events.TypeStepFailed, events.TypeStepFailed, events.TypeRunFailed},
			lastError: &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "the run failed with invalid_prompt: prompt too long"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, st store.Store) {
				ctx := context.Background()
				w := newWorld(t, st)
				run := w.startedRun(t)
				a := w.step(t, run.ID, lifecycle.TypeToolCalls)
				b := w.step(t, run.ID, lifecycle.TypeToolCalls)
				before := len(w.log(t))

				w.clock.Add(30 * time.Second)
				require.NoError(t, tc.end(ctx, w.eng, run.ID))
				at := w.clock.Now().Unix()

				ended := w.run(t, run.ID)
				assert.Equal(t, tc.runStatus, ended.Status)
				assert.Nil(t, ended.ExpiresAt, "an ended run no longer has a deadline")
				for _, id := range []string{a.ID, b.ID} {
					step := w.get(t, id)
					assert.Equal(t, tc.step, step.Status)
					assert.Equal(t, tc.lastError, step.LastError)
					stamp := map[lifecycle.Status]*int64{lifecycle.StatusCancelled: step.CancelledAt, lifecycle.StatusFailed: step.FailedAt}[tc.step]
					assert.Equal(t, &at, stamp)
				}
				assert.Equal(t, tc.events, names(w.log(t)[before:]))

				_, ok, err := st.NextDeadline(ctx)
				require.NoError(t, err)
				assert.False(t, ok, "nothing left to expire")
				w.clock.Add(time.Hour)
				n, err := w.eng.ExpireDue(ctx)
				require.NoError(t, err)
				assert.Zero(t, n)
			})
		})
	}
}

// By default a run cannot complete while a step is in progress; a policy
// can complete such steps instead.
func TestCompletingARunWithStepsInProgress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		run := w.startedRun(t)
		step := w.step(t, run.ID, lifecycle.TypeToolCalls)
		_, err := w.eng.CompleteRun(ctx, run.ID)
		require.ErrorIs(t, err, lifecycle.ErrStepsInProgress)
		assert.Equal(t, lifecycle.RunStatusInProgress, w.run(t, run.ID).Status, "a refused end changes nothing")

		policy := lifecycle.DefaultCascadePolicy()
		policy[lifecycle.RunStatusCompleted] = lifecycle.StepActionComplete
		lenient, err := engine.New(st, engine.WithClock(w.clock), engine.WithCascadePolicy(policy))
		require.NoError(t, err)
		_, err = lenient.CompleteRun(ctx, run.ID)
		require.NoError(t, err)
		assert.Equal(t, lifecycle.StatusCompleted, w.get(t, step.ID).Status)
	})
}

// Steps are created only in a run in progress.
func TestStepsOnlyInARunInProgress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		queued, err := w.eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_1", AssistantID: "asst_1"})
		require.NoError(t, err)
		_, err = w.eng.CreateStep(ctx, engine.NewStep{RunID: queued.ID, Type: lifecycle.TypeToolCalls})
		var terr *lifecycle.TransitionError
		require.ErrorAs(t, err, &terr)
		assert.Equal(t, lifecycle.TransitionError{ID: queued.ID, From: "queued", Trigger: "create_step"}, *terr)
	})
}

// An engine that was down when a deadline passed expires the run as soon
// as it starts, stamped with the deadline, not the restart.
func TestRestartExpiresWhatFellDue(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		w := newWorld(t, st)
		run := w.startedRun(t)
		step := w.step(t, run.ID, lifecycle.TypeToolCalls)
		// The first engine stops here. Time passes.
		w.clock.Add(3 * time.Hour)

		restarted := newWorld(t, st)
		restarted.clock.Set(w.clock.Now())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- restarted.eng.Run(ctx) }()
		for ev, err := range restarted.eng.Subscribe(ctx, 0) {
			require.NoError(t, err)
			if ev.Type == events.TypeRunExpired {
				break
			}
		}
		cancel()
		require.NoError(t, <-done)

		assert.Equal(t, run.ExpiresAt, restarted.get(t, step.ID).ExpiredAt)
		assert.Equal(t, run.ExpiresAt, restarted.run(t, run.ID).ExpiresAt)
	})
}

// A run's expiry racing a step's completion: the step ends exactly once,
// with one terminal event, and the run expires exactly once.
func TestExpiryRacesCompletion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		for range 100 {
			run := w.startedRun(t)
			step := w.step(t, run.ID, lifecycle.TypeToolCalls)
			// A second before the deadline both may still win (at the
			// deadline the run is over, and Complete expires it first).
			w.clock.Set(time.Unix(*run.ExpiresAt-1, 0))

			var wg sync.WaitGroup
			var completeErr error
			wg.Go(func() { _, completeErr = w.eng.Complete(ctx, step.ID) })
			wg.Go(func() {
				_, err := w.eng.ExpireRun(ctx, run.ID)
				assert.NoError(t, err)
			})
			wg.Wait()

			final := w.get(t, step.ID)
			switch final.Status {
			case lifecycle.StatusCompleted:
				assert.NoError(t, completeErr)
			case lifecycle.StatusExpired:
				assert.ErrorIs(t, completeErr, lifecycle.ErrInvalidTransition)
			default:
				t.Fatalf("step ended %s", final.Status)
			}
			var stepEnds, runEnds int
			for _, ev := range w.log(t) {
				if ev.Step != nil && ev.Step.ID == step.ID && ev.Step.Status.Terminal() {
					stepEnds++
					assert.Equal(t, final, *ev.Step, "the stored step is the one its event carries")
				}
				if ev.Run != nil && ev.Run.ID == run.ID && ev.Run.Status.Terminal() {
					runEnds++
				}
			}
			assert.Equal(t, 1, stepEnds)
			assert.Equal(t, 1, runEnds)
		}
	})
}

// A step being created while its run ends is either created before the
// end (and cascaded) or refused: no step stays in progress in an ended
// run.
func TestCreationRacesRunEnd(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		for range 100 {
			run := w.startedRun(t)
			var wg sync.WaitGroup
			var step lifecycle.Step
			var createErr error
			wg.Go(func() {
				step, createErr = w.eng.CreateStep(ctx, engine.NewStep{RunID: run.ID, Type: lifecycle.TypeToolCalls})
			})
			wg.Go(func() {
				_, err := w.eng.ExpireRun(ctx, run.ID)
				assert.NoError(t, err)
			})
			wg.Wait()
			if createErr != nil {
				require.ErrorIs(t, createErr, lifecycle.ErrInvalidTransition)
				continue
			}
			assert.Equal(t, lifecycle.StatusExpired, w.get(t, step.ID).Status)
		}
	})
}

// A step created after its run's deadline, before any sweep, would expire
// before it was born: the engine expires the run (as of its deadline) and
// refuses the step.
func TestCreatingAStepPastTheDeadlineExpiresTheRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		run := w.startedRun(t)
		w.clock.Set(time.Unix(*run.ExpiresAt+60, 0))

		_, err := w.eng.CreateStep(ctx, engine.NewStep{RunID: run.ID, Type: lifecycle.TypeToolCalls})
		var terr *lifecycle.TransitionError
		require.ErrorAs(t, err, &terr)
		assert.Equal(t, "expired", terr.From)

		expired := w.run(t, run.ID)
		assert.Equal(t, lifecycle.RunStatusExpired, expired.Status)
		assert.Equal(t, run.ExpiresAt, expired.ExpiresAt, "expired as of its deadline")
		log := w.log(t)
		assert.Equal(t, events.TypeRunExpired, log[len(log)-1].Type)
		assert.Equal(t, *run.ExpiresAt, log[len(log)-1].At)
	})
}

// Past its deadline, before any sweep, a run and its steps are already
// over: a transition expires the run as of its deadline and is refused.
func TestTransitionsPastTheDeadlineExpireTheRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		run := w.startedRun(t)
		step := w.step(t, run.ID, lifecycle.TypeToolCalls)
		w.clock.Set(time.Unix(*run.ExpiresAt+5, 0))

		_, err := w.eng.Complete(ctx, step.ID)
		require.ErrorIs(t, err, lifecycle.ErrInvalidTransition)
		expired := w.get(t, step.ID)
		assert.Equal(t, lifecycle.StatusExpired, expired.Status)
		assert.Equal(t, run.ExpiresAt, expired.ExpiredAt)

		other := w.startedRun(t)
		w.clock.Set(time.Unix(*other.ExpiresAt, 0))
		_, err = w.eng.CompleteRun(ctx, other.ID)
		require.ErrorIs(t, err, lifecycle.ErrInvalidTransition)
		assert.Equal(t, lifecycle.RunStatusExpired, w.run(t, other.ID).Status)
	})
}

// A sweep expires every due run, however many there are.
func TestExpireDueExpiresThemAll(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		w := newWorld(t, st)
		for range 250 {
			_, err := w.eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_1", AssistantID: "asst_1"})
			require.NoError(t, err)
		}
		w.clock.Add(time.Hour)
		n, err := w.eng.ExpireDue(ctx)
		require.NoError(t, err)
		assert.Equal(t, 250, n)
	})
}
