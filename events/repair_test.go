package events_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

func TestRepair(t *testing.T) {
	log := writeLog(t, sampleEvents())
	lines := strings.SplitAfter(log, "\n")
	five := strings.Join(lines[:5], "")
	for _, tc := range []struct {
		name    string
		content string
		action  events.RepairAction
		after   string
		events  int64
	}{
		{"whole", log, events.RepairNone, log, 6},
		{"empty", "", events.RepairNone, "", 0},
		{"torn in the middle of an event", five + lines[5][:100], events.RepairTruncate, five, 5},
		{"torn right before the newline", five + lines[5][:len(lines[5])-2], events.RepairTruncate, five, 5},
		{"a whole event without its newline", five + strings.TrimSuffix(lines[5], "\n"), events.RepairTerminate, log, 6},
		{"torn CRLF", strings.ReplaceAll(five, "\n", "\r\n") + "{\"seq\":6\r", events.RepairTruncate, strings.ReplaceAll(five, "\n", "\r\n"), 5},
		{"only a torn line", lines[0][:10], events.RepairTruncate, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.content)

			plan, err := events.Repair(path)

			require.NoError(t, err)
			assert.Equal(t, tc.action, plan.Action)
			assert.Equal(t, tc.events, plan.Events)
			assert.EqualValues(t, len(tc.content), plan.Size)
			assert.EqualValues(t, len(tc.after), plan.RepairedSize)
			if tc.action == events.RepairNone {
				assert.Nil(t, plan.Torn)
			} else {
				require.NotNil(t, plan.Torn)
				assert.ErrorIs(t, plan.Torn, events.ErrTornLine)
			}
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, tc.after, string(got))

			// The repaired log reads whole, and a second repair has nothing
			// to do.
			_, problems := readAll(t, string(got), events.ReadOptions{})
			assert.Empty(t, problems)
			again, err := events.Repair(path)
			require.NoError(t, err)
			assert.Equal(t, events.RepairNone, again.Action)
		})
	}
}

// Repair touches nothing but a torn last line: a log with another problem
// stays as it is.
func TestRepairLeavesOtherProblemsAlone(t *testing.T) {
	lines := strings.SplitAfter(writeLog(t, sampleEvents()), "\n")
	for _, tc := range []struct {
		name    string
		content string
		kind    error
	}{
		{"malformed line and torn tail", lines[0] + "{oops\n" + lines[2][:30], events.ErrMalformed},
		{"gap and torn tail", lines[0] + lines[2] + lines[3][:30], events.ErrSeqGap},
		{"whole last event out of turn", lines[0] + strings.TrimSuffix(lines[2], "\n"), events.ErrTornLine},
		{"not a log", "GIF89a\x00\x01", events.ErrTornLine},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.content)

			_, err := events.Repair(path)

			require.ErrorIs(t, err, tc.kind)
			got, rerr := os.ReadFile(path)
			require.NoError(t, rerr)
			assert.Equal(t, tc.content, string(got), "unchanged")
		})
	}
}

func TestRepairMissingFile(t *testing.T) {
	_, err := events.Repair(filepath.Join(t.TempDir(), "nope.jsonl"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
