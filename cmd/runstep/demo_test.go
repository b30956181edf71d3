package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/internal/schematest"
	"github.com/runstep/runstep/lifecycle"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// demoStart is a fixed start for the simulated clock, so the demo's output
// is the same every time.
var demoStart = time.Date(2025, 10, 30, 21, 58, 51, 0, time.UTC)

// scenarioEvents are the events the demo's scenario must produce: each step
// and run event a caller or a run's end brings about.
var scenarioEvents = []events.Type{
	events.TypeStepCreated, events.TypeStepCompleted, events.TypeStepFailed, events.TypeStepCancelled,
	events.TypeStepExpired,
	events.TypeRunCreated, events.TypeRunInProgress, events.TypeRunRequiresAction, events.TypeRunQueued,
	events.TypeRunCompleted, events.TypeRunExpired, events.TypeRunCancelling, events.TypeRunCancelled,
}

func TestDemoCommand(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "demo.jsonl")

	code, stdout, stderr := runCLI("demo", "--db", filepath.Join(t.TempDir(), "demo.db"), "--log", logPath)

	require.Equal(t, exitOK, code, stderr)
	assert.Empty(t, stderr)
	for _, typ := range scenarioEvents {
		assert.Contains(t, stdout, string(typ))
	}
	assert.Contains(t, stdout, string(lifecycle.ErrorCodeRateLimitExceeded))

	logged := requireValidLog(t, logPath)
	var types []events.Type
	for _, ev := range logged {
		types = append(types, ev.Type)
		assert.Contains(t, stdout, objectID(ev))
	}
	assert.Subset(t, types, scenarioEvents)
}

// objectID is the id of the step or run an event carries.
func objectID(ev events.Event) string {
	if ev.Step != nil {
		return ev.Step.ID
	}
	return ev.Run.ID
}

// requireValidLog checks the JSON-lines log at path: every line decodes as
// an event, a step event's data is a step the spec's schema accepts, a run
// event's data is a "thread.run", and the seqs run 1..n with no gap. It
// returns the events.
func requireValidLog(t *testing.T, path string) []events.Event {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()

	var evs []events.Event
	lines := bufio.NewScanner(f)
	lines.Buffer(nil, 1<<20)
	for n := 1; lines.Scan(); n++ {
		line := lines.Bytes()
		var ev events.Event
		require.NoError(t, json.Unmarshal(line, &ev), "line %d: %s", n, line)
		var raw struct {
			Data json.RawMessage `json:"data"`
		}
		require.NoError(t, json.Unmarshal(line, &raw), "line %d", n)
		if ev.Type.IsStep() {
			require.NotNil(t, ev.Step, "line %d: %s", n, line)
			schematest.RequireValidStep(t, raw.Data)
		} else {
			require.NotNil(t, ev.Run, "line %d: %s", n, line)
			var obj struct {
				Object string `json:"object"`
			}
			require.NoError(t, json.Unmarshal(raw.Data, &obj), "line %d", n)
			require.Equal(t, lifecycle.ObjectRun, obj.Object, "line %d: object", n)
		}
		require.EqualValues(t, n, ev.Seq, "line %d: seq", n)
		evs = append(evs, ev)
	}
	require.NoError(t, lines.Err())
	require.NotEmpty(t, evs, "empty log")
	return evs
}

