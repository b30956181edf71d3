package engine_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
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
		// its own index. Making the runs is not timed. They are made 1,000
		// at a time: stopping the timer reads the memory statistics, which
		// stops the world, and doing that every 20 steps disturbed the
		// steps' own figures.
		var runID string
		var ready []string
		heap0 := liveHeap()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if i%20 == 0 {
				if len(ready) == 0 {
					b.StopTimer()
					for range 1000 {
						ready = append(ready, startRun(b, f))
					}
					b.StartTimer()
				}
				runID, ready = ready[0], ready[1:]
			}
			step, err := f.CreateStep(ctx, engine.NewStep{RunID: runID, ThreadID: "thread_1", AssistantID: "asst_1", Type: lifecycle.TypeToolCalls})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Complete(ctx, step.ID); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/transition")
		// What the store keeps of each pair (its runs' share included):
		// every byte of it is memory the process touches for the first
		// time, which the calibration below prices.
		b.ReportMetric(float64(liveHeap()-heap0)/float64(b.N), "kept-B/op")
		runtime.KeepAlive(f)
	})

	b.Run("calibration-fresh-page", benchFreshPage)

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

// liveHeap returns the bytes of the heap still in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// startRun creates a run in progress and returns its id.
func startRun(b *testing.B, eng *engine.Engine) string {
	b.Helper()
	ctx := context.Background()
	run, err := eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_1", AssistantID: "asst_1"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := eng.StartRun(ctx, run.ID); err != nil {
		b.Fatal(err)
	}
	return run.ID
}

func newBenchFixture(b *testing.B) *engine.Engine {
	b.Helper()
	eng, err := engine.New(memory.New(), engine.WithIDs(engine.SeededIDs(1)))
	if err != nil {
		b.Fatal(err)
	}
	return eng
}

// BenchmarkExpireRun expires a run with 10,000 steps in progress on the
// memory store: one atomic write of 10,001 events. Its floors, in the same
// run: the lifecycle cascade alone (10,000 Step.Apply), and the store's
// commit of the same batch without the engine's reads.
func BenchmarkExpireRun(b *testing.B) {
	const steps = 10_000
	ctx := context.Background()
	setup := func(b *testing.B) (*engine.Engine, store.Store, string) {
		b.Helper()
		b.StopTimer()
		defer b.StartTimer()
		st := memory.New()
		eng, err := engine.New(st, engine.WithIDs(engine.SeededIDs(1)))
		if err != nil {
			b.Fatal(err)
		}
		runID := startRun(b, eng)
		for range steps {
			if _, err := eng.CreateStep(ctx, engine.NewStep{RunID: runID, Type: lifecycle.TypeToolCalls}); err != nil {
				b.Fatal(err)
			}
		}
		// Settle the setup's garbage now, so that the timed part pays for
		// its own collections only, not for the previous setup's.
		runtime.GC()
		return eng, st, runID
	}

	b.Run("engine-memory-10k-steps", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			eng, _, runID := setup(b)
			if _, err := eng.ExpireRun(ctx, runID); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("memory-commit-10k-steps", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, st, runID := setup(b)
			b.StopTimer()
			run, _ := st.GetRun(ctx, runID)
			inProgress, _ := st.StepsInProgress(ctx, runID)
			at := time.Unix(*run.ExpiresAt, 0)
			expired, _ := run.Apply(lifecycle.RunChange{Trigger: lifecycle.RunTriggerExpire, At: at})
			moved, _ := lifecycle.DefaultCascadePolicy().Cascade(expired, inProgress, at)
			evs := make([]events.Event, 0, len(moved)+1)
			for i := range moved {
				evs = append(evs, events.Event{Type: events.TypeStepExpired, At: at.Unix(), Step: &moved[i]})
			}
			evs = append(evs, events.Event{Type: events.TypeRunExpired, At: at.Unix(), Run: &expired})
			b.StartTimer()
			if _, err := st.Commit(ctx, store.Events(evs...)); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("lifecycle-cascade-10k-steps", func(b *testing.B) {
		_, st, runID := setup(b)
		run, _ := st.GetRun(ctx, runID)
		inProgress, _ := st.StepsInProgress(ctx, runID)
		at := time.Unix(*run.ExpiresAt, 0)
		expired, _ := run.Apply(lifecycle.RunChange{Trigger: lifecycle.RunTriggerExpire, At: at})
		policy := lifecycle.DefaultCascadePolicy()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := policy.Cascade(expired, inProgress, at); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkArmDeadlines measures arming a deadline (creating a run) with
// 100,000 deadlines already armed in the memory store's ordered index, and
// finding the earliest one. It reports the heap each armed run costs.
func BenchmarkArmDeadlines(b *testing.B) {
	const armed = 100_000
	ctx := context.Background()
	st := memory.New()
	eng, err := engine.New(st, engine.WithIDs(engine.SeededIDs(1)))
	if err != nil {
		b.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range armed {
		// Spread the deadlines: runs made over a day, 10 minutes each.
		if _, err := eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_1", AssistantID: "asst_1", TTL: time.Duration(1+i%86400) * time.Second}); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perRun := float64(after.HeapAlloc-before.HeapAlloc) / armed

	b.Run("create-run-100k-armed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_1", AssistantID: "asst_1"}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(perRun, "heap-B/armed-run")
	})
	b.Run("next-deadline-100k-armed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, err := st.NextDeadline(ctx); err != nil || !ok {
				b.Fatal(err, ok)
			}
		}
	})
}
