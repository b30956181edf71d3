package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/memory"
)

// lossyStore is a memory store whose commits, once lossy is set, store
// their batch and then lose the answer, as a database connection that
// breaks during COMMIT does.
type lossyStore struct {
	*memory.Store
	lossy bool
}

func (s *lossyStore) Commit(ctx context.Context, b store.Batch) (int64, error) {
	first, err := s.Store.Commit(ctx, b)
	if err != nil || !s.lossy {
		return first, err
	}
	return 0, fmt.Errorf("lossy: %w", store.ErrOutcomeUnknown)
}

// A commit whose outcome is unknown fails the call with that error, and
// is not made again: the log holds the change once.
func TestCommitWithUnknownOutcome(t *testing.T) {
	ctx := t.Context()
	clk := clock.NewMock()
	clk.Set(start)
	st := &lossyStore{Store: memory.New()}
	eng, err := engine.New(st, engine.WithClock(clk), engine.WithIDs(engine.SeededIDs(7)))
	require.NoError(t, err)
	run, err := eng.CreateRun(ctx, engine.NewRun{ID: "run_1", ThreadID: "thread_1", AssistantID: "asst_1"})
	require.NoError(t, err)
	_, err = eng.StartRun(ctx, run.ID)
	require.NoError(t, err)
	step, err := eng.CreateStep(ctx, engine.NewStep{RunID: run.ID, Type: lifecycle.TypeToolCalls})
	require.NoError(t, err)

	st.lossy = true
	_, err = eng.Complete(ctx, step.ID)
	require.ErrorIs(t, err, store.ErrOutcomeUnknown)
	_, err = eng.CancelRun(ctx, run.ID)
	require.ErrorIs(t, err, store.ErrOutcomeUnknown)

	evs, err := st.Events(ctx, 0, 100)
	require.NoError(t, err)
	var types []events.Type
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	require.Equal(t, []events.Type{
		events.TypeRunCreated, events.TypeRunInProgress, events.TypeStepCreated,
		events.TypeStepCompleted, events.TypeRunCancelling,
	}, types, "each change stored once")
}
