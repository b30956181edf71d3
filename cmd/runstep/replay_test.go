package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store/memory"
)

// The real captures, kept with the events package's tests.
var (
	toolCallSSE = filepath.Join("..", "..", "events", "testdata", "openai_streaming_tool_call.sse")
	runsSSE     = filepath.Join("..", "..", "events", "testdata", "openai_runs_streamed_create.sse")
)

// runCmd runs one of the commands and returns the exit code and what it
// printed.
func runCmd(cmd func([]string, io.Writer, io.Writer) int, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = cmd(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// engineLog runs an engine on a mock clock through runs of three steps
// each (completed, failed, and one left to the run's end: every fourth run
// expires with it in progress, the others complete it first), and returns
// its event log.
func engineLog(t *testing.T, runs int) []byte {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(time.Unix(1761861531, 0))
	st := memory.New()
	eng, err := engine.New(st, engine.WithClock(clk), engine.WithIDs(engine.SeededIDs(3)))
	require.NoError(t, err)
	for i := range runs {
		run, err := eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_1", AssistantID: "asst_1", TTL: time.Minute})
		require.NoError(t, err)
		clk.Add(time.Second)
		_, err = eng.StartRun(ctx, run.ID)
		require.NoError(t, err)
		var steps []string
		for range 3 {
			step, err := eng.CreateStep(ctx, engine.NewStep{RunID: run.ID, Type: lifecycle.TypeMessageCreation,
				Details: lifecycle.MessageCreationDetails(fmt.Sprintf("msg_%d", i))})
			require.NoError(t, err)
			steps = append(steps, step.ID)
			clk.Add(time.Second)
		}
		_, err = eng.Complete(ctx, steps[0])
		require.NoError(t, err)
		_, err = eng.Fail(ctx, steps[1], lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "boom"})
		require.NoError(t, err)
		if i%4 == 3 {
			clk.Add(2 * time.Minute)
			_, err = eng.ExpireDue(ctx)
			require.NoError(t, err)
			continue
		}
		_, err = eng.Complete(ctx, steps[2])
		require.NoError(t, err)
		_, err = eng.CompleteRun(ctx, run.ID)
		require.NoError(t, err)
	}
	evs, err := st.Events(ctx, 0, 1<<20)
	require.NoError(t, err)
	var buf bytes.Buffer
	w := events.NewWriter(&buf)
	for _, ev := range evs {
		require.NoError(t, w.Write(ev))
	}
	require.NoError(t, w.Flush())
	return buf.Bytes()
}

func writeTemp(t *testing.T, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, content, 0o644))
	return path
}

func TestReplayCmdCaptures(t *testing.T) {
	code, stdout, stderr := runCmd(cmdReplay, toolCallSSE, runsSSE)

	require.Equal(t, exitOK, code, stderr)
	assert.Empty(t, stderr)
	assert.Contains(t, stdout, "replayed 2 files: 20 events, 20 applied, last seq 20, 0 problems\n")
	assert.Contains(t, stdout, toolCallSSE+": OpenAI SSE, 2 bodies, 61 messages: 10 events, 2 deltas merged, 49 passed over (thread.message.delta 40,")
	assert.Contains(t, stdout, "note: "+runsSSE+":153: thread.run.completed event carries a run in status incomplete")
	assert.Regexp(t, `completed\s+4\s+2\n`, stdout)
	assert.Regexp(t, `incomplete\s+-\s+1\n`, stdout)
	assert.Regexp(t, `run_oyfV44CrJXYJkvb2qsd80LvJ\s+completed\s+2\s+0\s+2\s+0\s+0\s+0\n`, stdout)
	assert.Regexp(t, `run_B5f5IVSEP7Sa7tif3hCrtSbo\s+incomplete\s+1\s`, stdout)
}

func TestReplayCmdEngineLog(t *testing.T) {
	path := writeTemp(t, "engine.jsonl", engineLog(t, 8))

	code, stdout, stderr := runCmd(cmdReplay, path)

	require.Equal(t, exitOK, code, stderr)
	assert.Empty(t, stderr)
	// 8 runs: 6 events of their own (created, started, ended) and
	// 2 per step.
	assert.Contains(t, stdout, "replayed 1 file: 72 events, 72 applied, last seq 72, 0 problems\n")
	assert.Regexp(t, `\ncompleted\s+14\s+6\n`, stdout)
	assert.Regexp(t, `\nexpired\s+2\s+2\s*\n`, stdout)
	assert.Regexp(t, `\nfailed\s+8\s+0\s*\n`, stdout)
	assert.Regexp(t, `\ntotal\s+24\s+8\s*\n`, stdout)
}

func TestReplayCmdSeveralLogsAsOneStream(t *testing.T) {
	log := engineLog(t, 4)
	lines := bytes.SplitAfter(log, []byte("\n"))
	half := len(lines) / 2
	a := writeTemp(t, "a.jsonl", bytes.Join(lines[:half], nil))
	b := writeTemp(t, "b.jsonl", bytes.Join(lines[half:], nil))

	code, stdout, stderr := runCmd(cmdReplay, a, b)
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stdout, "replayed 2 files: 36 events, 36 applied")

	// In the wrong order, b's first line is out of turn.
	code, _, stderr = runCmd(cmdReplay, b, a)
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "runstep replay: "+b+":1: seq 19: gap in seq: want seq 1")
}

