package lifecycle_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/internal/schematest"
	"github.com/runstep/runstep/lifecycle"
)

// goldenSteps are the step shapes whose JSON form testdata/golden/NAME.json
// holds, exactly as Step.MarshalJSON writes it plus a final newline.
func goldenSteps() map[string]lifecycle.Step {
	functionInProgress := toolStep(functionCall(nil))

	functionCompleted := toolStep(functionCall(ptr("warm and sunny")))
	functionCompleted.Status = lifecycle.StatusCompleted
	functionCompleted.CompletedAt = ptr(doneAt)
	functionCompleted.Usage = usage()

	code := toolStep(lifecycle.ToolCall{
		ID:   "call_code",
		Type: lifecycle.ToolCallCodeInterpreter,
		CodeInterpreter: &lifecycle.CodeInterpreterCall{
			Input: "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nprint(sum([1, 2, 3]))",
			Outputs: []lifecycle.CodeOutput{
				{Type: lifecycle.CodeOutputLogs, Logs: "6\n"},
				{Type: lifecycle.CodeOutputImage, Image: &lifecycle.ImageFile{FileID: "file_plot"}},
			},
		},
	})
	code.Status = lifecycle.StatusCompleted
	code.CompletedAt = ptr(doneAt)

	search := toolStep(lifecycle.ToolCall{
		ID:   "call_search",
		Type: lifecycle.ToolCallFileSearch,
		FileSearch: &lifecycle.FileSearchCall{
			RankingOptions: &lifecycle.FileSearchRankingOptions{Ranker: "default_2024_08_21", ScoreThreshold: 0.5},
			Results: []lifecycle.FileSearchResult{
				{
					FileID: "file_manual", FileName: "manual.pdf", Score: 0.87,
					Content: []lifecycle.FileSearchContent{{Type: "text", Text: "Press & hold <reset> for 5 s."}},
				},
				{FileID: "file_faq", FileName: "faq.md", Score: 0.51},
			},
		},
	})
	search.Status = lifecycle.StatusCompleted
	search.CompletedAt = ptr(doneAt)

	failed := messageStep()
	failed.Status = lifecycle.StatusFailed
	failed.FailedAt = ptr(doneAt)
	failed.LastError = &lifecycle.LastError{
		Code:    lifecycle.ErrorCodeRateLimitExceeded,
		Message: "Rate limit reached for gpt-4o on tokens per min.",
	}

	cancelled := toolStep(functionCall(nil))
	cancelled.Status = lifecycle.StatusCancelled
	cancelled.CancelledAt = ptr(doneAt)

	expired := toolStep(functionCall(nil))
	expired.Status = lifecycle.StatusExpired
	expired.ExpiredAt = ptr(createdAt + 600)

	withMetadata := messageStep()
	withMetadata.Metadata = lifecycle.Metadata{"user_id": "u_42", "tier": "pro", "note": "naïve café"}

	return map[string]lifecycle.Step{
		"message_creation_in_progress":    messageStep(),
		"tool_calls_function_in_progress": functionInProgress,
		"tool_calls_function_completed":   functionCompleted,
		"tool_calls_code_interpreter":     code,
		"tool_calls_file_search":          search,
		"failed_rate_limit_exceeded":      failed,
		"cancelled":                       cancelled,
		"expired":                         expired,
		"with_metadata":                   withMetadata,
	}
}

func TestStepJSONGolden(t *testing.T) {
	for name, step := range goldenSteps() {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, step.Validate())
			b, err := json.Marshal(step)
			require.NoError(t, err)
			requireGolden(t, name+".json", append(b, '\n'))
			schematest.RequireValidStep(t, b)

			var back lifecycle.Step
			require.NoError(t, json.Unmarshal(b, &back))
			require.Equal(t, step, back)
		})
	}
}

