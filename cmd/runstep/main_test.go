package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/lifecycle"
)

// runCLI runs the command line args and returns the exit code and what it
// printed.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestGraph(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		format lifecycle.DiagramFormat
	}{
		{"mermaid", []string{"graph", "--format", "mermaid"}, lifecycle.DiagramMermaid},
		{"dot", []string{"graph", "--format", "dot"}, lifecycle.DiagramDOT},
		{"default is mermaid", []string{"graph"}, lifecycle.DiagramMermaid},
		{"single dash", []string{"graph", "-format=dot"}, lifecycle.DiagramDOT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := lifecycle.StepDiagram(tc.format)
			require.NoError(t, err)

			code, stdout, stderr := runCLI(tc.args...)

			require.Equal(t, exitOK, code, stderr)
			assert.Equal(t, want, stdout)
			assert.Empty(t, stderr)
		})
	}
}

func TestGraphUnknownFormat(t *testing.T) {
	code, stdout, stderr := runCLI("graph", "--format", "svg")

	assert.Equal(t, exitUsage, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, `"svg"`)
	assert.Contains(t, stderr, "mermaid or dot")
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		// usageOn is where the usage goes: stdout when asked for, else
		// stderr.
		usageOn string
	}{
		{"no command", nil, exitUsage, "stderr"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "stderr"},
		{"help", []string{"help"}, exitOK, "stdout"},
		{"-h", []string{"-h"}, exitOK, "stdout"},
		{"--help", []string{"--help"}, exitOK, "stdout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(tc.args...)

			assert.Equal(t, tc.wantCode, code)
			got := map[string]string{"stdout": stdout, "stderr": stderr}
			assert.Contains(t, got[tc.usageOn], "Usage:")
			assert.Contains(t, got[tc.usageOn], "demo")
			assert.Contains(t, got[tc.usageOn], "graph")
		})
	}
}

func TestUnknownCommandIsNamed(t *testing.T) {
	_, stdout, stderr := runCLI("frobnicate")

	assert.Empty(t, stdout)
	assert.Contains(t, stderr, `unknown command "frobnicate"`)
}

func TestBadCommandLines(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--no-such-flag"},
		{"demo", "--seed", "minus-one"},
		{"demo", "extra"},
		{"graph", "--format"},
		{"graph", "mermaid"},
	} {
		t.Run(args[0]+" "+args[1], func(t *testing.T) {
			code, stdout, stderr := runCLI(args...)

			assert.Equal(t, exitUsage, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, "Usage: runstep "+args[0])
		})
	}
}

func TestSubcommandHelp(t *testing.T) {
	for _, cmd := range []string{"demo", "graph"} {
		t.Run(cmd, func(t *testing.T) {
			code, stdout, stderr := runCLI(cmd, "-h")

			assert.Equal(t, exitOK, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, "Usage: runstep "+cmd)
		})
	}
}

// TestREADMEDiagram keeps the diagrams in README.md equal to what
// `runstep graph` prints: the step machine first, then the run machine.
func TestREADMEDiagram(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?ms)^```mermaid\n(.*?)^```$").FindAllSubmatch(readme, -1)
	require.Len(t, blocks, 2, "README.md should have two ```mermaid blocks: the step and the run machine")

	for i, machine := range []string{"step", "run"} {
		code, stdout, stderr := runCLI("graph", "--machine", machine, "--format", "mermaid")
		require.Equal(t, exitOK, code, stderr)
		assert.Equal(t, stdout, string(blocks[i][1]),
			"README.md's %s diagram is stale: replace its ```mermaid block with the output of\n"+
				"  go run ./cmd/runstep graph --machine %s --format mermaid", machine, machine)
	}
}

func TestGraphUnknownMachine(t *testing.T) {
	code, _, stderr := runCLI("graph", "--machine", "thread")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "unknown machine")
}
