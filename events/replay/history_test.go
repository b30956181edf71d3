package replay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/memory"
)

// start is when every test's mock clock begins: a second of a real
// recording.
var start = time.Unix(1761861531, 0)

// history is an engine on a mock clock, and what it has made.
type history struct {
	eng   *engine.Engine
	st    store.Store
	clk   *clock.Mock
	ids   engine.IDGenerator
	runs  []string
	steps []string
}

func newHistory(seed uint64) *history {
	clk := clock.NewMock()
	clk.Set(start)
	st := memory.New()
	ids := engine.SeededIDs(seed)
	eng, err := engine.New(st, engine.WithClock(clk), engine.WithIDs(ids))
	if err != nil {
		panic(err) // the options are constant
	}
	return &history{eng: eng, st: st, clk: clk, ids: ids}
}

// refused reports whether err is the machine or the cascade policy saying
// no: a history may try anything, and those are not failures.
func refused(err error) bool {
	return errors.Is(err, lifecycle.ErrInvalidTransition) || errors.Is(err, lifecycle.ErrStepsInProgress)
}

// TB is what both *testing.T and *rapid.T offer.
type TB interface {
	require.TestingT
	Helper()
}

func (h *history) check(t TB, err error) {
	t.Helper()
	if err != nil && !refused(err) {
		require.NoError(t, err)
	}
}

// The actions a random history takes. Each draws what it needs.
func (h *history) newRun(t *rapid.T) {
	nr := engine.NewRun{ThreadID: "thread_" + rapid.StringMatching(`[a-z]{1,4}`).Draw(t, "thread"), AssistantID: "asst_1"}
	if rapid.Bool().Draw(t, "short TTL") {
		nr.TTL = time.Duration(rapid.IntRange(1, 120).Draw(t, "ttl")) * time.Second
	}
	if rapid.Bool().Draw(t, "metadata") {
		nr.Metadata = lifecycle.Metadata{"user": rapid.StringMatching(`[a-z]{0,5}`).Draw(t, "user")}
	}
	run, err := h.eng.CreateRun(context.Background(), nr)
	h.check(t, err)
	h.runs = append(h.runs, run.ID)
}

func (h *history) pickRun(t *rapid.T) (string, bool) {
	if len(h.runs) == 0 {
		return "", false
	}
	return rapid.SampledFrom(h.runs).Draw(t, "run"), true
}

func (h *history) pickStep(t *rapid.T) (string, bool) {
	if len(h.steps) == 0 {
		return "", false
	}
	return rapid.SampledFrom(h.steps).Draw(t, "step"), true
}

// triggerRun moves a run: mostly by a trigger the machine takes from its
// status, sometimes by any trigger, which the machine may refuse.
func (h *history) triggerRun(t *rapid.T) {
	id, ok := h.pickRun(t)
	if !ok {
		return
	}
	ctx := context.Background()
	run, err := h.eng.GetRun(ctx, id)
	require.NoError(t, err)
	var legal []lifecycle.RunTrigger
	for _, tr := range lifecycle.RunTriggers {
		if _, ok := lifecycle.NextRunStatus(run.Status, tr); ok {
			legal = append(legal, tr)
		}
	}
	choices := lifecycle.RunTriggers
	if len(legal) > 0 && !rapid.Bool().Draw(t, "any trigger") {
		choices = legal
	}
	trigger := rapid.SampledFrom(choices).Draw(t, "trigger")
	if trigger == lifecycle.RunTriggerFail {
		code := rapid.SampledFrom([]lifecycle.ErrorCode{
			lifecycle.ErrorCodeServerError, lifecycle.ErrorCodeRateLimitExceeded, lifecycle.ErrorCodeInvalidPrompt,
		}).Draw(t, "code")
		_, err = h.eng.FailRun(ctx, id, lifecycle.LastError{Code: code, Message: "the model gave up"})
	} else {
		_, err = h.eng.TriggerRun(ctx, id, trigger)
	}
	h.check(t, err)
}

func (h *history) createStep(t *rapid.T) {
	id, ok := h.pickRun(t)
	if !ok {
		return
	}
	// Mostly in a run in progress, the only kind that takes new steps.
	var running []string
	for _, r := range h.runs {
		if run, err := h.eng.GetRun(context.Background(), r); err == nil && run.Status == lifecycle.RunStatusInProgress {
			running = append(running, r)
		}
	}
	if len(running) > 0 && !rapid.Bool().Draw(t, "any run") {
		id = rapid.SampledFrom(running).Draw(t, "running run")
	}
	ns := engine.NewStep{RunID: id}
	if rapid.Bool().Draw(t, "message") {
		ns.Type = lifecycle.TypeMessageCreation
		ns.Details = lifecycle.MessageCreationDetails(h.ids.NewID("msg_"))
	} else {
		ns.Type = lifecycle.TypeToolCalls
		if rapid.Bool().Draw(t, "calls known") {
			ns.Details = lifecycle.ToolCallsDetails(functionCall(h.ids.NewID("call_"), nil))
		}
	}
	step, err := h.eng.CreateStep(context.Background(), ns)
	h.check(t, err)
	if err == nil {
		h.steps = append(h.steps, step.ID)
	}
}

