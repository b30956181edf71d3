package lifecycle_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/lifecycle"
)

// fullStep returns a step in which every pointer, slice and map is set (it
// need not be valid: Clone does not care), so that a deep copy has
// something to copy everywhere.
func fullStep() lifecycle.Step {
	return lifecycle.Step{
		ID:          "step_full",
		CreatedAt:   createdAt,
		AssistantID: "asst_1",
		ThreadID:    "thread_1",
		RunID:       "run_1",
		Type:        lifecycle.TypeToolCalls,
		Status:      lifecycle.StatusFailed,
		Details: lifecycle.StepDetails{
			Type:            lifecycle.TypeToolCalls,
			MessageCreation: &lifecycle.MessageCreation{MessageID: "msg_1"},
			// One call carrying all three members, so every pointer is set.
			ToolCalls: []lifecycle.ToolCall{{
				ID:       "call_all",
				Type:     lifecycle.ToolCallFunction,
				Function: &lifecycle.FunctionCall{Name: "f", Arguments: "{}", Output: ptr("out")},
				CodeInterpreter: &lifecycle.CodeInterpreterCall{
					Input: "print(1)",
					Outputs: []lifecycle.CodeOutput{
						{Type: lifecycle.CodeOutputImage, Logs: "1", Image: &lifecycle.ImageFile{FileID: "file_img"}},
					},
				},
				FileSearch: &lifecycle.FileSearchCall{
					RankingOptions: &lifecycle.FileSearchRankingOptions{Ranker: "auto", ScoreThreshold: 0.5},
					Results: []lifecycle.FileSearchResult{{
						FileID: "file_doc", FileName: "doc.md", Score: 0.9,
						Content: []lifecycle.FileSearchContent{{Type: "text", Text: "hello"}},
					}},
				},
			}},
		},
		LastError:   &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "boom"},
		ExpiredAt:   ptr(doneAt + 1),
		CancelledAt: ptr(doneAt + 2),
		FailedAt:    ptr(doneAt + 3),
		CompletedAt: ptr(doneAt + 4),
		Metadata:    lifecycle.Metadata{"k": "v"},
		Usage:       usage(),
		Version:     3,
	}
}

func TestCloneIsDeep(t *testing.T) {
	require.Empty(t, nilReferences(reflect.ValueOf(fullStep()), "Step"),
		"the fixture must set every reference, or Clone goes untested there")

	orig := fullStep()
	clone := orig.Clone()
	require.Equal(t, fullStep(), clone)
	require.Empty(t, sharedMemory(reflect.ValueOf(orig), reflect.ValueOf(clone), "Step"))

	// Change everything the clone can reach; the original keeps its values.
	d := &clone.Details
	d.MessageCreation.MessageID = "x"
	fn := d.ToolCalls[0].Function
	fn.Name, fn.Arguments, *fn.Output = "x", "x", "x"
	ci := d.ToolCalls[0].CodeInterpreter
	ci.Input = "x"
	ci.Outputs[0].Logs = "x"
	ci.Outputs[0].Image.FileID = "x"
	ci.Outputs = append(ci.Outputs, lifecycle.CodeOutput{Type: lifecycle.CodeOutputLogs})
	fs := d.ToolCalls[0].FileSearch
	fs.RankingOptions.Ranker = "x"
	fs.Results[0].FileName = "x"
	fs.Results[0].Content[0].Text = "x"
	fs.Results[0].Content = append(fs.Results[0].Content, lifecycle.FileSearchContent{Text: "y"})
	fs.Results = append(fs.Results, lifecycle.FileSearchResult{FileID: "y"})
	d.ToolCalls[0].ID = "x"
	d.ToolCalls = append(d.ToolCalls, lifecycle.ToolCall{ID: "y"})
	clone.LastError.Message = "x"
	*clone.ExpiredAt, *clone.CancelledAt, *clone.FailedAt, *clone.CompletedAt = 0, 0, 0, 0
	clone.Metadata["k"] = "x"
	clone.Metadata["new"] = "y"
	clone.Usage.TotalTokens = 0
	clone.Usage.PromptTokenDetails.CachedTokens = 0
	clone.Usage.CompletionTokensDetails.ReasoningTokens = 0

	require.Equal(t, fullStep(), orig)
	require.NotEqual(t, orig, clone)
}

func TestCloneKeepsNil(t *testing.T) {
	s := messageStep()
	require.Equal(t, s, s.Clone())
	s = toolStep()
	require.Equal(t, s, s.Clone())
}

// nilReferences lists the paths of v where a pointer, slice or map is nil or
// a slice is empty.
func nilReferences(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return []string{path}
		}
		return nilReferences(v.Elem(), path)
	case reflect.Map, reflect.Slice:
		if v.Len() == 0 {
			return []string{path}
		}
		var out []string
		if v.Kind() == reflect.Slice {
			for i := range v.Len() {
				out = append(out, nilReferences(v.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
		return out
	case reflect.Struct:
		var out []string
		for i := range v.NumField() {
			out = append(out, nilReferences(v.Field(i), path+"."+v.Type().Field(i).Name)...)
		}
		return out
	}
	return nil
}

// sharedMemory lists the paths where a and b, two values of one type, hold
// the same pointer, map, or slice backing array.
func sharedMemory(a, b reflect.Value, path string) []string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return nil
		}
		var out []string
		if a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
		return append(out, sharedMemory(a.Elem(), b.Elem(), path)...)
	case reflect.Map:
		if !a.IsNil() && a.Pointer() == b.Pointer() {
			return []string{path}
		}
	case reflect.Slice:
		if a.Len() == 0 || b.Len() == 0 {
			return nil
		}
		var out []string
		if a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
		for i := range min(a.Len(), b.Len()) {
			out = append(out, sharedMemory(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	case reflect.Struct:
		var out []string
		for i := range a.NumField() {
			out = append(out, sharedMemory(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name)...)
		}
		return out
	}
	return nil
}
