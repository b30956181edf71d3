package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestImportCmdToStdout(t *testing.T) {
	code, stdout, stderr := runCmd(cmdImport, toolCallSSE)

	require.Equal(t, exitOK, code, stderr)
	golden, err := os.ReadFile(filepath.Join("..", "..", "events", "testdata", "golden", "openai_streaming_tool_call.jsonl"))
	require.NoError(t, err)
	assert.Equal(t, string(golden), stdout)
	assert.Equal(t, "runstep import: "+toolCallSSE+": 2 bodies, 61 messages: 10 events, 2 deltas merged, 49 passed over "+
		"(thread.message.delta 40, done 2, thread.run.step.in_progress 2, thread.created 1, thread.message.completed 1, "+
		"thread.message.created 1, thread.message.in_progress 1, thread.run.queued 1)\n", stderr)
}

func TestImportCmdSeveralCapturesToAFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "log.jsonl")

	code, stdout, stderr := runCmd(cmdImport, "-o", out, toolCallSSE, runsSSE)

	require.Equal(t, exitOK, code, stderr)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "note: "+runsSSE+":153:")
	log, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, 20, strings.Count(string(log), "\n"))

	// The log replays as it is.
	code, stdout, stderr = runCmd(cmdReplay, out)
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stdout, "20 events, 20 applied, last seq 20, 0 problems")
}

// A failed import leaves the output file as it was, and no temporary file.
func TestImportCmdWholeOrNothing(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "log.jsonl")
	require.NoError(t, os.WriteFile(out, []byte("before\n"), 0o644))
	capture, err := os.ReadFile(toolCallSSE)
	require.NoError(t, err)
	broken := strings.Replace(string(capture), `"status":"completed","cancelled_at":null,"completed_at":1761861536`,
		`"status":"completed","cancelled_at":null,"completed_at":null`, 1)
	require.NotEqual(t, string(capture), broken)
	bad := writeTemp(t, "bad.sse", []byte(broken))

	code, _, stderr := runCmd(cmdImport, "-o", out, toolCallSSE, bad)

	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "runstep import: "+bad+":177: malformed event: thread.run.step.completed data: lifecycle: invalid completed_at: null on a completed step")
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, "before\n", string(got))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")
}

func TestImportCmdBadInput(t *testing.T) {
	log := writeTemp(t, "log.jsonl", engineLog(t, 1))
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no file", nil, exitUsage, "no file given"},
		{"a log already", []string{log}, exitFailure, "is a JSON-lines log already, not an SSE capture"},
		{"another service", []string{writeTemp(t, "x.sse", []byte("event: message_start\ndata: {}\n\n"))}, exitFailure,
			`x.sse:1: unknown event type: "message_start" is not an event of the OpenAI Assistants stream`},
		{"missing", []string{filepath.Join(t.TempDir(), "nope.sse")}, exitFailure, "no such file"},
		{"unwritable output", []string{"-o", filepath.Join(t.TempDir(), "no", "such", "dir.jsonl"), toolCallSSE}, exitFailure, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(cmdImport, tc.args...)

			assert.Equal(t, tc.code, code)
			assert.Contains(t, stderr, tc.says)
		})
	}
}
