package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
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

// scenarioEvents are the events the demo's scenario must produce: a step
// created, and each ending a caller brings about.
var scenarioEvents = []events.Type{
	events.TypeStepCreated, events.TypeStepCompleted, events.TypeStepFailed, events.TypeStepCancelled,
}

func TestDemoCommand(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "demo.jsonl")

	code, stdout, stderr := runCLI("demo", "--log", logPath)

	require.Equal(t, exitOK, code, stderr)
	assert.Empty(t, stderr)
	for _, typ := range scenarioEvents {
		assert.Contains(t, stdout, string(typ))
	}
	assert.Contains(t, stdout, "run_demo")
	assert.Contains(t, stdout, string(lifecycle.ErrorCodeRateLimitExceeded))

	logged := requireValidLog(t, logPath)
	var types []events.Type
	for _, ev := range logged {
		types = append(types, ev.Type)
		assert.Contains(t, stdout, ev.Step.ID)
	}
	assert.Subset(t, types, scenarioEvents)
}

// requireValidLog checks the JSON-lines log at path: every line decodes as
// an event whose data the spec's schema accepts, and the seqs run 1..n with
// no gap. It returns the events.
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
		schematest.RequireValidStep(t, raw.Data)
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

	// Each step's events, in order, say what happened to it.
	var order []string
	history := map[string][]events.Type{}
	for _, ev := range evs {
		if _, ok := history[ev.Step.ID]; !ok {
			order = append(order, ev.Step.ID)
		}
		history[ev.Step.ID] = append(history[ev.Step.ID], ev.Type)
		assert.True(t, strings.HasPrefix(ev.Step.RunID, "run_demo"), ev.Step.RunID)
		assert.Equal(t, demoThreadID, ev.Step.ThreadID)
		assert.Equal(t, demoAssistantID, ev.Step.AssistantID)
	}
	require.Len(t, order, 4)
	wantHistory := [][]events.Type{
		{events.TypeStepCreated, events.TypeStepCompleted},
		{events.TypeStepCreated, events.TypeStepCompleted},
		{events.TypeStepCreated, events.TypeStepFailed},
		{events.TypeStepCreated, events.TypeStepCancelled},
	}
	for i, id := range order {
		assert.Equal(t, wantHistory[i], history[id], "step %d (%s)", i+1, id)
	}

	// The weather call completes with its output and usage.
	final := map[string]*lifecycle.Step{}
	for _, ev := range evs {
		final[ev.Step.ID] = ev.Step
	}
	lookup := final[order[0]]
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

	assert.Equal(t, lifecycle.TypeMessageCreation, final[order[1]].Type)

	limited := final[order[2]]
	assert.Equal(t, lifecycle.TypeToolCalls, limited.Type)
	require.NotNil(t, limited.LastError)
	assert.Equal(t, lifecycle.ErrorCodeRateLimitExceeded, limited.LastError.Code)

	// Simulated time moves on between actions, from the start given.
	assert.Equal(t, demoStart.Unix(), evs[0].At)
	for i := 1; i < len(evs); i++ {
		assert.Greater(t, evs[i].At, evs[i-1].At, "event %d", evs[i].Seq)
	}

	// The machine's refusal is shown, and writes no event.
	assert.Contains(t, out.String(), "refused: cancel")
	assert.Len(t, evs, 8)
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
	code, stdout, stderr := runCLI("demo", "--log", filepath.Join(t.TempDir(), "no", "such", "dir", "demo.jsonl"))

	assert.Equal(t, exitFailure, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "runstep demo:")
}
