package replay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/events/replay"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store/memory"
)

// replayLog replays a JSON-lines log into a fresh memory store.
func replayLog(t TB, log []byte, opts replay.Options) (*memory.Store, replay.Report, error) {
	t.Helper()
	st := memory.New()
	rep, err := replay.Run(context.Background(), st, events.NewReader(bytes.NewReader(log), events.ReadOptions{File: "log.jsonl"}), opts)
	return st, rep, err
}

func TestReplayRebuildsTheEngineState(t *testing.T) {
	h := fixedHistory(t)
	evs, log := h.log(t)
	for _, typ := range []events.Type{
		events.TypeRunRequiresAction, events.TypeRunQueued, events.TypeRunFailed, events.TypeRunCancelled,
		events.TypeRunExpired, events.TypeStepExpired, events.TypeStepFailed, events.TypeStepCancelled,
	} {
		require.True(t, slices.ContainsFunc(evs, func(ev events.Event) bool { return ev.Type == typ }),
			"the scenario has no %s event:\n%s", typ, describeEvents(evs))
	}

	st, rep, err := replayLog(t, log, replay.Options{})

	require.NoError(t, err)
	requireSameState(t, h.st, st, evs)
	assert.Empty(t, rep.Problems)
	assert.EqualValues(t, len(evs), rep.Events)
	assert.EqualValues(t, len(evs), rep.Applied)
	assert.EqualValues(t, len(evs), rep.LastSeq)
	assert.Equal(t, map[lifecycle.Status]int{
		lifecycle.StatusCompleted: 2, lifecycle.StatusFailed: 2, lifecycle.StatusCancelled: 2,
		lifecycle.StatusExpired: 3, lifecycle.StatusInProgress: 1,
	}, rep.Steps)
	assert.Equal(t, map[lifecycle.RunStatus]int{
		lifecycle.RunStatusCompleted: 1, lifecycle.RunStatusFailed: 1, lifecycle.RunStatusCancelled: 1,
		lifecycle.RunStatusExpired: 2, lifecycle.RunStatusInProgress: 1,
	}, rep.Runs)
	require.Len(t, rep.RunSteps, 6)
	assert.Equal(t, h.runs, func() (ids []string) {
		for _, r := range rep.RunSteps {
			ids = append(ids, r.ID)
		}
		return ids
	}())
	assert.Equal(t, 4, rep.RunSteps[0].Total())
	assert.Equal(t, map[lifecycle.Status]int{lifecycle.StatusExpired: 2}, rep.RunSteps[3].Steps)

	// The replayed store's log is the engine's, event for event.
	replayed, err := st.Events(context.Background(), 0, 1<<20)
	require.NoError(t, err)
	require.Len(t, replayed, len(evs))
	for i := range evs {
		want, err := evs[i].MarshalJSON()
		require.NoError(t, err)
		got, err := replayed[i].MarshalJSON()
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got))
	}
}

// Random histories of an engine replay to the engine's state exactly.
func TestReplayHistories(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := newHistory(rapid.Uint64().Draw(t, "seed"))
		h.draw(t, 60)
		evs, log := h.log(t)

		st, rep, err := replayLog(t, log, replay.Options{})

		require.NoError(t, err)
		requireSameState(t, h.st, st, evs)
		require.EqualValues(t, len(evs), rep.Applied)
	})
}