func TestDemoScenario(t *testing.T) {
	var out, log bytes.Buffer

	require.NoError(t, demo(context.Background(), &out, demoOptions{Seed: 1, Start: demoStart, Log: &log}))

	path := filepath.Join(t.TempDir(), "demo.jsonl")
	require.NoError(t, os.WriteFile(path, log.Bytes(), 0o644))
	evs := requireValidLog(t, path)

	// Each object's events, in order, say what happened to it; the runs
	// and each run's steps are listed in the order they were created.
	var runs []string
	steps := map[string][]string{} // by run id
	history := map[string][]events.Type{}
	last := map[string]int{} // index in evs of each object's last event
	for i, ev := range evs {
		id := objectID(ev)
		switch {
		case ev.Type == events.TypeRunCreated:
			runs = append(runs, id)
		case ev.Type == events.TypeStepCreated:
			steps[ev.Step.RunID] = append(steps[ev.Step.RunID], id)
		}
		history[id] = append(history[id], ev.Type)
		last[id] = i
		if ev.Step != nil {
			assert.Contains(t, history, ev.Step.RunID, "step %s of a run not created yet", id)
		}
		var thread, assistant string
		if ev.Step != nil {
			thread, assistant = ev.Step.ThreadID, ev.Step.AssistantID
		} else {
			thread, assistant = ev.Run.ThreadID, ev.Run.AssistantID
		}
		assert.Equal(t, demoThreadID, thread, "event %d", ev.Seq)
		assert.Equal(t, demoAssistantID, assistant, "event %d", ev.Seq)
	}
	require.Len(t, runs, 3)
	wantRuns := [][]events.Type{
		{events.TypeRunCreated, events.TypeRunInProgress, events.TypeRunRequiresAction, events.TypeRunQueued,
			events.TypeRunInProgress, events.TypeRunCompleted},
		{events.TypeRunCreated, events.TypeRunInProgress, events.TypeRunRequiresAction, events.TypeRunExpired},
		{events.TypeRunCreated, events.TypeRunInProgress, events.TypeRunCancelling, events.TypeRunCancelled},
	}
	wantSteps := [][][]events.Type{
		{
			{events.TypeStepCreated, events.TypeStepCompleted},
			{events.TypeStepCreated, events.TypeStepCompleted},
			{events.TypeStepCreated, events.TypeStepFailed},
			{events.TypeStepCreated, events.TypeStepCancelled},
		},
		{{events.TypeStepCreated, events.TypeStepExpired}},
		{{events.TypeStepCreated, events.TypeStepCancelled}},
	}
	for i, run := range runs {
		assert.Equal(t, wantRuns[i], history[run], "run %d (%s)", i+1, run)
		require.Len(t, steps[run], len(wantSteps[i]), "steps of run %d (%s)", i+1, run)
		for j, step := range steps[run] {
			assert.Equal(t, wantSteps[i][j], history[step], "step %d (%s) of run %d", j+1, step, i+1)
		}
	}

	final := map[string]events.Event{}
	for _, ev := range evs {
		final[objectID(ev)] = ev
	}

	// Run 1: the weather call completes with its output and usage, once
	// the output is submitted and the run is back in progress.
	lookup := final[steps[runs[0]][0]].Step
	assert.Equal(t, lifecycle.TypeToolCalls, lookup.Type)
	require.Len(t, lookup.Details.ToolCalls, 1)
	call := lookup.Details.ToolCalls[0].Function
	require.NotNil(t, call)
	assert.Equal(t, "get_current_weather", call.Name)
	assert.JSONEq(t, `{"location":"Paris"}`, call.Arguments)
	require.NotNil(t, call.Output)
	assert.NotEmpty(t, *call.Output)
	require.NotNil(t, lookup.Usage)
	assert.Positive(t, lookup.Usage.TotalTokens)
	resumed := slices.IndexFunc(evs, func(ev events.Event) bool {
		return ev.Type == events.TypeRunQueued && ev.Run.ID == runs[0]
	})
	require.GreaterOrEqual(t, resumed, 0)
	assert.Greater(t, last[lookup.ID], resumed, "the tool call completed before its output was submitted")

	assert.Equal(t, lifecycle.TypeMessageCreation, final[steps[runs[0]][1]].Step.Type)

	limited := final[steps[runs[0]][2]].Step
	assert.Equal(t, lifecycle.TypeToolCalls, limited.Type)
	require.NotNil(t, limited.LastError)
	assert.Equal(t, lifecycle.ErrorCodeRateLimitExceeded, limited.LastError.Code)

	// Run 1 completes after its last step has ended, and clears its
	// deadline.
	completed := final[runs[0]].Run
	require.NotNil(t, completed.CompletedAt)
	assert.Nil(t, completed.ExpiresAt)
	for _, step := range steps[runs[0]] {
		assert.Less(t, last[step], last[runs[0]], "step %s ends after its run completes", step)
	}

	// Run 2 expires as of its deadline, created_at + 10 minutes, though
	// the sweep noticed it later; its step expires at the same time.
	created := evs[slices.IndexFunc(evs, func(ev events.Event) bool { return objectID(ev) == runs[1] })].Run
	require.NotNil(t, created.ExpiresAt)
	assert.Equal(t, created.CreatedAt+int64(lifecycle.DefaultRunTTL/time.Second), *created.ExpiresAt)
	expired := final[runs[1]]
	require.NotNil(t, expired.Run.ExpiresAt)
	assert.Equal(t, *created.ExpiresAt, *expired.Run.ExpiresAt)
	assert.Equal(t, *created.ExpiresAt, expired.At)
	stale := final[steps[runs[1]][0]].Step
	require.NotNil(t, stale.ExpiredAt)
	assert.Equal(t, *expired.Run.ExpiresAt, *stale.ExpiredAt)

	// Run 3's step is cancelled when the run is, at the same time.
	cancelled := final[runs[2]].Run
	require.NotNil(t, cancelled.CancelledAt)
	dropped := final[steps[runs[2]][0]].Step
	require.NotNil(t, dropped.CancelledAt)
	assert.Equal(t, *cancelled.CancelledAt, *dropped.CancelledAt)

	// A cascade writes each step's event just before the run's, in one
	// commit.
	for _, run := range runs[1:] {
		end := last[run]
		for i, step := range steps[run] {
			assert.Equal(t, end-len(steps[run])+i, last[step], "step %s's last event, of run %s", step, run)
			assert.Equal(t, evs[end].At, evs[last[step]].At, "step %s's last event, of run %s", step, run)
		}
	}

	// Simulated time moves on from the start given; the events of one
	// commit share their time, and the expiry is stamped with the deadline,
	// which came before the sweep but after everything else.
	assert.Equal(t, demoStart.Unix(), evs[0].At)
	for i := 1; i < len(evs); i++ {
		assert.GreaterOrEqual(t, evs[i].At, evs[i-1].At, "event %d", evs[i].Seq)
	}

	// The refusals are shown, and write no event.
	assert.Contains(t, out.String(), "refused: complete")
	assert.Contains(t, out.String(), "refused: cancel")
	assert.Contains(t, out.String(), "ExpireDue")
	assert.Len(t, evs, 26)
}

