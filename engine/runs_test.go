package engine_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/memory"
)

func TestNewRefusesBadOptions(t *testing.T) {
	_, err := engine.New(memory.New(), engine.WithRunTTL(0))
	require.Error(t, err)
	bad := lifecycle.DefaultCascadePolicy()
	bad[lifecycle.RunStatusCompleted] = lifecycle.StepActionFail
	_, err = engine.New(memory.New(), engine.WithCascadePolicy(bad))
	require.ErrorIs(t, err, lifecycle.ErrInvalid)
}

func TestCreateRunDeadlines(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	run, err := f.eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_1", AssistantID: "asst_1"})
	require.NoError(t, err)
	assert.Regexp(t, `^run_[0-9A-Za-z]{24}$`, run.ID)
	assert.Equal(t, lifecycle.RunStatusQueued, run.Status)
	assert.Equal(t, start.Unix()+600, *run.ExpiresAt, "OpenAI's ten minutes by default")
	assert.Equal(t, int64(1), run.Version)

	short, err := f.eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_1", AssistantID: "asst_1", TTL: 90 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, start.Unix()+90, *short.ExpiresAt, "a run's own TTL wins")

	eng, err := engine.New(memory.New(), engine.WithClock(f.clock), engine.WithRunTTL(time.Hour))
	require.NoError(t, err)
	long, err := eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_1", AssistantID: "asst_1"})
	require.NoError(t, err)
	assert.Equal(t, start.Unix()+3600, *long.ExpiresAt)

	_, err = f.eng.CreateRun(ctx, engine.NewRun{ID: run.ID, ThreadID: "thread_1", AssistantID: "asst_1"})
	require.ErrorIs(t, err, store.ErrAlreadyExists)
	_, err = f.eng.CreateRun(ctx, engine.NewRun{AssistantID: "asst_1"})
	require.ErrorIs(t, err, lifecycle.ErrInvalid)
}

func TestRunTriggersFollowTheMachine(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t) // run_1 is in progress
	run, err := f.eng.RequireAction(ctx, "run_1")
	require.NoError(t, err)
	assert.Equal(t, lifecycle.RunStatusRequiresAction, run.Status)
	run, err = f.eng.SubmitToolOutputs(ctx, "run_1")
	require.NoError(t, err)
	assert.Equal(t, lifecycle.RunStatusQueued, run.Status)

	f.clock.Add(3 * time.Second)
	run, err = f.eng.StartRun(ctx, "run_1")
	require.NoError(t, err)
	assert.Equal(t, start.Unix()+3, *run.StartedAt, "a resumed run is stamped started again")

	_, err = f.eng.FinishCancelRun(ctx, "run_1")
	var terr *lifecycle.TransitionError
	require.ErrorAs(t, err, &terr)
	assert.Equal(t, lifecycle.TransitionError{ID: "run_1", From: "in_progress", Trigger: "finish_cancel"}, *terr)

	_, err = f.eng.StartRun(ctx, "run_missing")
	require.ErrorIs(t, err, store.ErrNotFound)

	var names []events.Type
	for _, ev := range f.allEvents(t) {
		names = append(names, ev.Type)
	}
	assert.Equal(t, []events.Type{
		events.TypeRunCreated, events.TypeRunInProgress, events.TypeRunRequiresAction,
		events.TypeRunQueued, events.TypeRunInProgress,
	}, names)
}

func TestTheLongestTTLIsInTheFuture(t *testing.T) {
	f := newFixture(t)
	run, err := f.eng.CreateRun(context.Background(), engine.NewRun{ThreadID: "thread_1", AssistantID: "asst_1", TTL: time.Duration(math.MaxInt64)})
	require.NoError(t, err)
	assert.Equal(t, start.Unix()+int64(math.MaxInt64/int64(time.Second))+1, *run.ExpiresAt, "no overflow into the past")
}

func TestNilLoggerFallsBack(t *testing.T) {
	_, err := engine.New(memory.New(), engine.WithLogger(nil))
	require.NoError(t, err)
}
