package lifecycle_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/looplab/fsm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/lifecycle"
)

// triggerUnknown is a trigger the step machine does not define.
const triggerUnknown lifecycle.Trigger = "pause"

// TestTransitionMatrix drives every status × every trigger through
// Step.Apply, NextStatus and a real looplab FSM built from the definition,
// and checks that the three agree with the table written here.
func TestTransitionMatrix(t *testing.T) {
	const refused = lifecycle.Status("")
	var (
		inProgress = lifecycle.StatusInProgress
		completed  = lifecycle.StatusCompleted
		failed     = lifecycle.StatusFailed
		cancelled  = lifecycle.StatusCancelled
		expired    = lifecycle.StatusExpired
	)
	tests := []struct {
		from    lifecycle.Status
		trigger lifecycle.Trigger
		want    lifecycle.Status // refused: Apply and looplab refuse
	}{
		{inProgress, lifecycle.TriggerComplete, completed},
		{inProgress, lifecycle.TriggerFail, failed},
		{inProgress, lifecycle.TriggerCancel, cancelled},
		{inProgress, lifecycle.TriggerExpire, expired},
		{inProgress, triggerUnknown, refused},

		{completed, lifecycle.TriggerComplete, refused},
		{completed, lifecycle.TriggerFail, refused},
		{completed, lifecycle.TriggerCancel, refused},
		{completed, lifecycle.TriggerExpire, refused},
		{completed, triggerUnknown, refused},

		{failed, lifecycle.TriggerComplete, refused},
		{failed, lifecycle.TriggerFail, refused},
		{failed, lifecycle.TriggerCancel, refused},
		{failed, lifecycle.TriggerExpire, refused},
		{failed, triggerUnknown, refused},

		{cancelled, lifecycle.TriggerComplete, refused},
		{cancelled, lifecycle.TriggerFail, refused},
		{cancelled, lifecycle.TriggerCancel, refused},
		{cancelled, lifecycle.TriggerExpire, refused},
		{cancelled, triggerUnknown, refused},

		{expired, lifecycle.TriggerComplete, refused},
		{expired, lifecycle.TriggerFail, refused},
		{expired, lifecycle.TriggerCancel, refused},
		{expired, lifecycle.TriggerExpire, refused},
		{expired, triggerUnknown, refused},
	}

	// The table must cover every pair, so a new status or trigger cannot
	// slip past it.
	covered := make(map[string]bool)
	for _, tt := range tests {
		covered[string(tt.from)+"/"+string(tt.trigger)] = true
	}
	triggers := append(slices.Clone(lifecycle.Triggers), triggerUnknown)
	for _, from := range lifecycle.Statuses {
		for _, trig := range triggers {
			require.True(t, covered[string(from)+"/"+string(trig)], "no row for %s × %s", from, trig)
		}
	}
	require.Len(t, tests, len(lifecycle.Statuses)*len(triggers))

	failure := lifecycle.LastError{Code: lifecycle.ErrorCodeRateLimitExceeded, Message: "Rate limit reached"}

	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.from, tt.trigger), func(t *testing.T) {
			step := stepIn(tt.from)
			change := lifecycle.Change{Trigger: tt.trigger, At: at}
			if tt.trigger == lifecycle.TriggerFail {
				change.Error = ptr(failure)
			}

			got, err := step.Apply(change)
			next, ok := lifecycle.NextStatus(tt.from, tt.trigger)
			machine := lifecycle.StepMachine(tt.from)
			fsmErr := machine.Event(t.Context(), string(tt.trigger))

			if tt.want == refused {
				var te *lifecycle.TransitionError
				require.ErrorAs(t, err, &te)
				require.ErrorIs(t, err, lifecycle.ErrInvalidTransition)
				assert.Equal(t, step.ID, te.ID)
				assert.Equal(t, string(tt.from), te.From)
				assert.Equal(t, string(tt.trigger), te.Trigger)
				assert.Zero(t, got)

				assert.False(t, ok, "NextStatus allows what Apply refuses")

				require.Error(t, fsmErr, "looplab allows what Apply refuses")
				if tt.trigger == triggerUnknown {
					require.ErrorAs(t, fsmErr, new(fsm.UnknownEventError))
				} else {
					require.ErrorAs(t, fsmErr, new(fsm.InvalidEventError))
				}
				assert.Equal(t, string(tt.from), machine.Current())
				return
			}

			require.NoError(t, err)
			want := step.Clone()
			want.Status = tt.want
			switch tt.want {
			case lifecycle.StatusCompleted:
				want.CompletedAt = ptr(doneAt)
			case lifecycle.StatusFailed:
				want.FailedAt = ptr(doneAt)
				want.LastError = ptr(failure)
			case lifecycle.StatusCancelled:
				want.CancelledAt = ptr(doneAt)
			case lifecycle.StatusExpired:
				want.ExpiredAt = ptr(doneAt)
			}
			require.Equal(t, want, got)
			requireStamps(t, got, tt.want, doneAt)
			require.NoError(t, got.Validate())

			assert.True(t, ok)
			assert.Equal(t, tt.want, next, "NextStatus disagrees with Apply")

			require.NoError(t, fsmErr)
			assert.Equal(t, string(tt.want), machine.Current(), "looplab disagrees with Apply")
		})
	}
}