// A corruption of a log is found, and at the line it is on.
func TestReplayFindsCorruptions(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := newHistory(rapid.Uint64().Draw(t, "seed"))
		h.draw(t, 30)
		_, log := h.log(t)
		lines := strings.SplitAfter(string(log), "\n")
		lines = lines[:len(lines)-1] // the empty piece after the last newline
		if len(lines) < 3 {
			t.Skip("too short a log to corrupt every way")
		}
		var (
			bad  []string
			line int // 1-based, where the problem must be found
			kind error
		)
		switch how := rapid.SampledFrom([]string{"drop", "swap", "duplicate", "flip", "cut"}).Draw(t, "corruption"); how {
		case "drop": // any line but the last, whose loss leaves a shorter, whole log
			i := rapid.IntRange(0, len(lines)-2).Draw(t, "line")
			bad = slices.Delete(slices.Clone(lines), i, i+1)
			line, kind = i+1, events.ErrSeqGap
		case "swap":
			i := rapid.IntRange(0, len(lines)-2).Draw(t, "first")
			j := rapid.IntRange(i+1, len(lines)-1).Draw(t, "second")
			bad = slices.Clone(lines)
			bad[i], bad[j] = bad[j], bad[i]
			line, kind = i+1, events.ErrSeqGap
		case "duplicate":
			i := rapid.IntRange(0, len(lines)-1).Draw(t, "line")
			bad = slices.Insert(slices.Clone(lines), i+1, lines[i])
			line, kind = i+2, events.ErrSeqRepeat
		case "flip":
			i := rapid.IntRange(0, len(lines)-1).Draw(t, "line")
			bad = slices.Clone(lines)
			bad[i] = flipStatus(t, lines[i])
			line, kind = i+1, events.ErrMalformed
		case "cut": // inside a line: a crash in the middle of a write
			i := rapid.IntRange(0, len(lines)-1).Draw(t, "line")
			at := rapid.IntRange(1, len(lines[i])-1).Draw(t, "at")
			bad = append(slices.Clone(lines[:i]), lines[i][:at])
			line, kind = i+1, events.ErrTornLine
		}

		_, rep, err := replayLog(t, []byte(strings.Join(bad, "")), replay.Options{})

		require.ErrorIs(t, err, kind)
		var le *events.LogError
		require.ErrorAs(t, err, &le)
		require.Equal(t, line, int(le.Line), "%v", err)
		require.Equal(t, "log.jsonl", le.File)
		require.Len(t, rep.Problems, 1)
		// Everything before the problem was applied, and nothing after.
		require.LessOrEqual(t, rep.Applied, int64(line-1))

		// An audit finds the same first problem, and goes on to the end.
		_, audit, err := replayLog(t, []byte(strings.Join(bad, "")), replay.Options{Audit: true})
		require.ErrorIs(t, err, kind)
		require.NotEmpty(t, audit.Problems)
		require.Equal(t, le, audit.Problems[0])
		require.GreaterOrEqual(t, audit.Events+int64(len(audit.Problems)), int64(len(bad)-1))
	})
}

// flipStatus changes the status in a line's data to another of its kind.
func flipStatus(t *rapid.T, line string) string {
	var statuses []string
	if strings.Contains(line, `"event":"thread.run.step.`) {
		for _, s := range lifecycle.Statuses {
			statuses = append(statuses, string(s))
		}
	} else {
		for _, s := range lifecycle.RunStatuses {
			statuses = append(statuses, string(s))
		}
	}
	i := strings.Index(line, `"status":"`)
	require.GreaterOrEqual(t, i, 0)
	rest := line[i+len(`"status":"`):]
	cur := rest[:strings.IndexByte(rest, '"')]
	other := rapid.SampledFrom(slices.DeleteFunc(statuses, func(s string) bool { return s == cur })).Draw(t, "status")
	return line[:i] + `"status":"` + other + rest[len(cur):]
}

// edit returns the log with each event passed through f (nil drops it);
// seqs are numbered anew.
func edit(t *testing.T, evs []events.Event, f func(i int, ev *events.Event) *events.Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := events.NewWriter(&buf)
	seq := int64(0)
	for i := range evs {
		ev := evs[i].Clone()
		out := f(i, &ev)
		if out == nil {
			continue
		}
		seq++
		out.Seq = seq
		require.NoError(t, w.Write(*out))
	}
	require.NoError(t, w.Flush())
	return buf.Bytes()
}

func find(t *testing.T, evs []events.Event, typ events.Type, nth int) int {
	t.Helper()
	for i, ev := range evs {
		if ev.Type == typ {
			if nth == 0 {
				return i
			}
			nth--
		}
	}
	t.Fatalf("no %s event", typ)
	return -1
}