func TestDemoIsReproducible(t *testing.T) {
	demoOutput := func(seed uint64) string {
		var out bytes.Buffer
		require.NoError(t, demo(context.Background(), &out, demoOptions{Seed: seed, Start: demoStart}))
		return out.String()
	}

	assert.Equal(t, demoOutput(1), demoOutput(1))
	assert.NotEqual(t, demoOutput(1), demoOutput(2))
}

func TestDemoStartIsTruncatedToTheSecond(t *testing.T) {
	var a, b bytes.Buffer
	require.NoError(t, demo(context.Background(), &a, demoOptions{Seed: 1, Start: demoStart}))
	require.NoError(t, demo(context.Background(), &b, demoOptions{Seed: 1, Start: demoStart.Add(999 * time.Millisecond)}))

	assert.Equal(t, a.String(), b.String())
}

// TestDemoGolden pins the demo's output and its event log for seed 1 and a
// fixed start. Run with -update to rewrite them after an intended change.
func TestDemoGolden(t *testing.T) {
	var out, log bytes.Buffer
	require.NoError(t, demo(context.Background(), &out, demoOptions{Seed: 1, Start: demoStart, Log: &log}))

	for name, got := range map[string][]byte{"demo.golden": out.Bytes(), "demo.jsonl": log.Bytes()} {
		path := filepath.Join("testdata", name)
		if *update {
			require.NoError(t, os.WriteFile(path, got, 0o644))
			continue
		}
		want, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got), "%s differs; rerun with -update if the change is intended", path)
	}
}

func TestDemoLogFileError(t *testing.T) {
	code, stdout, stderr := runCLI("demo", "--db", ":memory:", "--log", filepath.Join(t.TempDir(), "no", "such", "dir", "demo.jsonl"))

	assert.Equal(t, exitFailure, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "runstep demo:")
}
