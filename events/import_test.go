package events_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/internal/schematest"
	"github.com/runstep/runstep/lifecycle"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// The real captures (copies of shared/recordings).
const (
	toolCallCapture = "openai_streaming_tool_call.sse"
	runsCapture     = "openai_runs_streamed_create.sse"
)

// importFile imports a capture under testdata to its end.
func importFile(t *testing.T, name string) ([]events.Event, *events.Importer) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	require.NoError(t, err)
	defer f.Close()
	im := events.NewImporter(f, events.ReadOptions{File: name})
	var evs []events.Event
	for {
		ev, err := im.Read()
		if err == io.EOF {
			return evs, im
		}
		require.NoError(t, err)
		evs = append(evs, ev)
	}
}

// golden compares got with testdata/golden/name, or rewrites it with
// -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to write the golden files")
	assert.Equal(t, string(want), string(got), "run go test -update if the change is right")
}

// summary says what an import made, one event a line, for reading.
func summary(evs []events.Event, stats events.ImportStats) []byte {
	var b bytes.Buffer
	for _, ev := range evs {
		id, status := "", ""
		if ev.Step != nil {
			id, status = ev.Step.ID, string(ev.Step.Status)
		} else {
			id, status = ev.Run.ID, string(ev.Run.Status)
		}
		fmt.Fprintf(&b, "%d %d %s %s %s\n", ev.Seq, ev.At, ev.Type, id, status)
	}
	fmt.Fprintf(&b, "\nmessages %d, bodies %d, deltas merged %d\n", stats.Messages, stats.Bodies, stats.Merged)
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range stats.Passed {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		fmt.Fprintf(&b, "passed over %s: %d\n", name, stats.Passed[name])
	}
	for _, n := range stats.Notes {
		fmt.Fprintf(&b, "note %s\n", n)
	}
	return b.Bytes()
}

// requireCanonical checks that every event's data is in canonical form: a
// step the spec's schema accepts, a run of object thread.run.
func requireCanonical(t *testing.T, evs []events.Event) {
	t.Helper()
	for _, ev := range evs {
		if ev.Step != nil {
			b, err := ev.Step.MarshalJSON()
			require.NoError(t, err)
			schematest.RequireValidStep(t, b)
			assert.Contains(t, string(b), `"object":"assistant.run.step"`)
			assert.NotContains(t, string(b), "expires_at")
		}
	}
}

