package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
)

const t0 = int64(1761861531)

func ptr[T any](v T) *T { return &v }

// sampleEvents is a small valid log: a run created and started, a tool
// call step created and completed with its output and usage, a message
// step created and failed.
func sampleEvents() []events.Event {
	deadline := t0 + 600
	run := lifecycle.Run{
		ID: "run_1", CreatedAt: t0, ThreadID: "thread_1", AssistantID: "asst_1",
		Status: lifecycle.RunStatusQueued, ExpiresAt: &deadline, Metadata: lifecycle.Metadata{"user": "ada"},
	}
	started := run
	started.Status, started.StartedAt = lifecycle.RunStatusInProgress, ptr(t0+1)
	call := lifecycle.Step{
		ID: "step_1", CreatedAt: t0 + 2, AssistantID: "asst_1", ThreadID: "thread_1", RunID: "run_1",
		Type: lifecycle.TypeToolCalls, Status: lifecycle.StatusInProgress,
		Details: lifecycle.ToolCallsDetails(lifecycle.ToolCall{ID: "call_1", Type: lifecycle.ToolCallFunction,
			Function: &lifecycle.FunctionCall{Name: "get_current_weather", Arguments: `{"location":"Paris <&>"}`}}),
	}
	done := call.Clone()
	done.Status, done.CompletedAt = lifecycle.StatusCompleted, ptr(t0+3)
	done.Details.ToolCalls[0].Function.Output = ptr("warm\nand sunny \u2028 é")
	done.Usage = &lifecycle.Usage{PromptTokens: 260, CompletionTokens: 12, TotalTokens: 272,
		PromptTokenDetails: &lifecycle.PromptTokenDetails{}, CompletionTokensDetails: &lifecycle.CompletionTokensDetails{ReasoningTokens: 3}}
	msg := lifecycle.Step{
		ID: "step_2", CreatedAt: t0 + 4, AssistantID: "asst_1", ThreadID: "thread_1", RunID: "run_1",
		Type: lifecycle.TypeMessageCreation, Status: lifecycle.StatusInProgress, Details: lifecycle.MessageCreationDetails("msg_1"),
	}
	failed := msg.Clone()
	failed.Status, failed.FailedAt = lifecycle.StatusFailed, ptr(t0+5)
	failed.LastError = &lifecycle.LastError{Code: lifecycle.ErrorCodeRateLimitExceeded, Message: "slow down"}
	return []events.Event{
		{Seq: 1, Type: events.TypeRunCreated, At: t0, Run: &run},
		{Seq: 2, Type: events.TypeRunInProgress, At: t0 + 1, Run: &started},
		{Seq: 3, Type: events.TypeStepCreated, At: t0 + 2, Step: &call},
		{Seq: 4, Type: events.TypeStepCompleted, At: t0 + 3, Step: &done},
		{Seq: 5, Type: events.TypeStepCreated, At: t0 + 4, Step: &msg},
		{Seq: 6, Type: events.TypeStepFailed, At: t0 + 5, Step: &failed},
	}
}

func writeLog(t *testing.T, evs []events.Event) string {
	t.Helper()
	var buf bytes.Buffer
	w := events.NewWriter(&buf)
	for _, ev := range evs {
		require.NoError(t, w.Write(ev))
	}
	require.NoError(t, w.Flush())
	return buf.String()
}

// readAll reads a log to its end and returns the events and the problems.
func readAll(t *testing.T, log string, opts events.ReadOptions) ([]events.Event, []*events.LogError) {
	t.Helper()
	r := events.NewReader(strings.NewReader(log), opts)
	var evs []events.Event
	var problems []*events.LogError
	for range 10_000 {
		ev, err := r.Read()
		if err == io.EOF {
			return evs, problems
		}
		if err != nil {
			var le *events.LogError
			require.ErrorAs(t, err, &le)
			problems = append(problems, le)
		}
		if ev.Step != nil || ev.Run != nil {
			evs = append(evs, ev)
		}
	}
	t.Fatal("the reader does not end")
	return nil, nil
}

