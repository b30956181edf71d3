package engine_test

import (
	"context"
	"regexp"
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
	"github.com/runstep/runstep/store/memory"
)

// start is when every test's mock clock begins: a real second of a real
// recording, so the numbers look like the API's.
var start = time.Unix(1761861531, 0)

type fixture struct {
	eng   *engine.Engine
	store store.Store
	clock *clock.Mock
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	clk := clock.NewMock()
	clk.Set(start)
	st := memory.New()
	eng, err := engine.New(st, engine.WithClock(clk), engine.WithIDs(engine.SeededIDs(7)))
	require.NoError(t, err)
	f := fixture{eng: eng, store: st, clock: clk}
	f.startRun(t, "run_1")
	return f
}

// startRun creates a run in progress: the only kind steps can be added to.
func (f fixture) startRun(t *testing.T, id string) lifecycle.Run {
	t.Helper()
	ctx := context.Background()
	_, err := f.eng.CreateRun(ctx, engine.NewRun{ID: id, ThreadID: "thread_1", AssistantID: "asst_1"})
	require.NoError(t, err)
	run, err := f.eng.StartRun(ctx, id)
	require.NoError(t, err)
	return run
}

// stepEvents returns the log's step events, leaving out the runs'.
func (f fixture) stepEvents(t *testing.T) []events.Event {
	t.Helper()
	var out []events.Event
	for _, ev := range f.allEvents(t) {
		if ev.Step != nil {
			out = append(out, ev)
		}
	}
	return out
}

func (f fixture) toolStep(t *testing.T) lifecycle.Step {
	t.Helper()
	step, err := f.eng.CreateStep(context.Background(), engine.NewStep{
		RunID: "run_1", ThreadID: "thread_1", AssistantID: "asst_1", Type: lifecycle.TypeToolCalls,
	})
	require.NoError(t, err)
	return step
}

func (f fixture) allEvents(t *testing.T) []events.Event {
	t.Helper()
	evs, err := f.store.Events(context.Background(), 0, 1<<20)
	require.NoError(t, err)
	return evs
}

func ptr[T any](v T) *T { return &v }

func TestCreateStep(t *testing.T) {
	f := newFixture(t)
	step := f.toolStep(t)

	assert.Regexp(t, regexp.MustCompile(`^step_[0-9A-Za-z]{24}$`), step.ID)
	want := lifecycle.Step{
		ID: step.ID, CreatedAt: start.Unix(), AssistantID: "asst_1", ThreadID: "thread_1", RunID: "run_1",
		Type: lifecycle.TypeToolCalls, Status: lifecycle.StatusInProgress,
		Details: lifecycle.ToolCallsDetails(), Version: 1,
	}
	assert.Equal(t, want, step)

	evs := f.stepEvents(t)
	require.Len(t, evs, 1)
	assert.Equal(t, events.Event{Seq: 3, Type: events.TypeStepCreated, At: start.Unix(), Step: &want}, evs[0])
}

func TestCreateStepRefusesBadInput(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cases := map[string]struct {
		step  engine.NewStep
		field string
	}{
		"unknown type":    {engine.NewStep{RunID: "run_1", Type: "thinking"}, "type"},
		"message no id":   {engine.NewStep{RunID: "run_1", Type: lifecycle.TypeMessageCreation}, "step_details.type"},
		"metadata pairs":  {engine.NewStep{RunID: "run_1", Type: lifecycle.TypeToolCalls, Metadata: manyPairs(17)}, "metadata"},
		"details of type": {engine.NewStep{RunID: "run_1", Type: lifecycle.TypeToolCalls, Details: lifecycle.MessageCreationDetails("msg_1")}, "step_details.type"},
		"other thread":    {engine.NewStep{RunID: "run_1", ThreadID: "thread_2", Type: lifecycle.TypeToolCalls}, "thread_id"},
		"other assistant": {engine.NewStep{RunID: "run_1", AssistantID: "asst_2", Type: lifecycle.TypeToolCalls}, "assistant_id"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := f.eng.CreateStep(ctx, tc.step)
			var verr *lifecycle.ValidationError
			require.ErrorAs(t, err, &verr)
			assert.Equal(t, tc.field, verr.Field)
			require.ErrorIs(t, err, lifecycle.ErrInvalid)
			// The store's Commit found it (the engine does not check
			// twice), but the error is about the input alone.
			assert.NotErrorIs(t, err, store.ErrInvalid)
			assert.Regexp(t, `^engine: create step step_\w+: `+regexp.QuoteMeta(verr.Error())+`$`, err.Error())
		})
	}
	assert.Empty(t, f.stepEvents(t), "refused input writes nothing")

	_, err := f.eng.CreateStep(ctx, engine.NewStep{RunID: "run_none", Type: lifecycle.TypeToolCalls})
	require.ErrorIs(t, err, store.ErrNotFound, "steps belong to a run the engine knows")

	first := f.toolStep(t)
	_, err = f.eng.CreateStep(ctx, engine.NewStep{ID: first.ID, RunID: "run_1", Type: lifecycle.TypeToolCalls})
	require.ErrorIs(t, err, store.ErrAlreadyExists)
}

