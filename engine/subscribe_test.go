package engine_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
)

func TestSubscribeCatchesUpThenFollows(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := f.toolStep(t)

	got := make(chan events.Event)
	done := make(chan error, 1)
	go func() {
		for ev, err := range f.eng.Subscribe(ctx, 0) {
			if err != nil {
				done <- err
				return
			}
			got <- ev
		}
	}()
	assert.Equal(t, "run_1", (<-got).Run.ID, "the events committed before subscribing")
	assert.Equal(t, "run_1", (<-got).Run.ID)
	assert.Equal(t, first.ID, (<-got).Step.ID)

	_, err := f.eng.Complete(ctx, first.ID)
	require.NoError(t, err)
	ev := <-got
	assert.Equal(t, int64(4), ev.Seq)
	assert.Equal(t, events.TypeStepCompleted, ev.Type)

	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

// A subscriber that reads nothing while thousands of events commit holds
// up no writer, and later reads every event, in order.
func TestSlowSubscriberMissesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const steps = 1000
	for range steps {
		s := f.toolStep(t)
		_, err := f.eng.Cancel(ctx, s.ID)
		require.NoError(t, err)
	}
	var seq int64
	for ev, err := range f.eng.Subscribe(ctx, 0) {
		require.NoError(t, err)
		seq++
		require.Equal(t, seq, ev.Seq)
		if seq == 2*steps+2 {
			break
		}
	}
}

func TestSubscribeFromTheMiddle(t *testing.T) {
	f := newFixture(t)
	for range 5 {
		f.toolStep(t)
	}
	for ev, err := range f.eng.Subscribe(context.Background(), 3) {
		require.NoError(t, err)
		assert.Equal(t, int64(4), ev.Seq)
		assert.Equal(t, events.TypeStepCreated, ev.Type)
		break
	}
}
