package lifecycle

import (
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
)

// StepDetails is a step's step_details: a message_creation object or a
// tool_calls object, matching the step's Type. Only the member that
// Type names is written.
type StepDetails struct {
	Type            Type
	MessageCreation *MessageCreation
	ToolCalls       []ToolCall
}

// MessageCreation names the message a message_creation step created.
type MessageCreation struct {
	MessageID string `json:"message_id"`
}

// MessageCreationDetails returns the details of a step that creates the
// message messageID.
func MessageCreationDetails(messageID string) StepDetails {
	return StepDetails{Type: TypeMessageCreation, MessageCreation: &MessageCreation{MessageID: messageID}}
}

// ToolCallsDetails returns the details of a tool_calls step.
func ToolCallsDetails(calls ...ToolCall) StepDetails {
	return StepDetails{Type: TypeToolCalls, ToolCalls: calls}
}

// Clone returns a deep copy of d.
func (d StepDetails) Clone() StepDetails {
	c := d
	c.MessageCreation = clonePtr(d.MessageCreation)
	if d.ToolCalls != nil {
		c.ToolCalls = make([]ToolCall, len(d.ToolCalls))
		for i, tc := range d.ToolCalls {
			c.ToolCalls[i] = tc.clone()
		}
	}
	return c
}

func (d StepDetails) validate(stepType Type) error {
	if d.Type != stepType {
		return invalid("step_details.type", string(d.Type), "does not match the step type %q", stepType)
	}
	switch d.Type {
	case TypeMessageCreation:
		if d.MessageCreation == nil {
			return invalid("step_details.message_creation", "", "missing")
		}
		if err := validateID("step_details.message_creation.message_id", d.MessageCreation.MessageID); err != nil {
			return err
		}
		if d.ToolCalls != nil {
			return invalid("step_details.tool_calls", "", "set on message_creation details")
		}
	case TypeToolCalls:
		if d.MessageCreation != nil {
			return invalid("step_details.message_creation", "", "set on tool_calls details")
		}
		for i := range d.ToolCalls {
			if err := d.ToolCalls[i].validate(); err != nil {
				// The path is built only for an error: Apply validates
				// every call's details on the hot path.
				err.Field = fmt.Sprintf("step_details.tool_calls[%d]%s", i, err.Field)
				return err
			}
		}
	}
	return nil
}

type messageCreationJSON struct {
	Type            Type             `json:"type"`
	MessageCreation *MessageCreation `json:"message_creation"`
}

type toolCallsJSON struct {
	Type      Type       `json:"type"`
	ToolCalls []ToolCall `json:"tool_calls"`
}

// MarshalJSON writes the member that Type names, and an empty tool_calls
// list as [] rather than null.
func (d StepDetails) MarshalJSON() ([]byte, error) {
	switch d.Type {
	case TypeMessageCreation:
		mc := d.MessageCreation
		if mc == nil {
			mc = &MessageCreation{}
		}
		return json.Marshal(messageCreationJSON{d.Type, mc})
	case TypeToolCalls:
		calls := d.ToolCalls
		if calls == nil {
			calls = []ToolCall{}
		}
		return json.Marshal(toolCallsJSON{d.Type, calls})
	}
	return nil, invalid("step_details.type", string(d.Type), "unknown step type")
}

