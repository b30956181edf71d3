// End-to-end scenarios: an orchestrator's view of runstep, run against every
// store backend on a mock clock, asserting exact timestamps.
package runstep_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/internal/schematest"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/memory"
	"github.com/runstep/runstep/store/postgres"
	"github.com/runstep/runstep/store/sqlite"
)

// backends lists every store the scenarios run against.
var backends = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"memory", func(t *testing.T) store.Store { return memory.New() }},
	{"sqlite", func(t *testing.T) store.Store {
		st, err := sqlite.Open(filepath.Join(t.TempDir(), "runstep.db"))
		require.NoError(t, err)
		return st
	}},
	{"postgres", openPostgres},
}

// openPostgres opens a store in a fresh schema of the database
// RUNSTEP_POSTGRES_DSN names, dropped when the test ends; without the
// variable the test skips.
func openPostgres(t *testing.T) store.Store {
	dsn := os.Getenv("RUNSTEP_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("RUNSTEP_POSTGRES_DSN is not set")
	}
	schema := "runstep_e2e_" + rand.Text()[:12]
	st, err := postgres.Open(t.Context(), dsn, postgres.WithSchema(schema))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx := context.Background() // the test's context is done by now
		conn, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		require.NoError(t, err)
	})
	return st
}

func forEachBackend(t *testing.T, scenario func(t *testing.T, st store.Store)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			t.Cleanup(func() { require.NoError(t, st.Close()) })
			scenario(t, st)
		})
	}
}

// A run with a tool call that completes with its output and usage, a
// message, a step that hits the rate limit and one the user cancels. Every
// *_at is the mock clock's time when the call was made.
func TestOrchestratorScenario(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		clk := clock.NewMock()
		t0 := time.Unix(1761861531, 0)
		clk.Set(t0)
		eng, err := engine.New(st, engine.WithClock(clk), engine.WithIDs(engine.SeededIDs(1)))
		require.NoError(t, err)
		_, err = eng.CreateRun(ctx, engine.NewRun{ID: "run_1", ThreadID: "thread_1", AssistantID: "asst_1"})
		require.NoError(t, err)
		_, err = eng.StartRun(ctx, "run_1")
		require.NoError(t, err)
		newStep := engine.NewStep{RunID: "run_1", ThreadID: "thread_1", AssistantID: "asst_1", Type: lifecycle.TypeToolCalls}

		tool, err := eng.CreateStep(ctx, newStep)
		require.NoError(t, err)
		clk.Add(2 * time.Second)
		output := "warm and sunny"
		tool, err = eng.Complete(ctx, tool.ID,
			engine.FinalDetails(lifecycle.ToolCallsDetails(lifecycle.ToolCall{
				ID: "call_1", Type: lifecycle.ToolCallFunction,
				Function: &lifecycle.FunctionCall{Name: "get_current_weather", Arguments: `{"location":"Paris"}`, Output: &output},
			})),
			engine.FinalUsage(lifecycle.Usage{PromptTokens: 260, CompletionTokens: 12, TotalTokens: 272}))
		require.NoError(t, err)

		clk.Add(time.Second)
		message, err := eng.CreateStep(ctx, engine.NewStep{RunID: "run_1", ThreadID: "thread_1", AssistantID: "asst_1",
			Type: lifecycle.TypeMessageCreation, Details: lifecycle.MessageCreationDetails("msg_1")})
		require.NoError(t, err)
		clk.Add(1500 * time.Millisecond)
		message, err = eng.Complete(ctx, message.ID)
		require.NoError(t, err)

		limited, err := eng.CreateStep(ctx, newStep)
		require.NoError(t, err)
		clk.Add(5 * time.Second)
		limited, err = eng.Fail(ctx, limited.ID, lifecycle.LastError{Code: lifecycle.ErrorCodeRateLimitExceeded, Message: "Rate limit reached"})
		require.NoError(t, err)

		cancelled, err := eng.CreateStep(ctx, newStep)
		require.NoError(t, err)
		clk.Add(time.Minute)
		cancelled, err = eng.Cancel(ctx, cancelled.ID)
		require.NoError(t, err)
		_, err = eng.Complete(ctx, cancelled.ID)
		require.ErrorIs(t, err, lifecycle.ErrInvalidTransition)

		at := func(seconds int64) *int64 { v := t0.Unix() + seconds; return &v }
		assert.Equal(t, t0.Unix(), tool.CreatedAt)
		assert.Equal(t, at(2), tool.CompletedAt)
		assert.Equal(t, output, *tool.Details.ToolCalls[0].Function.Output)
		assert.Equal(t, int64(272), tool.Usage.TotalTokens)
		assert.Equal(t, t0.Unix()+3, message.CreatedAt)
		assert.Equal(t, at(4), message.CompletedAt, "4.5 s is stamped as 4: whole seconds")
		assert.Equal(t, at(9), limited.FailedAt)
		assert.Equal(t, lifecycle.ErrorCodeRateLimitExceeded, limited.LastError.Code)
		assert.Equal(t, at(69), cancelled.CancelledAt)
		assert.Nil(t, cancelled.CompletedAt)

		list, err := eng.ListSteps(ctx, engine.ListParams{RunID: "run_1", Order: engine.OrderAsc})
		require.NoError(t, err)
		assert.Equal(t, []lifecycle.Step{tool, message, limited, cancelled}, list.Data)

		_, err = eng.CompleteRun(ctx, "run_1")
		require.NoError(t, err)

		var got []events.Type
		var seq int64
		for ev, err := range eng.Subscribe(ctx, 0) {
			require.NoError(t, err)
			seq++
			require.Equal(t, seq, ev.Seq, "gapless")
			got = append(got, ev.Type)
			if ev.Step != nil {
				data, err := json.Marshal(ev.Step)
				require.NoError(t, err)
				schematest.RequireValidStep(t, data)
			}
			if seq == 11 {
				break
			}
		}
		assert.Equal(t, []events.Type{
			events.TypeRunCreated, events.TypeRunInProgress,
			events.TypeStepCreated, events.TypeStepCompleted,
			events.TypeStepCreated, events.TypeStepCompleted,
			events.TypeStepCreated, events.TypeStepFailed,
			events.TypeStepCreated, events.TypeStepCancelled,
			events.TypeRunCompleted,
		}, got)
	})
}
