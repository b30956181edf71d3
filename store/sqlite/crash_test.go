package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store/sqlite"
)

// The crash child's settings, in its environment.
const (
	crashDBEnv    = "RUNSTEP_SQLITE_CRASH_DB"
	crashRoundEnv = "RUNSTEP_SQLITE_CRASH_ROUND"
	// committedPrefix starts each line the child prints after a commit
	// returned: "committed <kind> <id> <status>".
	committedPrefix = "committed "
)

// crashRounds is how many times the parent kills a child.
const crashRounds = 20

// TestCrashSafety kills a process that writes transitions through an engine
// with SIGKILL at random points, crashRounds times on one file, and checks
// after each kill that every transition the child reported committed is
// stored with its event, that the log is gapless, and that the state is
// what replaying the log gives.
func TestCrashSafety(t *testing.T) {
	if os.Getenv(crashDBEnv) != "" {
		t.Skip("this is the crash child")
	}
	path := tempPath(t)
	rnd := rand.New(rand.NewPCG(1761861531, 20))
	reported := map[string]string{} // object id → last status the child reported
	for round := range crashRounds {
		// Kill after k committed lines: a point in the child's progress,
		// not a time.
		k := 1 + rnd.IntN(400)
		lines := runChild(t, path, round, k)
		require.GreaterOrEqual(t, len(lines), k, "round %d", round)
		for _, l := range lines {
			reported[l.id] = l.status
		}
		verifyAfterCrash(t, path, reported)
	}
}

type line struct{ kind, id, status string }

// runChild starts the child on path, kills it after it has reported k
// commits, and returns every commit it reported before it died.
func runChild(t *testing.T, path string, round, k int) []line {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDBEnv+"="+path, crashRoundEnv+"="+strconv.Itoa(round))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	var lines []line
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		text, ok := strings.CutPrefix(sc.Text(), committedPrefix)
		if !ok {
			continue // the test framework's own output
		}
		f := strings.Fields(text)
		require.Len(t, f, 3, "line %q", sc.Text())
		lines = append(lines, line{f[0], f[1], f[2]})
		if len(lines) == k && !killed {
			require.NoError(t, cmd.Process.Kill()) // SIGKILL
			killed = true
		}
		// Lines already in the pipe were printed after their commits
		// returned: they count too.
	}
	require.NoError(t, sc.Err())
	err = cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "round %d: the child ended by itself: %s", round, stderr.String())
	ws, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, killed && ws.Signaled() && ws.Signal() == syscall.SIGKILL,
		"round %d: the child died otherwise (%v): %s", round, err, stderr.String())
	return lines
}

// verifyAfterCrash reopens the file and checks it against what the child
// reported.
func verifyAfterCrash(t *testing.T, path string, reported map[string]string) {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(path)
	require.NoError(t, err, "reopen after the crash")
	defer func() { require.NoError(t, st.Close()) }()

	log := readLog(t, st) // checks seq is gapless from 1
	require.NotEmpty(t, log)

	// Replay: each object's last event carries the state stored for it,
	// and its versions count its events.
	lastStep := map[string]events.Event{}
	lastRun := map[string]events.Event{}
	seenStatus := map[string]map[string]bool{}
	count := map[string]int64{}
	for _, ev := range log {
		id, status := "", ""
		if ev.Step != nil {
			id, status = ev.Step.ID, string(ev.Step.Status)
			lastStep[id] = ev
			require.Equal(t, ev.Step.Version, count[id]+1, "event %d: step %s version", ev.Seq, id)
		} else {
			id, status = ev.Run.ID, string(ev.Run.Status)
			lastRun[id] = ev
			// A guard bumps a run's version without an event.
			require.Greater(t, ev.Run.Version, count[id], "event %d: run %s version", ev.Seq, id)
		}
		count[id]++
		if seenStatus[id] == nil {
			seenStatus[id] = map[string]bool{}
		}
		seenStatus[id][status] = true
	}
	for id, ev := range lastStep {
		step, err := st.GetStep(ctx, id)
		require.NoError(t, err, "step %s has events", id)
		require.Equal(t, *ev.Step, step, "step %s: stored state is not its last event's", id)
	}
	for id, ev := range lastRun {
		run, err := st.GetRun(ctx, id)
		require.NoError(t, err, "run %s has events", id)
		want := *ev.Run
		want.Version = run.Version // guards after its last event
		require.Equal(t, want, run, "run %s: stored state is not its last event's", id)
		require.GreaterOrEqual(t, run.Version, ev.Run.Version)
	}

	// Every transition reported committed is there, with its event.
	for id, status := range reported {
		require.True(t, seenStatus[id][status], "%s reported %s, but no such event", id, status)
		var stored string
		if ev, ok := lastStep[id]; ok {
			stored = string(ev.Step.Status)
		} else {
			stored = string(lastRun[id].Run.Status)
		}
		if status == string(lifecycle.StatusInProgress) || status == string(lifecycle.RunStatusQueued) {
			continue // it may have moved on before the kill
		}
		require.Equal(t, status, stored, "%s", id)
	}

	// Nothing is stored without an event.
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	var steps, runs int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM steps").Scan(&steps))
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM runs").Scan(&runs))
	require.Equal(t, len(lastStep), steps, "steps stored")
	require.Equal(t, len(lastRun), runs, "runs stored")
}

