package equal_test

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/runstep/runstep/events/internal/equal"
	"github.com/runstep/runstep/lifecycle"
)

// Values from small sets, so that two draws are often equal.
func maybe[T any](t *rapid.T, label string, gen *rapid.Generator[T]) *T {
	if rapid.Bool().Draw(t, label+" null") {
		return nil
	}
	v := gen.Draw(t, label)
	return &v
}

var (
	word  = rapid.SampledFrom([]string{"", "a", "b"})
	small = rapid.Int64Range(0, 2)
)

func genMetadata(t *rapid.T, label string) lifecycle.Metadata {
	switch rapid.IntRange(0, 2).Draw(t, label) {
	case 0:
		return nil
	case 1:
		return lifecycle.Metadata{}
	}
	return rapid.MapOf(word, word).Draw(t, label+" pairs")
}

func genDetails(t *rapid.T) lifecycle.StepDetails {
	d := lifecycle.StepDetails{Type: rapid.SampledFrom([]lifecycle.Type{lifecycle.TypeMessageCreation, lifecycle.TypeToolCalls}).Draw(t, "details type")}
	if d.Type == lifecycle.TypeMessageCreation {
		d.MessageCreation = maybe(t, "message", rapid.Custom(func(t *rapid.T) lifecycle.MessageCreation {
			return lifecycle.MessageCreation{MessageID: word.Draw(t, "id")}
		}))
		return d
	}
	n := rapid.IntRange(-1, 2).Draw(t, "calls")
	if n == 0 {
		d.ToolCalls = []lifecycle.ToolCall{}
	}
	for range n {
		tc := lifecycle.ToolCall{ID: word.Draw(t, "call id"), Type: lifecycle.ToolCallType(word.Draw(t, "call type"))}
		switch rapid.IntRange(0, 2).Draw(t, "member") {
		case 0:
			tc.Function = &lifecycle.FunctionCall{Name: word.Draw(t, "name"), Arguments: word.Draw(t, "args"), Output: maybe(t, "output", word)}
		case 1:
			ci := &lifecycle.CodeInterpreterCall{Input: word.Draw(t, "input")}
			for range rapid.IntRange(-1, 2).Draw(t, "outputs") {
				o := lifecycle.CodeOutput{Type: rapid.SampledFrom([]lifecycle.CodeOutputType{lifecycle.CodeOutputLogs, lifecycle.CodeOutputImage}).Draw(t, "output type")}
				if o.Type == lifecycle.CodeOutputLogs {
					o.Logs = word.Draw(t, "logs")
				} else {
					o.Image = maybe(t, "image", rapid.Custom(func(t *rapid.T) lifecycle.ImageFile {
						return lifecycle.ImageFile{FileID: word.Draw(t, "file")}
					}))
				}
				ci.Outputs = append(ci.Outputs, o)
			}
			tc.CodeInterpreter = ci
		case 2:
			fs := &lifecycle.FileSearchCall{}
			if rapid.Bool().Draw(t, "ranking") {
				fs.RankingOptions = &lifecycle.FileSearchRankingOptions{Ranker: word.Draw(t, "ranker")}
			}
			for range rapid.IntRange(-1, 1).Draw(t, "results") {
				fs.Results = append(fs.Results, lifecycle.FileSearchResult{FileID: word.Draw(t, "result"),
					Content: rapid.SliceOfN(rapid.Custom(func(t *rapid.T) lifecycle.FileSearchContent {
						return lifecycle.FileSearchContent{Type: "text", Text: word.Draw(t, "text")}
					}), 0, 1).Draw(t, "content")})
			}
			tc.FileSearch = fs
		}
		d.ToolCalls = append(d.ToolCalls, tc)
	}
	return d
}

func genStep(t *rapid.T) lifecycle.Step {
	s := lifecycle.Step{
		ID: word.Draw(t, "id"), CreatedAt: small.Draw(t, "created_at"), AssistantID: word.Draw(t, "assistant"),
		ThreadID: word.Draw(t, "thread"), RunID: word.Draw(t, "run"),
		Status:      rapid.SampledFrom(lifecycle.Statuses).Draw(t, "status"),
		Details:     genDetails(t),
		ExpiredAt:   maybe(t, "expired_at", small),
		CancelledAt: maybe(t, "cancelled_at", small),
		FailedAt:    maybe(t, "failed_at", small),
		CompletedAt: maybe(t, "completed_at", small),
		Metadata:    genMetadata(t, "metadata"),
		Version:     small.Draw(t, "version"),
	}
	s.Type = s.Details.Type
	s.LastError = maybe(t, "last_error", rapid.Custom(func(t *rapid.T) lifecycle.LastError {
		return lifecycle.LastError{Code: lifecycle.ErrorCode(word.Draw(t, "code")), Message: word.Draw(t, "message")}
	}))
	s.Usage = maybe(t, "usage", rapid.Custom(func(t *rapid.T) lifecycle.Usage {
		return lifecycle.Usage{PromptTokens: small.Draw(t, "prompt"), TotalTokens: small.Draw(t, "total"),
			PromptTokenDetails: maybe(t, "ptd", rapid.Custom(func(t *rapid.T) lifecycle.PromptTokenDetails {
				return lifecycle.PromptTokenDetails{CachedTokens: small.Draw(t, "cached")}
			}))}
	}))
	return s
}

