package engine_test

import (
	"context"
	"testing"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store/memory"
)

// BenchmarkTransition compares, in one run, the engine's whole transition
// path against its floors: the raw looplab transition (one reused FSM,
// SetState then Event), the compiled table runstep uses (Step.Apply), and a
// hand-written switch. Record the figures in BENCHMARKS.md.
func BenchmarkTransition(b *testing.B) {
	ctx := context.Background()

	b.Run("engine-memory-create+complete", func(b *testing.B) {
		f := newBenchFixture(b)
		// Runs of 20 steps, a realistic shape; a run's size only matters to
		// its own index (see the memory store's benchmarks for large runs).
		runs := engine.SeededIDs(2)
		var runID string
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i%20 == 0 {
				runID = runs.NewID("run_")
			}
			step, err := f.CreateStep(ctx, engine.NewStep{RunID: runID, ThreadID: "thread_1", AssistantID: "asst_1", Type: lifecycle.TypeToolCalls})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Complete(ctx, step.ID); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("looplab-reused-fsm", func(b *testing.B) {
		m := lifecycle.StepMachine(lifecycle.StatusInProgress)
		b.ReportAllocs()
		for b.Loop() {
			m.SetState(string(lifecycle.StatusInProgress))
			if err := m.Event(ctx, string(lifecycle.TriggerComplete)); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("lifecycle-apply", func(b *testing.B) {
		step := lifecycle.Step{ID: "step_1", Type: lifecycle.TypeToolCalls, Status: lifecycle.StatusInProgress}
		change := lifecycle.Change{Trigger: lifecycle.TriggerComplete}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := step.Apply(change); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("hand-written-switch", func(b *testing.B) {
		status, trigger := lifecycle.StatusInProgress, lifecycle.TriggerComplete
		var sink lifecycle.Status
		b.ReportAllocs()
		for b.Loop() {
			sink = next(status, trigger)
		}
		_ = sink
	})
}

//go:noinline
func next(s lifecycle.Status, t lifecycle.Trigger) lifecycle.Status {
	if s != lifecycle.StatusInProgress {
		return ""
	}
	switch t {
	case lifecycle.TriggerComplete:
		return lifecycle.StatusCompleted
	case lifecycle.TriggerFail:
		return lifecycle.StatusFailed
	case lifecycle.TriggerCancel:
		return lifecycle.StatusCancelled
	case lifecycle.TriggerExpire:
		return lifecycle.StatusExpired
	}
	return ""
}

func newBenchFixture(b *testing.B) *engine.Engine {
	b.Helper()
	eng, err := engine.New(memory.New(), engine.WithIDs(engine.SeededIDs(1)))
	if err != nil {
		b.Fatal(err)
	}
	return eng
}
