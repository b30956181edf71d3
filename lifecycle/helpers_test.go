package lifecycle_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/lifecycle"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// Fixed times: the tests never read a clock.
const (
	createdAt = int64(1761861531)
	doneAt    = int64(1761861534)
)

// at is the time of the changes the tests apply. Its sub-second part must not
// reach the step, which records whole Unix seconds.
var at = time.Unix(doneAt, 750_000_000)

func ptr[T any](v T) *T { return &v }

// messageStep returns a valid in_progress message_creation step.
func messageStep() lifecycle.Step {
	return lifecycle.Step{
		ID:          "step_msg",
		CreatedAt:   createdAt,
		AssistantID: "asst_1",
		ThreadID:    "thread_1",
		RunID:       "run_1",
		Type:        lifecycle.TypeMessageCreation,
		Status:      lifecycle.StatusInProgress,
		Details:     lifecycle.MessageCreationDetails("msg_1"),
	}
}

// functionCall returns a function tool call; output nil means the tool
// outputs are not submitted yet.
func functionCall(output *string) lifecycle.ToolCall {
	return lifecycle.ToolCall{
		ID:   "call_weather",
		Type: lifecycle.ToolCallFunction,
		Function: &lifecycle.FunctionCall{
			Name:      "get_current_weather",
			Arguments: `{"city":"Lisbon"}`,
			Output:    output,
		},
	}
}

// toolStep returns a valid in_progress tool_calls step with calls.
func toolStep(calls ...lifecycle.ToolCall) lifecycle.Step {
	s := messageStep()
	s.ID = "step_tool"
	s.Type = lifecycle.TypeToolCalls
	s.Details = lifecycle.ToolCallsDetails(calls...)
	return s
}

// usage returns token usage with both detail objects.
func usage() *lifecycle.Usage {
	return &lifecycle.Usage{
		PromptTokens:            260,
		CompletionTokens:        12,
		TotalTokens:             272,
		PromptTokenDetails:      &lifecycle.PromptTokenDetails{CachedTokens: 128},
		CompletionTokensDetails: &lifecycle.CompletionTokensDetails{ReasoningTokens: 4},
	}
}

// stepIn returns a valid message_creation step in status, with the *_at
// field (and last_error) that status carries.
func stepIn(status lifecycle.Status) lifecycle.Step {
	s := messageStep()
	s.Status = status
	t := ptr(createdAt + 1)
	switch status {
	case lifecycle.StatusCompleted:
		s.CompletedAt = t
	case lifecycle.StatusFailed:
		s.FailedAt = t
		s.LastError = &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "boom"}
	case lifecycle.StatusCancelled:
		s.CancelledAt = t
	case lifecycle.StatusExpired:
		s.ExpiredAt = t
	}
	return s
}

// requireGolden compares got with testdata/golden/name byte for byte, after
// rewriting the file when -update is set.
func requireGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file: run go test ./lifecycle/ -update")
	require.Equal(t, string(want), string(got), "%s differs; run go test ./lifecycle/ -update if the change is meant", path)
}

// requireInvalid fails t unless err is a *ValidationError naming field.
func requireInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var ve *lifecycle.ValidationError
	require.ErrorAs(t, err, &ve)
	require.ErrorIs(t, err, lifecycle.ErrInvalid)
	require.Equal(t, field, ve.Field, "error: %v", err)
}