func TestLogRoundTrip(t *testing.T) {
	want := sampleEvents()
	log := writeLog(t, want)

	got, problems := readAll(t, log, events.ReadOptions{})

	assert.Empty(t, problems)
	assert.Equal(t, want, got)
	assert.Equal(t, len(want), strings.Count(log, "\n"))
}

// The envelope Writer builds by hand is the one json.Marshal would build.
func TestEventJSONIsWhatEncodingJSONWrites(t *testing.T) {
	for _, ev := range sampleEvents() {
		got, err := json.Marshal(ev)
		require.NoError(t, err)
		var data any = ev.Step
		if ev.Run != nil {
			data = ev.Run
		}
		raw, err := json.Marshal(data)
		require.NoError(t, err)
		want, err := json.Marshal(struct {
			Seq  int64           `json:"seq"`
			Type events.Type     `json:"event"`
			At   int64           `json:"at"`
			Data json.RawMessage `json:"data"`
		}{ev.Seq, ev.Type, ev.At, raw})
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got))
	}
	odd := sampleEvents()[0]
	odd.Type = "thread.run.<odd> \"name\""
	got, err := json.Marshal(odd)
	require.NoError(t, err)
	assert.Contains(t, string(got), `"event":"thread.run.\u003codd\u003e \"name\""`)
}

func TestReaderReportsProblems(t *testing.T) {
	lines := strings.SplitAfter(writeLog(t, sampleEvents()), "\n")[:6]
	join := func(ls ...string) string { return strings.Join(ls, "") }
	replace := func(line, old, new string) string {
		require.Contains(t, line, old)
		return strings.Replace(line, old, new, 1)
	}
	for _, tc := range []struct {
		name string
		log  string
		opts events.ReadOptions
		// want is each problem as "line kind seq".
		want []string
		// events is how many whole events the reader returns.
		events int
	}{
		{name: "clean", log: join(lines...), events: 6},
		{name: "empty", log: "", events: 0},
		{
			name: "malformed JSON", log: join(lines[0], "{\"seq\":2,\n", lines[2]),
			want: []string{"2 malformed event 0"}, events: 2,
		},
		{
			name: "not an object", log: join(lines[0], "[1,2]\n", lines[2]),
			want: []string{"2 malformed event 0"}, events: 2,
		},
		{
			name: "blank line", log: join(lines[0], "\n", lines[2]),
			want: []string{"2 malformed event 0"}, events: 2,
		},
		{
			name: "unknown event", log: join(lines[0], replace(lines[1], "thread.run.in_progress", "thread.run.paused"), lines[2]),
			want: []string{"2 unknown event type 2"}, events: 2,
		},
		{
			name: "name and status disagree", log: join(lines[0], replace(lines[1], `"status":"in_progress"`, `"status":"queued"`), lines[2]),
			want: []string{"2 malformed event 2"}, events: 2,
		},
		{
			name: "invalid step", log: join(lines[:3]...) + replace(lines[3], `"completed_at":1761861534`, `"completed_at":null`),
			want: []string{"4 malformed event 4"}, events: 3,
		},
		{
			name: "no at", log: join(lines[0], replace(lines[1], `"at":1761861532,`, ``), lines[2]),
			want: []string{"2 malformed event 2"}, events: 2,
		},
		{
			name: "seq not positive", log: replace(lines[0], `"seq":1`, `"seq":0`) + lines[1],
			want: []string{"1 malformed event 0"}, events: 1,
		},
		{
			name: "gap", log: join(lines[0], lines[2], lines[3]),
			want: []string{"2 gap in seq 3"}, events: 3,
		},
		{
			name: "repeat", log: join(lines[0], lines[1], lines[1], lines[2]),
			want: []string{"3 seq repeated or out of order 2"}, events: 4,
		},
		{
			name: "swap", log: join(lines[0], lines[2], lines[1], lines[3]),
			want: []string{"2 gap in seq 3", "3 seq repeated or out of order 2", "4 gap in seq 4"}, events: 4,
		},
		{
			name: "torn line", log: join(lines[0], lines[1], lines[2][:40]),
			want: []string{"3 torn final line 0"}, events: 2,
		},
		{
			name: "whole event without its newline", log: join(lines[0], strings.TrimSuffix(lines[1], "\n")),
			want: []string{"2 torn final line 2"}, events: 1,
		},
		{
			name: "CRLF", log: strings.ReplaceAll(join(lines...), "\n", "\r\n"), events: 6,
		},
		{
			name: "starts later", log: join(lines[2:]...), opts: events.ReadOptions{FirstSeq: 3}, events: 4,
		},
		{
			name: "starts earlier than said", log: join(lines...), opts: events.ReadOptions{FirstSeq: 3},
			want: []string{"1 seq repeated or out of order 1"}, events: 6,
		},
		{
			name: "line too long", log: join(lines[0], lines[3], lines[2]), opts: events.ReadOptions{MaxLine: 700},
			// The line is taken to hold the next seq, 2: so seq 3 is in turn.
			want: []string{"2 malformed event 0"}, events: 2,
		},
		{
			name: "torn and too long", log: join(lines[0], lines[3][:720]), opts: events.ReadOptions{MaxLine: 700},
			want: []string{"2 torn final line 0"}, events: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, problems := readAll(t, tc.log, tc.opts)

			var got []string
			for _, p := range problems {
				got = append(got, fmt.Sprintf("%d %s %d", p.Line, strings.TrimPrefix(events.KindOf(p).Error(), "events: "), p.Seq))
				assert.Equal(t, tc.opts.File, p.File)
			}
			assert.Equal(t, tc.want, got)
			assert.Len(t, evs, tc.events)
		})
	}
}

