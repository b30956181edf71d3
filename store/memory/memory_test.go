package memory_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/memory"
	"github.com/runstep/runstep/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memory.New() })
}

// TestEventsAcrossChunks reads a log long enough to span several of the
// store's log chunks (4096 events each), with batches and pages that
// straddle their boundaries. The conformance suite never writes that many
// events.
func TestEventsAcrossChunks(t *testing.T) {
	const (
		total = 3*4096 + 5
		batch = 7 // not a divisor of 4096: batches straddle boundaries
	)
	s := memory.New()
	at := time.Unix(1761861531, 0)
	id := func(seq int) string { return fmt.Sprintf("step_%05d", seq) }
	for seq := 1; seq <= total; seq += batch {
		var evs []events.Event
		for i := seq; i < seq+batch && i <= total; i++ {
			step := lifecycle.Step{
				ID: id(i), CreatedAt: at.Unix(), AssistantID: "asst_chunks", ThreadID: "thread_chunks",
				RunID: "run_chunks", Type: lifecycle.TypeMessageCreation, Status: lifecycle.StatusInProgress,
				Details: lifecycle.MessageCreationDetails("msg_" + id(i)),
			}
			evs = append(evs, events.Event{Type: events.TypeStepCreated, At: step.CreatedAt, Step: &step})
		}
		first, err := s.Commit(t.Context(), store.Events(evs...))
		require.NoError(t, err)
		require.Equal(t, int64(seq), first)
	}

	check := func(after int64, limit int) {
		t.Helper()
		evs, err := s.Events(t.Context(), after, limit)
		require.NoError(t, err)
		require.Len(t, evs, min(limit, total-int(after)), "after %d, limit %d", after, limit)
		for i, ev := range evs {
			seq := int(after) + i + 1
			require.Equal(t, int64(seq), ev.Seq, "after %d, limit %d", after, limit)
			require.Equal(t, id(seq), ev.Step.ID, "after %d, limit %d", after, limit)
		}
	}
	for _, boundary := range []int64{4096, 2 * 4096, 3 * 4096} {
		for after := boundary - 3; after <= boundary+3; after++ {
			for _, limit := range []int{1, 2, 7, 5000} {
				check(after, limit)
			}
		}
	}
	check(0, total+1)
}
