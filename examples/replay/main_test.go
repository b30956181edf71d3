package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReplayExample(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, replayDemo(context.Background(), &out))
	assert.Equal(t, []string{
		"replayed 7 events: steps map[completed:1 expired:1], runs map[expired:1]",
		"same state: true",
		"problem: events: gap in seq at line 3",
		"problem: events: lifecycle violation at line 3",
	}, strings.Split(strings.TrimSpace(out.String()), "\n"))
}
