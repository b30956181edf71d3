package server_test

import (
	"context"
	"crypto/rand"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/server"
	"github.com/runstep/runstep/store/postgres"
)

// An event that engine A commits to a shared Postgres database reaches a
// client of server B, which runs in another engine on another store (as
// it would in another process).
func TestStreamAcrossEngines(t *testing.T) {
	dsn := os.Getenv("RUNSTEP_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("RUNSTEP_POSTGRES_DSN is not set")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	schema := "runstep_server_" + rand.Text()[:12]
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), dsn)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		_, err = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		require.NoError(t, err)
	})
	clk := clock.NewMock()
	clk.Set(start)
	open := func() *engine.Engine {
		st, err := postgres.Open(ctx, dsn, postgres.WithSchema(schema), postgres.WithClock(clk))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, st.Close()) })
		eng, err := engine.New(st, engine.WithClock(clk))
		require.NoError(t, err)
		return eng
	}
	writer, reader := open(), open()

	// Server B follows the database through its engine's Run loop.
	done := make(chan error)
	go func() { done <- reader.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	srv, err := server.New(reader)
	require.NoError(t, err)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	f := &fixture{ts: ts}

	run, err := writer.CreateRun(ctx, engine.NewRun{ID: "run_1", ThreadID: threadID, AssistantID: assistantID})
	require.NoError(t, err)
	c := f.stream(t, "/v1/threads/thread_1/runs/run_1/events", 0)
	assert.Equal(t, "thread.run.created", c.next(t).Event)

	// Commits by engine A after the client connected.
	_, err = writer.StartRun(ctx, run.ID)
	require.NoError(t, err)
	step, err := writer.CreateStep(ctx, engine.NewStep{RunID: run.ID, Type: lifecycle.TypeToolCalls})
	require.NoError(t, err)
	clk.Add(time.Second)
	_, err = writer.Complete(ctx, step.ID)
	require.NoError(t, err)
	_, err = writer.CompleteRun(ctx, run.ID)
	require.NoError(t, err)

	for _, want := range []string{
		"thread.run.in_progress", "thread.run.step.created", "thread.run.step.completed", "thread.run.completed", "done",
	} {
		assert.Equal(t, want, c.next(t).Event)
	}
	c.end(t)
}
