package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The process-level test (start, serve, SIGTERM, exit 0) is
// TestServeCommand in package server.

func TestServeRefusesOpenAddressWithoutToken(t *testing.T) {
	t.Setenv("RUNSTEP_TOKEN", "")
	var stdout, stderr bytes.Buffer
	code := cmdServe([]string{"--addr", "0.0.0.0:0"}, &stdout, &stderr)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr.String(), "--token or RUNSTEP_TOKEN")
	assert.Empty(t, stdout.String())
}

func TestServeBadAddress(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := cmdServe([]string{"--addr", "127.0.0.1:http-alt-nope"}, &stdout, &stderr)
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr.String(), "runstep serve:")
}

func TestServeUnexpectedArgument(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, exitUsage, cmdServe([]string{"now"}, &stdout, &stderr))
}

func TestOpenServeStore(t *testing.T) {
	st, err := openServeStore("")
	require.NoError(t, err)
	require.NoError(t, st.Close())
	st, err = openServeStore(filepath.Join(t.TempDir(), "runs.db"))
	require.NoError(t, err, "a SQLite file")
	require.NoError(t, st.Close())
}