func TestImportToolCallCapture(t *testing.T) {
	evs, im := importFile(t, toolCallCapture)
	golden(t, "openai_streaming_tool_call.jsonl", []byte(writeLog(t, evs)))
	golden(t, "openai_streaming_tool_call.txt", summary(evs, im.Stats()))
	requireCanonical(t, evs)

	const (
		run      = "run_oyfV44CrJXYJkvb2qsd80LvJ"
		callStep = "step_9c9pSsTIsCYc1KeHEI6Ba34s"
		msgStep  = "step_Ou0TFVL8JOSRggWUqsOvtr70"
	)
	type row struct {
		typ events.Type
		at  int64
		id  string
	}
	var got []row
	for i, ev := range evs {
		assert.EqualValues(t, i+1, ev.Seq)
		id := run
		if ev.Step != nil {
			id = ev.Step.ID
		}
		got = append(got, row{ev.Type, ev.At, id})
	}
	assert.Equal(t, []row{
		{events.TypeRunCreated, 1761861531, run},
		{events.TypeRunInProgress, 1761861532, run},      // started_at
		{events.TypeStepCreated, 1761861533, callStep},   // created_at
		{events.TypeRunRequiresAction, 1761861533, run},  // no stamp: the latest time so far
		{events.TypeStepCompleted, 1761861534, callStep}, // completed_at
		{events.TypeRunQueued, 1761861534, run},          // tool outputs submitted: no stamp
		{events.TypeRunInProgress, 1761861535, run},      // started again: started_at re-stamped
		{events.TypeStepCreated, 1761861535, msgStep},
		{events.TypeStepCompleted, 1761861536, msgStep},
		{events.TypeRunCompleted, 1761861536, run},
	}, got)

	call := evs[4].Step
	assert.Equal(t, lifecycle.StatusCompleted, call.Status)
	assert.Equal(t, int64(1761861533), call.CreatedAt)
	assert.Equal(t, ptr(int64(1761861534)), call.CompletedAt)
	require.Len(t, call.Details.ToolCalls, 1)
	tc := call.Details.ToolCalls[0]
	assert.Equal(t, "call_xyFYaEeyocjyE6jN64QTcxip", tc.ID)
	require.NotNil(t, tc.Function)
	assert.Equal(t, "get_current_weather", tc.Function.Name)
	assert.Equal(t, "{}", tc.Function.Arguments)
	assert.Equal(t, ptr("warm and sunny"), tc.Function.Output)
	assert.Equal(t, &lifecycle.Usage{PromptTokens: 260, CompletionTokens: 12, TotalTokens: 272,
		PromptTokenDetails: &lifecycle.PromptTokenDetails{}, CompletionTokensDetails: &lifecycle.CompletionTokensDetails{}}, call.Usage)
	assert.Nil(t, call.ExpiredAt, "expires_at, the run's deadline, is not expired_at")

	msg := evs[8].Step
	assert.Equal(t, lifecycle.MessageCreationDetails("msg_kSkj4ryQchn1MSwL3I2N0uWV"), msg.Details)
	assert.Equal(t, ptr(int64(1761861536)), msg.CompletedAt)
	assert.EqualValues(t, 326, msg.Usage.TotalTokens)

	final := evs[9].Run
	assert.Equal(t, lifecycle.RunStatusCompleted, final.Status)
	assert.Equal(t, ptr(int64(1761861535)), final.StartedAt)
	assert.Equal(t, ptr(int64(1761861536)), final.CompletedAt)
	assert.Nil(t, final.ExpiresAt)
	assert.Equal(t, ptr(int64(1761862131)), evs[0].Run.ExpiresAt)

	stats := im.Stats()
	assert.Equal(t, 2, stats.Bodies)
	assert.Equal(t, 2, stats.Merged)
	assert.Equal(t, 40, stats.Passed["thread.message.delta"])
	assert.Equal(t, 2, stats.Passed["thread.run.step.in_progress"])
	assert.Equal(t, 1, stats.Passed["thread.run.queued"], "the queued event right after created changes nothing")
	assert.Empty(t, stats.Notes, "the deltas agree with the final details")
	assert.Empty(t, im.InProgress())
}

// The deltas of the tool call, merged, are the call as far as the stream
// has told it: its id, name and arguments, no output yet.
func TestImportMergesDeltas(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", toolCallCapture))
	require.NoError(t, err)
	defer f.Close()
	im := events.NewImporter(f, events.ReadOptions{})
	for {
		ev, err := im.Read()
		require.NoError(t, err)
		if ev.Type == events.TypeRunRequiresAction {
			break
		}
	}

	open := im.InProgress()

	require.Len(t, open, 1)
	assert.Equal(t, "step_9c9pSsTIsCYc1KeHEI6Ba34s", open[0].ID)
	assert.Equal(t, lifecycle.ToolCallsDetails(lifecycle.ToolCall{
		ID: "call_xyFYaEeyocjyE6jN64QTcxip", Type: lifecycle.ToolCallFunction,
		Function: &lifecycle.FunctionCall{Name: "get_current_weather", Arguments: "{}"},
	}), open[0].Details)
}