func genRun(t *rapid.T) lifecycle.Run {
	return lifecycle.Run{
		ID: word.Draw(t, "id"), CreatedAt: small.Draw(t, "created_at"), ThreadID: word.Draw(t, "thread"), AssistantID: word.Draw(t, "assistant"),
		Status:    rapid.SampledFrom(lifecycle.RunStatuses).Draw(t, "status"),
		StartedAt: maybe(t, "started_at", small), ExpiresAt: maybe(t, "expires_at", small),
		CancelledAt: maybe(t, "cancelled_at", small), FailedAt: maybe(t, "failed_at", small), CompletedAt: maybe(t, "completed_at", small),
		LastError: maybe(t, "last_error", rapid.Custom(func(t *rapid.T) lifecycle.LastError {
			return lifecycle.LastError{Code: lifecycle.ErrorCode(word.Draw(t, "code")), Message: word.Draw(t, "message")}
		})),
		Metadata: genMetadata(t, "metadata"),
		Version:  small.Draw(t, "version"),
	}
}

// Steps and Runs say what comparing the JSON forms says, without encoding.
func TestSameAsJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := genStep(t), genStep(t)
		if rapid.Bool().Draw(t, "b is a's clone") {
			b = a.Clone()
			b.Version++
		}
		aj, aerr := a.MarshalJSON()
		bj, berr := b.MarshalJSON()
		if aerr != nil || berr != nil {
			t.Skip("not encodable")
		}
		sameJSON := string(aj) == string(bj)
		require.Equal(t, sameJSON, equal.Steps(&a, &b), "%s\n%s", aj, bj)
		require.Equal(t, sameJSON, len(equal.StepDiff(&a, &b, 0)) == 0)
	})
	rapid.Check(t, func(t *rapid.T) {
		a, b := genRun(t), genRun(t)
		aj, err := a.MarshalJSON()
		require.NoError(t, err)
		bj, err := b.MarshalJSON()
		require.NoError(t, err)
		require.Equal(t, string(aj) == string(bj), equal.Runs(&a, &b), "%s\n%s", aj, bj)
	})
}

func TestDiffNamesTheFields(t *testing.T) {
	at, later := int64(5), int64(6)
	a := lifecycle.Step{ID: "s", Status: lifecycle.StatusCompleted, CompletedAt: &at}
	b := a
	b.CompletedAt, b.Status = &later, lifecycle.StatusCancelled
	assert.Equal(t, []string{`status "cancelled", want "completed"`, "completed_at 6, want 5"}, equal.StepDiff(&a, &b, 0))
	assert.Len(t, equal.StepDiff(&a, &b, 1), 1)
}

// The comparisons name every field of Step and Run: a field added to
// either must be added to them too.
func TestEveryFieldIsCompared(t *testing.T) {
	fields := func(v any) []string {
		var out []string
		for f := range reflect.TypeOf(v).Fields() {
			out = append(out, f.Name)
		}
		return out
	}
	assert.Equal(t, []string{"ID", "CreatedAt", "AssistantID", "ThreadID", "RunID", "Type", "Status", "Details", "LastError",
		"ExpiredAt", "CancelledAt", "FailedAt", "CompletedAt", "Metadata", "Usage", "Version"}, fields(lifecycle.Step{}))
	assert.Equal(t, []string{"ID", "CreatedAt", "ThreadID", "AssistantID", "Status", "StartedAt", "ExpiresAt", "CancelledAt",
		"FailedAt", "CompletedAt", "LastError", "Metadata", "Version"}, fields(lifecycle.Run{}))
	assert.Equal(t, []string{"PromptTokens", "CompletionTokens", "TotalTokens", "PromptTokenDetails", "CompletionTokensDetails"}, fields(lifecycle.Usage{}))
	assert.Equal(t, []string{"ID", "Type", "Function", "CodeInterpreter", "FileSearch"}, fields(lifecycle.ToolCall{}))
	assert.Equal(t, []string{"Type", "MessageCreation", "ToolCalls"}, fields(lifecycle.StepDetails{}))
}
