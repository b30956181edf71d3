package events

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/runstep/runstep/lifecycle"
)

// text draws strings with what JSON must escape, what encoding/json
// escapes for HTML, and characters beyond ASCII.
var text = rapid.OneOf(
	rapid.SampledFrom([]string{"", "a", `"`, `\`, "<&>", "\u2028", "\x00\x1f", "é", "😀", "a\nb\tc", `{"k":"v"}`, "\x7f"}),
	rapid.String(),
	rapid.StringMatching(`[a-zA-Z0-9_]{1,30}`),
)

func drawStamp(t *rapid.T, label string) *int64 {
	v := rapid.Int64().Draw(t, label)
	return &v
}

func drawStep(t *rapid.T) lifecycle.Step {
	s := lifecycle.Step{
		ID: rapid.StringMatching(`step_[a-zA-Z0-9]{1,24}`).Draw(t, "id"), CreatedAt: rapid.Int64().Draw(t, "created_at"),
		AssistantID: text.Draw(t, "assistant"), ThreadID: text.Draw(t, "thread"), RunID: text.Draw(t, "run"),
		Status: rapid.SampledFrom(lifecycle.Statuses).Draw(t, "status"),
	}
	if s.AssistantID == "" || s.ThreadID == "" || s.RunID == "" {
		s.AssistantID, s.ThreadID, s.RunID = "a", "t", "r"
	}
	if rapid.Bool().Draw(t, "message") {
		s.Type = lifecycle.TypeMessageCreation
		s.Details = lifecycle.MessageCreationDetails(rapid.StringMatching(`msg_.{1,10}`).Draw(t, "message id"))
	} else {
		s.Type = lifecycle.TypeToolCalls
		s.Details = lifecycle.ToolCallsDetails()
		for i := range rapid.IntRange(0, 3).Draw(t, "calls") {
			fc := &lifecycle.FunctionCall{Name: text.Draw(t, "name"), Arguments: text.Draw(t, "arguments")}
			if rapid.Bool().Draw(t, "output") {
				out := text.Draw(t, "output text")
				fc.Output = &out
			}
			s.Details.ToolCalls = append(s.Details.ToolCalls, lifecycle.ToolCall{
				ID: "call_" + string(rune('a'+i)), Type: lifecycle.ToolCallFunction, Function: fc,
			})
		}
	}
	at := drawStamp(t, "at")
	switch s.Status {
	case lifecycle.StatusCompleted:
		s.CompletedAt = at
	case lifecycle.StatusFailed:
		s.FailedAt = at
		s.LastError = &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "x" + text.Draw(t, "message")}
	case lifecycle.StatusCancelled:
		s.CancelledAt = at
	case lifecycle.StatusExpired:
		s.ExpiredAt = at
	}
	switch rapid.IntRange(0, 2).Draw(t, "metadata") {
	case 1:
		s.Metadata = lifecycle.Metadata{}
	case 2:
		s.Metadata = lifecycle.Metadata{text.Draw(t, "key"): text.Draw(t, "value"), "k": text.Draw(t, "v")}
	}
	if rapid.Bool().Draw(t, "usage") {
		s.Usage = &lifecycle.Usage{PromptTokens: rapid.Int64Min(0).Draw(t, "prompt"), TotalTokens: 3}
		if rapid.Bool().Draw(t, "details") {
			s.Usage.PromptTokenDetails = &lifecycle.PromptTokenDetails{CachedTokens: 1}
			s.Usage.CompletionTokensDetails = &lifecycle.CompletionTokensDetails{ReasoningTokens: -2}
		}
	}
	return s
}

func drawRun(t *rapid.T) lifecycle.Run {
	r := lifecycle.Run{
		ID: "run_" + text.Draw(t, "id"), CreatedAt: rapid.Int64().Draw(t, "created_at"), ThreadID: "t" + text.Draw(t, "thread"),
		AssistantID: "a", Status: rapid.SampledFrom(lifecycle.RunStatuses).Draw(t, "status"),
	}
	if rapid.Bool().Draw(t, "started") {
		r.StartedAt = drawStamp(t, "started_at")
	}
	if rapid.Bool().Draw(t, "deadline") {
		r.ExpiresAt = drawStamp(t, "expires_at")
	}
	switch r.Status {
	case lifecycle.RunStatusCompleted, lifecycle.RunStatusIncomplete:
		r.CompletedAt = drawStamp(t, "completed_at")
	case lifecycle.RunStatusFailed:
		r.FailedAt = drawStamp(t, "failed_at")
		r.LastError = &lifecycle.LastError{Code: lifecycle.ErrorCodeInvalidPrompt, Message: "no"}
	case lifecycle.RunStatusCancelled:
		r.CancelledAt = drawStamp(t, "cancelled_at")
	}
	if rapid.Bool().Draw(t, "metadata") {
		r.Metadata = lifecycle.Metadata{text.Draw(t, "key"): text.Draw(t, "value")}
	}
	return r
}

// What Writer writes, the fast path decodes, and exactly as the reference
// decoder does.
func TestFastPathTakesWhatWriterWrites(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ev := Event{Seq: rapid.Int64Min(1).Draw(t, "seq"), At: rapid.Int64().Draw(t, "at")}
		if rapid.Bool().Draw(t, "step") {
			s := drawStep(t)
			if s.Validate() != nil {
				t.Skip("not a valid step")
			}
			ev.Step, ev.Type = &s, StepType(s.Status)
		} else {
			r := drawRun(t)
			if r.Validate() != nil {
				t.Skip("not a valid run")
			}
			ev.Run, ev.Type = &r, RunType(r.Status)
		}
		line, err := ev.appendJSON(nil)
		require.NoError(t, err)

		fast, ok := decodeCanonical(line)
		std, perr := decodeEventStd(line)

		require.Nil(t, perr)
		require.True(t, ok, "%s", line)
		require.Equal(t, std, fast)
	})
}

// drawLog draws events as an engine writes them, their strings from a
// small pool, so that lines repeat each other's ids and names as a real
// log's do.
func drawLog(t *rapid.T) [][]byte {
	pool := rapid.SliceOfN(rapid.OneOf(text, rapid.StringMatching(`[a-z]{1,3}_[0-9]{1,2}`)), 1, 6).Draw(t, "pool")
	pick := rapid.SampledFrom(pool)
	word := func(label string, s *string) {
		if *s != "" {
			*s = pick.Draw(t, label)
		}
	}
	var lines [][]byte
	for i := range rapid.IntRange(1, 40).Draw(t, "events") {
		ev := Event{Seq: int64(i + 1), At: rapid.Int64Range(1e9, 2e9).Draw(t, "at")}
		if rapid.Bool().Draw(t, "step") {
			s := drawStep(t)
			for _, f := range []*string{&s.ID, &s.AssistantID, &s.ThreadID, &s.RunID} {
				word("id", f)
			}
			if s.Details.MessageCreation != nil {
				word("message", &s.Details.MessageCreation.MessageID)
			}
			for i := range s.Details.ToolCalls {
				tc := &s.Details.ToolCalls[i]
				word("call", &tc.ID)
				word("name", &tc.Function.Name)
				word("arguments", &tc.Function.Arguments)
				if tc.Function.Output != nil {
					word("output", tc.Function.Output)
				}
			}
			if s.Validate() != nil {
				continue
			}
			ev.Step, ev.Type = &s, StepType(s.Status)
		} else {
			r := drawRun(t)
			for _, f := range []*string{&r.ID, &r.AssistantID, &r.ThreadID} {
				word("id", f)
			}
			if r.Validate() != nil {
				continue
			}
			ev.Run, ev.Type = &r, RunType(r.Status)
		}
		line, err := ev.appendJSON(nil)
		require.NoError(t, err)
		lines = append(lines, line)
	}
	return lines
}

// A decoder that remembers the strings of the lines before decodes each
// line of a log exactly as the reference decoder does, and by the fast
// path.
func TestDecoderRemembersAcrossLines(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := newDecoder()
		for _, line := range drawLog(t) {
			std, perr := decodeEventStd(line)
			require.Nil(t, perr)

			fast, ok := d.canonical(line)

			require.True(t, ok, "%s", line)
			require.Equal(t, std, fast, "%s", line)
		}
	})
}

// The events a decoder returns are their caller's: changing one changes
// no other, and nothing the decoder returns later.
func TestDecodedEventsAreTheCallers(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := newDecoder()
		lines := drawLog(t)
		got := make([]Event, len(lines))
		for i, line := range lines {
			ev, perr := d.decode(line)
			require.Nil(t, perr)
			got[i] = ev
			if i%2 == 1 {
				scribble(&got[i])
			}
		}
		for i, line := range lines {
			if i%2 == 0 {
				std, _ := decodeEventStd(line)
				require.Equal(t, std, got[i], "%s", line)
			}
		}
	})
}

// scribble changes everything ev holds.
func scribble(ev *Event) {
	stamp := func(p *int64) {
		if p != nil {
			*p = -1
		}
	}
	if s := ev.Step; s != nil {
		s.ID, s.AssistantID, s.ThreadID, s.RunID, s.CreatedAt = "x", "x", "x", "x", -1
		for _, p := range []*int64{s.ExpiredAt, s.CancelledAt, s.FailedAt, s.CompletedAt} {
			stamp(p)
		}
		if s.LastError != nil {
			s.LastError.Message = "x"
		}
		if s.Details.MessageCreation != nil {
			s.Details.MessageCreation.MessageID = "x"
		}
		for i := range s.Details.ToolCalls {
			tc := &s.Details.ToolCalls[i]
			tc.ID, tc.Function.Name, tc.Function.Arguments = "x", "x", "x"
			if tc.Function.Output != nil {
				*tc.Function.Output = "x"
			}
		}
		s.Details.ToolCalls = append(s.Details.ToolCalls, lifecycle.ToolCall{ID: "x"})
		if s.Usage != nil {
			s.Usage.TotalTokens = -1
			if s.Usage.PromptTokenDetails != nil {
				s.Usage.PromptTokenDetails.CachedTokens = -1
			}
		}
		if s.Metadata != nil {
			s.Metadata["x"] = "x"
		}
	}
	if r := ev.Run; r != nil {
		r.ID, r.AssistantID, r.ThreadID, r.CreatedAt = "x", "x", "x", -1
		for _, p := range []*int64{r.StartedAt, r.ExpiresAt, r.CancelledAt, r.FailedAt, r.CompletedAt} {
			stamp(p)
		}
		if r.LastError != nil {
			r.LastError.Message = "x"
		}
		if r.Metadata != nil {
			r.Metadata["x"] = "x"
		}
	}
}

// int reads what encoding/json reads as an int64, up to the first byte
// that is no digit; a number it does not take, the reference decoder
// says what is wrong with.
func TestInt(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		num := rapid.OneOf(
			rapid.StringMatching(`-?[0-9]{0,22}`),
			rapid.Custom(func(t *rapid.T) string { return strconv.FormatInt(rapid.Int64().Draw(t, "v"), 10) }),
			rapid.SampledFrom([]string{
				"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
				"0", "-0", "00", "01", "1761861531", "999999999999999", "9999999999999999", "99999999999999999999",
			}),
		).Draw(t, "number")
		rest := rapid.StringMatching(`[,}a0-9\x00\xff/:.eE-]{0,20}`).Draw(t, "rest")
		d := decoder{b: []byte(num + rest)}

		got := d.int()

		var want int64
		err := json.Unmarshal([]byte(num), &want)
		if d.bad {
			// Only "-0" and numbers that go on with a digit are left to the
			// reference, of what it takes.
			if err == nil && num != "-0" && (rest == "" || rest[0] < '0' || rest[0] > '9') {
				t.Fatalf("%q refused", num+rest)
			}
			return
		}
		took := d.b[:d.i]
		require.NoError(t, json.Unmarshal(took, &want), "%q took %q", num+rest, took)
		require.Equal(t, want, got, "%q took %q", num+rest, took)
		if d.i < len(d.b) {
			require.False(t, d.b[d.i] >= '0' && d.b[d.i] <= '9', "%q took %q, before a digit", num+rest, took)
		}
	})
}

// nonDigits finds the first byte of eight that is no digit, and digits8
// reads eight digits.
func TestEightBytesAtOnce(t *testing.T) {
	for pos := range 8 {
		for c := range 256 {
			b := []byte("01234567")
			b[pos] = byte(c)
			x := binary.LittleEndian.Uint64(b)
			first := 8
			for i, c := range b {
				if c < '0' || c > '9' {
					first = i
					break
				}
			}
			got := 8
			if m := nonDigits(x); m != 0 {
				got = bits.TrailingZeros64(m) / 8
			}
			require.Equal(t, first, got, "%q", b)
			if first == 8 {
				want, err := strconv.ParseUint(string(b), 10, 64)
				require.NoError(t, err)
				require.Equal(t, want, digits8(x), "%q", b)
			}
		}
	}
	rapid.Check(t, func(t *rapid.T) {
		b := []byte(rapid.StringMatching(`[0-9]{8}`).Draw(t, "digits"))
		want, err := strconv.ParseUint(string(b), 10, 64)
		require.NoError(t, err)
		require.Equal(t, want, digits8(binary.LittleEndian.Uint64(b)))
	})
}

// span stops where a byte-at-a-time scan does, and says as it does
// whether the bytes before are ASCII.
func TestSpan(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := rapid.SliceOf(rapid.OneOf(rapid.Byte(), rapid.ByteRange('a', 'z'), rapid.SampledFrom([]byte{'"', '\\', 0x1f, 0x20, 0x7f, 0x80, 0xff}))).Draw(t, "bytes")
		from := rapid.IntRange(0, len(b)).Draw(t, "from")
		want, ascii := from, true
		for ; want < len(b) && b[want] != '"' && b[want] != '\\' && b[want] >= 0x20; want++ {
			ascii = ascii && b[want] < 0x80
		}

		got, gotASCII := span(b, from)

		require.Equal(t, want, got)
		require.Equal(t, ascii, gotASCII)
	})
}
