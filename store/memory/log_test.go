package memory

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
)

// A step's created event told from the version that ended it reads back
// exactly as it was committed, whatever the details, metadata and final
// change; and the ended step takes the place of the in-progress copy only
// when it can.
func TestCreatedEventToldFromLaterVersion(t *testing.T) {
	call := lifecycle.ToolCall{ID: "call_1", Type: lifecycle.ToolCallFunction, Function: &lifecycle.FunctionCall{Name: "f", Arguments: "{}"}}
	usage := lifecycle.Usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3}
	at := time.Unix(1761861600, 0)
	cases := []struct {
		name   string
		step   lifecycle.Step // as created
		change lifecycle.Change
		told   bool
	}{
		{"tool calls null, completed", tools(nil), lifecycle.Change{Trigger: lifecycle.TriggerComplete}, true},
		{"tool calls empty, completed", tools([]lifecycle.ToolCall{}), lifecycle.Change{Trigger: lifecycle.TriggerComplete}, true},
		{"tool calls null, completed with calls and usage", tools(nil), lifecycle.Change{
			Trigger: lifecycle.TriggerComplete, Details: ptr(lifecycle.ToolCallsDetails(call)), Usage: &usage,
		}, true},
		{"tool calls empty, completed with calls", tools([]lifecycle.ToolCall{}), lifecycle.Change{
			Trigger: lifecycle.TriggerComplete, Details: ptr(lifecycle.ToolCallsDetails(call)),
		}, true},
		{"tool calls null, completed with empty calls", tools(nil), lifecycle.Change{
			Trigger: lifecycle.TriggerComplete, Details: ptr(lifecycle.ToolCallsDetails([]lifecycle.ToolCall{}...)),
		}, true},
		{"tool calls empty, completed with null calls", tools([]lifecycle.ToolCall{}), lifecycle.Change{
			Trigger: lifecycle.TriggerComplete, Details: ptr(lifecycle.ToolCallsDetails()),
		}, true},
		{"message, failed", message("msg_1"), lifecycle.Change{
			Trigger: lifecycle.TriggerFail, Error: &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "boom"},
		}, true},
		{"message, completed with another message", message("msg_1"), lifecycle.Change{
			Trigger: lifecycle.TriggerComplete, Details: ptr(lifecycle.MessageCreationDetails("msg_2")),
		}, false},
		{"with metadata, cancelled", withMetadata(tools(nil), lifecycle.Metadata{"k": "v"}), lifecycle.Change{Trigger: lifecycle.TriggerCancel}, true},
		{"empty metadata, expired", withMetadata(tools(nil), lifecycle.Metadata{}), lifecycle.Change{Trigger: lifecycle.TriggerExpire}, true},
		{"created with calls", tools([]lifecycle.ToolCall{call}), lifecycle.Change{Trigger: lifecycle.TriggerComplete}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			created := tc.step
			_, err := s.Commit(t.Context(), store.Events(events.Event{Type: events.TypeStepCreated, At: created.CreatedAt, Step: &created}))
			require.NoError(t, err)
			created.Version = 1
			before, err := s.GetStep(t.Context(), created.ID)
			require.NoError(t, err)
			tc.change.At = at
			ended, err := created.Apply(tc.change)
			require.NoError(t, err)
			_, err = s.Commit(t.Context(), store.Events(events.Event{Type: events.StepType(ended.Status), At: at.Unix(), Step: &ended}))
			require.NoError(t, err)
			ended.Version = 2

			log, err := s.Events(t.Context(), 0, 10)
			require.NoError(t, err)
			require.Equal(t, []events.Event{
				{Seq: 1, Type: events.TypeStepCreated, At: created.CreatedAt, Step: &created},
				{Seq: 2, Type: events.StepType(ended.Status), At: at.Unix(), Step: &ended},
			}, log)
			require.Equal(t, created, before, "a step read before it moved on stays as it was read")
			e := s.log.at(0)
			require.Equal(t, tc.told, e.step.flags&movedOn != 0, "created event told from the ended step")
			require.Equal(t, tc.told, e.step == s.steps.get(created.ID), "the ended step took the in-progress copy's place")
		})
	}
}