// stepJSON returns the JSON form of s after edit changed its keys.
func stepJSON(t *testing.T, s lifecycle.Step, edit func(m map[string]any)) []byte {
	t.Helper()
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	edit(m)
	b, err = json.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestUnmarshalLenient(t *testing.T) {
	const deadline = createdAt + 600
	tests := []struct {
		name string
		step lifecycle.Step // what is encoded
		edit func(m map[string]any)
		want lifecycle.Step // what decoding gives
	}{
		{
			name: "live object name",
			step: messageStep(),
			edit: func(m map[string]any) { m["object"] = lifecycle.ObjectStepLive },
			want: messageStep(),
		},
		{
			name: "expires_at on an in_progress step is ignored",
			step: messageStep(),
			edit: func(m map[string]any) {
				delete(m, "expired_at")
				m["expires_at"] = deadline
			},
			want: messageStep(),
		},
		{
			name: "expires_at on a completed step is ignored",
			step: stepIn(lifecycle.StatusCompleted),
			edit: func(m map[string]any) {
				delete(m, "expired_at")
				m["expires_at"] = deadline
			},
			want: stepIn(lifecycle.StatusCompleted),
		},
		{
			name: "expires_at stands for expired_at on an expired step",
			step: stepIn(lifecycle.StatusExpired),
			edit: func(m map[string]any) {
				delete(m, "expired_at")
				m["expires_at"] = deadline
			},
			want: func() lifecycle.Step {
				s := stepIn(lifecycle.StatusExpired)
				s.ExpiredAt = ptr(deadline)
				return s
			}(),
		},
		{
			name: "expired_at wins over expires_at",
			step: stepIn(lifecycle.StatusExpired),
			edit: func(m map[string]any) { m["expires_at"] = deadline },
			want: stepIn(lifecycle.StatusExpired),
		},
		{
			name: "missing metadata is null",
			step: func() lifecycle.Step {
				s := messageStep()
				s.Metadata = lifecycle.Metadata{"k": "v"}
				return s
			}(),
			edit: func(m map[string]any) { delete(m, "metadata") },
			want: messageStep(),
		},
		{
			name: "missing nullable stamps are null",
			step: stepIn(lifecycle.StatusCancelled),
			edit: func(m map[string]any) {
				for _, k := range []string{"last_error", "expired_at", "failed_at", "completed_at", "usage"} {
					delete(m, k)
				}
			},
			want: stepIn(lifecycle.StatusCancelled),
		},
		{
			name: "extra keys are ignored",
			step: messageStep(),
			edit: func(m map[string]any) {
				m["model"] = "gpt-4o"
				m["instructions"] = nil
				m["tools"] = []any{map[string]any{"type": "function"}}
			},
			want: messageStep(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := stepJSON(t, tt.step, tt.edit)
			var got lifecycle.Step
			require.NoError(t, json.Unmarshal(b, &got), "%s", b)
			require.Equal(t, tt.want, got)

			// Whatever came in, what goes out is the spec's form.
			out, err := json.Marshal(got)
			require.NoError(t, err)
			schematest.RequireValidStep(t, out)
		})
	}
}

func TestUnmarshalRecordedStep(t *testing.T) {
	// The completed tool_calls step of a real OpenAI stream
	// (shared/recordings/openai_streaming_tool_call.sse): live object name,
	// expires_at instead of expired_at, no metadata, usage with details.
	in, err := os.ReadFile(filepath.Join("testdata", "openai_tool_calls_step_completed.json"))
	require.NoError(t, err)
	require.Error(t, schematest.ValidateStep(in), "the recording is not in the spec's form")

	var got lifecycle.Step
	require.NoError(t, json.Unmarshal(in, &got))
	want := lifecycle.Step{
		ID:          "step_9c9pSsTIsCYc1KeHEI6Ba34s",
		CreatedAt:   1761861533,
		AssistantID: "asst_BFMmpHsel3a7MuFuKKY9i5uG",
		ThreadID:    "thread_6oUGUBxLwhyApwhYBhWjHI5f",
		RunID:       "run_oyfV44CrJXYJkvb2qsd80LvJ",
		Type:        lifecycle.TypeToolCalls,
		Status:      lifecycle.StatusCompleted,
		Details: lifecycle.ToolCallsDetails(lifecycle.ToolCall{
			ID:   "call_xyFYaEeyocjyE6jN64QTcxip",
			Type: lifecycle.ToolCallFunction,
			Function: &lifecycle.FunctionCall{
				Name:      "get_current_weather",
				Arguments: "{}",
				Output:    ptr("warm and sunny"),
			},
		}),
		CompletedAt: ptr(int64(1761861534)),
		Usage: &lifecycle.Usage{
			PromptTokens:            260,
			CompletionTokens:        12,
			TotalTokens:             272,
			PromptTokenDetails:      &lifecycle.PromptTokenDetails{CachedTokens: 0},
			CompletionTokensDetails: &lifecycle.CompletionTokensDetails{ReasoningTokens: 0},
		},
	}
	require.Equal(t, want, got)

	out, err := json.Marshal(got)
	require.NoError(t, err)
	schematest.RequireValidStep(t, out)
	var m map[string]any
	require.NoError(t, json.Unmarshal(out, &m))
	assert.Equal(t, lifecycle.ObjectStep, m["object"])
	assert.Contains(t, m, "expired_at")
	assert.Nil(t, m["expired_at"])
	assert.NotContains(t, m, "expires_at")

	var back lifecycle.Step
	require.NoError(t, json.Unmarshal(out, &back))
	require.Equal(t, got, back)
}

func TestUnmarshalStrict(t *testing.T) {
	type testCase struct {
		name  string
		in    []byte
		field string
	}
	var tests []testCase
	for _, key := range []string{
		"id", "object", "created_at", "assistant_id", "thread_id", "run_id", "type", "status", "step_details",
	} {
		tests = append(tests,
			testCase{"missing " + key, stepJSON(t, messageStep(), func(m map[string]any) { delete(m, key) }), key},
			testCase{"null " + key, stepJSON(t, messageStep(), func(m map[string]any) { m[key] = nil }), key},
		)
	}
	tests = append(tests, []testCase{
		{"run object", stepJSON(t, messageStep(), func(m map[string]any) { m["object"] = "thread.run" }), "object"},
		{"delta object", stepJSON(t, messageStep(), func(m map[string]any) { m["object"] = "thread.run.step.delta" }), "object"},
		{"created_at as a string", stepJSON(t, messageStep(), func(m map[string]any) { m["created_at"] = "1761861531" }), "created_at"},
		{"created_at as a fraction", stepJSON(t, messageStep(), func(m map[string]any) { m["created_at"] = 1.5 }), "created_at"},
		{"status as a number", stepJSON(t, messageStep(), func(m map[string]any) { m["status"] = 3 }), "status"},
		{"metadata value as a number", stepJSON(t, messageStep(), func(m map[string]any) { m["metadata"] = map[string]any{"k": 1} }), "metadata"},
		{"metadata as a list", stepJSON(t, messageStep(), func(m map[string]any) { m["metadata"] = []any{"k"} }), "metadata"},
		{"usage tokens as a string", stepJSON(t, messageStep(), func(m map[string]any) {
			m["usage"] = map[string]any{"prompt_tokens": "1"}
		}), "usage.prompt_tokens"},
		{"function output as a number", stepJSON(t, toolStep(functionCall(ptr("ok"))), func(m map[string]any) {
			m["step_details"].(map[string]any)["tool_calls"].([]any)[0].(map[string]any)["function"].(map[string]any)["output"] = 1
		}), "step_details.tool_calls.function.output"},
		{"a list, not an object", []byte(`[]`), "(root)"},
		{"a string, not an object", []byte(`"step"`), "(root)"},
		{"null", []byte(`null`), "id"},
		{"unknown status", stepJSON(t, messageStep(), func(m map[string]any) { m["status"] = "queued" }), "status"},
		{"completed without completed_at", stepJSON(t, stepIn(lifecycle.StatusCompleted), func(m map[string]any) {
			delete(m, "completed_at")
		}), "completed_at"},
		{"expired without expired_at or expires_at", stepJSON(t, stepIn(lifecycle.StatusExpired), func(m map[string]any) {
			delete(m, "expired_at")
		}), "expired_at"},
	}...)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Decoding into a step that holds data: a failure leaves it alone.
			got := stepIn(lifecycle.StatusFailed)
			err := json.Unmarshal(tt.in, &got)
			requireInvalid(t, err, tt.field)
			require.Equal(t, stepIn(lifecycle.StatusFailed), got)
		})
	}
}

