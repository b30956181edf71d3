package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/internal/schematest"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store/sqlite"
)

// runSteps runs the steps command and returns its exit code and output.
func runSteps(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = cmdSteps(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

const stepsRun = "run_steps"

// stepsFixture writes a database with a run of five steps, one second
// apart, some of them ended, and returns its path.
func stepsFixture(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "runstep.db")
	st, err := sqlite.Open(path)
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	clk := clock.NewMock()
	clk.Set(time.Unix(1761861531, 0))
	eng, err := engine.New(st, engine.WithClock(clk), engine.WithIDs(engine.SeededIDs(1)))
	require.NoError(t, err)
	_, err = eng.CreateRun(ctx, engine.NewRun{ID: stepsRun, ThreadID: "thread_1", AssistantID: "asst_1"})
	require.NoError(t, err)
	_, err = eng.StartRun(ctx, stepsRun)
	require.NoError(t, err)
	for i := range 5 {
		clk.Add(time.Second)
		step, err := eng.CreateStep(ctx, engine.NewStep{RunID: stepsRun, Type: lifecycle.TypeToolCalls})
		require.NoError(t, err)
		switch i {
		case 0:
			_, err = eng.Complete(ctx, step.ID)
		case 2:
			_, err = eng.Fail(ctx, step.ID, lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "boom"})
		}
		require.NoError(t, err)
	}
	return path
}

// wantList returns what the engine lists for p from the file at path, as
// the command should print it.
func wantList(t *testing.T, path string, p engine.ListParams) (string, engine.StepList) {
	t.Helper()
	st, err := sqlite.Open(path)
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	eng, err := engine.New(st)
	require.NoError(t, err)
	list, err := eng.ListSteps(context.Background(), p)
	require.NoError(t, err)
	b, err := json.MarshalIndent(list, "", "  ")
	require.NoError(t, err)
	return string(b) + "\n", list
}

func TestStepsLists(t *testing.T) {
	path := stepsFixture(t)
	for _, tc := range []struct {
		name string
		args []string
		p    engine.ListParams
		n    int
		more bool
	}{
		{"defaults: newest first", nil, engine.ListParams{}, 5, false},
		{"asc", []string{"--order", "asc"}, engine.ListParams{Order: engine.OrderAsc}, 5, false},
		{"limit", []string{"--limit", "2"}, engine.ListParams{Limit: 2}, 2, true},
		{"single dash", []string{"-limit=2", "-order=asc"}, engine.ListParams{Limit: 2, Order: engine.OrderAsc}, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.RunID = stepsRun
			want, list := wantList(t, path, tc.p)
			code, stdout, stderr := runSteps(append([]string{"--db", path, "--run", stepsRun}, tc.args...)...)
			require.Equal(t, exitOK, code, stderr)
			assert.Empty(t, stderr)
			assert.Equal(t, want, stdout)
			assert.Len(t, list.Data, tc.n)
			assert.Equal(t, tc.more, list.HasMore)

			// The shape OpenAI lists with, and steps the spec accepts.
			var got struct {
				Object  string            `json:"object"`
				Data    []json.RawMessage `json:"data"`
				FirstID *string           `json:"first_id"`
				LastID  *string           `json:"last_id"`
				HasMore *bool             `json:"has_more"`
			}
			require.NoError(t, json.Unmarshal([]byte(stdout), &got))
			assert.Equal(t, "list", got.Object)
			require.Len(t, got.Data, tc.n)
			for _, d := range got.Data {
				schematest.RequireValidStep(t, d)
			}
			require.NotNil(t, got.FirstID)
			require.NotNil(t, got.LastID)
			assert.Equal(t, list.Data[0].ID, *got.FirstID)
			assert.Equal(t, list.Data[tc.n-1].ID, *got.LastID)
			require.NotNil(t, got.HasMore)
		})
	}
}