func tools(calls []lifecycle.ToolCall) lifecycle.Step {
	return lifecycle.Step{
		ID: "step_1", CreatedAt: 1761861531, AssistantID: "asst_1", ThreadID: "thread_1", RunID: "run_1",
		Type: lifecycle.TypeToolCalls, Status: lifecycle.StatusInProgress,
		Details: lifecycle.StepDetails{Type: lifecycle.TypeToolCalls, ToolCalls: calls},
	}
}

func message(id string) lifecycle.Step {
	s := tools(nil)
	s.Type, s.Details = lifecycle.TypeMessageCreation, lifecycle.MessageCreationDetails(id)
	return s
}

func withMetadata(s lifecycle.Step, m lifecycle.Metadata) lifecycle.Step {
	s.Metadata = m
	return s
}

func ptr[T any](v T) *T { return &v }

// An update that keeps a step in progress is typed created too; the
// step's later end must not rewrite the first created event through it.
func TestCreatedEventAfterAnUpdateInProgress(t *testing.T) {
	s := New()
	commit := func(typ events.Type, step lifecycle.Step) {
		t.Helper()
		_, err := s.Commit(t.Context(), store.Events(events.Event{Type: typ, At: step.CreatedAt, Step: &step}))
		require.NoError(t, err)
	}
	v1 := tools(nil)
	commit(events.TypeStepCreated, v1)
	v1.Version = 1

	v2 := v1 // the same step in progress, its tool calls now empty
	v2.Details.ToolCalls = []lifecycle.ToolCall{}
	commit(events.StepType(v2.Status), v2)
	v2.Version = 2

	v3, err := v2.Apply(lifecycle.Change{Trigger: lifecycle.TriggerComplete, At: time.Unix(1761861600, 0)})
	require.NoError(t, err)
	commit(events.StepType(v3.Status), v3)
	v3.Version = 3

	log, err := s.Events(t.Context(), 0, 10)
	require.NoError(t, err)
	require.Len(t, log, 3)
	require.Equal(t, []lifecycle.Step{v1, v2, v3}, []lifecycle.Step{*log[0].Step, *log[1].Step, *log[2].Step})
}

// The log codes the types runstep writes; any other type a caller gives
// reads back as given, in its place.
func TestEventOfOtherTypeReadsBack(t *testing.T) {
	s := New()
	step := tools(nil)
	commit := func(typ events.Type) {
		t.Helper()
		_, err := s.Commit(t.Context(), store.Events(events.Event{Type: typ, At: step.CreatedAt, Step: &step}))
		require.NoError(t, err)
		step.Version++
	}
	commit("thread.run.step.delta")
	commit(events.TypeStepCreated)
	commit("")

	log, err := s.Events(t.Context(), 0, 10)
	require.NoError(t, err)
	var types []events.Type
	for _, ev := range log {
		types = append(types, ev.Type)
	}
	require.Equal(t, []events.Type{"thread.run.step.delta", events.TypeStepCreated, ""}, types)
}

// Every event runstep writes has a code: only a caller's own types take
// the log's slower way.
func TestEveryEventRunstepWritesHasACode(t *testing.T) {
	written := []events.Type{events.TypeRunCreated}
	for _, s := range statuses {
		written = append(written, events.StepType(s))
	}
	for _, s := range lifecycle.RunStatuses {
		written = append(written, events.RunType(s))
	}
	for _, typ := range written {
		require.True(t, typ.Known(), typ)
		require.NotEqual(t, otherType, codeOf(typ), typ)
	}
}

// A box's codes stand for the type and status they were made from.
func TestCodesStandForTheirValues(t *testing.T) {
	for _, typ := range types {
		for _, status := range statuses {
			step := lifecycle.Step{Type: typ, Status: status}
			tc, sc, ok := codes(&step)
			require.True(t, ok)
			require.Equal(t, typ, types[tc])
			require.Equal(t, status, statuses[sc])
		}
	}
	_, _, ok := codes(&lifecycle.Step{Type: "thinking", Status: lifecycle.StatusInProgress})
	require.False(t, ok)
	_, _, ok = codes(&lifecycle.Step{Type: lifecycle.TypeToolCalls, Status: "paused"})
	require.False(t, ok)
}
