package lifecycle_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/lifecycle"
)

// The text the UTF-8 tests put in every string: multi-byte, so that the
// validators leave their ASCII fast path; bad is text with one bad byte.
const (
	multi = "héllo 世界"
	bad   = "héllo \xff世界"
)

// utf8Step returns a valid failed tool_calls step with multi-byte text in
// every string it can carry: a function call, a file search and a code
// interpreter call with an image and then a logs output.
func utf8Step() lifecycle.Step {
	s := toolStep(
		lifecycle.ToolCall{
			ID:   "call_" + multi,
			Type: lifecycle.ToolCallFunction,
			Function: &lifecycle.FunctionCall{
				Name:      "fn_" + multi,
				Arguments: `{"city":"` + multi + `"}`,
				Output:    ptr(multi),
			},
		},
		lifecycle.ToolCall{
			ID:   "call_search",
			Type: lifecycle.ToolCallFileSearch,
			FileSearch: &lifecycle.FileSearchCall{
				RankingOptions: &lifecycle.FileSearchRankingOptions{Ranker: "ranker_" + multi, ScoreThreshold: 0.5},
				Results: []lifecycle.FileSearchResult{{
					FileID:   "file_" + multi,
					FileName: multi + ".txt",
					Score:    0.9,
					Content:  []lifecycle.FileSearchContent{{Type: "text", Text: multi}, {Type: "text_" + multi, Text: multi}},
				}},
			},
		},
		lifecycle.ToolCall{
			ID:   "call_code",
			Type: lifecycle.ToolCallCodeInterpreter,
			CodeInterpreter: &lifecycle.CodeInterpreterCall{
				Input: "print('" + multi + "')",
				Outputs: []lifecycle.CodeOutput{
					{Type: lifecycle.CodeOutputImage, Image: &lifecycle.ImageFile{FileID: "file_" + multi}},
					{Type: lifecycle.CodeOutputLogs, Logs: multi},
				},
			},
		},
	)
	s.ID = "step_" + multi
	s.RunID = "run_" + multi
	s.ThreadID = "thread_" + multi
	s.AssistantID = "asst_" + multi
	s.Status = lifecycle.StatusFailed
	s.FailedAt = ptr(doneAt)
	s.LastError = &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: multi}
	s.Usage = usage()
	s.Metadata = lifecycle.Metadata{"k_" + multi: multi, "plain": "nul \x00 is valid UTF-8"}
	return s
}

// utf8Run returns a valid failed run with multi-byte text in every string
// it can carry.
func utf8Run() lifecycle.Run {
	r := runIn(lifecycle.RunStatusFailed)
	r.ID = "run_" + multi
	r.ThreadID = "thread_" + multi
	r.AssistantID = "asst_" + multi
	r.LastError.Message = multi
	r.Metadata = lifecycle.Metadata{"k_" + multi: multi}
	return r
}

// requireNotUTF8 fails t unless err is the *ValidationError for invalid
// UTF-8 in field.
func requireNotUTF8(t *testing.T, err error, field string) {
	t.Helper()
	requireInvalid(t, err, field)
	var ve *lifecycle.ValidationError
	require.True(t, errors.As(err, &ve))
	require.Contains(t, ve.Reason, "not valid UTF-8", "error: %v", err)
}

func TestValidateMultiByteText(t *testing.T) {
	s := utf8Step()
	require.NoError(t, s.Validate())
	msg := messageStep()
	msg.Details = lifecycle.MessageCreationDetails("msg_" + multi)
	require.NoError(t, msg.Validate())
	r := utf8Run()
	require.NoError(t, r.Validate())

	// Every transition validates, so the valid path must not allocate.
	require.Zero(t, testing.AllocsPerRun(100, func() { _ = s.Validate() }), "Step.Validate allocates")
	require.Zero(t, testing.AllocsPerRun(100, func() { _ = r.Validate() }), "Run.Validate allocates")
}