func TestReplayFindsViolations(t *testing.T) {
	h := fixedHistory(t)
	evs, _ := h.log(t)
	completed := find(t, evs, events.TypeStepCompleted, 0)
	created := find(t, evs, events.TypeStepCreated, 0)
	runCreated := find(t, evs, events.TypeRunCreated, 0)
	runCompleted := find(t, evs, events.TypeRunCompleted, 0)
	stepExpired := find(t, evs, events.TypeStepExpired, 0)
	runExpired := find(t, evs, events.TypeRunExpired, 0)
	runStarted := find(t, evs, events.TypeRunInProgress, 0)
	later := func(ev *events.Event) *int64 { at := ev.At + 1; return &at }

	for _, tc := range []struct {
		name string
		// line is the 1-based line of the violation in the edited log.
		line  int
		edit  func(i int, ev *events.Event) *events.Event
		cause error  // errors.Is or errors.As target, if any
		says  string // in the error's text
	}{
		{
			name: "stamp is not the event's time", line: completed + 1,
			edit: func(i int, ev *events.Event) *events.Event {
				if i == completed {
					ev.Step.CompletedAt = later(ev)
				}
				return ev
			},
			says: "completed_at",
		},
		{
			name: "completed twice", line: completed + 2,
			edit: func(i int, ev *events.Event) *events.Event {
				if i == completed+1 {
					return ptr(evs[completed].Clone())
				}
				return ev
			},
			cause: lifecycle.ErrInvalidTransition, says: "cannot complete from status completed",
		},
		{
			name: "step of a run never created", line: runCreated + 1,
			edit: func(i int, ev *events.Event) *events.Event {
				if i == runCreated {
					return nil
				}
				return ev
			},
			says: "which the log has not created",
		},
		{
			name: "step created in a queued run", line: created,
			edit: func(i int, ev *events.Event) *events.Event {
				if i == runStarted {
					return nil
				}
				return ev
			},
			cause: lifecycle.ErrInvalidTransition, says: "create_step",
		},
		{
			name: "created at another time", line: created + 1,
			edit: func(i int, ev *events.Event) *events.Event {
				if i == created {
					ev.At++
				}
				return ev
			},
			says: "created_at",
		},
		{
			name: "created twice", line: created + 2,
			edit: func(i int, ev *events.Event) *events.Event {
				if i == created+1 {
					return ptr(evs[created].Clone())
				}
				return ev
			},
			says: "created again",
		},
		{
			name: "run ends with a step in progress", line: runExpired, // one line up: the step's is gone
			edit: func(i int, ev *events.Event) *events.Event {
				if i == stepExpired {
					return nil
				}
				return ev
			},
			says: "steps in progress",
		},
		{
			name: "a run no transition reaches", line: runCompleted + 2,
			edit: func(i int, ev *events.Event) *events.Event {
				if i == runCompleted+1 {
					back := evs[runStarted].Clone()
					back.At = evs[runCompleted].At
					return &back
				}
				return ev
			},
			cause: lifecycle.ErrInvalidTransition,
		},
		{
			name: "run keeps its deadline after it completes", line: runCompleted + 1,
			edit: func(i int, ev *events.Event) *events.Event {
				if i == runCompleted {
					ev.Run.ExpiresAt = later(ev)
				}
				return ev
			},
			says: "expires_at",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := edit(t, evs, tc.edit)

			_, rep, err := replayLog(t, log, replay.Options{})

			require.ErrorIs(t, err, events.ErrViolation)
			if tc.cause != nil {
				require.ErrorIs(t, err, tc.cause)
			}
			var le *events.LogError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, tc.line, int(le.Line), "%v", err)
			assert.EqualValues(t, tc.line, le.Seq)
			assert.Contains(t, err.Error(), tc.says)
			assert.Contains(t, err.Error(), "log.jsonl:"+strconv.Itoa(tc.line)+":")
			assert.Equal(t, []*events.LogError{le}, rep.Problems)
			assert.EqualValues(t, tc.line-1, rep.Applied)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestReplayAuditCollectsEveryProblem(t *testing.T) {
	h := fixedHistory(t)
	evs, _ := h.log(t)
	completed := find(t, evs, events.TypeStepCompleted, 0)
	failed := find(t, evs, events.TypeStepFailed, 0)
	log := edit(t, evs, func(i int, ev *events.Event) *events.Event {
		if i == completed || i == failed {
			ev.At += 10
		}
		return ev
	})
	lines := strings.SplitAfter(string(log), "\n")
	lines[2] = "{not json\n"
	lines = append(lines[:len(lines)-1], `{"seq":`) // and a torn last line
	log = []byte(strings.Join(lines, ""))

	_, strict, err := replayLog(t, log, replay.Options{})
	require.ErrorIs(t, err, events.ErrMalformed)
	assert.Len(t, strict.Problems, 1)

	_, rep, err := replayLog(t, log, replay.Options{Audit: true})

	require.ErrorIs(t, err, events.ErrMalformed, "the first problem")
	var got []string
	for _, p := range rep.Problems {
		got = append(got, strconv.Itoa(int(p.Line))+" "+strings.TrimPrefix(events.KindOf(p).Error(), "events: "))
	}
	require.NotEmpty(t, got)
	assert.Equal(t, "3 malformed event", got[0])
	assert.Contains(t, got, strconv.Itoa(completed+1)+" lifecycle violation")
	assert.Contains(t, got, strconv.Itoa(failed+1)+" lifecycle violation")
	assert.Equal(t, strconv.Itoa(len(lines))+" torn final line", got[len(got)-1])
}

// The machine has at most one trigger from one run status to another, so
// a run event says which trigger made it.
func TestRunTransitionsAreUnambiguous(t *testing.T) {
	for _, from := range lifecycle.RunStatuses {
		seen := map[lifecycle.RunStatus]lifecycle.RunTrigger{}
		for _, tr := range lifecycle.RunTriggers {
			to, ok := lifecycle.NextRunStatus(from, tr)
			if !ok {
				continue
			}
			prev, dup := seen[to]
			assert.False(t, dup, "%s → %s by %s and by %s", from, to, prev, tr)
			seen[to] = tr
		}
	}
}

// A store error stops the replay whatever the mode, and is no violation.
func TestReplayStopsOnStoreErrors(t *testing.T) {
	h := fixedHistory(t)
	evs, log := h.log(t)
	st := memory.New()
	// The first event is in the store already.
	_, err := replay.Run(context.Background(), st, events.NewReader(bytes.NewReader(log), events.ReadOptions{}), replay.Options{})
	require.NoError(t, err)

	_, err = replay.Run(context.Background(), st, events.NewReader(bytes.NewReader(log), events.ReadOptions{}), replay.Options{Audit: true})

	require.Error(t, err)
	assert.NotErrorIs(t, err, events.ErrViolation)
	assert.Contains(t, err.Error(), evs[0].Run.ID)
}

func TestReplayStopsWhenCancelled(t *testing.T) {
	_, log := fixedHistory(t).log(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := replay.Run(ctx, memory.New(), events.NewReader(bytes.NewReader(log), events.ReadOptions{}), replay.Options{})

	require.ErrorIs(t, err, context.Canceled)
}

// failingReader fails after its data.
type failingReader struct{ data []byte }

var errDisk = errors.New("disk on fire")

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, errDisk
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReplayStopsOnReadErrors(t *testing.T) {
	_, log := fixedHistory(t).log(t)
	src := events.NewReader(&failingReader{data: log[:len(log)/2]}, events.ReadOptions{})

	_, err := replay.Run(context.Background(), memory.New(), src, replay.Options{Audit: true})

	require.ErrorIs(t, err, errDisk)
	var le *events.LogError
	assert.False(t, errors.As(err, &le))
	_, err = src.Read()
	assert.ErrorIs(t, err, errDisk, "the source stays failed")
	assert.NotErrorIs(t, err, io.EOF)
}

// Several sources replay as one stream, the seqs going on from one to the
// next.
func TestReplaySeveralSources(t *testing.T) {
	h := fixedHistory(t)
	evs, log := h.log(t)
	cut := bytes.IndexByte(log[len(log)/2:], '\n') + len(log)/2 + 1
	r := replay.New(memory.New(), replay.Options{})
	first := events.NewReader(bytes.NewReader(log[:cut]), events.ReadOptions{File: "a.jsonl"})
	require.NoError(t, r.Replay(context.Background(), first))

	second := events.NewReader(bytes.NewReader(log[cut:]), events.ReadOptions{File: "b.jsonl", FirstSeq: first.Next()})
	require.NoError(t, r.Replay(context.Background(), second))

	assert.EqualValues(t, len(evs), r.Report().Applied)

	// Starting the second file at seq 1 is a problem of b.jsonl's first
	// line.
	r = replay.New(memory.New(), replay.Options{})
	require.NoError(t, r.Replay(context.Background(), events.NewReader(bytes.NewReader(log[:cut]), events.ReadOptions{File: "a.jsonl"})))
	err := r.Replay(context.Background(), events.NewReader(bytes.NewReader(log[cut:]), events.ReadOptions{File: "b.jsonl"}))
	require.ErrorIs(t, err, events.ErrSeqGap)
	assert.Contains(t, err.Error(), "b.jsonl:1:")
}

// Without a store, a replay checks every event as it does with one, and
// reports the same, whatever the log and the mode; it only commits
// nothing.
func TestReplayWithoutAStore(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := newHistory(rapid.Uint64().Draw(t, "seed"))
		h.draw(t, 40)
		_, log := h.log(t)
		if rapid.Bool().Draw(t, "corrupt") {
			// Dropping a line breaks the seqs, and, in an audit, may leave
			// violations after: a step of a run never created, a run that
			// never started, ….
			lines := strings.SplitAfter(string(log), "\n")
			i := rapid.IntRange(0, len(lines)-2).Draw(t, "dropped")
			log = []byte(strings.Join(slices.Delete(lines, i, i+1), ""))
		}
		audit := replay.Options{Audit: rapid.Bool().Draw(t, "audit")}
		src := func() events.Source {
			return events.NewReader(bytes.NewReader(log), events.ReadOptions{File: "log.jsonl"})
		}

		st := memory.New()
		want, wantErr := replay.Run(context.Background(), st, src(), audit)
		got, err := replay.Run(context.Background(), nil, src(), audit)

		require.Equal(t, fmt.Sprint(wantErr), fmt.Sprint(err))
		require.Equal(t, problems(want), problems(got))
		want.Problems, got.Problems = nil, nil
		require.Equal(t, want, got)
		stored, err := st.Events(context.Background(), 0, 1<<20)
		require.NoError(t, err)
		require.EqualValues(t, len(stored), got.Applied, "Applied counts the events that passed")
	})
}

func problems(rep replay.Report) []string {
	var out []string
	for _, p := range rep.Problems {
		out = append(out, p.Error())
	}
	return out
}

// Apply without a store checks the event and keeps it as the state.
func TestApplyWithoutAStore(t *testing.T) {
	evs, log := fixedHistory(t).log(t)
	r := replay.New(nil, replay.Options{})
	ctx := context.Background()
	for i, ev := range evs {
		require.NoError(t, r.Apply(ctx, ev, events.Position{Line: int64(i + 1)}))
	}
	err := r.Apply(ctx, evs[0], events.Position{Line: int64(len(evs) + 1)})
	require.ErrorIs(t, err, events.ErrViolation, "the run is created again")

	rep := r.Report()
	assert.EqualValues(t, len(evs), rep.Applied)
	assert.EqualValues(t, len(evs)+1, rep.Events)
	require.Len(t, rep.Problems, 1)
	_, want, err := replayLog(t, log, replay.Options{})
	require.NoError(t, err)
	assert.Equal(t, want.RunSteps, rep.RunSteps)
}