func manyPairs(n int) lifecycle.Metadata {
	m := lifecycle.Metadata{}
	for i := range n {
		m[string(rune('a'+i))] = "v"
	}
	return m
}

func TestTransitionsStampTheClock(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		do    func(e *engine.Engine, id string) (lifecycle.Step, error)
		event events.Type
		check func(t *testing.T, s lifecycle.Step, at int64)
	}{
		{"complete", func(e *engine.Engine, id string) (lifecycle.Step, error) { return e.Complete(ctx, id) },
			events.TypeStepCompleted, func(t *testing.T, s lifecycle.Step, at int64) {
				assert.Equal(t, lifecycle.StatusCompleted, s.Status)
				assert.Equal(t, &at, s.CompletedAt)
				assert.Nil(t, s.FailedAt)
				assert.Nil(t, s.CancelledAt)
				assert.Nil(t, s.ExpiredAt)
				assert.Nil(t, s.LastError)
			}},
		{"fail", func(e *engine.Engine, id string) (lifecycle.Step, error) {
			return e.Fail(ctx, id, lifecycle.LastError{Code: lifecycle.ErrorCodeRateLimitExceeded, Message: "slow down"})
		}, events.TypeStepFailed, func(t *testing.T, s lifecycle.Step, at int64) {
			assert.Equal(t, lifecycle.StatusFailed, s.Status)
			assert.Equal(t, &at, s.FailedAt)
			assert.Nil(t, s.CompletedAt)
			assert.Equal(t, &lifecycle.LastError{Code: lifecycle.ErrorCodeRateLimitExceeded, Message: "slow down"}, s.LastError)
		}},
		{"cancel", func(e *engine.Engine, id string) (lifecycle.Step, error) { return e.Cancel(ctx, id) },
			events.TypeStepCancelled, func(t *testing.T, s lifecycle.Step, at int64) {
				assert.Equal(t, lifecycle.StatusCancelled, s.Status)
				assert.Equal(t, &at, s.CancelledAt)
				assert.Nil(t, s.CompletedAt)
				assert.Nil(t, s.LastError)
			}},
		{"expire", func(e *engine.Engine, id string) (lifecycle.Step, error) { return e.Expire(ctx, id) },
			events.TypeStepExpired, func(t *testing.T, s lifecycle.Step, at int64) {
				assert.Equal(t, lifecycle.StatusExpired, s.Status)
				assert.Equal(t, &at, s.ExpiredAt)
				assert.Nil(t, s.CompletedAt)
				assert.Nil(t, s.LastError)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			created := f.toolStep(t)
			f.clock.Add(42*time.Second + 900*time.Millisecond) // whole seconds: the fraction is dropped
			at := start.Unix() + 42

			step, err := tc.do(f.eng, created.ID)
			require.NoError(t, err)
			tc.check(t, step, at)
			assert.Equal(t, created.CreatedAt, step.CreatedAt)
			assert.Equal(t, int64(2), step.Version)

			got, err := f.eng.GetStep(ctx, created.ID)
			require.NoError(t, err)
			assert.Equal(t, step, got)

			evs := f.stepEvents(t)
			require.Len(t, evs, 2)
			assert.Equal(t, events.Event{Seq: 4, Type: tc.event, At: at, Step: &step}, evs[1])
		})
	}
}

func TestTerminalStepsRefuseEveryTrigger(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	step := f.toolStep(t)
	_, err := f.eng.Complete(ctx, step.ID)
	require.NoError(t, err)

	for name, do := range map[string]func() (lifecycle.Step, error){
		"complete": func() (lifecycle.Step, error) { return f.eng.Complete(ctx, step.ID) },
		"fail": func() (lifecycle.Step, error) {
			return f.eng.Fail(ctx, step.ID, lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "x"})
		},
		"cancel": func() (lifecycle.Step, error) { return f.eng.Cancel(ctx, step.ID) },
		"expire": func() (lifecycle.Step, error) { return f.eng.Expire(ctx, step.ID) },
	} {
		t.Run(name, func(t *testing.T) {
			_, err := do()
			require.ErrorIs(t, err, lifecycle.ErrInvalidTransition)
			var terr *lifecycle.TransitionError
			require.ErrorAs(t, err, &terr)
			assert.Equal(t, lifecycle.TransitionError{ID: step.ID, From: "completed", Trigger: name}, *terr)
		})
	}
	assert.Len(t, f.stepEvents(t), 2, "refused triggers write nothing")
}

