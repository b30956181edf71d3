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

// lossyStore is a memory store whose next commits lose their answer, as
// a database connection that breaks during COMMIT does: each either
// stores its batch or not, and returns store.ErrOutcomeUnknown. Before it
// answers, meddle (if set) may commit a change of its own, as another
// writer would.
type lossyStore struct {
	*memory.Store
	// outcomes are the next commits' fates, in order: true stores the
	// batch. Once they run out, commits answer truly.
	outcomes []bool
	meddle   func(ctx context.Context)
}

func (s *lossyStore) Commit(ctx context.Context, b store.Batch) (int64, error) {
	if len(s.outcomes) == 0 {
		return s.Store.Commit(ctx, b)
	}
	keep := s.outcomes[0]
	s.outcomes = s.outcomes[1:]
	if keep {
		if _, err := s.Store.Commit(ctx, b); err != nil {
			return 0, err
		}
	}
	if s.meddle != nil {
		s.meddle(ctx)
	}
	return 0, fmt.Errorf("lossy: %w", store.ErrOutcomeUnknown)
}

func newLossy(t *testing.T) (*engine.Engine, *lossyStore) {
	t.Helper()
	clk := clock.NewMock()
	clk.Set(start)
	st := &lossyStore{Store: memory.New()}
	eng, err := engine.New(st, engine.WithClock(clk), engine.WithIDs(engine.SeededIDs(7)))
	require.NoError(t, err)
	return eng, st
}

// eventTypes returns the type of every logged event, in order.
func eventTypes(t *testing.T, st store.Store) []events.Type {
	t.Helper()
	evs, err := st.Events(t.Context(), 0, 1000)
	require.NoError(t, err)
	types := make([]events.Type, len(evs))
	for i, ev := range evs {
		types[i] = ev.Type
	}
	return types
}

// A commit whose answer is lost is read back: stored, it succeeded; not
// stored, it is made again. Either way the caller gets its result and
// the log holds each change once.
func TestCommitWithUnknownOutcome(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outcomes []bool
	}{
		{"stored", []bool{true}},
		{"not stored", []bool{false}},
		{"not stored twice, then stored", []bool{false, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			eng, st := newLossy(t)

			st.outcomes = tc.outcomes
			run, err := eng.CreateRun(ctx, engine.NewRun{ID: "run_1", ThreadID: "thread_1", AssistantID: "asst_1"})
			require.NoError(t, err)
			require.Empty(t, st.outcomes, "every lossy commit was tried")
			st.outcomes = tc.outcomes
			_, err = eng.StartRun(ctx, run.ID)
			require.NoError(t, err)

			st.outcomes = tc.outcomes
			step, err := eng.CreateStep(ctx, engine.NewStep{RunID: run.ID, Type: lifecycle.TypeToolCalls})
			require.NoError(t, err)
			st.outcomes = tc.outcomes
			done, err := eng.Complete(ctx, step.ID)
			require.NoError(t, err)

			got, err := st.GetStep(ctx, step.ID)
			require.NoError(t, err)
			require.Equal(t, done, got, "Complete returned the step as stored")
			require.Equal(t, []events.Type{
				events.TypeRunCreated, events.TypeRunInProgress, events.TypeStepCreated, events.TypeStepCompleted,
			}, eventTypes(t, st))
		})
	}
}

// Whether a lost commit was stored cannot be read back once another
// writer has changed the object since: the caller then gets the unknown
// outcome, and nothing is written twice.
func TestCommitWithUnknownOutcomeAndAnotherWriter(t *testing.T) {
	ctx := t.Context()
	eng, st := newLossy(t)
	run, err := eng.CreateRun(ctx, engine.NewRun{ID: "run_1", ThreadID: "thread_1", AssistantID: "asst_1"})
	require.NoError(t, err)
	_, err = eng.StartRun(ctx, run.ID)
	require.NoError(t, err)
	step, err := eng.CreateStep(ctx, engine.NewStep{RunID: run.ID, Type: lifecycle.TypeToolCalls})
	require.NoError(t, err)

	// A stored completion, then another writer's commit on the same step
	// (its metadata changed, still completed): version 3 tells nothing of
	// who wrote version 2.
	st.outcomes = []bool{true}
	st.meddle = func(ctx context.Context) {
		cur, err := st.GetStep(ctx, step.ID)
		require.NoError(t, err)
		cur.Metadata = lifecycle.Metadata{"by": "another writer"}
		_, err = st.Store.Commit(ctx, store.Events(events.Event{Type: events.TypeStepCompleted, At: start.Unix(), Step: &cur}))
		require.NoError(t, err)
	}
	_, err = eng.Complete(ctx, step.ID)
	require.ErrorIs(t, err, store.ErrOutcomeUnknown)
	require.Equal(t, []events.Type{
		events.TypeRunCreated, events.TypeRunInProgress, events.TypeStepCreated, events.TypeStepCompleted, events.TypeStepCompleted,
	}, eventTypes(t, st))

	// Not stored, and another writer took the version meanwhile: the
	// commit is made again, conflicts, and the machine decides on what the
	// other writer did.
	other, err := eng.CreateStep(ctx, engine.NewStep{RunID: run.ID, Type: lifecycle.TypeToolCalls})
	require.NoError(t, err)
	st.outcomes = []bool{false}
	st.meddle = func(ctx context.Context) {
		cur, err := st.GetStep(ctx, other.ID)
		require.NoError(t, err)
		cancelled, err := cur.Apply(lifecycle.Change{Trigger: lifecycle.TriggerCancel, At: start})
		require.NoError(t, err)
		_, err = st.Store.Commit(ctx, store.Events(events.Event{Type: events.TypeStepCancelled, At: start.Unix(), Step: &cancelled}))
		require.NoError(t, err)
	}
	_, err = eng.Complete(ctx, other.ID)
	require.ErrorIs(t, err, lifecycle.ErrInvalidTransition, "the step was cancelled by the other writer")
	got, err := st.GetStep(ctx, other.ID)
	require.NoError(t, err)
	require.Equal(t, lifecycle.StatusCancelled, got.Status)
}
