package events

import (
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