func TestUnmarshalMalformed(t *testing.T) {
	valid, err := json.Marshal(messageStep())
	require.NoError(t, err)
	for _, in := range []string{
		"",
		"{",
		"nul",
		`{"id":}`,
		`{"id":"step_1",}`,
		string(valid[:len(valid)/2]),
		string(valid) + "}",
		"\xff",
	} {
		t.Run(in, func(t *testing.T) {
			var got lifecycle.Step
			err := json.Unmarshal([]byte(in), &got)
			var syntax *json.SyntaxError
			require.ErrorAs(t, err, &syntax)
			require.Zero(t, got)
		})
	}
}

func TestMarshalRefusesUnknownDetails(t *testing.T) {
	s := messageStep()
	s.Details.Type = "retrieval"
	_, err := json.Marshal(s)
	requireInvalid(t, err, "step_details.type")
}

// TestUnmarshalEmptyLists checks that an empty or null list decodes as nil,
// the one form that encodes back to the same JSON, so a step survives a
// round trip unchanged (found by FuzzStepJSON).
func TestUnmarshalEmptyLists(t *testing.T) {
	steps := goldenSteps()
	call := func(m map[string]any, member string) map[string]any {
		return m["step_details"].(map[string]any)["tool_calls"].([]any)[0].(map[string]any)[member].(map[string]any)
	}
	tests := []struct {
		name string
		step lifecycle.Step
		edit func(m map[string]any)
		get  func(s lifecycle.Step) any
	}{
		{"tool_calls []", steps["message_creation_in_progress"], func(m map[string]any) {
			m["type"] = "tool_calls"
			m["step_details"] = map[string]any{"type": "tool_calls", "tool_calls": []any{}}
		}, func(s lifecycle.Step) any { return s.Details.ToolCalls }},
		{"code_interpreter outputs []", steps["tool_calls_code_interpreter"], func(m map[string]any) {
			call(m, "code_interpreter")["outputs"] = []any{}
		}, func(s lifecycle.Step) any { return s.Details.ToolCalls[0].CodeInterpreter.Outputs }},
		{"code_interpreter outputs null", steps["tool_calls_code_interpreter"], func(m map[string]any) {
			call(m, "code_interpreter")["outputs"] = nil
		}, func(s lifecycle.Step) any { return s.Details.ToolCalls[0].CodeInterpreter.Outputs }},
		{"file_search results []", steps["tool_calls_file_search"], func(m map[string]any) {
			call(m, "file_search")["results"] = []any{}
		}, func(s lifecycle.Step) any { return s.Details.ToolCalls[0].FileSearch.Results }},
		{"file_search content []", steps["tool_calls_file_search"], func(m map[string]any) {
			call(m, "file_search")["results"].([]any)[0].(map[string]any)["content"] = []any{}
		}, func(s lifecycle.Step) any { return s.Details.ToolCalls[0].FileSearch.Results[0].Content }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got lifecycle.Step
			require.NoError(t, json.Unmarshal(stepJSON(t, tt.step, tt.edit), &got))
			require.Nil(t, tt.get(got))

			out, err := json.Marshal(got)
			require.NoError(t, err)
			schematest.RequireValidStep(t, out)
			var back lifecycle.Step
			require.NoError(t, json.Unmarshal(out, &back))
			require.Equal(t, got, back)
		})
	}
}
