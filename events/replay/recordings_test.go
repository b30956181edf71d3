package replay_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/events/replay"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store/memory"
)

// replayCapture imports a real capture (events/testdata) and replays it.
func replayCapture(t *testing.T, name string) (*memory.Store, replay.Report) {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", name))
	require.NoError(t, err)
	defer f.Close()
	src, format, err := events.NewSource(f, events.ReadOptions{File: name})
	require.NoError(t, err)
	require.Equal(t, events.FormatSSE, format)
	st := memory.New()
	rep, err := replay.Run(context.Background(), st, src, replay.Options{Audit: true})
	require.NoError(t, err)
	require.Empty(t, rep.Problems)
	return st, rep
}

func TestReplayToolCallCapture(t *testing.T) {
	st, rep := replayCapture(t, "openai_streaming_tool_call.sse")
	ctx := context.Background()

	assert.EqualValues(t, 10, rep.Applied)
	assert.Equal(t, map[lifecycle.Status]int{lifecycle.StatusCompleted: 2}, rep.Steps)
	assert.Equal(t, []replay.RunSummary{{
		ID: "run_oyfV44CrJXYJkvb2qsd80LvJ", Status: lifecycle.RunStatusCompleted,
		Steps: map[lifecycle.Status]int{lifecycle.StatusCompleted: 2},
	}}, rep.RunSteps)

	// What the capture's last events say.
	call, err := st.GetStep(ctx, "step_9c9pSsTIsCYc1KeHEI6Ba34s")
	require.NoError(t, err)
	assert.Equal(t, lifecycle.StatusCompleted, call.Status)
	assert.Equal(t, int64(1761861533), call.CreatedAt)
	assert.Equal(t, int64(1761861534), *call.CompletedAt)
	assert.Equal(t, lifecycle.ToolCallsDetails(lifecycle.ToolCall{
		ID: "call_xyFYaEeyocjyE6jN64QTcxip", Type: lifecycle.ToolCallFunction,
		Function: &lifecycle.FunctionCall{Name: "get_current_weather", Arguments: "{}", Output: ptr("warm and sunny")},
	}), call.Details)
	assert.EqualValues(t, 272, call.Usage.TotalTokens)

	msg, err := st.GetStep(ctx, "step_Ou0TFVL8JOSRggWUqsOvtr70")
	require.NoError(t, err)
	assert.Equal(t, lifecycle.StatusCompleted, msg.Status)
	assert.Equal(t, int64(1761861535), msg.CreatedAt)
	assert.Equal(t, int64(1761861536), *msg.CompletedAt)
	assert.Equal(t, lifecycle.MessageCreationDetails("msg_kSkj4ryQchn1MSwL3I2N0uWV"), msg.Details)

	run, err := st.GetRun(ctx, "run_oyfV44CrJXYJkvb2qsd80LvJ")
	require.NoError(t, err)
	assert.Equal(t, lifecycle.RunStatusCompleted, run.Status)
	assert.Equal(t, int64(1761861535), *run.StartedAt, "re-stamped when it left the queue again")
	assert.Equal(t, int64(1761861536), *run.CompletedAt)
	assert.Nil(t, run.ExpiresAt)
}