// UnmarshalJSON reads either shape; Validate checks it against the step.
func (d *StepDetails) UnmarshalJSON(b []byte) error {
	var raw struct {
		Type            Type             `json:"type"`
		MessageCreation *MessageCreation `json:"message_creation"`
		ToolCalls       []ToolCall       `json:"tool_calls"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*d = StepDetails{Type: raw.Type, MessageCreation: raw.MessageCreation, ToolCalls: raw.ToolCalls}
	if len(d.ToolCalls) == 0 {
		// [] and a missing list mean the same, no calls yet; one form keeps
		// a decoded step equal to the step that was encoded.
		d.ToolCalls = nil
	}
	return nil
}

// ToolCallType is the kind of tool a tool call used.
type ToolCallType string

// The tool call types.
const (
	ToolCallFunction        ToolCallType = "function"
	ToolCallCodeInterpreter ToolCallType = "code_interpreter"
	ToolCallFileSearch      ToolCallType = "file_search"
)

// ToolCall is one call in a tool_calls step. Exactly the member that Type
// names is set.
type ToolCall struct {
	ID              string               `json:"id"`
	Type            ToolCallType         `json:"type"`
	Function        *FunctionCall        `json:"function,omitempty"`
	CodeInterpreter *CodeInterpreterCall `json:"code_interpreter,omitempty"`
	FileSearch      *FileSearchCall      `json:"file_search,omitempty"`
}

// FunctionCall is a call of one of the assistant's functions. Output is nil
// until the tool outputs are submitted.
type FunctionCall struct {
	Name      string  `json:"name"`
	Arguments string  `json:"arguments"`
	Output    *string `json:"output"`
}

// CodeInterpreterCall is a run of the code interpreter.
type CodeInterpreterCall struct {
	Input   string       `json:"input"`
	Outputs []CodeOutput `json:"outputs"`
}

// MarshalJSON writes an empty outputs list as [].
func (c CodeInterpreterCall) MarshalJSON() ([]byte, error) {
	type plain CodeInterpreterCall
	if c.Outputs == nil {
		c.Outputs = []CodeOutput{}
	}
	return json.Marshal(plain(c))
}

// UnmarshalJSON reads an empty or null outputs list as nil, the one form
// that MarshalJSON writes as [], so a decoded call equals the call that was
// encoded.
func (c *CodeInterpreterCall) UnmarshalJSON(b []byte) error {
	type plain CodeInterpreterCall
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if len(p.Outputs) == 0 {
		p.Outputs = nil
	}
	*c = CodeInterpreterCall(p)
	return nil
}

// CodeOutputType is the kind of a code interpreter output.
type CodeOutputType string

// The code interpreter output types.
const (
	CodeOutputLogs  CodeOutputType = "logs"
	CodeOutputImage CodeOutputType = "image"
)

// CodeOutput is one output of a code interpreter call: text logs, or an
// image file.
type CodeOutput struct {
	Type  CodeOutputType
	Logs  string
	Image *ImageFile
}

// ImageFile names an image the code interpreter produced.
type ImageFile struct {
	FileID string `json:"file_id"`
}

// MarshalJSON writes the member that Type names, logs even when empty.
func (o CodeOutput) MarshalJSON() ([]byte, error) {
	switch o.Type {
	case CodeOutputLogs:
		return json.Marshal(struct {
			Type CodeOutputType `json:"type"`
			Logs string         `json:"logs"`
		}{o.Type, o.Logs})
	case CodeOutputImage:
		img := o.Image
		if img == nil {
			img = &ImageFile{}
		}
		return json.Marshal(struct {
			Type  CodeOutputType `json:"type"`
			Image *ImageFile     `json:"image"`
		}{o.Type, img})
	}
	return nil, invalid("outputs.type", string(o.Type), "unknown code output type")
}

// UnmarshalJSON reads either shape.
func (o *CodeOutput) UnmarshalJSON(b []byte) error {
	var raw struct {
		Type  CodeOutputType `json:"type"`
		Logs  string         `json:"logs"`
		Image *ImageFile     `json:"image"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*o = CodeOutput{Type: raw.Type, Logs: raw.Logs, Image: raw.Image}
	return nil
}

// FileSearchCall is a file search. The 2024-05-01 spec leaves it empty;
// later API versions report the ranking options and results.
type FileSearchCall struct {
	RankingOptions *FileSearchRankingOptions `json:"ranking_options,omitempty"`
	Results        []FileSearchResult        `json:"results,omitempty"`
}

// UnmarshalJSON reads empty results and content lists as nil, the one form
// that encoding omits (omitempty), so a decoded call equals the call that
// was encoded.
func (c *FileSearchCall) UnmarshalJSON(b []byte) error {
	type plain FileSearchCall
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	if len(p.Results) == 0 {
		p.Results = nil
	}
	for i := range p.Results {
		if len(p.Results[i].Content) == 0 {
			p.Results[i].Content = nil
		}
	}
	*c = FileSearchCall(p)
	return nil
}

// FileSearchRankingOptions are the options a file search ranked with.
type FileSearchRankingOptions struct {
	Ranker         string  `json:"ranker"`
	ScoreThreshold float64 `json:"score_threshold"`
}

// FileSearchResult is one file a search found.
type FileSearchResult struct {
	FileID   string              `json:"file_id"`
	FileName string              `json:"file_name"`
	Score    float64             `json:"score"`
	Content  []FileSearchContent `json:"content,omitempty"`
}

// FileSearchContent is a piece of a found file.
type FileSearchContent struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

func (tc ToolCall) clone() ToolCall {
	c := tc
	c.Function = clonePtr(tc.Function)
	if c.Function != nil {
		c.Function.Output = clonePtr(tc.Function.Output)
	}
	if tc.CodeInterpreter != nil {
		ci := *tc.CodeInterpreter
		ci.Outputs = slices.Clone(ci.Outputs)
		for i := range ci.Outputs {
			ci.Outputs[i].Image = clonePtr(ci.Outputs[i].Image)
		}
		c.CodeInterpreter = &ci
	}
	if tc.FileSearch != nil {
		fs := *tc.FileSearch
		fs.RankingOptions = clonePtr(fs.RankingOptions)
		fs.Results = slices.Clone(fs.Results)
		for i := range fs.Results {
			fs.Results[i].Content = slices.Clone(fs.Results[i].Content)
		}
		c.FileSearch = &fs
	}
	return c
}

// validate checks one tool call; the error's Field is relative to the
// call, starting with "." (or empty for the call itself). Every string the
// call carries must be valid UTF-8.
func (tc *ToolCall) validate() *ValidationError {
	if err := validateID(".id", tc.ID); err != nil {
		return err
	}
	set := 0
	for _, p := range []bool{tc.Function != nil, tc.CodeInterpreter != nil, tc.FileSearch != nil} {
		if p {
			set++
		}
	}
	var member bool
	switch tc.Type {
	case ToolCallFunction:
		member = tc.Function != nil
	case ToolCallCodeInterpreter:
		member = tc.CodeInterpreter != nil
	case ToolCallFileSearch:
		member = tc.FileSearch != nil
	default:
		return invalid(".type", string(tc.Type), "unknown tool call type: want function, code_interpreter or file_search")
	}
	if !member || set != 1 {
		return invalid("", "", "a %s call must carry exactly its %s member", tc.Type, tc.Type)
	}
	switch {
	case tc.Function != nil:
		return tc.Function.validate()
	case tc.CodeInterpreter != nil:
		return tc.CodeInterpreter.validate()
	default:
		return tc.FileSearch.validate()
	}
}

// The validate methods below return an error whose Field is relative to
// the tool call, as ToolCall.validate does. Paths with an index are built
// only for an error: Apply validates every call's details on the hot path.

func (f *FunctionCall) validate() *ValidationError {
	switch {
	case !utf8.ValidString(f.Name):
		return invalid(".function.name", "", notUTF8)
	case !utf8.ValidString(f.Arguments):
		return invalid(".function.arguments", "", notUTF8)
	case f.Output != nil && !utf8.ValidString(*f.Output):
		return invalid(".function.output", "", notUTF8)
	}
	return nil
}

func (c *CodeInterpreterCall) validate() *ValidationError {
	if !utf8.ValidString(c.Input) {
		return invalid(".code_interpreter.input", "", notUTF8)
	}
	for i := range c.Outputs {
		if err := c.Outputs[i].validate(); err != nil {
			err.Field = fmt.Sprintf(".code_interpreter.outputs[%d]%s", i, err.Field)
			return err
		}
	}
	return nil
}

// validate checks one output; the error's Field is relative to it.
func (o *CodeOutput) validate() *ValidationError {
	switch {
	case o.Type == CodeOutputLogs && o.Image == nil:
		if !utf8.ValidString(o.Logs) {
			return invalid(".logs", "", notUTF8)
		}
	case o.Type == CodeOutputImage && o.Image != nil && o.Logs == "":
		if !utf8.ValidString(o.Image.FileID) {
			return invalid(".image.file_id", o.Image.FileID, notUTF8)
		}
	case o.Type != CodeOutputLogs && o.Type != CodeOutputImage:
		return invalid(".type", string(o.Type), "unknown output type: want logs or image")
	default:
		return invalid("", "", "members do not match type %q", o.Type)
	}
	return nil
}

func (c *FileSearchCall) validate() *ValidationError {
	if c.RankingOptions != nil && !utf8.ValidString(c.RankingOptions.Ranker) {
		return invalid(".file_search.ranking_options.ranker", "", notUTF8)
	}
	for i := range c.Results {
		if err := c.Results[i].validate(); err != nil {
			err.Field = fmt.Sprintf(".file_search.results[%d]%s", i, err.Field)
			return err
		}
	}
	return nil
}

// validate checks one search result; the error's Field is relative to it.
func (r *FileSearchResult) validate() *ValidationError {
	switch {
	case !utf8.ValidString(r.FileID):
		return invalid(".file_id", r.FileID, notUTF8)
	case !utf8.ValidString(r.FileName):
		return invalid(".file_name", "", notUTF8)
	}
	for i, c := range r.Content {
		switch {
		case !utf8.ValidString(c.Type):
			return invalid(fmt.Sprintf(".content[%d].type", i), "", notUTF8)
		case !utf8.ValidString(c.Text):
			return invalid(fmt.Sprintf(".content[%d].text", i), "", notUTF8)
		}
	}
	return nil
}