// TestCrashChild is the process TestCrashSafety kills. It runs only when
// TestCrashSafety starts it: workers drive steps and runs through an
// engine and print each transition once its commit has returned, until
// they are killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashDBEnv)
	if path == "" {
		t.Skip("run by TestCrashSafety")
	}
	round, err := strconv.Atoi(os.Getenv(crashRoundEnv))
	require.NoError(t, err)
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	st, err := sqlite.Open(path)
	if err != nil {
		fail(err)
	}
	clk := clock.NewMock()
	clk.Set(t0.Add(time.Duration(round) * time.Hour))
	eng, err := engine.New(st, engine.WithClock(clk), engine.WithIDs(engine.SeededIDs(uint64(round))))
	if err != nil {
		fail(err)
	}
	var outMu sync.Mutex
	report := func(kind, id, status string) {
		outMu.Lock()
		defer outMu.Unlock()
		// One write per line, after the commit returned.
		if _, err := fmt.Fprintf(os.Stdout, "%s%s %s %s\n", committedPrefix, kind, id, status); err != nil {
			fail(err)
		}
	}
	ctx := context.Background()
	startRun := func() string {
		run, err := eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_crash", AssistantID: "asst_crash"})
		if err != nil {
			fail(err)
		}
		report("run", run.ID, string(run.Status))
		if run, err = eng.StartRun(ctx, run.ID); err != nil {
			fail(err)
		}
		report("run", run.ID, string(run.Status))
		return run.ID
	}
	newStep := func(runID string) lifecycle.Step {
		step, err := eng.CreateStep(ctx, engine.NewStep{RunID: runID, Type: lifecycle.TypeToolCalls})
		if err != nil {
			fail(err)
		}
		report("step", step.ID, string(step.Status))
		return step
	}

	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(round), uint64(w)))
			runID := startRun()
			// Bounded, in case the parent is gone: it kills the child long
			// before.
			for i := range 5000 {
				if i%25 == 24 {
					// A run that ends with steps in progress: its cascade
					// commits several steps and the run in one batch.
					other := startRun()
					newStep(other)
					newStep(other)
					var run lifecycle.Run
					var err error
					if rnd.IntN(2) == 0 {
						run, err = eng.ExpireRun(ctx, other)
					} else {
						run, err = eng.FailRun(ctx, other, lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "crash test"})
					}
					if err != nil {
						fail(err)
					}
					report("run", run.ID, string(run.Status))
					continue
				}
				step := newStep(runID)
				var err error
				switch rnd.IntN(3) {
				case 0:
					step, err = eng.Complete(ctx, step.ID, engine.FinalUsage(lifecycle.Usage{PromptTokens: int64(i), TotalTokens: int64(i)}))
				case 1:
					step, err = eng.Fail(ctx, step.ID, lifecycle.LastError{Code: lifecycle.ErrorCodeRateLimitExceeded, Message: "crash test"})
				default:
					step, err = eng.Cancel(ctx, step.ID)
				}
				if err != nil {
					fail(err)
				}
				report("step", step.ID, string(step.Status))
			}
		})
	}
	wg.Wait()
	fail(errors.New("not killed"))
}