func functionCall(id string, output *string) lifecycle.ToolCall {
	return lifecycle.ToolCall{ID: id, Type: lifecycle.ToolCallFunction, Function: &lifecycle.FunctionCall{
		Name: "get_current_weather", Arguments: `{"location":"Paris"}`, Output: output,
	}}
}

func (h *history) endStep(t *rapid.T) {
	id, ok := h.pickStep(t)
	if !ok {
		return
	}
	ctx := context.Background()
	var running []string
	for _, s := range h.steps {
		if step, err := h.eng.GetStep(ctx, s); err == nil && step.Status == lifecycle.StatusInProgress {
			running = append(running, s)
		}
	}
	if len(running) > 0 && !rapid.Bool().Draw(t, "any step") {
		id = rapid.SampledFrom(running).Draw(t, "running step")
	}
	var err error
	switch trigger := rapid.SampledFrom(lifecycle.Triggers).Draw(t, "step trigger"); trigger {
	case lifecycle.TriggerComplete:
		var final []engine.Final
		if rapid.Bool().Draw(t, "usage") {
			final = append(final, engine.FinalUsage(lifecycle.Usage{PromptTokens: 10, CompletionTokens: 2, TotalTokens: 12}))
		}
		step, gerr := h.eng.GetStep(ctx, id)
		require.NoError(t, gerr)
		if step.Type == lifecycle.TypeToolCalls && rapid.Bool().Draw(t, "output") {
			out := "warm and sunny"
			final = append(final, engine.FinalDetails(lifecycle.ToolCallsDetails(functionCall(h.ids.NewID("call_"), &out))))
		}
		_, err = h.eng.Complete(ctx, id, final...)
	case lifecycle.TriggerFail:
		_, err = h.eng.Fail(ctx, id, lifecycle.LastError{Code: lifecycle.ErrorCodeRateLimitExceeded, Message: "slow down"})
	case lifecycle.TriggerCancel:
		_, err = h.eng.Cancel(ctx, id)
	case lifecycle.TriggerExpire:
		_, err = h.eng.Expire(ctx, id)
	}
	h.check(t, err)
}

// sweep moves the clock, and expires (with their steps) the runs whose
// deadline has come.
func (h *history) sweep(t *rapid.T) {
	h.clk.Add(time.Duration(rapid.IntRange(0, 200).Draw(t, "seconds")) * time.Second)
	_, err := h.eng.ExpireDue(context.Background())
	require.NoError(t, err)
}

func (h *history) tick(t *rapid.T) {
	h.clk.Add(time.Duration(rapid.IntRange(0, 5).Draw(t, "tick")) * time.Second)
}

// draw runs a random history of up to max actions, the likeliest first.
func (h *history) draw(t *rapid.T, max int) {
	// By weight: steps come and go most, runs change less, new runs and
	// sweeps are rarer.
	actions := []func(*rapid.T){
		h.createStep, h.createStep, h.createStep, h.endStep, h.endStep, h.endStep,
		h.triggerRun, h.triggerRun, h.tick, h.newRun, h.sweep,
	}
	h.newRun(t)
	_, err := h.eng.StartRun(context.Background(), h.runs[0])
	require.NoError(t, err)
	n := rapid.IntRange(1, max).Draw(t, "actions")
	for range n {
		actions[rapid.IntRange(0, len(actions)-1).Draw(t, "action")](t)
	}
}

// log returns the engine's event log, as Writer writes it.
func (h *history) log(t TB) ([]events.Event, []byte) {
	t.Helper()
	evs, err := h.st.Events(context.Background(), 0, 1<<30)
	require.NoError(t, err)
	var buf bytes.Buffer
	w := events.NewWriter(&buf)
	for _, ev := range evs {
		require.NoError(t, w.Write(ev))
	}
	require.NoError(t, w.Flush())
	return evs, buf.Bytes()
}

// requireSameState checks that got holds every step and run of want, with
// the same JSON.
func requireSameState(t TB, want, got store.Store, evs []events.Event) {
	t.Helper()
	ctx := context.Background()
	seen := map[string]bool{}
	for _, ev := range evs {
		if ev.Step != nil && !seen[ev.Step.ID] {
			seen[ev.Step.ID] = true
			w, err := want.GetStep(ctx, ev.Step.ID)
			require.NoError(t, err)
			g, err := got.GetStep(ctx, ev.Step.ID)
			require.NoError(t, err, "step %s", ev.Step.ID)
			requireSameJSON(t, w, g, "step "+ev.Step.ID)
		}
		if ev.Run != nil && !seen[ev.Run.ID] {
			seen[ev.Run.ID] = true
			w, err := want.GetRun(ctx, ev.Run.ID)
			require.NoError(t, err)
			g, err := got.GetRun(ctx, ev.Run.ID)
			require.NoError(t, err, "run %s", ev.Run.ID)
			requireSameJSON(t, w, g, "run "+ev.Run.ID)
		}
	}
}

