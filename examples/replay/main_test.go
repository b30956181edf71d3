package main

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReplayExample(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	stdout := os.Stdout
	os.Stdout = w
	main()
	os.Stdout = stdout
	require.NoError(t, w.Close())
	out, err := io.ReadAll(r)
	require.NoError(t, err)

	assert.Equal(t, []string{
		"replayed 7 events: steps map[completed:1 expired:1], runs map[expired:1]",
		"same state: true",
		"problem: events: gap in seq at line 3",
		"problem: events: lifecycle violation at line 3",
	}, strings.Split(strings.TrimSpace(string(out)), "\n"))
}
