package lifecycle_test

import (
	"fmt"
	"maps"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/lifecycle"
)

// runSteps returns steps of run_1: two still in progress and one in each
// terminal step status, which a cascade leaves out.
func runSteps() []lifecycle.Step {
	tool := toolStep(functionCall(nil))
	tool.Metadata = lifecycle.Metadata{"k": "v"}
	steps := []lifecycle.Step{messageStep()}
	for _, s := range lifecycle.Statuses[1:] {
		done := stepIn(s)
		done.ID = "step_" + string(s)
		steps = append(steps, done)
	}
	return append(steps, tool)
}

// cloneSteps returns a deep copy of steps.
func cloneSteps(steps []lifecycle.Step) []lifecycle.Step {
	out := make([]lifecycle.Step, len(steps))
	for i, s := range steps {
		out[i] = s.Clone()
	}
	return out
}

// TestCascade runs every step action against every terminal run status:
// the steps still in progress follow the run, each stamped with the
// cascade's time; the others are left out.
func TestCascade(t *testing.T) {
	const moveNone = lifecycle.Status("") // refuse: nothing moves
	var (
		cancelled  = lifecycle.RunStatusCancelled
		failed     = lifecycle.RunStatusFailed
		completed  = lifecycle.RunStatusCompleted
		incomplete = lifecycle.RunStatusIncomplete
		expired    = lifecycle.RunStatusExpired
	)
	tests := []struct {
		run    lifecycle.RunStatus
		action lifecycle.StepAction
		want   lifecycle.Status // the status the steps in progress move to
		// invalid: CascadePolicy.Validate refuses the pair, since only a
		// failed run has an error to fail its steps with.
		invalid bool
	}{
		{cancelled, lifecycle.StepActionExpire, lifecycle.StatusExpired, false},
		{cancelled, lifecycle.StepActionCancel, lifecycle.StatusCancelled, false},
		{cancelled, lifecycle.StepActionFail, "", true},
		{cancelled, lifecycle.StepActionComplete, lifecycle.StatusCompleted, false},
		{cancelled, lifecycle.StepActionRefuse, moveNone, false},

		{failed, lifecycle.StepActionExpire, lifecycle.StatusExpired, false},
		{failed, lifecycle.StepActionCancel, lifecycle.StatusCancelled, false},
		{failed, lifecycle.StepActionFail, lifecycle.StatusFailed, false},
		{failed, lifecycle.StepActionComplete, lifecycle.StatusCompleted, false},
		{failed, lifecycle.StepActionRefuse, moveNone, false},

		{completed, lifecycle.StepActionExpire, lifecycle.StatusExpired, false},
		{completed, lifecycle.StepActionCancel, lifecycle.StatusCancelled, false},
		{completed, lifecycle.StepActionFail, "", true},
		{completed, lifecycle.StepActionComplete, lifecycle.StatusCompleted, false},
		{completed, lifecycle.StepActionRefuse, moveNone, false},

		{incomplete, lifecycle.StepActionExpire, lifecycle.StatusExpired, false},
		{incomplete, lifecycle.StepActionCancel, lifecycle.StatusCancelled, false},
		{incomplete, lifecycle.StepActionFail, "", true},
		{incomplete, lifecycle.StepActionComplete, lifecycle.StatusCompleted, false},
		{incomplete, lifecycle.StepActionRefuse, moveNone, false},

		{expired, lifecycle.StepActionExpire, lifecycle.StatusExpired, false},
		{expired, lifecycle.StepActionCancel, lifecycle.StatusCancelled, false},
		{expired, lifecycle.StepActionFail, "", true},
		{expired, lifecycle.StepActionComplete, lifecycle.StatusCompleted, false},
		{expired, lifecycle.StepActionRefuse, moveNone, false},
	}

	// Every terminal run status × every action has a row.
	actions := []lifecycle.StepAction{
		lifecycle.StepActionExpire, lifecycle.StepActionCancel, lifecycle.StepActionFail,
		lifecycle.StepActionComplete, lifecycle.StepActionRefuse,
	}
	covered := make(map[string]bool)
	for _, tt := range tests {
		covered[string(tt.run)+"/"+string(tt.action)] = true
	}
	terminal := 0
	for _, s := range lifecycle.RunStatuses {
		if !s.Terminal() {
			continue
		}
		terminal++
		for _, a := range actions {
			require.True(t, covered[string(s)+"/"+string(a)], "no row for %s × %s", s, a)
		}
	}
	require.Len(t, tests, terminal*len(actions))

	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.run, tt.action), func(t *testing.T) {
			policy := lifecycle.DefaultCascadePolicy()
			policy[tt.run] = tt.action
			run := runIn(tt.run)
			steps := runSteps()
			beforeRun, beforeSteps := run.Clone(), cloneSteps(steps)

			if tt.invalid {
				requireInvalid(t, policy.Validate(), "cascade_policy."+string(tt.run))
				// Cascade, which does not validate the policy, refuses too.
				got, err := policy.Cascade(run, steps, at)
				require.ErrorIs(t, err, lifecycle.ErrInvalid)
				require.Nil(t, got)
				return
			}
			require.NoError(t, policy.Validate())

			got, err := policy.Cascade(run, steps, at)
			require.Equal(t, beforeRun, run, "Cascade changed the run")
			require.Equal(t, beforeSteps, steps, "Cascade changed the steps")

			// Without a step in progress, nothing moves and nothing is
			// refused.
			for _, none := range [][]lifecycle.Step{nil, {}, runSteps()[1:5]} {
				moved, err := policy.Cascade(run, none, at)
				require.NoError(t, err)
				require.Empty(t, moved)
			}

			if tt.action == lifecycle.StepActionRefuse {
				require.ErrorIs(t, err, lifecycle.ErrStepsInProgress)
				require.NotErrorIs(t, err, lifecycle.ErrInvalid)
				require.Nil(t, got)
				return
			}

			require.NoError(t, err)
			var want []lifecycle.Step
			for _, s := range beforeSteps {
				if s.Status != lifecycle.StatusInProgress {
					continue
				}
				s.Status = tt.want
				switch tt.want {
				case lifecycle.StatusCompleted:
					s.CompletedAt = ptr(doneAt)
				case lifecycle.StatusFailed:
					s.FailedAt = ptr(doneAt)
					s.LastError = ptr(*run.LastError)
				case lifecycle.StatusCancelled:
					s.CancelledAt = ptr(doneAt)
				case lifecycle.StatusExpired:
					s.ExpiredAt = ptr(doneAt)
				}
				want = append(want, s)
			}
			require.Len(t, want, 2)
			require.Equal(t, want, got)
			for _, s := range got {
				requireStamps(t, s, tt.want, doneAt)
				require.NoError(t, s.Validate())
			}
		})
	}
}