func TestImportRunsCapture(t *testing.T) {
	evs, im := importFile(t, runsCapture)
	golden(t, "openai_runs_streamed_create.jsonl", []byte(writeLog(t, evs)))
	golden(t, "openai_runs_streamed_create.txt", summary(evs, im.Stats()))
	requireCanonical(t, evs)

	require.Len(t, evs, 10)
	first, second := evs[:5], evs[5:]
	for i, run := range [][]events.Event{first, second} {
		var types []events.Type
		for _, ev := range run {
			types = append(types, ev.Type)
		}
		end := events.TypeRunCompleted
		if i == 1 {
			end = events.TypeRunIncomplete
		}
		assert.Equal(t, []events.Type{events.TypeRunCreated, events.TypeRunInProgress, events.TypeStepCreated, events.TypeStepCompleted, end}, types)
	}
	assert.Equal(t, []int64{1714255664, 1714255665, 1714255666, 1714255666, 1714255666}, ats(first))
	assert.Equal(t, []int64{1714433728, 1714433729, 1714433730, 1714433732, 1714433732}, ats(second))
	assert.Equal(t, lifecycle.MessageCreationDetails("msg_C0TO06fRsSKvo3dbtmTPtP77"), first[3].Step.Details)
	assert.Equal(t, lifecycle.MessageCreationDetails("msg_X9MPWjYNmdhcJd8fdiPFxhRR"), second[3].Step.Details)
	assert.Equal(t, &lifecycle.Usage{PromptTokens: 27, CompletionTokens: 16, TotalTokens: 43}, second[3].Step.Usage)
	assert.Equal(t, lifecycle.RunStatusIncomplete, second[4].Run.Status)
	assert.Equal(t, ptr(int64(1714433732)), second[4].Run.CompletedAt)

	stats := im.Stats()
	require.Len(t, stats.Notes, 1, "the incomplete run its thread.run.completed event carries")
	assert.Contains(t, stats.Notes[0].Text, "thread.run.completed event carries a run in status incomplete: imported as thread.run.incomplete")
	assert.Equal(t, runsCapture+":153", stats.Notes[0].Position.String())
	assert.Equal(t, 2, stats.Bodies)
}

func ats(evs []events.Event) []int64 {
	var out []int64
	for _, ev := range evs {
		out = append(out, ev.At)
	}
	return out
}