func requireSameJSON(t TB, want, got interface{ MarshalJSON() ([]byte, error) }, what string) {
	t.Helper()
	wb, err := want.MarshalJSON()
	require.NoError(t, err)
	gb, err := got.MarshalJSON()
	require.NoError(t, err)
	require.Equal(t, string(wb), string(gb), what)
}

// fixedHistory is a history with every kind of change, on a fixed script:
// steps completed with outputs and usage, failed and cancelled; a run that
// needs tool outputs and resumes from the queue; a run that fails, its
// step with it; a run cancelled with a step in progress; and two runs that
// the deadline sweep expires with their steps in progress.
func fixedHistory(t *testing.T) *history {
	t.Helper()
	h := newHistory(7)
	ctx := context.Background()
	must := func(_ any, err error) {
		t.Helper()
		require.NoError(t, err)
	}
	newRun := func(ttl time.Duration) string {
		run, err := h.eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_1", AssistantID: "asst_1", TTL: ttl})
		require.NoError(t, err)
		h.clk.Add(time.Second)
		must(h.eng.StartRun(ctx, run.ID))
		return run.ID
	}
	newStep := func(run string, typ lifecycle.Type) string {
		ns := engine.NewStep{RunID: run, Type: typ}
		if typ == lifecycle.TypeMessageCreation {
			ns.Details = lifecycle.MessageCreationDetails(h.ids.NewID("msg_"))
		}
		step, err := h.eng.CreateStep(ctx, ns)
		require.NoError(t, err)
		h.clk.Add(time.Second)
		return step.ID
	}

	// Run 1: a tool call, outputs submitted, resumed; a message; a failed
	// and a cancelled step; completed.
	r1 := newRun(0)
	call := newStep(r1, lifecycle.TypeToolCalls)
	must(h.eng.RequireAction(ctx, r1))
	h.clk.Add(2 * time.Second)
	out := "warm and sunny"
	must(h.eng.Complete(ctx, call,
		engine.FinalDetails(lifecycle.ToolCallsDetails(functionCall("call_1", &out))),
		engine.FinalUsage(lifecycle.Usage{PromptTokens: 260, CompletionTokens: 12, TotalTokens: 272,
			PromptTokenDetails: &lifecycle.PromptTokenDetails{}, CompletionTokensDetails: &lifecycle.CompletionTokensDetails{}})))
	must(h.eng.SubmitToolOutputs(ctx, r1))
	h.clk.Add(time.Second)
	must(h.eng.StartRun(ctx, r1))
	msg := newStep(r1, lifecycle.TypeMessageCreation)
	must(h.eng.Complete(ctx, msg, engine.FinalUsage(lifecycle.Usage{PromptTokens: 284, CompletionTokens: 42, TotalTokens: 326})))
	failed := newStep(r1, lifecycle.TypeToolCalls)
	must(h.eng.Fail(ctx, failed, lifecycle.LastError{Code: lifecycle.ErrorCodeServerError, Message: "tool crashed"}))
	cancelled := newStep(r1, lifecycle.TypeMessageCreation)
	must(h.eng.Cancel(ctx, cancelled))
	must(h.eng.CompleteRun(ctx, r1))

	// Run 2 fails with invalid_prompt; its step fails with it.
	r2 := newRun(0)
	newStep(r2, lifecycle.TypeMessageCreation)
	must(h.eng.FailRun(ctx, r2, lifecycle.LastError{Code: lifecycle.ErrorCodeInvalidPrompt, Message: "no"}))

	// Run 3 is cancelled with a step in progress.
	r3 := newRun(0)
	newStep(r3, lifecycle.TypeToolCalls)
	must(h.eng.CancelRun(ctx, r3))
	h.clk.Add(time.Second)
	must(h.eng.FinishCancelRun(ctx, r3))

	// Runs 4 and 5 wait for tool outputs that never come; the sweep,
	// late, expires them and their steps as of their deadlines.
	r4 := newRun(time.Minute)
	newStep(r4, lifecycle.TypeToolCalls)
	newStep(r4, lifecycle.TypeMessageCreation)
	must(h.eng.RequireAction(ctx, r4))
	r5 := newRun(90 * time.Second)
	newStep(r5, lifecycle.TypeToolCalls)
	h.clk.Add(5 * time.Minute)
	n, err := h.eng.ExpireDue(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	// Run 6 stays in progress, with a step in progress.
	r6 := newRun(0)
	newStep(r6, lifecycle.TypeMessageCreation)
	h.runs = []string{r1, r2, r3, r4, r5, r6}
	return h
}

func describeEvents(evs []events.Event) string {
	var b bytes.Buffer
	for _, ev := range evs {
		fmt.Fprintf(&b, "%d %s\n", ev.Seq, ev.Type)
	}
	return b.String()
}
