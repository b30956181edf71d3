package events_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
)

func TestSSEWriter(t *testing.T) {
	evs := sampleEvents()[:2]
	var buf bytes.Buffer
	w := events.NewSSEWriter(&buf)
	for _, ev := range evs {
		require.NoError(t, w.Write(ev))
	}
	require.NoError(t, w.Done())

	var want strings.Builder
	for _, ev := range evs {
		data, err := ev.Run.MarshalJSON()
		require.NoError(t, err)
		fmt.Fprintf(&want, "event: %s\ndata: %s\n\n", ev.Type, data)
	}
	want.WriteString("event: done\ndata: [DONE]\n\n")
	assert.Equal(t, want.String(), buf.String())

	bad := evs[0]
	bad.Type = "thread.run.created\ndata: injected"
	assert.ErrorIs(t, events.NewSSEWriter(io.Discard).Write(bad), events.ErrUnknownType)
}

// readSSE reads every message, and the problems, as "line event data".
func readSSE(t *testing.T, in string, opts events.ReadOptions) (msgs []string, problems []*events.LogError) {
	t.Helper()
	r := events.NewSSEReader(strings.NewReader(in), opts)
	for range 1000 {
		msg, err := r.Read()
		if err == io.EOF {
			return msgs, problems
		}
		if err != nil {
			var le *events.LogError
			require.ErrorAs(t, err, &le)
			problems = append(problems, le)
			continue
		}
		s := fmt.Sprintf("%d %s %s", msg.Position.Line, msg.Event, msg.Data)
		if msg.ID != "" {
			s += " #" + msg.ID
		}
		msgs = append(msgs, s)
	}
	t.Fatal("the reader does not end")
	return nil, nil
}

func TestSSEReader(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       string
		want     []string
		problems []string // "line kind"
	}{
		{
			name: "two messages, comments",
			in:   ": POST /v1/threads/runs\nevent: a\ndata: {}\n\n: another\nevent: b\ndata: [1]\n\n",
			want: []string{"2 a {}", "6 b [1]"},
		},
		{name: "CRLF", in: "event: a\r\ndata: x\r\n\r\nevent: b\r\ndata: y\r\n\r\n", want: []string{"1 a x", "4 b y"}},
		{name: "CR", in: "event: a\rdata: x\r\revent: b\rdata: y\r\r", want: []string{"1 a x", "4 b y"}},
		{name: "mixed endings", in: "event: a\rdata: x\r\n\nevent: b\ndata: y\r\r", want: []string{"1 a x", "4 b y"}},
		{name: "several data lines", in: "data: one\ndata:two\ndata\n\n", want: []string{"1  one\ntwo\n"}},
		{name: "one space is cut", in: "event:a\ndata:  x\n\n", want: []string{"1 a  x"}},
		{name: "no data: no message", in: "event: a\n\nevent: b\ndata: y\n\n", want: []string{"3 b y"}},
		{name: "byte order mark", in: "\xef\xbb\xbfevent: a\ndata: x\n\n", want: []string{"1 a x"}},
		{name: "id carries over", in: "id: 7\ndata: x\n\ndata: y\n\nid\ndata: z\n\n", want: []string{"1  x #7", "4  y #7", "6  z"}},
		{name: "unknown fields and retry", in: "retry: 10\nfoo: bar\nevent: a\ndata: x\n\n", want: []string{"1 a x"}},
		{name: "last message without its blank line", in: "event: a\ndata: x\n\nevent: done\ndata: [DONE]\n", want: []string{"1 a x", "4 done [DONE]"}},
		{name: "empty", in: "", want: nil},
		{
			name: "torn last line", in: "event: a\ndata: x\n\nevent: b\ndata: {\"id\":",
			want: []string{"1 a x"}, problems: []string{"5 torn final line"},
		},
		{
			name: "torn after a lone CR", in: "event: a\rdata: x\r\rdata: y\rdat",
			want: []string{"1 a x"}, problems: []string{"5 torn final line"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, problems := readSSE(t, tc.in, events.ReadOptions{})

			assert.Equal(t, tc.want, msgs)
			var got []string
			for _, p := range problems {
				got = append(got, fmt.Sprintf("%d %s", p.Line, strings.TrimPrefix(events.KindOf(p).Error(), "events: ")))
			}
			assert.Equal(t, tc.problems, got)
		})
	}
}

func TestSSEReaderLongLine(t *testing.T) {
	long := strings.Repeat("x", 100)
	in := "event: a\ndata: " + long + "\ndata: y\n\nevent: b\ndata: z\n\n"

	msgs, problems := readSSE(t, in, events.ReadOptions{MaxLine: 50, File: "s.sse"})

	assert.Equal(t, []string{"5 b z"}, msgs, "the message with the long line is passed over, and only it")
	require.Len(t, problems, 1)
	assert.ErrorIs(t, problems[0], events.ErrMalformed)
	assert.Equal(t, "s.sse:2", problems[0].Position.String())
}
