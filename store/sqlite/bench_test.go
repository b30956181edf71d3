package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/sqlite"
)

// BenchmarkTransitions measures, in one run, durable transitions per second
// (synchronous=FULL) on SQLite: a step Complete through the engine, by one
// writer and by 32 concurrent writers (whose commits share transactions),
// against the floor, the bare batched insert of the same rows: a
// database/sql transaction with prepared statements writing b.N steps rows
// and b.N events rows of the same JSON, committed once. Creating the run and
// its steps is not timed.
//
//	go test -run '^$' -bench Transitions -benchtime 50000x -count 3 ./store/sqlite/
func BenchmarkTransitions(b *testing.B) {
	for _, writers := range []int{1, 32} {
		b.Run(fmt.Sprintf("engine-complete/writers=%d", writers), func(b *testing.B) {
			benchEngine(b, writers)
		})
	}
	b.Run("floor/insert-events", func(b *testing.B) { benchFloor(b, false) })
	b.Run("floor/update-steps+insert-events", func(b *testing.B) { benchFloor(b, true) })
}

// benchStep is a step as an orchestrator makes it: a function call with
// its arguments, and metadata.
func benchStep(i int, runID string, createdAt int64) lifecycle.Step {
	return lifecycle.Step{
		ID: fmt.Sprintf("step_%024d", i), CreatedAt: createdAt, AssistantID: "asst_abc123", ThreadID: "thread_abc123",
		RunID: runID, Type: lifecycle.TypeToolCalls, Status: lifecycle.StatusInProgress,
		Details: lifecycle.ToolCallsDetails(lifecycle.ToolCall{
			ID: fmt.Sprintf("call_%024d", i), Type: lifecycle.ToolCallFunction,
			Function: &lifecycle.FunctionCall{Name: "get_current_weather", Arguments: `{"location":"Paris","unit":"celsius"}`},
		}),
		Metadata: lifecycle.Metadata{"origin": "bench"},
	}
}

func benchEngine(b *testing.B, writers int) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	clk := clock.NewMock()
	clk.Set(time.Unix(1761861531, 0))
	eng, err := engine.New(st, engine.WithClock(clk), engine.WithRunTTL(24*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	run, err := eng.CreateRun(ctx, engine.NewRun{ID: "run_bench", ThreadID: "thread_abc123", AssistantID: "asst_abc123"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := eng.StartRun(ctx, run.ID); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, b.N)
	const chunk = 1000
	for from := 0; from < b.N; from += chunk {
		evs := make([]events.Event, 0, chunk)
		for i := from; i < min(from+chunk, b.N); i++ {
			step := benchStep(i, run.ID, clk.Now().Unix())
			ids[i] = step.ID
			evs = append(evs, events.Event{Type: events.TypeStepCreated, At: step.CreatedAt, Step: &step})
		}
		if _, err := st.Commit(ctx, store.Events(evs...)); err != nil {
			b.Fatal(err)
		}
	}
	clk.Add(time.Second)

	var next atomic.Int64
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	b.ResetTimer()
	for range writers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if _, err := eng.Complete(ctx, ids[i]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
}

// benchFloor writes the rows of b.N completions, each of the JSON the
// engine writes, in one transaction on a connection with the store's
// settings, and commits it.
func benchFloor(b *testing.B, updates bool) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "floor.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=5000")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		`CREATE TABLE steps (id TEXT PRIMARY KEY, run_id TEXT NOT NULL, created_at INTEGER NOT NULL, status TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL) STRICT`,
		`CREATE INDEX steps_by_run ON steps (run_id, created_at, id)`,
		`CREATE INDEX steps_in_progress ON steps (run_id, created_at, id) WHERE status = 'in_progress'`,
		`CREATE TABLE events (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, at INTEGER NOT NULL, object TEXT NOT NULL, object_id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL) STRICT`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	ids := make([]string, b.N)
	created := make([]string, b.N)
	completed := make([]string, b.N)
	for i := range b.N {
		step := benchStep(i, "run_bench", 1761861531)
		ids[i] = step.ID
		data, err := step.MarshalJSON()
		if err != nil {
			b.Fatal(err)
		}
		created[i] = string(data)
		at := step.CreatedAt + 1
		step.Status, step.CompletedAt = lifecycle.StatusCompleted, &at
		if data, err = step.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
		completed[i] = string(data)
	}
	if updates {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		ins, err := tx.PrepareContext(ctx, "INSERT INTO steps (id, run_id, created_at, status, version, data) VALUES (?, 'run_bench', 1761861531, 'in_progress', 1, ?)")
		if err != nil {
			b.Fatal(err)
		}
		for i := range b.N {
			if _, err := ins.ExecContext(ctx, ids[i], created[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}

	b.ResetTimer()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	insert, err := tx.PrepareContext(ctx, "INSERT INTO events (seq, type, at, object, object_id, version, data) VALUES (?, 'thread.run.step.completed', 1761861532, 'step', ?, 2, ?)")
	if err != nil {
		b.Fatal(err)
	}
	update, err := tx.PrepareContext(ctx, "UPDATE steps SET status = 'completed', version = version + 1, data = ? WHERE id = ? AND version = 1")
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		if updates {
			if _, err := update.ExecContext(ctx, completed[i], ids[i]); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := insert.ExecContext(ctx, i+1, ids[i], completed[i]); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
}