func TestValidateRejectsInvalidUTF8(t *testing.T) {
	// tc returns the i-th tool call of s.
	tc := func(s *lifecycle.Step, i int) *lifecycle.ToolCall { return &s.Details.ToolCalls[i] }
	tests := []struct {
		field string
		edit  func(s *lifecycle.Step)
	}{
		{"id", func(s *lifecycle.Step) { s.ID = bad }},
		{"run_id", func(s *lifecycle.Step) { s.RunID = bad }},
		{"thread_id", func(s *lifecycle.Step) { s.ThreadID = bad }},
		{"assistant_id", func(s *lifecycle.Step) { s.AssistantID = bad }},
		{"step_details.message_creation.message_id", func(s *lifecycle.Step) {
			s.Type = lifecycle.TypeMessageCreation
			s.Details = lifecycle.MessageCreationDetails(bad)
		}},
		{"step_details.tool_calls[0].id", func(s *lifecycle.Step) { tc(s, 0).ID = bad }},
		{"step_details.tool_calls[0].function.name", func(s *lifecycle.Step) { tc(s, 0).Function.Name = bad }},
		{"step_details.tool_calls[0].function.arguments", func(s *lifecycle.Step) { tc(s, 0).Function.Arguments = bad }},
		{"step_details.tool_calls[0].function.output", func(s *lifecycle.Step) { tc(s, 0).Function.Output = ptr(bad) }},
		{"step_details.tool_calls[1].id", func(s *lifecycle.Step) { tc(s, 1).ID = bad }},
		{"step_details.tool_calls[1].file_search.ranking_options.ranker", func(s *lifecycle.Step) {
			tc(s, 1).FileSearch.RankingOptions.Ranker = bad
		}},
		{"step_details.tool_calls[1].file_search.results[0].file_id", func(s *lifecycle.Step) {
			tc(s, 1).FileSearch.Results[0].FileID = bad
		}},
		{"step_details.tool_calls[1].file_search.results[0].file_name", func(s *lifecycle.Step) {
			tc(s, 1).FileSearch.Results[0].FileName = bad
		}},
		{"step_details.tool_calls[1].file_search.results[0].content[1].type", func(s *lifecycle.Step) {
			tc(s, 1).FileSearch.Results[0].Content[1].Type = bad
		}},
		{"step_details.tool_calls[1].file_search.results[0].content[1].text", func(s *lifecycle.Step) {
			tc(s, 1).FileSearch.Results[0].Content[1].Text = bad
		}},
		{"step_details.tool_calls[2].id", func(s *lifecycle.Step) { tc(s, 2).ID = bad }},
		{"step_details.tool_calls[2].code_interpreter.input", func(s *lifecycle.Step) {
			tc(s, 2).CodeInterpreter.Input = bad
		}},
		{"step_details.tool_calls[2].code_interpreter.outputs[0].image.file_id", func(s *lifecycle.Step) {
			tc(s, 2).CodeInterpreter.Outputs[0].Image.FileID = bad
		}},
		{"step_details.tool_calls[2].code_interpreter.outputs[1].logs", func(s *lifecycle.Step) {
			tc(s, 2).CodeInterpreter.Outputs[1].Logs = bad
		}},
		{"last_error.message", func(s *lifecycle.Step) { s.LastError.Message = bad }},
		{"metadata", func(s *lifecycle.Step) { s.Metadata[bad] = "v" }},
		{"metadata.k_" + multi, func(s *lifecycle.Step) { s.Metadata["k_"+multi] = bad }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			s := utf8Step()
			tt.edit(&s)
			requireNotUTF8(t, s.Validate(), tt.field)
		})
	}
}

func TestRunValidateRejectsInvalidUTF8(t *testing.T) {
	tests := []struct {
		field string
		edit  func(r *lifecycle.Run)
	}{
		{"id", func(r *lifecycle.Run) { r.ID = bad }},
		{"thread_id", func(r *lifecycle.Run) { r.ThreadID = bad }},
		{"assistant_id", func(r *lifecycle.Run) { r.AssistantID = bad }},
		{"last_error.message", func(r *lifecycle.Run) { r.LastError.Message = bad }},
		{"metadata", func(r *lifecycle.Run) { r.Metadata[bad] = "v" }},
		{"metadata.k_" + multi, func(r *lifecycle.Run) { r.Metadata["k_"+multi] = bad }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			r := utf8Run()
			tt.edit(&r)
			requireNotUTF8(t, r.Validate(), tt.field)
		})
	}
}

// TestInvalidUTF8 checks that Validate refuses exactly what
// utf8.ValidString refuses.
func TestInvalidUTF8(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		valid      bool
	}{
		{"nul", "a\x00b", true},
		{"four bytes", "🙂", true},
		{"bad byte", "\xff", false},
		{"truncated", "世"[:2], false},
		{"surrogate", "\xed\xa0\x80", false},
		{"overlong nul", "\xc0\x80", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := utf8Step()
			s.LastError.Message = tt.text
			if tt.valid {
				require.NoError(t, s.Validate())
				return
			}
			requireNotUTF8(t, s.Validate(), "last_error.message")
		})
	}
}

func TestInvalidUTF8MetadataKey(t *testing.T) {
	m := lifecycle.Metadata{"b\xff": "v", "a\xfe": "v", "c": "v\xff"}
	for range 20 { // map order varies; the error must not
		err := m.Validate()
		requireNotUTF8(t, err, "metadata")
		var ve *lifecycle.ValidationError
		require.True(t, errors.As(err, &ve))
		require.Equal(t, "a\xfe", ve.Value)
		require.Contains(t, err.Error(), `"a\xfe"`, "the key is quoted in the message")
	}
}

// TestApplyRejectsInvalidUTF8 checks that what a change brings is held to
// the same rule as a step or run Validate accepts.
func TestApplyRejectsInvalidUTF8(t *testing.T) {
	_, err := messageStep().Apply(lifecycle.Change{
		Trigger: lifecycle.TriggerFail, At: at,
		Error: &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: bad},
	})
	requireNotUTF8(t, err, "last_error.message")

	details := utf8Step().Details
	details.ToolCalls[0].Function.Output = ptr(bad)
	_, err = toolStep().Apply(lifecycle.Change{Trigger: lifecycle.TriggerComplete, At: at, Details: &details})
	requireNotUTF8(t, err, "step_details.tool_calls[0].function.output")

	_, err = runIn(lifecycle.RunStatusInProgress).Apply(lifecycle.RunChange{
		Trigger: lifecycle.RunTriggerFail, At: at,
		Error: &lifecycle.LastError{Code: lifecycle.ErrorCodeInvalidPrompt, Message: bad},
	})
	requireNotUTF8(t, err, "last_error.message")
}
