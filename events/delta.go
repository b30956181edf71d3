package events

import (
	"encoding/json"
	"fmt"

	"github.com/runstep/runstep/lifecycle"
)

// stepDelta is a thread.run.step.delta event's data.
type stepDelta struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	Delta  struct {
		StepDetails *detailsDelta `json:"step_details"`
	} `json:"delta"`
}

type detailsDelta struct {
	Type            lifecycle.Type             `json:"type"`
	MessageCreation *lifecycle.MessageCreation `json:"message_creation"`
	ToolCalls       []toolCallDelta            `json:"tool_calls"`
}

// toolCallDelta is a fragment of the tool call at Index. A nil field is
// absent (or null, which merges the same: as nothing).
type toolCallDelta struct {
	Index           *int                      `json:"index"`
	ID              *string                   `json:"id"`
	Type            *lifecycle.ToolCallType   `json:"type"`
	Function        *functionDelta            `json:"function"`
	CodeInterpreter *codeInterpreterDelta     `json:"code_interpreter"`
	FileSearch      *lifecycle.FileSearchCall `json:"file_search"`
}

type functionDelta struct {
	Name      *string `json:"name"`
	Arguments *string `json:"arguments"`
	Output    *string `json:"output"`
}

type codeInterpreterDelta struct {
	Input   *string           `json:"input"`
	Outputs []codeOutputDelta `json:"outputs"`
}

type codeOutputDelta struct {
	Index *int                      `json:"index"`
	Type  *lifecycle.CodeOutputType `json:"type"`
	Logs  *string                   `json:"logs"`
	Image *lifecycle.ImageFile      `json:"image"`
}

// delta merges a thread.run.step.delta into its step's details.
func (im *Importer) delta(msg SSEMessage) (Event, bool, *LogError) {
	var d stepDelta
	if err := json.Unmarshal(msg.Data, &d); err != nil {
		return Event{}, false, problem(Position{}, 0, ErrMalformed, "%s data: %w", msg.Event, err)
	}
	if d.ID == "" {
		return Event{}, false, problem(Position{}, 0, ErrMalformed, "%s without a step id", msg.Event)
	}
	step, ok := im.steps[d.ID]
	if !ok {
		im.note("delta of step %s, which the stream has not created: passed over", d.ID)
		return im.pass(msg.Event)
	}
	if dd := d.Delta.StepDetails; dd != nil {
		if err := mergeDetails(&step.Details, dd); err != nil {
			return Event{}, false, problem(Position{}, 0, ErrMalformed, "%s of step %s: %w", msg.Event, d.ID, err)
		}
	}
	im.stats.Merged++
	return Event{}, false, nil
}

// mergeDetails merges d into acc as OpenAI's SDKs accumulate deltas: a
// string is appended to the one before, a missing or null value changes
// nothing, and a list entry is the one at its index (a new one at the
// end).
func mergeDetails(acc *lifecycle.StepDetails, d *detailsDelta) error {
	if d.Type != "" && d.Type != acc.Type {
		return fmt.Errorf("details of type %q for a %s step", d.Type, acc.Type)
	}
	if m := d.MessageCreation; m != nil {
		if acc.MessageCreation == nil {
			acc.MessageCreation = &lifecycle.MessageCreation{}
		}
		acc.MessageCreation.MessageID += m.MessageID
	}
	for _, tc := range d.ToolCalls {
		if tc.Index == nil {
			return fmt.Errorf("a tool call without an index")
		}
		i := *tc.Index
		if i < 0 || i > len(acc.ToolCalls) {
			return fmt.Errorf("tool call index %d, with %d calls so far", i, len(acc.ToolCalls))
		}
		if i == len(acc.ToolCalls) {
			acc.ToolCalls = append(acc.ToolCalls, lifecycle.ToolCall{})
		}
		if err := mergeToolCall(&acc.ToolCalls[i], &tc); err != nil {
			return fmt.Errorf("tool call %d: %w", i, err)
		}
	}
	return nil
}