func TestReplayRunsCapture(t *testing.T) {
	st, rep := replayCapture(t, "openai_runs_streamed_create.sse")
	ctx := context.Background()

	assert.EqualValues(t, 10, rep.Applied)
	assert.Equal(t, map[lifecycle.RunStatus]int{lifecycle.RunStatusCompleted: 1, lifecycle.RunStatusIncomplete: 1}, rep.Runs)
	for _, tc := range []struct {
		step, message    string
		created, endedAt int64
	}{
		{"step_0BKwuszpavWBGEj0E0S2bOUM", "msg_C0TO06fRsSKvo3dbtmTPtP77", 1714255666, 1714255666},
		{"step_csJRFWmiJNLv3ElBrh4wnWlo", "msg_X9MPWjYNmdhcJd8fdiPFxhRR", 1714433730, 1714433732},
	} {
		step, err := st.GetStep(ctx, tc.step)
		require.NoError(t, err)
		assert.Equal(t, lifecycle.StatusCompleted, step.Status)
		assert.Equal(t, tc.created, step.CreatedAt)
		assert.Equal(t, tc.endedAt, *step.CompletedAt)
		assert.Equal(t, lifecycle.MessageCreationDetails(tc.message), step.Details)
	}
	run, err := st.GetRun(ctx, "run_B5f5IVSEP7Sa7tif3hCrtSbo")
	require.NoError(t, err)
	assert.Equal(t, lifecycle.RunStatusIncomplete, run.Status)
	assert.Equal(t, int64(1714433732), *run.CompletedAt)
}

// The golden logs that import wrote replay the same as the captures.
func TestReplayImportedGoldenLogs(t *testing.T) {
	for _, name := range []string{"openai_streaming_tool_call", "openai_runs_streamed_create"} {
		want, _ := replayCapture(t, name+".sse")
		log, err := os.ReadFile(filepath.Join("..", "testdata", "golden", name+".jsonl"))
		require.NoError(t, err)

		got, rep, err := replayLog(t, log, replay.Options{})

		require.NoError(t, err)
		evs, err := want.Events(context.Background(), 0, 100)
		require.NoError(t, err)
		requireSameState(t, want, got, evs)
		assert.EqualValues(t, len(evs), rep.Applied)
	}
}

// An engine's events, streamed as OpenAI streams them and imported back,
// replay to the engine's state: the stream carries the objects, and the
// times the machines stamp are in them.
func TestSSERoundTrip(t *testing.T) {
	h := fixedHistory(t)
	evs, _ := h.log(t)
	var sse bytes.Buffer
	w := events.NewSSEWriter(&sse)
	for _, ev := range evs {
		require.NoError(t, w.Write(ev))
	}
	require.NoError(t, w.Done())

	im := events.NewImporter(bytes.NewReader(sse.Bytes()), events.ReadOptions{})
	var imported []events.Event
	for {
		ev, err := im.Read()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		imported = append(imported, ev)
	}
	require.Len(t, imported, len(evs))
	for i, ev := range imported {
		assert.Equal(t, evs[i].Seq, ev.Seq)
		assert.Equal(t, evs[i].Type, ev.Type)
		requireSameJSON(t, eventObject(evs[i]), eventObject(ev), "event "+string(evs[i].Type))
		if stamped(evs[i]) {
			assert.Equal(t, evs[i].At, ev.At, "event %d (%s)", ev.Seq, ev.Type)
		}
	}
	assert.Equal(t, 1, im.Stats().Bodies)
	assert.Empty(t, im.Stats().Notes)

	st := memory.New()
	rep, err := replay.Run(context.Background(), st, events.NewImporter(bytes.NewReader(sse.Bytes()), events.ReadOptions{}), replay.Options{})
	require.NoError(t, err)
	assert.EqualValues(t, len(evs), rep.Applied)
	requireSameState(t, h.st, st, evs)
}

type marshaler interface{ MarshalJSON() ([]byte, error) }

func eventObject(ev events.Event) marshaler {
	if ev.Step != nil {
		return ev.Step
	}
	return ev.Run
}

// stamped reports whether the event's object records the event's time: a
// step's creation or end, a run's creation, start or end.
func stamped(ev events.Event) bool {
	if ev.Step != nil {
		return true
	}
	switch ev.Type {
	case events.TypeRunCreated, events.TypeRunCompleted, events.TypeRunIncomplete, events.TypeRunFailed, events.TypeRunCancelled:
		return true
	case events.TypeRunInProgress:
		return ev.Run.StartedAt != nil && *ev.Run.StartedAt == ev.At
	}
	return false
}
