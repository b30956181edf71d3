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

// A batch naming one object twice is refused whatever its size: small
// batches compare every pair, large ones use maps.
func TestBatchNamingObjectTwiceAnySize(t *testing.T) {
	at := time.Unix(1761861531, 0)
	newStep := func(i int) *lifecycle.Step {
		return &lifecycle.Step{
			ID: fmt.Sprintf("step_%03d", i), CreatedAt: at.Unix(), AssistantID: "asst_1", ThreadID: "thread_1",
			RunID: "run_1", Type: lifecycle.TypeMessageCreation, Status: lifecycle.StatusInProgress,
			Details: lifecycle.MessageCreationDetails(fmt.Sprintf("msg_%03d", i)),
		}
	}
	run := &lifecycle.Run{ID: "run_1", CreatedAt: at.Unix(), ThreadID: "thread_1", AssistantID: "asst_1", Status: lifecycle.RunStatusQueued}
	for _, size := range []int{2, 3, 8, 9, 40} {
		for _, dup := range []string{"step", "run", "guard"} {
			s := memory.New()
			_, err := s.Commit(t.Context(), store.Events(events.Event{Type: events.TypeRunCreated, At: at.Unix(), Run: run}))
			require.NoError(t, err)
			b := store.Batch{}
			for i := range size - 1 {
				b.Events = append(b.Events, events.Event{Type: events.TypeStepCreated, At: at.Unix(), Step: newStep(i)})
			}
			switch dup {
			case "step":
				b.Events = append(b.Events, events.Event{Type: events.TypeStepCreated, At: at.Unix(), Step: newStep(0)})
			case "run":
				b.Guards = []store.Guard{{RunID: "run_1", Version: 1}}
				b.Events[len(b.Events)-1] = events.Event{Type: events.TypeRunCreated, At: at.Unix(), Run: run}
			case "guard":
				b.Guards = []store.Guard{{RunID: "run_1", Version: 1}, {RunID: "run_1", Version: 1}}
			}
			_, err = s.Commit(t.Context(), b)
			require.ErrorIs(t, err, store.ErrInvalid, "%d objects, %s named twice", size, dup)
			log, err := s.Events(t.Context(), 0, 100)
			require.NoError(t, err)
			require.Len(t, log, 1, "nothing of the refused batch was written")
		}
	}
}
