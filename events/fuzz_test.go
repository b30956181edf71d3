package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// seedLines returns lines for the fuzzers to start from: every line of
// the golden logs, and variants that only the reference decoder takes.
func seedLines(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	paths, err := filepath.Glob(filepath.Join("testdata", "golden", "*.jsonl"))
	require.NoError(tb, err)
	require.NotEmpty(tb, paths)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(tb, err)
		for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			out = append(out, line)
			// Lenient forms, other spacing and key order, and breakage.
			out = append(out,
				bytes.Replace(line, []byte(`"assistant.run.step"`), []byte(`"thread.run.step"`), 1),
				bytes.Replace(line, []byte(`"expired_at":null,`), []byte(``), 1),
				bytes.Replace(line, []byte(`,"at":`), []byte(` , "at" : `), 1),
				bytes.Replace(line, []byte(`"arguments":"{}"`), []byte(`"arguments":"{\"a\":\"\u00e9\ud83d\ude00\"}"`), 1),
				line[:len(line)/2],
			)
		}
	}
	return append(out,
		[]byte(`{"seq":1,"event":"thread.run.created","at":1,"data":{"id":"r","object":"thread.run","created_at":1,"assistant_id":"a","thread_id":"t","status":"queued","started_at":null,"expires_at":-0,"cancelled_at":null,"failed_at":null,"completed_at":null,"last_error":null,"metadata":{"k":"v","k":"w"}}}`),
		[]byte(`{"seq":9223372036854775808,"event":"thread.run.created"}`),
		[]byte(`null`), []byte(``), []byte(`{}`),
	)
}

// FuzzDecodeLine holds the fast decoder to the reference: on any line,
// whatever the fast path decodes, the reference decodes the same way; the
// decoder never panics; and what decodes encodes back to the same event.
func FuzzDecodeLine(f *testing.F) {
	for _, line := range seedLines(f) {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		fast, ok := decodeCanonical(line)
		std, err := decodeEventStd(line)
		if ok {
			require.Nil(t, err, "the fast path took a line the reference refuses: %s", line)
			require.Equal(t, std, fast, "%s", line)
		}
		// A decoder that remembers strings takes the same lines, the
		// second time with what it remembers of the first.
		d := newDecoder()
		for range 2 {
			again, okAgain := d.canonical(line)
			require.Equal(t, ok, okAgain, "%s", line)
			if ok {
				require.Equal(t, std, again, "%s", line)
			}
		}
		ev, err := decodeEvent(line)
		if err != nil {
			require.Nil(t, ev.Step)
			require.Nil(t, ev.Run)
			require.NotNil(t, KindOf(err), "an error of no kind: %v", err)
			require.Error(t, err.Err, "a problem without its cause")
			return
		}
		b, merr := json.Marshal(ev)
		require.NoError(t, merr)
		back, err := decodeEvent(b)
		require.Nil(t, err)
		require.Equal(t, ev, back)
		_, ok = decodeCanonical(b)
		if onlyFunctionCalls(back) {
			require.True(t, ok, "the fast path refuses what Writer writes: %s", b)
		}
	})
}

// FuzzReader reads any input as a log: it never panics, ends, and says
// where each problem is.
func FuzzReader(f *testing.F) {
	for _, line := range seedLines(f) {
		f.Add(append(append([]byte{}, line...), '\n'), 200)
	}
	// Whole logs, whose lines share ids: the decoder remembers them.
	paths, err := filepath.Glob(filepath.Join("testdata", "golden", "*.jsonl"))
	require.NoError(f, err)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(f, err)
		f.Add(b, 4000)
	}
	f.Add([]byte("{\"seq\":1}\r\n\n\n{"), 10)
	f.Fuzz(func(t *testing.T, data []byte, maxLine int) {
		r := NewReader(bytes.NewReader(data), ReadOptions{File: "f", MaxLine: maxLine % 4096})
		lines := bytes.Split(data, []byte("\n"))
		for i := 0; ; i++ {
			require.LessOrEqual(t, i, len(lines), "more reads than lines")
			ev, err := r.Read()
			if err == io.EOF {
				return
			}
			var le *LogError
			if err != nil {
				require.True(t, errors.As(err, &le), "%v", err)
				require.Positive(t, le.Line)
				require.LessOrEqual(t, le.Line, int64(len(lines)))
				require.Equal(t, "f", le.File)
			}
			if ev.Step == nil && ev.Run == nil {
				require.Error(t, err)
				continue
			}
			// The event is the line's, as the reference decodes it: what
			// the Reader's decoder remembers of the lines before changes
			// nothing.
			line := bytes.TrimSuffix(lines[r.Position().Line-1], []byte("\r"))
			std, perr := decodeEventStd(line)
			require.Nil(t, perr, "%s", line)
			require.Equal(t, std, ev, "%s", line)
		}
	})
}

// FuzzSSE imports any input as an SSE stream: it never panics, ends, and
// says where each problem is.
func FuzzSSE(f *testing.F) {
	// Small pieces of the captures, a few messages each: the whole
	// captures are tested as they are elsewhere, and large inputs make the
	// fuzzer slow to minimize what it finds.
	for _, name := range []string{"openai_streaming_tool_call.sse", "openai_runs_streamed_create.sse"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(f, err)
		msgs := strings.SplitAfter(string(b), "\n\n")
		for i := 0; i < len(msgs); i += 3 {
			piece := strings.Join(msgs[i:min(i+3, len(msgs))], "")
			if strings.Contains(piece, "thread.message.delta") {
				continue
			}
			f.Add([]byte(piece))
			f.Add([]byte(strings.ReplaceAll(piece, "\n", "\r")))
		}
	}
	f.Add([]byte("event: thread.run.step.delta\ndata: {\"id\":\"s\",\"delta\":{\"step_details\":{\"tool_calls\":[{\"index\":0}]}}}\n\n"))
	f.Add([]byte("data: [DONE]\n\nevent: message_start\ndata: {}\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		im := NewImporter(bytes.NewReader(data), ReadOptions{File: "f.sse", MaxLine: 1 << 12})
		lines := int64(bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) + 1)
		for i := int64(0); ; i++ {
			require.LessOrEqual(t, i, lines, "more reads than lines")
			ev, err := im.Read()
			if err == io.EOF {
				return
			}
			if err != nil {
				var le *LogError
				require.True(t, errors.As(err, &le), "%v", err)
				require.Positive(t, le.Line)
				continue
			}
			require.True(t, (ev.Step == nil) != (ev.Run == nil))
			require.Nil(t, ev.checkStatus())
			_, merr := json.Marshal(ev)
			require.NoError(t, merr)
		}
	})
}

// onlyFunctionCalls reports whether ev is one the fast path is for: a run,
// or a step whose tool calls (if any) are function calls.
func onlyFunctionCalls(ev Event) bool {
	if ev.Step == nil {
		return true
	}
	for _, tc := range ev.Step.Details.ToolCalls {
		if tc.Function == nil || tc.CodeInterpreter != nil || tc.FileSearch != nil {
			return false
		}
	}
	return true
}
