// Package equal compares steps and runs field by field, the way their JSON
// forms compare, without encoding them: replay compares every event's data
// with what the machine made of it, and that must cost little.
package equal

import (
	"fmt"
	"maps"
	"slices"

	"github.com/runstep/runstep/lifecycle"
)

// Steps reports whether a and b have the same JSON form. Version, which
// the JSON form leaves out, is not compared.
func Steps(a, b *lifecycle.Step) bool { return len(StepDiff(a, b, 1)) == 0 }

// Runs reports whether a and b have the same JSON form. Version is not
// compared.
func Runs(a, b *lifecycle.Run) bool { return len(RunDiff(a, b, 1)) == 0 }

// StepDiff names, by their JSON names, up to limit fields (all if limit
// ≤ 0) whose JSON differs between want and got, with both values.
func StepDiff(want, got *lifecycle.Step, limit int) []string {
	d := differ{limit: limit}
	d.str("id", want.ID, got.ID)
	d.int("created_at", want.CreatedAt, got.CreatedAt)
	d.str("assistant_id", want.AssistantID, got.AssistantID)
	d.str("thread_id", want.ThreadID, got.ThreadID)
	d.str("run_id", want.RunID, got.RunID)
	d.str("type", string(want.Type), string(got.Type))
	d.str("status", string(want.Status), string(got.Status))
	if !details(&want.Details, &got.Details) {
		d.add("step_details", "differ")
	}
	d.lastError(want.LastError, got.LastError)
	d.stamp("expired_at", want.ExpiredAt, got.ExpiredAt)
	d.stamp("cancelled_at", want.CancelledAt, got.CancelledAt)
	d.stamp("failed_at", want.FailedAt, got.FailedAt)
	d.stamp("completed_at", want.CompletedAt, got.CompletedAt)
	d.metadata(want.Metadata, got.Metadata)
	if !usage(want.Usage, got.Usage) {
		d.add("usage", "differs")
	}
	return d.out
}

// RunDiff is StepDiff for runs.
func RunDiff(want, got *lifecycle.Run, limit int) []string {
	d := differ{limit: limit}
	d.str("id", want.ID, got.ID)
	d.int("created_at", want.CreatedAt, got.CreatedAt)
	d.str("assistant_id", want.AssistantID, got.AssistantID)
	d.str("thread_id", want.ThreadID, got.ThreadID)
	d.str("status", string(want.Status), string(got.Status))
	d.stamp("started_at", want.StartedAt, got.StartedAt)
	d.stamp("expires_at", want.ExpiresAt, got.ExpiresAt)
	d.stamp("cancelled_at", want.CancelledAt, got.CancelledAt)
	d.stamp("failed_at", want.FailedAt, got.FailedAt)
	d.stamp("completed_at", want.CompletedAt, got.CompletedAt)
	d.lastError(want.LastError, got.LastError)
	d.metadata(want.Metadata, got.Metadata)
	return d.out
}

type differ struct {
	limit int
	out   []string
}

func (d *differ) add(field, format string, args ...any) {
	if d.limit > 0 && len(d.out) >= d.limit {
		return
	}
	d.out = append(d.out, field+" "+fmt.Sprintf(format, args...))
}

func (d *differ) str(field, want, got string) {
	if want != got {
		d.add(field, "%q, want %q", got, want)
	}
}

func (d *differ) int(field string, want, got int64) {
	if want != got {
		d.add(field, "%d, want %d", got, want)
	}
}

func show(p *int64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

func (d *differ) stamp(field string, want, got *int64) {
	if !ptrEqual(want, got) {
		d.add(field, "%s, want %s", show(got), show(want))
	}
}

func (d *differ) lastError(want, got *lifecycle.LastError) {
	if !ptrEqual(want, got) {
		d.add("last_error", "%s, want %s", showError(got), showError(want))
	}
}

func showError(e *lifecycle.LastError) string {
	if e == nil {
		return "null"
	}
	return fmt.Sprintf("%s %q", e.Code, e.Message)
}

// metadata compares as JSON does: null and {} differ.
func (d *differ) metadata(want, got lifecycle.Metadata) {
	if (want == nil) != (got == nil) || !maps.Equal(want, got) {
		d.add("metadata", "differs")
	}
}

func ptrEqual[T comparable](a, b *T) bool {
	return a == b || a != nil && b != nil && *a == *b
}

func usage(a, b *lifecycle.Usage) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.PromptTokens == b.PromptTokens && a.CompletionTokens == b.CompletionTokens && a.TotalTokens == b.TotalTokens &&
		ptrEqual(a.PromptTokenDetails, b.PromptTokenDetails) && ptrEqual(a.CompletionTokensDetails, b.CompletionTokensDetails)
}

// details compares as JSON does: only the member Type names is written,
// and no tool calls (nil) is written as [].
func details(a, b *lifecycle.StepDetails) bool {
	if a.Type != b.Type {
		return false
	}
	switch a.Type {
	case lifecycle.TypeMessageCreation:
		am, bm := a.MessageCreation, b.MessageCreation
		return messageID(am) == messageID(bm)
	case lifecycle.TypeToolCalls:
		return slices.EqualFunc(a.ToolCalls, b.ToolCalls, toolCall)
	}
	return true // neither is written: both fail to encode alike
}

func messageID(m *lifecycle.MessageCreation) string {
	if m == nil {
		return "" // written as {"message_id":""}
	}
	return m.MessageID
}

func toolCall(a, b lifecycle.ToolCall) bool {
	if a.ID != b.ID || a.Type != b.Type {
		return false
	}
	if (a.Function == nil) != (b.Function == nil) || (a.CodeInterpreter == nil) != (b.CodeInterpreter == nil) ||
		(a.FileSearch == nil) != (b.FileSearch == nil) {
		return false
	}
	if f, g := a.Function, b.Function; f != nil {
		if f.Name != g.Name || f.Arguments != g.Arguments || !ptrEqual(f.Output, g.Output) {
			return false
		}
	}
	if c, e := a.CodeInterpreter, b.CodeInterpreter; c != nil {
		if c.Input != e.Input || !slices.EqualFunc(c.Outputs, e.Outputs, codeOutput) {
			return false
		}
	}
	if f, g := a.FileSearch, b.FileSearch; f != nil {
		if !ptrEqual(f.RankingOptions, g.RankingOptions) || !slices.EqualFunc(f.Results, g.Results, fileSearchResult) {
			return false
		}
	}
	return true
}

func codeOutput(a, b lifecycle.CodeOutput) bool {
	if a.Type != b.Type {
		return false
	}
	switch a.Type {
	case lifecycle.CodeOutputLogs:
		return a.Logs == b.Logs
	case lifecycle.CodeOutputImage:
		return imageID(a.Image) == imageID(b.Image)
	}
	return true
}

func imageID(i *lifecycle.ImageFile) string {
	if i == nil {
		return ""
	}
	return i.FileID
}

func fileSearchResult(a, b lifecycle.FileSearchResult) bool {
	return a.FileID == b.FileID && a.FileName == b.FileName && a.Score == b.Score && slices.Equal(a.Content, b.Content)
}