func TestFailRefusesBadError(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	step := f.toolStep(t)

	_, err := f.eng.Fail(ctx, step.ID, lifecycle.LastError{Code: "invalid_prompt", Message: "no"})
	var verr *lifecycle.ValidationError
	require.ErrorAs(t, err, &verr)
	assert.Equal(t, "last_error.code", verr.Field)

	_, err = f.eng.Fail(ctx, step.ID, lifecycle.LastError{Code: lifecycle.ErrorCodeServerError})
	require.ErrorAs(t, err, &verr)
	assert.Equal(t, "last_error.message", verr.Field)

	got, err := f.eng.GetStep(ctx, step.ID)
	require.NoError(t, err)
	assert.Equal(t, step, got, "a refused failure leaves the step as it was")
}

func TestCompleteWithFinalDetailsAndUsage(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	step := f.toolStep(t)
	details := lifecycle.ToolCallsDetails(lifecycle.ToolCall{
		ID: "call_1", Type: lifecycle.ToolCallFunction,
		Function: &lifecycle.FunctionCall{Name: "get_current_weather", Arguments: "{}", Output: ptr("warm and sunny")},
	})
	usage := lifecycle.Usage{PromptTokens: 260, CompletionTokens: 12, TotalTokens: 272}

	done, err := f.eng.Complete(ctx, step.ID, engine.FinalDetails(details), engine.FinalUsage(usage))
	require.NoError(t, err)
	assert.Equal(t, details, done.Details)
	assert.Equal(t, &usage, done.Usage)

	other := f.toolStep(t)
	_, err = f.eng.Complete(ctx, other.ID, engine.FinalDetails(lifecycle.MessageCreationDetails("msg_1")))
	require.ErrorIs(t, err, lifecycle.ErrInvalid, "details of another type")
}

func TestUnknownStep(t *testing.T) {
	f := newFixture(t)
	_, err := f.eng.Complete(context.Background(), "step_missing")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = f.eng.GetStep(context.Background(), "step_missing")
	require.ErrorIs(t, err, store.ErrNotFound)
}

// Of 64 goroutines racing every trigger on one step, exactly one wins; each
// loser learns it lost through a typed error, and the log holds exactly one
// terminal event.
func TestConcurrentTriggersOneWinner(t *testing.T) {
	ctx := context.Background()
	for range 20 {
		f := newFixture(t)
		step := f.toolStep(t)
		triggers := []func() (lifecycle.Step, error){
			func() (lifecycle.Step, error) { return f.eng.Complete(ctx, step.ID) },
			func() (lifecycle.Step, error) {
				return f.eng.Fail(ctx, step.ID, lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "boom"})
			},
			func() (lifecycle.Step, error) { return f.eng.Cancel(ctx, step.ID) },
			func() (lifecycle.Step, error) { return f.eng.Expire(ctx, step.ID) },
		}
		var wg sync.WaitGroup
		errs := make([]error, 64)
		for i := range errs {
			wg.Go(func() { _, errs[i] = triggers[i%len(triggers)]() })
		}
		wg.Wait()

		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
				continue
			}
			if !assert.ErrorIs(t, err, lifecycle.ErrInvalidTransition) {
				assert.ErrorIs(t, err, store.ErrConflict)
			}
		}
		assert.Equal(t, 1, wins)
		evs := f.stepEvents(t)
		require.Len(t, evs, 2, "one created event and one terminal event")
		assert.True(t, evs[1].Step.Status.Terminal())
		final, err := f.eng.GetStep(ctx, step.ID)
		require.NoError(t, err)
		assert.Equal(t, *evs[1].Step, final)
	}
}

func TestSeededIDsRepeat(t *testing.T) {
	a, b := engine.SeededIDs(42), engine.SeededIDs(42)
	for range 10 {
		assert.Equal(t, a.NewID("step_"), b.NewID("step_"))
	}
	assert.NotEqual(t, engine.SeededIDs(1).NewID("x"), engine.SeededIDs(2).NewID("x"))
	assert.Regexp(t, `^step_[0-9A-Za-z]{24}$`, engine.RandomIDs().NewID("step_"))
}

func TestNewRefusesNilStore(t *testing.T) {
	_, err := engine.New(nil)
	require.Error(t, err)
}
