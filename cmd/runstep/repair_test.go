package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRepairCmd(t *testing.T) {
	log := engineLog(t, 1)
	lines := bytes.SplitAfter(log, []byte("\n"))
	torn := append(bytes.Join(lines[:5], nil), lines[5][:50]...)
	unterminated := bytes.TrimSuffix(log, []byte("\n"))
	for _, tc := range []struct {
		name    string
		content []byte
		args    []string
		says    string
		after   []byte
	}{
		{"torn", torn, nil, ":6: torn last line (incomplete line (50 bytes)): cut off its 50 bytes; 5 whole events remain, the last seq 5\n", bytes.Join(lines[:5], nil)},
		{"dry run", torn, []string{"-n"}, "would cut off its 50 bytes", torn},
		{"without its newline", unterminated, nil, ":9: seq 9 is a whole event without its newline: added the newline; 9 events\n", log},
		{"whole", log, nil, ": whole, 9 events: nothing to do\n", log},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTemp(t, "log.jsonl", tc.content)

			code, stdout, stderr := runCmd(cmdRepair, append(tc.args, path)...)

			require.Equal(t, exitOK, code, stderr)
			assert.Empty(t, stderr)
			assert.Contains(t, stdout, path)
			assert.Contains(t, stdout, tc.says)
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, string(tc.after), string(got))
		})
	}
}

func TestRepairCmdLeavesOtherProblems(t *testing.T) {
	lines := bytes.SplitAfter(engineLog(t, 1), []byte("\n"))
	content := append(append(bytes.Join(lines[:2], nil), "{broken\n"...), lines[3][:40]...)
	path := writeTemp(t, "log.jsonl", content)
	whole := writeTemp(t, "whole.jsonl", bytes.Join(lines, nil))

	code, stdout, stderr := runCmd(cmdRepair, path, whole)

	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "runstep repair: "+path+" has a problem repair does not touch, before its last line: events: "+path+":3: malformed event")
	assert.Contains(t, stdout, whole+": whole, 9 events", "the other files are repaired still")
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, content, got)

	code, _, stderr = runCmd(cmdRepair)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "no file given")
}