func TestImportProblems(t *testing.T) {
	runJSON := func(status string, extra string) string {
		return `{"id":"run_1","object":"thread.run","created_at":10,"assistant_id":"a","thread_id":"t","status":"` + status + `"` + extra + `}`
	}
	stepJSON := func(status string, extra string) string {
		return `{"id":"step_1","object":"thread.run.step","created_at":11,"run_id":"run_1","assistant_id":"a","thread_id":"t","type":"tool_calls","status":"` +
			status + `","step_details":{"type":"tool_calls","tool_calls":[]}` + extra + `}`
	}
	msg := func(event, data string) string { return "event: " + event + "\ndata: " + data + "\n\n" }
	created := msg("thread.run.created", runJSON("queued", "")) + msg("thread.run.in_progress", runJSON("in_progress", `,"started_at":10`)) +
		msg("thread.run.step.created", stepJSON("in_progress", ""))
	for _, tc := range []struct {
		name   string
		in     string
		kind   error
		line   int64
		events int
	}{
		{"another service's stream", "event: message_start\ndata: {\"type\":\"message_start\"}\n\n", events.ErrUnknownType, 1, 0},
		{"no event name", "data: {}\n\n", events.ErrUnknownType, 1, 0},
		{"unknown run event", msg("thread.run.paused", runJSON("queued", "")), events.ErrUnknownType, 1, 0},
		{"unknown step event", created + msg("thread.run.step.paused", stepJSON("in_progress", "")), events.ErrUnknownType, 10, 3},
		{"bad JSON", created + "event: thread.run.step.completed\ndata: {\"id\":\n\n", events.ErrMalformed, 10, 3},
		{"invalid step", created + msg("thread.run.step.completed", stepJSON("completed", "")), events.ErrMalformed, 10, 3},
		{"created not in progress", msg("thread.run.step.created", stepJSON("cancelled", `,"cancelled_at":12`)), events.ErrMalformed, 1, 0},
		{"ended still in progress", created + msg("thread.run.step.completed", stepJSON("in_progress", "")), events.ErrMalformed, 10, 3},
		{"run created running", msg("thread.run.created", runJSON("in_progress", "")), events.ErrMalformed, 1, 0},
		{"delta without index", created + msg("thread.run.step.delta", `{"id":"step_1","object":"thread.run.step.delta","delta":{"step_details":{"type":"tool_calls","tool_calls":[{"id":"c"}]}}}`), events.ErrMalformed, 10, 3},
		{"delta beyond the calls", created + msg("thread.run.step.delta", `{"id":"step_1","object":"thread.run.step.delta","delta":{"step_details":{"type":"tool_calls","tool_calls":[{"index":1,"id":"c"}]}}}`), events.ErrMalformed, 10, 3},
		{"delta of another type", created + msg("thread.run.step.delta", `{"id":"step_1","object":"thread.run.step.delta","delta":{"step_details":{"type":"message_creation"}}}`), events.ErrMalformed, 10, 3},
		{"torn", created + "event: thread.run.step.completed\ndata: {\"id\"", events.ErrTornLine, 11, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im := events.NewImporter(strings.NewReader(tc.in), events.ReadOptions{File: "x.sse"})
			var n int
			var err error
			for {
				_, err = im.Read()
				if err != nil {
					break
				}
				n++
			}
			require.ErrorIs(t, err, tc.kind)
			var le *events.LogError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, tc.line, le.Line, "%v", err)
			assert.Equal(t, "x.sse", le.File)
			assert.Equal(t, tc.events, n)
			assert.Equal(t, le.Position, im.Position())
			// The importer goes on after the problem, to the end.
			for range 10 {
				if _, err = im.Read(); err == io.EOF {
					break
				}
			}
			assert.Equal(t, io.EOF, err)
		})
	}
}

func TestImportDeltaMerging(t *testing.T) {
	step := `{"id":"step_1","object":"thread.run.step","created_at":11,"run_id":"run_1","assistant_id":"a","thread_id":"t","type":"tool_calls","status":"in_progress","step_details":{"type":"tool_calls","tool_calls":[]}}`
	delta := func(calls string) string {
		return "event: thread.run.step.delta\ndata: {\"id\":\"step_1\",\"object\":\"thread.run.step.delta\",\"delta\":{\"step_details\":{\"type\":\"tool_calls\",\"tool_calls\":[" + calls + "]}}}\n\n"
	}
	in := "event: thread.run.step.created\ndata: " + step + "\n\n" +
		delta(`{"index":0,"id":"call_a","type":"function","function":{"name":"get_","arguments":"","output":null}}`) +
		delta(`{"index":0,"type":"function","function":{"name":"weather","arguments":"{\"city\":"}},{"index":1,"id":"call_b","type":"code_interpreter","code_interpreter":{"input":"print(","outputs":[]}}`) +
		delta(`{"index":0,"function":{"arguments":"\"Paris\"}"}},{"index":1,"code_interpreter":{"input":"1)","outputs":[{"index":0,"type":"logs","logs":"1"},{"index":0,"logs":"\n"}]}}`) +
		"event: thread.run.step.delta\ndata: {\"id\":\"step_unknown\",\"object\":\"thread.run.step.delta\",\"delta\":{}}\n\n"
	im := events.NewImporter(strings.NewReader(in), events.ReadOptions{})
	for {
		_, err := im.Read()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}

	open := im.InProgress()

	require.Len(t, open, 1)
	assert.Equal(t, lifecycle.ToolCallsDetails(
		lifecycle.ToolCall{ID: "call_a", Type: lifecycle.ToolCallFunction,
			Function: &lifecycle.FunctionCall{Name: "get_weather", Arguments: `{"city":"Paris"}`}},
		lifecycle.ToolCall{ID: "call_b", Type: lifecycle.ToolCallCodeInterpreter,
			CodeInterpreter: &lifecycle.CodeInterpreterCall{Input: "print(1)", Outputs: []lifecycle.CodeOutput{{Type: lifecycle.CodeOutputLogs, Logs: "1\n"}}}},
	), open[0].Details)
	stats := im.Stats()
	assert.Equal(t, 3, stats.Merged)
	require.Len(t, stats.Notes, 1)
	assert.Contains(t, stats.Notes[0].Text, "step_unknown")

	// The final details disagree with the deltas: a note says where.
	final := strings.Replace(step, `"status":"in_progress","step_details":{"type":"tool_calls","tool_calls":[]}`,
		`"status":"completed","completed_at":12,"step_details":{"type":"tool_calls","tool_calls":[{"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{}","output":"sunny"}}]}`, 1)
	im = events.NewImporter(strings.NewReader(strings.TrimSuffix(in, "event: thread.run.step.delta\ndata: {\"id\":\"step_unknown\",\"object\":\"thread.run.step.delta\",\"delta\":{}}\n\n")+
		"event: thread.run.step.completed\ndata: "+final+"\n\n"), events.ReadOptions{})
	var last events.Event
	for {
		ev, err := im.Read()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		last = ev
	}
	assert.Equal(t, events.TypeStepCompleted, last.Type)
	assert.Equal(t, `{}`, last.Step.Details.ToolCalls[0].Function.Arguments, "the final details win")
	var notes []string
	for _, n := range im.Stats().Notes {
		notes = append(notes, n.Text)
	}
	assert.Equal(t, []string{
		`step step_1: its deltas call get_weather({"city":"Paris"}) in tool call 0, the final details get_weather({})`,
		"step step_1: its deltas name tool call 1 (call_b), which the final details lack",
	}, notes)
}