func TestReplayCmdViolations(t *testing.T) {
	lines := strings.SplitAfter(string(engineLog(t, 2)), "\n")
	// Line 5 completes a step: a second earlier than the event says.
	require.Contains(t, lines[5], `"event":"thread.run.step.completed"`)
	lines[5] = strings.Replace(lines[5], `"completed_at":1761861535`, `"completed_at":1761861534`, 1)
	lines[8] = "{broken\n"
	path := writeTemp(t, "bad.jsonl", []byte(strings.Join(lines, "")))

	code, stdout, stderr := runCmd(cmdReplay, path)

	assert.Equal(t, exitFailure, code)
	assert.Regexp(t, "^runstep replay: "+regexp.QuoteMeta(path)+":6: seq 6: lifecycle violation: step step_\\w+: "+
		"thread.run.step.completed, not what the machine makes of it: completed_at 1761861534, want 1761861535\n"+
		"runstep replay: stopped at the first problem; --audit finds them all\n$", stderr)
	assert.Contains(t, stdout, "replayed 1 file: 6 events, 5 applied, last seq 6, 1 problem\n")

	code, stdout, stderr = runCmd(cmdReplay, "--audit", path)

	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, path+":6: seq 6: lifecycle violation")
	assert.Contains(t, stderr, path+":9: malformed event")
	assert.NotContains(t, stderr, "--audit finds them all")
	assert.Regexp(t, `, \d+ problems\n`, stdout)
}

func TestReplayCmdTornLine(t *testing.T) {
	log := engineLog(t, 1)
	path := writeTemp(t, "torn.jsonl", log[:len(log)-20])

	code, _, stderr := runCmd(cmdReplay, path)

	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, path+":9: torn final line: incomplete line")
	assert.Contains(t, stderr, "'runstep repair FILE' cuts it off")
}

func TestReplayCmdListsRuns(t *testing.T) {
	path := writeTemp(t, "many.jsonl", engineLog(t, replayListedRuns+3))

	_, stdout, _ := runCmd(cmdReplay, path)
	assert.Contains(t, stdout, "… and 3 more runs (--runs lists them all)\n")
	assert.Equal(t, replayListedRuns, strings.Count(stdout, "\nrun_"))

	_, stdout, _ = runCmd(cmdReplay, path, "--runs")
	assert.NotContains(t, stdout, "more runs")
	assert.Equal(t, replayListedRuns+3, strings.Count(stdout, "\nrun_"))
}

func TestReplayCmdBadInput(t *testing.T) {
	notALog := writeTemp(t, "cat.gif", []byte("GIF89a\x01\x00"))
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no file", nil, exitUsage, "no file given"},
		{"unknown flag", []string{"--fast", toolCallSSE}, exitUsage, "flag provided but not defined: -fast"},
		{"missing file", []string{filepath.Join(t.TempDir(), "nope.jsonl")}, exitFailure, "no such file"},
		{"not a log", []string{notALog}, exitFailure, notALog + ":1: malformed event: neither a JSON-lines log nor an SSE stream"},
		{"not a log, audited", []string{"--audit", notALog, toolCallSSE}, exitFailure, "neither a JSON-lines log"},
		{"help", []string{"-h"}, exitOK, "Usage: runstep replay [--audit] [--runs] FILE..."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(cmdReplay, tc.args...)

			assert.Equal(t, tc.code, code)
			assert.Contains(t, stderr, tc.says)
		})
	}
	// An audit goes on past a file that is no log.
	_, stdout, _ := runCmd(cmdReplay, "--audit", notALog, toolCallSSE)
	assert.Contains(t, stdout, "10 applied")
}

func TestReplayCmdFlagsAnywhere(t *testing.T) {
	files, code, ok := parseFiles(newFlagSet("x", "", "", &bytes.Buffer{}), []string{"a", "--", "-b"})
	require.True(t, ok, code)
	assert.Equal(t, []string{"a", "-b"}, files)

	fs := newFlagSet("x", "", "", &bytes.Buffer{})
	audit := fs.Bool("audit", false, "")
	files, _, ok = parseFiles(fs, []string{"a", "--audit", "b"})
	require.True(t, ok)
	assert.Equal(t, []string{"a", "b"}, files)
	assert.True(t, *audit)
}

// The progress bar is for people at a terminal: never in a pipe or a
// buffer.
func TestReplayCmdNoProgressOffTerminal(t *testing.T) {
	big := writeTemp(t, "big.jsonl", nil)
	require.NoError(t, os.Truncate(big, progressMinBytes+1))
	assert.Nil(t, newProgress([]string{big}, "x", &bytes.Buffer{}))
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	require.NoError(t, err)
	defer f.Close()
	assert.Nil(t, newProgress([]string{big}, "x", f))
}
