package replay_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/events/replay"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/memory"
)

var benchEvents = flag.Int("bench.events", 100_000, "how many events the log of BenchmarkReplay holds (1000000 for the full-size run)")

// writeBenchLog writes a log of about n events to path, as an engine would
// write it: runs created, started and completed, each with steps of both
// types created and completed (a tool call with its arguments, output and
// usage; a message), and one run in eight expiring with a step in
// progress, which the cascade expires with it. It returns the number of
// events written.
func writeBenchLog(tb testing.TB, path string, n int) int64 {
	tb.Helper()
	f, err := os.Create(path)
	require.NoError(tb, err)
	defer f.Close()
	w := events.NewWriter(f)
	var seq int64
	emit := func(typ events.Type, at int64, step *lifecycle.Step, run *lifecycle.Run) {
		seq++
		if err := w.Write(events.Event{Seq: seq, Type: typ, At: at, Step: step, Run: run}); err != nil {
			tb.Fatal(err)
		}
	}
	now := int64(1761861531)
	for i := 0; seq < int64(n); i++ {
		deadline := now + 600
		run := lifecycle.Run{
			ID: fmt.Sprintf("run_%024d", i), CreatedAt: now, ThreadID: fmt.Sprintf("thread_%024d", i),
			AssistantID: "asst_BFMmpHsel3a7MuFuKKY9i5uG", Status: lifecycle.RunStatusQueued, ExpiresAt: &deadline,
		}
		emit(events.TypeRunCreated, now, nil, &run)
		now++
		run = apply(tb, run, lifecycle.RunChange{Trigger: lifecycle.RunTriggerStart, At: time.Unix(now, 0)})
		emit(events.TypeRunInProgress, now, nil, &run)
		expire := i%8 == 7
		for j := range 4 {
			now++
			step := lifecycle.Step{
				ID: fmt.Sprintf("step_%019d_%04d", i, j), CreatedAt: now, AssistantID: run.AssistantID,
				ThreadID: run.ThreadID, RunID: run.ID, Status: lifecycle.StatusInProgress,
			}
			var final lifecycle.StepDetails
			if j%2 == 0 {
				call := func(out *string) lifecycle.StepDetails {
					return lifecycle.ToolCallsDetails(lifecycle.ToolCall{
						ID: fmt.Sprintf("call_%019d_%04d", i, j), Type: lifecycle.ToolCallFunction,
						Function: &lifecycle.FunctionCall{Name: "get_current_weather", Arguments: `{"location":"Paris","unit":"celsius"}`, Output: out},
					})
				}
				out := `{"temperature":18,"conditions":"partly cloudy"}`
				step.Type, step.Details, final = lifecycle.TypeToolCalls, call(nil), call(&out)
			} else {
				step.Type = lifecycle.TypeMessageCreation
				step.Details = lifecycle.MessageCreationDetails(fmt.Sprintf("msg_%019d_%04d", i, j))
				final = step.Details
			}
			emit(events.TypeStepCreated, now, &step, nil)
			if expire && j == 3 {
				// The run expires at its deadline with this step in
				// progress: the cascade's event first, then the run's.
				at := time.Unix(deadline, 0)
				expired, err := step.Apply(lifecycle.Change{Trigger: lifecycle.TriggerExpire, At: at})
				require.NoError(tb, err)
				emit(events.TypeStepExpired, deadline, &expired, nil)
				run = apply(tb, run, lifecycle.RunChange{Trigger: lifecycle.RunTriggerExpire, At: at})
				emit(events.TypeRunExpired, deadline, nil, &run)
				break
			}
			now++
			done, err := step.Apply(lifecycle.Change{
				Trigger: lifecycle.TriggerComplete, At: time.Unix(now, 0), Details: &final,
				Usage: &lifecycle.Usage{PromptTokens: 260, CompletionTokens: 12, TotalTokens: 272},
			})
			require.NoError(tb, err)
			emit(events.TypeStepCompleted, now, &done, nil)
		}
		if !expire {
			now++
			run = apply(tb, run, lifecycle.RunChange{Trigger: lifecycle.RunTriggerComplete, At: time.Unix(now, 0)})
			emit(events.TypeRunCompleted, now, nil, &run)
		}
	}
	require.NoError(tb, w.Sync())
	return seq
}

func apply(tb testing.TB, run lifecycle.Run, c lifecycle.RunChange) lifecycle.Run {
	tb.Helper()
	next, err := run.Apply(c)
	require.NoError(tb, err)
	return next
}

// BenchmarkReplay replays a log from a file into a memory store, and, for
// comparison, only decodes the same file ("decode"), and only checks it,
// into no store ("replay-check"): what the checks cost without the memory
// store's copies and indexes. Each reports events/s. The log has
// -bench.events events:
//
//	go test ./events/replay -run '^$' -bench Replay -benchtime 3x -bench.events 1000000
func BenchmarkReplay(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.jsonl")
	n := writeBenchLog(b, path, *benchEvents)
	info, err := os.Stat(path)
	require.NoError(b, err)
	// perSecond reports the throughput, and the CPU time (on all threads,
	// the collector's too) each event took, from the CPU time before the
	// loop: on a shared machine wall time says as much about the others.
	perSecond := func(b *testing.B, cpu0 time.Duration) {
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		if cpu1, ok := cpuTime(); ok {
			b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(n)/float64(b.N), "cpu-ns/event")
		}
	}
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(info.Size())
		cpu0, _ := cpuTime()
		for b.Loop() {
			f, err := os.Open(path)
			require.NoError(b, err)
			r := events.NewReader(f, events.ReadOptions{File: path})
			var read int64
			for {
				_, err := r.Read()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err) // not require: its Helper call costs as much as a decode
				}
				read++
			}
			require.Equal(b, n, read)
			require.NoError(b, f.Close())
		}
		perSecond(b, cpu0)
	})
	replayInto := func(newStore func() store.Store) func(b *testing.B) {
		return func(b *testing.B) {
			b.SetBytes(info.Size())
			cpu0, _ := cpuTime()
			for b.Loop() {
				f, err := os.Open(path)
				require.NoError(b, err)
				rep, err := replay.Run(context.Background(), newStore(), events.NewReader(f, events.ReadOptions{File: path}), replay.Options{})
				require.NoError(b, err)
				require.Equal(b, n, rep.Applied)
				require.NoError(b, f.Close())
			}
			perSecond(b, cpu0)
		}
	}
	b.Run("replay", replayInto(func() store.Store { return memory.New() }))
	b.Run("replay-check", replayInto(func() store.Store { return nil }))
}