func TestLogErrorSaysWhatAndWhere(t *testing.T) {
	lines := strings.SplitAfter(writeLog(t, sampleEvents()), "\n")
	_, problems := readAll(t, lines[0]+lines[2], events.ReadOptions{File: "run.jsonl"})

	require.Len(t, problems, 1)
	err := error(problems[0])
	assert.EqualError(t, err, "events: run.jsonl:2: seq 3: gap in seq: want seq 2: 1 missing")
	assert.ErrorIs(t, err, events.ErrSeqGap)
	assert.NotErrorIs(t, err, events.ErrSeqRepeat)
	assert.Equal(t, events.ErrSeqGap, events.KindOf(err))
	assert.Equal(t, events.Position{File: "run.jsonl", Line: 2, Offset: int64(len(lines[0]))}, problems[0].Position)

	// The cause stays reachable.
	_, problems = readAll(t, lines[0]+"{\"seq\":2,\"event\":\"thread.run.step.created\",\"at\":1,\"data\":{\"id\":3}}\n", events.ReadOptions{})
	require.Len(t, problems, 1)
	var ve *lifecycle.ValidationError
	assert.ErrorAs(t, problems[0], &ve)
	assert.ErrorIs(t, problems[0], events.ErrMalformed)
	assert.ErrorIs(t, problems[0], lifecycle.ErrInvalid)
	assert.Contains(t, problems[0].Error(), "line 2: seq 2: malformed event")
	var se *json.SyntaxError
	_, problems = readAll(t, "{\"seq\"\n", events.ReadOptions{})
	require.Len(t, problems, 1)
	assert.ErrorAs(t, problems[0], &se)
}

func TestUnmarshalJSONErrors(t *testing.T) {
	var ev events.Event
	err := json.Unmarshal([]byte(`{"seq":1,"event":"thread.run.paused","at":1,"data":{}}`), &ev)
	require.ErrorIs(t, err, events.ErrUnknownType)
	assert.EqualError(t, err, `events: seq 1: unknown event type: "thread.run.paused"`)

	err = json.Unmarshal([]byte(`{"seq":1,"event":"thread.run.created","at":1,"data":null}`), &ev)
	require.ErrorIs(t, err, events.ErrMalformed)
	assert.Equal(t, events.Event{}, ev, "nothing half-decoded")
}

