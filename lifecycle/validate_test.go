package lifecycle_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/lifecycle"
)

// metadata returns n pairs with keys of keyLen and values of valueLen
// characters, made of r.
func metadata(n, keyLen, valueLen int, r string) lifecycle.Metadata {
	m := make(lifecycle.Metadata, n)
	for i := range n {
		prefix := fmt.Sprintf("%02d", i)
		m[prefix+strings.Repeat(r, keyLen-len(prefix))] = strings.Repeat(r, valueLen)
	}
	return m
}

func TestValidate(t *testing.T) {
	codeCall := func(outputs ...lifecycle.CodeOutput) lifecycle.ToolCall {
		return lifecycle.ToolCall{
			ID:              "call_code",
			Type:            lifecycle.ToolCallCodeInterpreter,
			CodeInterpreter: &lifecycle.CodeInterpreterCall{Input: "print(1)", Outputs: outputs},
		}
	}
	tests := []struct {
		name  string
		edit  func(s *lifecycle.Step)
		field string // "" when the step is valid
	}{
		{"valid in_progress", func(s *lifecycle.Step) {}, ""},
		{"valid completed", func(s *lifecycle.Step) { *s = stepIn(lifecycle.StatusCompleted) }, ""},
		{"valid failed", func(s *lifecycle.Step) { *s = stepIn(lifecycle.StatusFailed) }, ""},
		{"valid cancelled", func(s *lifecycle.Step) { *s = stepIn(lifecycle.StatusCancelled) }, ""},
		{"valid expired", func(s *lifecycle.Step) { *s = stepIn(lifecycle.StatusExpired) }, ""},
		{"valid tool calls", func(s *lifecycle.Step) {
			*s = toolStep(functionCall(nil), codeCall(
				lifecycle.CodeOutput{Type: lifecycle.CodeOutputLogs, Logs: "1"},
				lifecycle.CodeOutput{Type: lifecycle.CodeOutputImage, Image: &lifecycle.ImageFile{FileID: "file_1"}},
			))
		}, ""},
		{"valid empty tool calls", func(s *lifecycle.Step) { *s = toolStep() }, ""},

		{"empty id", func(s *lifecycle.Step) { s.ID = "" }, "id"},
		{"unknown status", func(s *lifecycle.Step) { s.Status = "paused" }, "status"},
		{"unknown type", func(s *lifecycle.Step) { s.Type = "retrieval" }, "type"},
		{"unknown error code", func(s *lifecycle.Step) {
			*s = stepIn(lifecycle.StatusFailed)
			s.LastError.Code = "timeout"
		}, "last_error.code"},
		{"empty error message", func(s *lifecycle.Step) {
			*s = stepIn(lifecycle.StatusFailed)
			s.LastError.Message = ""
		}, "last_error.message"},
		{"failed without an error", func(s *lifecycle.Step) {
			*s = stepIn(lifecycle.StatusFailed)
			s.LastError = nil
		}, "last_error"},
		{"error on a completed step", func(s *lifecycle.Step) {
			*s = stepIn(lifecycle.StatusCompleted)
			s.LastError = &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "x"}
		}, "last_error"},
		{"completed without completed_at", func(s *lifecycle.Step) {
			*s = stepIn(lifecycle.StatusCompleted)
			s.CompletedAt = nil
		}, "completed_at"},
		{"expired_at on an in_progress step", func(s *lifecycle.Step) { s.ExpiredAt = ptr(doneAt) }, "expired_at"},
		{"cancelled_at on a failed step", func(s *lifecycle.Step) {
			*s = stepIn(lifecycle.StatusFailed)
			s.CancelledAt = ptr(doneAt)
		}, "cancelled_at"},
		{"negative usage", func(s *lifecycle.Step) { s.Usage = &lifecycle.Usage{TotalTokens: -1} }, "usage.total_tokens"},

		{"16 metadata pairs", func(s *lifecycle.Step) { s.Metadata = metadata(16, 8, 8, "a") }, ""},
		{"17 metadata pairs", func(s *lifecycle.Step) { s.Metadata = metadata(17, 8, 8, "a") }, "metadata"},
		{"64-character key", func(s *lifecycle.Step) { s.Metadata = metadata(1, 64, 1, "k") }, ""},
		{"65-character key", func(s *lifecycle.Step) { s.Metadata = metadata(1, 65, 1, "k") }, "metadata"},
		{"64-rune multibyte key", func(s *lifecycle.Step) {
			s.Metadata = lifecycle.Metadata{strings.Repeat("é", 64): "v"} // 128 bytes
		}, ""},
		{"65-rune multibyte key", func(s *lifecycle.Step) {
			s.Metadata = lifecycle.Metadata{strings.Repeat("é", 65): "v"}
		}, "metadata"},
		{"512-character value", func(s *lifecycle.Step) {
			s.Metadata = lifecycle.Metadata{"k": strings.Repeat("v", 512)}
		}, ""},
		{"513-character value", func(s *lifecycle.Step) {
			s.Metadata = lifecycle.Metadata{"k": strings.Repeat("v", 513)}
		}, "metadata.k"},
		{"512-rune multibyte value", func(s *lifecycle.Step) {
			s.Metadata = lifecycle.Metadata{"k": strings.Repeat("🙂", 512)} // 2048 bytes
		}, ""},

		{"details type mismatch", func(s *lifecycle.Step) {
			s.Details = lifecycle.ToolCallsDetails(functionCall(nil))
		}, "step_details.type"},
		{"message_creation without a message", func(s *lifecycle.Step) {
			s.Details = lifecycle.StepDetails{Type: lifecycle.TypeMessageCreation}
		}, "step_details.message_creation"},
		{"tool call with unknown type", func(s *lifecycle.Step) {
			call := functionCall(nil)
			call.Type = "retrieval"
			*s = toolStep(call)
		}, "step_details.tool_calls[0].type"},
		{"tool call without its member", func(s *lifecycle.Step) {
			call := functionCall(nil)
			call.Type = lifecycle.ToolCallFileSearch
			*s = toolStep(call)
		}, "step_details.tool_calls[0]"},
		{"code interpreter output with unknown type", func(s *lifecycle.Step) {
			*s = toolStep(codeCall(lifecycle.CodeOutput{Type: "text", Logs: "1"}))
		}, "step_details.tool_calls[0].code_interpreter.outputs[0].type"},
		{"image output without an image", func(s *lifecycle.Step) {
			*s = toolStep(codeCall(
				lifecycle.CodeOutput{Type: lifecycle.CodeOutputLogs, Logs: "1"},
				lifecycle.CodeOutput{Type: lifecycle.CodeOutputImage},
			))
		}, "step_details.tool_calls[0].code_interpreter.outputs[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := messageStep()
			tt.edit(&s)
			err := s.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			requireInvalid(t, err, tt.field)
		})
	}
}