// TestCascadeInvalidPrompt checks that a run failed with invalid_prompt, a
// code steps cannot carry, fails its steps with server_error and a message
// that says why.
func TestCascadeInvalidPrompt(t *testing.T) {
	run := runIn(lifecycle.RunStatusFailed)
	run.LastError = &lifecycle.LastError{Code: lifecycle.ErrorCodeInvalidPrompt, Message: "Your prompt was flagged"}
	before := run.Clone()

	got, err := lifecycle.DefaultCascadePolicy().Cascade(run, runSteps(), at)
	require.NoError(t, err)
	require.Len(t, got, 2)
	for _, s := range got {
		requireStamps(t, s, lifecycle.StatusFailed, doneAt)
		require.NoError(t, s.Validate())
		assert.Equal(t, lifecycle.ErrorCodeServerError, s.LastError.Code)
		assert.Contains(t, s.LastError.Message, string(lifecycle.ErrorCodeInvalidPrompt))
		assert.Contains(t, s.LastError.Message, "Your prompt was flagged")
	}
	require.Equal(t, before, run, "Cascade changed the run's error")

	// Each step holds its own error.
	got[0].LastError.Message = "changed afterwards"
	require.NotEqual(t, got[0].LastError, got[1].LastError)
	require.Equal(t, before, run)
}

func TestCascadeRefusesARunThatHasNotEnded(t *testing.T) {
	for _, status := range lifecycle.RunStatuses {
		if status.Terminal() {
			continue
		}
		t.Run(string(status), func(t *testing.T) {
			got, err := lifecycle.DefaultCascadePolicy().Cascade(runIn(status), runSteps(), at)
			requireInvalid(t, err, "status")
			require.Nil(t, got)
		})
	}
	t.Run("unknown status", func(t *testing.T) {
		run := runIn(lifecycle.RunStatusExpired)
		run.Status = "paused"
		got, err := lifecycle.DefaultCascadePolicy().Cascade(run, runSteps(), at)
		requireInvalid(t, err, "status")
		require.Nil(t, got)
	})
}

// TestCascadeWithoutAnAction checks that Cascade, given a policy Validate
// would refuse, refuses rather than leave the steps running.
func TestCascadeWithoutAnAction(t *testing.T) {
	for name, action := range map[string]lifecycle.StepAction{"missing": "", "unknown": "skip"} {
		t.Run(name, func(t *testing.T) {
			policy := lifecycle.DefaultCascadePolicy()
			if action == "" {
				delete(policy, lifecycle.RunStatusExpired)
			} else {
				policy[lifecycle.RunStatusExpired] = action
			}
			got, err := policy.Cascade(runIn(lifecycle.RunStatusExpired), runSteps(), at)
			requireInvalid(t, err, "cascade_policy.expired")
			require.Nil(t, got)
		})
	}
}