func TestWriterKeepsSeqsInTurn(t *testing.T) {
	evs := sampleEvents()
	var buf bytes.Buffer
	w := events.NewWriter(&buf)
	require.NoError(t, w.Write(evs[2]), "a log may start at any seq")
	assert.EqualValues(t, 3, w.Last())

	err := w.Write(evs[4])
	require.ErrorIs(t, err, events.ErrSeqGap)
	err = w.Write(evs[2])
	require.ErrorIs(t, err, events.ErrSeqRepeat)
	zero := evs[0]
	zero.Seq = 0
	require.ErrorIs(t, events.NewWriter(io.Discard).Write(zero), events.ErrMalformed)
	require.NoError(t, w.Write(evs[3]))
	require.NoError(t, w.Sync())

	got, problems := readAll(t, buf.String(), events.ReadOptions{FirstSeq: 3})
	assert.Empty(t, problems)
	assert.Equal(t, evs[2:4], got, "the refused events left nothing behind")
}

func TestWriterRefusesEventsWithoutOneObject(t *testing.T) {
	var buf bytes.Buffer
	w := events.NewWriter(&buf)
	ev := sampleEvents()[2]
	ev.Run = sampleEvents()[0].Run
	require.Error(t, w.Write(ev))
	ev.Step, ev.Run = nil, nil
	require.Error(t, w.Write(ev))
	require.NoError(t, w.Flush())
	assert.Empty(t, buf.String())
}

// shortWriter takes n bytes, then fails.
type shortWriter struct {
	buf bytes.Buffer
	n   int
}

var errFull = errors.New("disk full")

func (w *shortWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		w.buf.Write(p[:w.n])
		w.n = 0
		return w.buf.Len(), errFull
	}
	w.n -= len(p)
	return w.buf.Write(p)
}

// A writer that fails leaves at worst a torn last line, which the reader
// reports and Repair removes; the Writer stays failed.
func TestWriterFailureLeavesATornLineAtWorst(t *testing.T) {
	evs := sampleEvents()
	full := writeLog(t, evs)
	sw := &shortWriter{n: len(full) - 100}
	w := events.NewWriter(sw)
	var err error
	for _, ev := range evs {
		if err = w.Write(ev); err != nil {
			break
		}
	}
	if err == nil {
		err = w.Flush()
	}
	require.ErrorIs(t, err, errFull)
	assert.ErrorIs(t, w.Write(evs[0]), errFull, "sticky")
	assert.ErrorIs(t, w.Sync(), errFull)

	got, problems := readAll(t, sw.buf.String(), events.ReadOptions{})
	require.Len(t, problems, 1)
	assert.ErrorIs(t, problems[0], events.ErrTornLine)
	assert.Equal(t, evs[:len(got)], got)
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want events.Format
	}{
		{"", events.FormatJSONLines},
		{"\n\n  ", events.FormatJSONLines},
		{`{"seq":1}`, events.FormatJSONLines},
		{"\xef\xbb\xbf{", events.FormatJSONLines},
		{"event: thread.run.created\n", events.FormatSSE},
		{": POST https://api.openai.com/v1/threads/runs\nevent: x", events.FormatSSE},
		{"data: {}\n\n", events.FormatSSE},
		{"\r\nid: 7\r\n", events.FormatSSE},
		{"retry: 100\n", events.FormatSSE},
	} {
		got, err := events.Detect([]byte(tc.in))
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}
	for _, in := range []string{"hello", "[{}]", "<html>", "eventually: no"} {
		_, err := events.Detect([]byte(in))
		require.ErrorIs(t, err, events.ErrMalformed, "%q", in)
	}
}