func appendTo(acc *string, frag *string) {
	if frag != nil {
		*acc += *frag
	}
}

func mergeToolCall(acc *lifecycle.ToolCall, d *toolCallDelta) error {
	appendTo(&acc.ID, d.ID)
	if d.Type != nil {
		acc.Type = *d.Type // a type is a name, not a fragment
	}
	if f := d.Function; f != nil {
		if acc.Function == nil {
			acc.Function = &lifecycle.FunctionCall{}
		}
		appendTo(&acc.Function.Name, f.Name)
		appendTo(&acc.Function.Arguments, f.Arguments)
		if f.Output != nil {
			if acc.Function.Output == nil {
				acc.Function.Output = new(string)
			}
			*acc.Function.Output += *f.Output
		}
	}
	if c := d.CodeInterpreter; c != nil {
		if acc.CodeInterpreter == nil {
			acc.CodeInterpreter = &lifecycle.CodeInterpreterCall{}
		}
		ci := acc.CodeInterpreter
		appendTo(&ci.Input, c.Input)
		for _, o := range c.Outputs {
			if o.Index == nil {
				return fmt.Errorf("a code interpreter output without an index")
			}
			j := *o.Index
			if j < 0 || j > len(ci.Outputs) {
				return fmt.Errorf("code interpreter output index %d, with %d outputs so far", j, len(ci.Outputs))
			}
			if j == len(ci.Outputs) {
				ci.Outputs = append(ci.Outputs, lifecycle.CodeOutput{})
			}
			out := &ci.Outputs[j]
			if o.Type != nil {
				out.Type = *o.Type
			}
			appendTo(&out.Logs, o.Logs)
			if o.Image != nil {
				out.Image = &lifecycle.ImageFile{FileID: o.Image.FileID}
			}
		}
	}
	if d.FileSearch != nil {
		fs := *d.FileSearch
		acc.FileSearch = &fs
	}
	return nil
}

// detailsDiff says where details merged from deltas disagree with the
// final ones: a call the deltas named that the final details lack or name
// otherwise. Outputs may arrive with the final details only.
func detailsDiff(merged, final *lifecycle.StepDetails) []string {
	var out []string
	if merged.Type == lifecycle.TypeMessageCreation && merged.MessageCreation != nil && final.MessageCreation != nil &&
		merged.MessageCreation.MessageID != final.MessageCreation.MessageID {
		out = append(out, fmt.Sprintf("name message %q, the final details %q", merged.MessageCreation.MessageID, final.MessageCreation.MessageID))
	}
	for i, m := range merged.ToolCalls {
		if i >= len(final.ToolCalls) {
			out = append(out, fmt.Sprintf("name tool call %d (%s), which the final details lack", i, m.ID))
			continue
		}
		f := final.ToolCalls[i]
		switch {
		case m.ID != f.ID || m.Type != f.Type:
			out = append(out, fmt.Sprintf("name tool call %d %s %s, the final details %s %s", i, m.Type, m.ID, f.Type, f.ID))
		case m.Function != nil && f.Function != nil:
			mf, ff := m.Function, f.Function
			if mf.Name != ff.Name || mf.Arguments != ff.Arguments {
				out = append(out, fmt.Sprintf("call %s(%s) in tool call %d, the final details %s(%s)", mf.Name, mf.Arguments, i, ff.Name, ff.Arguments))
			}
			if mf.Output != nil && (ff.Output == nil || *mf.Output != *ff.Output) {
				out = append(out, fmt.Sprintf("give tool call %d an output the final details do not", i))
			}
		case m.CodeInterpreter != nil && f.CodeInterpreter != nil && m.CodeInterpreter.Input != f.CodeInterpreter.Input:
			out = append(out, fmt.Sprintf("give tool call %d other code than the final details", i))
		}
	}
	return out
}