// An importer numbers its events from FirstSeq; stamp-less run changes
// take the latest time the stream has given.
func TestImportFirstSeq(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", runsCapture))
	require.NoError(t, err)
	defer f.Close()
	im := events.NewImporter(f, events.ReadOptions{FirstSeq: 41})
	ev, err := im.Read()
	require.NoError(t, err)
	assert.EqualValues(t, 41, ev.Seq)
	assert.EqualValues(t, 42, im.Next())
}

// Import's output is a log: the reader takes it back whole.
func TestImportedLogReadsBack(t *testing.T) {
	for _, name := range []string{toolCallCapture, runsCapture} {
		evs, _ := importFile(t, name)
		got, problems := readAll(t, writeLog(t, evs), events.ReadOptions{})
		assert.Empty(t, problems)
		assert.Equal(t, evs, got)
		for _, ev := range got {
			b, err := json.Marshal(ev)
			require.NoError(t, err)
			var back events.Event
			require.NoError(t, json.Unmarshal(b, &back))
		}
	}
}

func TestNewSourceDetects(t *testing.T) {
	capture, err := os.ReadFile(filepath.Join("testdata", toolCallCapture))
	require.NoError(t, err)
	src, format, err := events.NewSource(bytes.NewReader(capture), events.ReadOptions{File: "c.sse"})
	require.NoError(t, err)
	assert.Equal(t, events.FormatSSE, format)
	assert.IsType(t, &events.Importer{}, src)

	log := writeLog(t, sampleEvents())
	src, format, err = events.NewSource(strings.NewReader(log), events.ReadOptions{})
	require.NoError(t, err)
	assert.Equal(t, events.FormatJSONLines, format)
	ev, err := src.Read()
	require.NoError(t, err)
	assert.Equal(t, sampleEvents()[0], ev)

	_, _, err = events.NewSource(strings.NewReader("GIF89a"), events.ReadOptions{File: "cat.gif"})
	require.ErrorIs(t, err, events.ErrMalformed)
	assert.Contains(t, err.Error(), "cat.gif:1")
}