func TestDefaultCascadePolicy(t *testing.T) {
	p := lifecycle.DefaultCascadePolicy()
	require.NoError(t, p.Validate())
	require.Equal(t, lifecycle.CascadePolicy{
		lifecycle.RunStatusExpired:    lifecycle.StepActionExpire,
		lifecycle.RunStatusCancelled:  lifecycle.StepActionCancel,
		lifecycle.RunStatusFailed:     lifecycle.StepActionFail,
		lifecycle.RunStatusCompleted:  lifecycle.StepActionRefuse,
		lifecycle.RunStatusIncomplete: lifecycle.StepActionRefuse,
	}, p)

	// Each call returns a policy of its own.
	p[lifecycle.RunStatusCompleted] = lifecycle.StepActionComplete
	require.Equal(t, lifecycle.StepActionRefuse, lifecycle.DefaultCascadePolicy()[lifecycle.RunStatusCompleted])
}

func TestCascadePolicyValidate(t *testing.T) {
	with := func(edit func(p lifecycle.CascadePolicy)) lifecycle.CascadePolicy {
		p := lifecycle.DefaultCascadePolicy()
		edit(p)
		return p
	}
	tests := []struct {
		name   string
		policy lifecycle.CascadePolicy
		field  string // "" when the policy is valid
	}{
		{"default", lifecycle.DefaultCascadePolicy(), ""},
		{"complete the steps of a completed run", with(func(p lifecycle.CascadePolicy) {
			p[lifecycle.RunStatusCompleted] = lifecycle.StepActionComplete
		}), ""},
		{"refuse everything", lifecycle.CascadePolicy{
			lifecycle.RunStatusExpired: lifecycle.StepActionRefuse, lifecycle.RunStatusCancelled: lifecycle.StepActionRefuse,
			lifecycle.RunStatusFailed: lifecycle.StepActionRefuse, lifecycle.RunStatusCompleted: lifecycle.StepActionRefuse,
			lifecycle.RunStatusIncomplete: lifecycle.StepActionRefuse,
		}, ""},

		{"nil", nil, "cascade_policy.cancelled"},
		{"empty", lifecycle.CascadePolicy{}, "cascade_policy.cancelled"},
		{"empty action", with(func(p lifecycle.CascadePolicy) { p[lifecycle.RunStatusFailed] = "" }), "cascade_policy.failed"},
		{"unknown action", with(func(p lifecycle.CascadePolicy) { p[lifecycle.RunStatusExpired] = "skip" }), "cascade_policy.expired"},
		{"action in capitals", with(func(p lifecycle.CascadePolicy) { p[lifecycle.RunStatusExpired] = "EXPIRE" }), "cascade_policy.expired"},
	}
	for _, s := range lifecycle.RunStatuses {
		if s.Terminal() {
			tests = append(tests, struct {
				name   string
				policy lifecycle.CascadePolicy
				field  string
			}{"no action for " + string(s), with(func(p lifecycle.CascadePolicy) { delete(p, s) }), "cascade_policy." + string(s)})
			if s != lifecycle.RunStatusFailed {
				tests = append(tests, struct {
					name   string
					policy lifecycle.CascadePolicy
					field  string
				}{"fail the steps of a " + string(s) + " run", with(func(p lifecycle.CascadePolicy) {
					p[s] = lifecycle.StepActionFail
				}), "cascade_policy." + string(s)})
			}
			continue
		}
		tests = append(tests, struct {
			name   string
			policy lifecycle.CascadePolicy
			field  string
		}{"non-terminal key " + string(s), with(func(p lifecycle.CascadePolicy) {
			p[s] = lifecycle.StepActionExpire
		}), "cascade_policy"})
	}
	// A key that is no run status at all, such as a misspelt one, is
	// refused too, not passed over.
	for _, key := range []lifecycle.RunStatus{"canceled", "paused", ""} {
		tests = append(tests, struct {
			name   string
			policy lifecycle.CascadePolicy
			field  string
		}{fmt.Sprintf("unknown key %q", key), with(func(p lifecycle.CascadePolicy) {
			p[key] = lifecycle.StepActionCancel
		}), "cascade_policy"})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := maps.Clone(tt.policy)
			err := tt.policy.Validate()
			require.Equal(t, before, tt.policy, "Validate changed the policy")
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			requireInvalid(t, err, tt.field)
		})
	}
}

// AppendCascade into the steps' own memory gives what Cascade gives, for
// every run end, with steps that have ended mixed in.
func TestAppendCascadeInPlace(t *testing.T) {
	for _, status := range lifecycle.RunStatuses {
		if !status.Terminal() {
			continue
		}
		t.Run(string(status), func(t *testing.T) {
			policy := lifecycle.DefaultCascadePolicy()
			policy[lifecycle.RunStatusCompleted] = lifecycle.StepActionComplete
			policy[lifecycle.RunStatusIncomplete] = lifecycle.StepActionComplete
			run := runIn(status)
			if status == lifecycle.RunStatusFailed {
				run.LastError = &lifecycle.LastError{Code: lifecycle.ErrorCodeRateLimitExceeded, Message: "slow down"}
			}
			want, err := policy.Cascade(run, runSteps(), at)
			require.NoError(t, err)

			steps := runSteps()
			got, err := policy.AppendCascade(steps[:0], run, steps, at)
			require.NoError(t, err)
			require.Equal(t, want, got)
			require.Same(t, &steps[0], &got[0], "the moved steps took the place of the steps read")
		})
	}
}