// requireStamps checks that exactly the *_at field of status holds sec, that
// the other three are nil, and that last_error is set only on a failed step.
func requireStamps(t *testing.T, s lifecycle.Step, status lifecycle.Status, sec int64) {
	t.Helper()
	fields := map[lifecycle.Status]*int64{
		lifecycle.StatusCompleted: s.CompletedAt,
		lifecycle.StatusFailed:    s.FailedAt,
		lifecycle.StatusCancelled: s.CancelledAt,
		lifecycle.StatusExpired:   s.ExpiredAt,
	}
	for st, p := range fields {
		if st == status {
			require.NotNil(t, p, "the %s stamp is nil", st)
			require.Equal(t, sec, *p, "the %s stamp", st)
		} else {
			require.Nil(t, p, "the %s stamp is set on a %s step", st, status)
		}
	}
	require.Equal(t, status == lifecycle.StatusFailed, s.LastError != nil, "last_error on a %s step", status)
}

func TestApplyRefusesBadInput(t *testing.T) {
	rateLimited := &lifecycle.LastError{Code: lifecycle.ErrorCodeRateLimitExceeded, Message: "slow down"}
	tests := []struct {
		name   string
		step   lifecycle.Step
		change lifecycle.Change
		field  string
	}{
		{
			name:   "fail without an error",
			step:   messageStep(),
			change: lifecycle.Change{Trigger: lifecycle.TriggerFail, At: at},
			field:  "last_error",
		},
		{
			name:   "complete with an error",
			step:   messageStep(),
			change: lifecycle.Change{Trigger: lifecycle.TriggerComplete, At: at, Error: rateLimited},
			field:  "last_error",
		},
		{
			name:   "cancel with an error",
			step:   messageStep(),
			change: lifecycle.Change{Trigger: lifecycle.TriggerCancel, At: at, Error: rateLimited},
			field:  "last_error",
		},
		{
			name:   "expire with an error",
			step:   messageStep(),
			change: lifecycle.Change{Trigger: lifecycle.TriggerExpire, At: at, Error: rateLimited},
			field:  "last_error",
		},
		{
			name: "unknown error code",
			step: messageStep(),
			change: lifecycle.Change{Trigger: lifecycle.TriggerFail, At: at,
				Error: &lifecycle.LastError{Code: "timeout", Message: "too slow"}},
			field: "last_error.code",
		},
		{
			name: "empty error message",
			step: messageStep(),
			change: lifecycle.Change{Trigger: lifecycle.TriggerFail, At: at,
				Error: &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError}},
			field: "last_error.message",
		},
		{
			name: "details of the wrong type",
			step: toolStep(functionCall(nil)),
			change: lifecycle.Change{Trigger: lifecycle.TriggerComplete, At: at,
				Details: ptr(lifecycle.MessageCreationDetails("msg_1"))},
			field: "step_details.type",
		},
		{
			name: "invalid details of the right type",
			step: toolStep(functionCall(nil)),
			change: lifecycle.Change{Trigger: lifecycle.TriggerComplete, At: at,
				Details: ptr(lifecycle.ToolCallsDetails(lifecycle.ToolCall{Type: lifecycle.ToolCallFunction, Function: &lifecycle.FunctionCall{}}))},
			field: "step_details.tool_calls[0].id",
		},
		{
			name: "negative usage",
			step: messageStep(),
			change: lifecycle.Change{Trigger: lifecycle.TriggerComplete, At: at,
				Usage: &lifecycle.Usage{PromptTokens: -1}},
			field: "usage.prompt_tokens",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.step.Clone()
			got, err := tt.step.Apply(tt.change)
			requireInvalid(t, err, tt.field)
			require.Zero(t, got)
			require.Equal(t, before, tt.step)
		})
	}
}