// Paging with the cursors the command prints visits every step once.
func TestStepsPages(t *testing.T) {
	path := stepsFixture(t)
	_, all := wantList(t, path, engine.ListParams{RunID: stepsRun, Order: engine.OrderAsc})
	var ids []string
	after := ""
	for {
		args := []string{"--db", path, "--run", stepsRun, "--order", "asc", "--limit", "2"}
		if after != "" {
			args = append(args, "--after", after)
		}
		code, stdout, stderr := runSteps(args...)
		require.Equal(t, exitOK, code, stderr)
		var page engine.StepList
		require.NoError(t, json.Unmarshal([]byte(stdout), &page))
		for _, s := range page.Data {
			ids = append(ids, s.ID)
		}
		if !page.HasMore {
			break
		}
		after = *page.LastID
	}
	var want []string
	for _, s := range all.Data {
		want = append(want, s.ID)
	}
	require.Equal(t, want, ids)

	// And back from the last one with --before.
	code, stdout, stderr := runSteps("--db", path, "--run", stepsRun, "--order", "asc", "--limit", "2", "--before", want[4])
	require.Equal(t, exitOK, code, stderr)
	var page engine.StepList
	require.NoError(t, json.Unmarshal([]byte(stdout), &page))
	require.Len(t, page.Data, 2)
	assert.Equal(t, want[2], page.Data[0].ID)
	assert.Equal(t, want[3], page.Data[1].ID)
	assert.True(t, page.HasMore)
}

func TestStepsUnknownRun(t *testing.T) {
	path := stepsFixture(t)
	code, stdout, stderr := runSteps("--db", path, "--run", "run_nobody")
	assert.Equal(t, exitFailure, code, "a mistyped run is not an empty list")
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "run_nobody")
	assert.Contains(t, stderr, "not found")
}

func TestStepsErrors(t *testing.T) {
	path := stepsFixture(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	foreign := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(foreign, []byte("not a database\n"), 0o600))
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no db", []string{"--run", stepsRun}, exitUsage, "--db is required"},
		{"no run", []string{"--db", path}, exitUsage, "--run is required"},
		{"an argument", []string{"--db", path, "--run", stepsRun, "extra"}, exitUsage, `unexpected argument "extra"`},
		{"unknown flag", []string{"--db", path, "--run", stepsRun, "--page", "2"}, exitUsage, "-page"},
		{"negative limit", []string{"--db", path, "--run", stepsRun, "--limit", "-1"}, exitUsage, "--limit -1: must be between 1 and 100"},
		{"zero limit", []string{"--db", path, "--run", stepsRun, "--limit", "0"}, exitUsage, "--limit 0: must be between 1 and 100"},
		{"limit too big", []string{"--db", path, "--run", stepsRun, "--limit", "101"}, exitUsage, "between 1 and 100"},
		{"bad order", []string{"--db", path, "--run", stepsRun, "--order", "sideways"}, exitUsage, "asc or desc"},
		{"unknown cursor", []string{"--db", path, "--run", stepsRun, "--after", "step_nobody"}, exitUsage, `invalid after "step_nobody"`},
		{"missing file", []string{"--db", missing, "--run", stepsRun}, exitFailure, "no database at " + missing},
		{"a file of another kind", []string{"--db", foreign, "--run", stepsRun}, exitFailure, "not a runstep database"},
		// Nothing listens on port 1: the connection is refused at once.
		{"postgres unreachable", []string{"--db", "postgres://user:secret@127.0.0.1:1/runstep?connect_timeout=5", "--run", stepsRun}, exitFailure, "runstep steps: postgres"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runSteps(tc.args...)
			assert.Equal(t, tc.code, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tc.want)
			assert.NotContains(t, stderr, "secret", "the password is not printed")
		})
	}
	_, err := os.Stat(missing)
	assert.ErrorIs(t, err, os.ErrNotExist, "listing made a database")
}

func TestStepsHelp(t *testing.T) {
	code, stdout, stderr := runSteps("-h")
	assert.Equal(t, exitOK, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "Usage: "+stepsSynopsis)
	assert.Contains(t, stderr, "-db FILE")
}

func TestOpenDB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	st, err := openDB(path)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	_, err = os.Stat(path)
	require.NoError(t, err, "openDB creates a SQLite file")

	for _, dsn := range []string{"postgres://127.0.0.1:1/runstep?connect_timeout=5", "postgresql://127.0.0.1:1/runstep?connect_timeout=5"} {
		_, err = openDB(dsn)
		require.ErrorContains(t, err, "postgres", "%s is opened as Postgres", dsn)
		require.NotErrorIs(t, err, sqlite.ErrForeign)
	}
	_, err = openDB("")
	require.Error(t, err)
}
