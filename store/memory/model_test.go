package memory

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
)

// model is what a store must give back: every event as committed, and
// each step's latest version, kept whole.
type model struct {
	log   []events.Event
	steps map[string]lifecycle.Step
}

// The packed store gives back exactly what a plain record of the commits
// holds, whatever steps, changes and event types a history commits: every
// step and event, the created events the store tells from a later box
// included, through each run's index of steps too.
func TestStoreAgreesWithPlainRecord(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		hash := rapid.SampledFrom([]func(string) uint64{nil, func(string) uint64 { return 7 }}).Draw(t, "hash")
		s := newStore(hash)
		m := model{steps: map[string]lifecycle.Step{}}
		for range rapid.IntRange(1, 40).Draw(t, "commits") {
			batch := drawBatch(t, m)
			_, err := s.Commit(t.Context(), store.Events(batch...))
			if wantConflict(batch, m) {
				require.True(t, errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrAlreadyExists), "%v", err)
				continue
			}
			require.NoError(t, err)
			for _, ev := range batch {
				ev = ev.Clone()
				ev.Seq = int64(len(m.log)) + 1
				ev.Step.Version++
				m.log = append(m.log, ev)
				m.steps[ev.Step.ID] = *ev.Step
			}
			for _, ev := range batch {
				scribble(ev.Step) // the store copied it in
			}
		}

		got, err := s.Events(t.Context(), 0, len(m.log)+1)
		require.NoError(t, err)
		require.Equal(t, orNone(m.log), orNone(got))
		byRun := map[string][]lifecycle.Step{}
		for _, id := range slices.Sorted(maps.Keys(m.steps)) {
			want := m.steps[id]
			step, err := s.GetStep(t.Context(), id)
			require.NoError(t, err)
			require.Equal(t, want, step)
			scribble(&step) // what a reader does with its copy is its own
			step, err = s.GetStep(t.Context(), id)
			require.NoError(t, err)
			require.Equal(t, want, step)
			byRun[want.RunID] = append(byRun[want.RunID], want)
		}
		for runID, steps := range byRun {
			slices.SortFunc(steps, func(a, b lifecycle.Step) int {
				return compareBoxes(&stepBox{createdAt: a.CreatedAt, id: a.ID}, &stepBox{createdAt: b.CreatedAt, id: b.ID})
			})
			page, err := s.ListSteps(t.Context(), store.StepQuery{RunID: runID, Order: store.OrderAsc, Limit: 100})
			require.NoError(t, err)
			require.Equal(t, steps, page.Steps)
			inProgress, err := s.StepsInProgress(t.Context(), runID)
			require.NoError(t, err)
			require.Equal(t, orNone(slices.DeleteFunc(steps, func(s lifecycle.Step) bool { return s.Status.Terminal() })), orNone(inProgress))
		}
	})
}

// scribble writes over what step points at.
func scribble(step *lifecycle.Step) {
	if step.Metadata != nil {
		step.Metadata["k"] = "scribbled"
	}
	if step.Details.MessageCreation != nil {
		step.Details.MessageCreation.MessageID = "scribbled"
	}
	for i := range step.Details.ToolCalls {
		step.Details.ToolCalls[i].ID = "scribbled"
	}
	for _, p := range []*int64{step.CompletedAt, step.FailedAt, step.CancelledAt, step.ExpiredAt} {
		if p != nil {
			*p = -1
		}
	}
	if step.Usage != nil {
		step.Usage.TotalTokens = -1
	}
	if step.LastError != nil {
		step.LastError.Message = "scribbled"
	}
}

func orNone[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// wantConflict reports whether the batch names a version other than the
// stored one.
func wantConflict(batch []events.Event, m model) bool {
	for _, ev := range batch {
		if m.steps[ev.Step.ID].Version != ev.Step.Version {
			return true
		}
	}
	return false
}

// drawBatch draws one or two events of distinct steps: new steps, or
// changes of stored ones (rarely at a stale version), of any shape a
// valid step can take, typed as the engine types them, as created, or
// with a caller's own type.
func drawBatch(t *rapid.T, m model) []events.Event {
	ids := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"step_a", "step_b", "step_c", "step_d", "step_e"}), 1, 2, rapid.ID).Draw(t, "ids")
	batch := make([]events.Event, len(ids))
	for i, id := range ids {
		step, ok := m.steps[id]
		step = step.Clone() // the batch is scribbled on once committed
		if !ok {
			step = lifecycle.Step{
				ID: id, CreatedAt: rapid.Int64Range(100, 102).Draw(t, "created_at"),
				RunID:  rapid.SampledFrom([]string{"run_1", "run_2"}).Draw(t, "run"),
				Type:   rapid.SampledFrom([]lifecycle.Type{lifecycle.TypeToolCalls, lifecycle.TypeMessageCreation}).Draw(t, "type"),
				Status: lifecycle.StatusInProgress,
			}
		} else if rapid.IntRange(0, 9).Draw(t, "stale") == 0 {
			step.Version--
		}
		// A change mostly keeps what the step had, so that many changes
		// only move a step on, which the store stores in place.
		if !ok || rapid.IntRange(0, 3).Draw(t, "reshape") == 0 {
			step.ThreadID = rapid.SampledFrom([]string{"thread_1", "thread_2"}).Draw(t, "thread")
			step.AssistantID = rapid.SampledFrom([]string{"asst_1", "asst_2"}).Draw(t, "assistant")
			step.Metadata = maps.Clone(rapid.SampledFrom([]lifecycle.Metadata{nil, {}, {"k": "v"}}).Draw(t, "metadata"))
		}
		step.Details = drawDetails(t, step.Type)
		step.Usage = nil
		if rapid.Bool().Draw(t, "usage") {
			step.Usage = &lifecycle.Usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3}
		}
		step.Status, step.LastError = lifecycle.StatusInProgress, nil
		step.ExpiredAt, step.CancelledAt, step.FailedAt, step.CompletedAt = nil, nil, nil, nil
		if ok || rapid.Bool().Draw(t, "born ended") {
			status := rapid.SampledFrom(statuses[:]).Draw(t, "status")
			at := step.CreatedAt + 5
			step.Status = status
			if f := stampOf(&step, status); f != nil {
				*f = &at
			}
			if status == lifecycle.StatusFailed {
				step.LastError = &lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "boom"}
			}
		}
		typ := rapid.SampledFrom([]events.Type{events.StepType(step.Status), events.TypeStepCreated, "thread.run.step.delta"}).Draw(t, "event")
		batch[i] = events.Event{Type: typ, At: step.CreatedAt + 5, Step: &step}
	}
	return batch
}

func drawDetails(t *rapid.T, typ lifecycle.Type) lifecycle.StepDetails {
	if typ == lifecycle.TypeMessageCreation {
		return lifecycle.MessageCreationDetails(rapid.SampledFrom([]string{"msg_1", "msg_2"}).Draw(t, "message"))
	}
	call := lifecycle.ToolCall{ID: "call_1", Type: lifecycle.ToolCallFunction, Function: &lifecycle.FunctionCall{Name: "f", Arguments: "{}"}}
	return rapid.SampledFrom([]lifecycle.StepDetails{
		lifecycle.ToolCallsDetails(),
		lifecycle.ToolCallsDetails([]lifecycle.ToolCall{}...),
		lifecycle.ToolCallsDetails(call),
	}).Draw(t, "details").Clone()
}