func TestApplyCompletesWithDetailsAndUsage(t *testing.T) {
	step := toolStep(functionCall(nil))
	step.Metadata = lifecycle.Metadata{"user": "u_1"}
	before := step.Clone()

	output := "warm and sunny"
	change := lifecycle.Change{
		Trigger: lifecycle.TriggerComplete,
		At:      at,
		Details: ptr(lifecycle.ToolCallsDetails(functionCall(&output))),
		Usage:   usage(),
	}
	got, err := step.Apply(change)
	require.NoError(t, err)

	want := before.Clone()
	want.Status = lifecycle.StatusCompleted
	want.CompletedAt = ptr(doneAt)
	want.Details = lifecycle.ToolCallsDetails(functionCall(ptr("warm and sunny")))
	want.Usage = usage()
	require.Equal(t, want, got)
	require.Equal(t, before, step, "Apply changed its receiver")

	// The result shares no memory with the change: changing every input
	// afterwards leaves it as it was.
	output = "cold"
	call := &change.Details.ToolCalls[0]
	call.ID = "call_other"
	call.Function.Name = "other"
	*call.Function.Output = "rain"
	call.Function = nil
	change.Details.ToolCalls = append(change.Details.ToolCalls, functionCall(nil))
	change.Usage.PromptTokens = 1
	change.Usage.PromptTokenDetails.CachedTokens = 1
	change.Usage.CompletionTokensDetails.ReasoningTokens = 1
	require.Equal(t, want, got)
}

func TestApplyFailCopiesTheError(t *testing.T) {
	step := messageStep()
	before := step.Clone()
	le := &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "The server had an error"}

	got, err := step.Apply(lifecycle.Change{Trigger: lifecycle.TriggerFail, At: at, Error: le})
	require.NoError(t, err)
	require.Equal(t, before, step, "Apply changed its receiver")

	le.Code = lifecycle.ErrorCodeRateLimitExceeded
	le.Message = "changed afterwards"
	require.Equal(t, &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "The server had an error"}, got.LastError)
	requireStamps(t, got, lifecycle.StatusFailed, doneAt)
}

func TestApplyDoesNotChangeTheReceiver(t *testing.T) {
	// A step whose pointers Apply could write through if it were careless.
	step := toolStep(functionCall(ptr("sunny")))
	step.Metadata = lifecycle.Metadata{"k": "v"}
	step.Usage = usage()
	before := step.Clone()

	for _, trig := range lifecycle.Triggers {
		c := lifecycle.Change{Trigger: trig, At: at, Usage: &lifecycle.Usage{TotalTokens: 1}}
		if trig == lifecycle.TriggerFail {
			c.Error = &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "x"}
		}
		_, err := step.Apply(c)
		require.NoError(t, err, trig)
		require.Equal(t, before, step, "Apply(%s) changed its receiver", trig)
	}
}

// TestApplyConcurrent lets goroutines share one step and the package's
// machine; go test -race reports any write to shared memory.
func TestApplyConcurrent(t *testing.T) {
	step := toolStep(functionCall(nil))
	step.Metadata = lifecycle.Metadata{"k": "v"}
	before := step.Clone()

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, trig := range lifecycle.Triggers {
				c := lifecycle.Change{Trigger: trig, At: at}
				if trig == lifecycle.TriggerFail {
					c.Error = &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "x"}
				}
				next, err := step.Apply(c)
				assert.NoError(t, err)
				_, err = next.Apply(c)
				assert.ErrorIs(t, err, lifecycle.ErrInvalidTransition)
			}
			_, err := lifecycle.StepDiagram(lifecycle.DiagramDOT)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	require.Equal(t, before, step)
}
