package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/memory"
)

// demoOptions configures the demo scenario.
type demoOptions struct {
	// Seed seeds the ids; the same seed and Start give the same output.
	Seed uint64
	// Start is when the simulated clock starts; it is truncated to the
	// second, the resolution of every *_at field.
	Start time.Time
	// Store is where the runs and steps live; nil means a fresh memory
	// store.
	Store store.Store
	// Log, if set, receives the JSON-lines event log.
	Log io.Writer
}

// The parties of the demo's runs.
const (
	demoThreadID    = "thread_demo"
	demoAssistantID = "asst_demo"
)

// demo runs a small, realistic scenario of three runs on a simulated clock
// and writes what happens to w: each run and step event as it commits,
// what the machines refuse, and tables of the runs and steps at the end.
//
// Run 1 completes:
//
//  1. the assistant calls get_current_weather and the run waits for the
//     output (requires_action); the output is submitted, the run is queued
//     and resumes, and the tool_calls step completes with the output and
//     its token usage;
//  2. a message_creation step writes the answer and completes;
//  3. a follow-up tool_calls step hits the rate limit and fails;
//  4. a retry starts writing a message; completing the run is refused while
//     it is in progress, so the orchestrator cancels it;
//  5. cancelling the completed first step is refused by the machine;
//  6. the run completes.
//
// Run 2 waits for a tool output that never comes: the deadline sweep
// (ExpireDue) expires it, and its tool_calls step with it, both stamped
// at the run's deadline.
//
// Run 3 is cancelled while its message is being written; the step is
// cancelled with it.
func demo(ctx context.Context, w io.Writer, opts demoOptions) (err error) {
	st := opts.Store
	if st == nil {
		st = memory.New()
		defer st.Close()
	}
	// One generator makes the engine's ids and the scenario's, so the seed
	// decides them all.
	ids := engine.SeededIDs(opts.Seed)
	mock := clock.NewMock()
	mock.Set(opts.Start.Truncate(time.Second))
	eng, err := engine.New(st, engine.WithClock(mock), engine.WithIDs(ids))
	if err != nil {
		return err
	}
	d := &demoRun{out: w, eng: eng, ids: ids, store: st, clock: mock, start: mock.Now().Unix()}
	if opts.Log != nil {
		d.log = events.NewWriter(opts.Log)
		defer func() {
			if serr := d.log.Sync(); serr != nil {
				err = errors.Join(err, fmt.Errorf("write event log: %w", serr))
			}
		}()
	}

	if err := d.skipEarlier(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "%s on %s, simulated time from %s (%d); a run expires %v after it is created\n",
		demoAssistantID, demoThreadID, mock.Now().UTC().Format(time.RFC3339), d.start, lifecycle.DefaultRunTTL)
	for _, part := range []struct {
		title string
		do    func(context.Context) (lifecycle.Run, error)
	}{
		{"run 1 answers with a tool's help, and completes", d.completedRun},
		{"run 2 waits for a tool output that never comes, and expires", d.expiredRun},
		{"run 3 is cancelled while it writes", d.cancelledRun},
	} {
		fmt.Fprintf(w, "\n%s\n", part.title)
		run, err := part.do(ctx)
		if err != nil {
			return err
		}
		d.runs = append(d.runs, run.ID)
	}
	return d.writeTables(ctx)
}

// demoRun is the state of one demo: what it drives, where it writes, and
// how far it has read the event log.
type demoRun struct {
	out   io.Writer
	log   *events.Writer // nil without --log
	eng   *engine.Engine
	ids   engine.IDGenerator
	store store.Store
	clock *clock.Mock
	start int64    // Unix seconds
	seq   int64    // the last event shown
	runs  []string // the runs so far, in order
}

// completedRun is run 1: four steps, each ending as its caller decides,
// and the run completing once none is in progress.
func (d *demoRun) completedRun(ctx context.Context) (lifecycle.Run, error) {
	run, err := d.startRun(ctx)
	if err != nil {
		return run, err
	}

	// 1. The model asks for the weather, and the run waits for the
	// orchestrator to run the function. Its output resumes the run, and the
	// step completes with it.
	callID := d.ids.NewID("call_")
	weather := func(output *string) lifecycle.StepDetails {
		return lifecycle.ToolCallsDetails(lifecycle.ToolCall{
			ID: callID, Type: lifecycle.ToolCallFunction,
			Function: &lifecycle.FunctionCall{
				Name: "get_current_weather", Arguments: `{"location":"Paris"}`, Output: output,
			},
		})
	}
	d.advance(1 * time.Second)
	lookup, err := d.eng.CreateStep(ctx, newStep(run.ID, lifecycle.TypeToolCalls, weather(nil)))
	if err != nil {
		return run, err
	}
	if _, err := d.eng.RequireAction(ctx, run.ID); err != nil {
		return run, err
	}
	if err := d.show(ctx); err != nil {
		return run, err
	}
	d.advance(3 * time.Second)
	if _, err := d.eng.SubmitToolOutputs(ctx, run.ID); err != nil {
		return run, err
	}
	if err := d.show(ctx); err != nil {
		return run, err
	}
	d.advance(1 * time.Second)
	if _, err := d.eng.StartRun(ctx, run.ID); err != nil {
		return run, err
	}
	output := `{"temperature":18,"unit":"celsius","conditions":"partly cloudy"}`
	if _, err := d.eng.Complete(ctx, lookup.ID,
		engine.FinalDetails(weather(&output)),
		engine.FinalUsage(lifecycle.Usage{PromptTokens: 312, CompletionTokens: 21, TotalTokens: 333}),
	); err != nil {
		return run, err
	}
	if err := d.show(ctx); err != nil {
		return run, err
	}

	// 2. The model writes its answer.
	d.advance(1 * time.Second)
	answer, err := d.eng.CreateStep(ctx, newStep(run.ID, lifecycle.TypeMessageCreation,
		lifecycle.MessageCreationDetails(d.ids.NewID("msg_"))))
	if err != nil {
		return run, err
	}
	if err := d.show(ctx); err != nil {
		return run, err
	}
	d.advance(4 * time.Second)
	if _, err := d.eng.Complete(ctx, answer.ID,
		engine.FinalUsage(lifecycle.Usage{PromptTokens: 371, CompletionTokens: 48, TotalTokens: 419}),
	); err != nil {
		return run, err
	}
	if err := d.show(ctx); err != nil {
		return run, err
	}

	// 3. A follow-up: the model call behind the next tool_calls step hits
	// the rate limit before it names any call.
	d.advance(5 * time.Second)
	limited, err := d.eng.CreateStep(ctx, newStep(run.ID, lifecycle.TypeToolCalls, lifecycle.StepDetails{}))
	if err != nil {
		return run, err
	}
	if err := d.show(ctx); err != nil {
		return run, err
	}
	d.advance(2 * time.Second)
	if _, err := d.eng.Fail(ctx, limited.ID, lifecycle.LastError{
		Code:    lifecycle.ErrorCodeRateLimitExceeded,
		Message: "Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, Used 29870, Requested 512. Please try again in 764ms.",
	}); err != nil {
		return run, err
	}
	if err := d.show(ctx); err != nil {
		return run, err
	}

	// 4. A retry starts writing a message. The run cannot complete while
	// the retry is in progress; the answer of step 2 stands, so the
	// orchestrator cancels the retry.
	d.advance(3 * time.Second)
	retry, err := d.eng.CreateStep(ctx, newStep(run.ID, lifecycle.TypeMessageCreation,
		lifecycle.MessageCreationDetails(d.ids.NewID("msg_"))))
	if err != nil {
		return run, err
	}
	if err := d.show(ctx); err != nil {
		return run, err
	}
	d.advance(1 * time.Second)
	_, err = d.eng.CompleteRun(ctx, run.ID)
	if !errors.Is(err, lifecycle.ErrStepsInProgress) {
		return run, fmt.Errorf("complete run %s with step %s in progress: want %v, got %v",
			run.ID, retry.ID, lifecycle.ErrStepsInProgress, err)
	}
	if run, err = d.eng.GetRun(ctx, run.ID); err != nil {
		return run, err
	}
	d.refused("run", "complete", run.ID, string(run.Status), "step "+retry.ID+" is in progress")
	d.advance(1 * time.Second)
	if _, err := d.eng.Cancel(ctx, retry.ID); err != nil {
		return run, err
	}
	if err := d.show(ctx); err != nil {
		return run, err
	}

	// 5. Nothing leaves a terminal status: the machine refuses, and no
	// event is written.
	d.advance(1 * time.Second)
	_, err = d.eng.Cancel(ctx, lookup.ID)
	var refused *lifecycle.TransitionError
	if !errors.Is(err, lifecycle.ErrInvalidTransition) || !errors.As(err, &refused) {
		return run, fmt.Errorf("cancel completed step %s: want a transition error, got %v", lookup.ID, err)
	}
	d.refused("step", refused.Trigger, refused.ID, refused.From, "")

	// 6. No step is in progress any more: the run completes.
	d.advance(1 * time.Second)
	if run, err = d.eng.CompleteRun(ctx, run.ID); err != nil {
		return run, err
	}
	return run, d.show(ctx)
}

// expiredRun is run 2: the run waits for a tool output that never comes,
// and the deadline sweep, which notices late, expires the run and its step
// as of the deadline.
func (d *demoRun) expiredRun(ctx context.Context) (lifecycle.Run, error) {
	d.advance(5 * time.Second)
	run, err := d.startRun(ctx)
	if err != nil {
		return run, err
	}
	d.advance(1 * time.Second)
	if _, err := d.eng.CreateStep(ctx, newStep(run.ID, lifecycle.TypeToolCalls,
		lifecycle.ToolCallsDetails(lifecycle.ToolCall{
			ID: d.ids.NewID("call_"), Type: lifecycle.ToolCallFunction,
			Function: &lifecycle.FunctionCall{Name: "get_current_weather", Arguments: `{"location":"Lyon"}`},
		}))); err != nil {
		return run, err
	}
	if _, err := d.eng.RequireAction(ctx, run.ID); err != nil {
		return run, err
	}
	if err := d.show(ctx); err != nil {
		return run, err
	}

	// No output is submitted. The sweep runs a little after the deadline;
	// what it expires, it stamps with the deadline.
	const late = 30 * time.Second
	d.advance(time.Unix(*run.ExpiresAt, 0).Sub(d.clock.Now()) + late)
	// A shared database may hold runs an interrupted earlier demo left
	// behind: the sweep expires those too, and this run must be among them.
	if _, err := d.eng.ExpireDue(ctx); err != nil {
		return run, err
	}
	if run, err = d.eng.GetRun(ctx, run.ID); err != nil {
		return run, err
	}
	if run.Status != lifecycle.RunStatusExpired {
		return run, fmt.Errorf("expire due runs: run %s is %s, not expired", run.ID, run.Status)
	}
	d.line(d.offset(d.clock.Now().Unix()), "-", "sweep", "ExpireDue", run.ID,
		"due since "+d.offset(*run.ExpiresAt), "expired as of its deadline, with its step:")
	if err := d.show(ctx); err != nil {
		return run, err
	}
	return d.eng.GetRun(ctx, run.ID)
}

// cancelledRun is run 3: the user cancels the run while a message is
// being written; once the orchestrator has stopped, the run is cancelled,
// and the step with it.
func (d *demoRun) cancelledRun(ctx context.Context) (lifecycle.Run, error) {
	d.advance(5 * time.Second)
	run, err := d.startRun(ctx)
	if err != nil {
		return run, err
	}
	d.advance(1 * time.Second)
	if _, err := d.eng.CreateStep(ctx, newStep(run.ID, lifecycle.TypeMessageCreation,
		lifecycle.MessageCreationDetails(d.ids.NewID("msg_")))); err != nil {
		return run, err
	}
	if err := d.show(ctx); err != nil {
		return run, err
	}
	d.advance(3 * time.Second)
	if _, err := d.eng.CancelRun(ctx, run.ID); err != nil {
		return run, err
	}
	if err := d.show(ctx); err != nil {
		return run, err
	}
	d.advance(1 * time.Second)
	if run, err = d.eng.FinishCancelRun(ctx, run.ID); err != nil {
		return run, err
	}
	return run, d.show(ctx)
}

// startRun creates a run and starts it a second later.
func (d *demoRun) startRun(ctx context.Context) (lifecycle.Run, error) {
	run, err := d.eng.CreateRun(ctx, engine.NewRun{ThreadID: demoThreadID, AssistantID: demoAssistantID})
	if err != nil {
		return run, err
	}
	d.advance(1 * time.Second)
	if _, err := d.eng.StartRun(ctx, run.ID); err != nil {
		return run, err
	}
	return run, d.show(ctx)
}

// newStep is a step of the run; its thread and assistant are the run's.
func newStep(runID string, t lifecycle.Type, details lifecycle.StepDetails) engine.NewStep {
	return engine.NewStep{RunID: runID, Type: t, Details: details}
}

// advance moves the simulated time.
func (d *demoRun) advance(by time.Duration) { d.clock.Add(by) }

// offset formats a time as seconds since the start, such as "+3s".
func (d *demoRun) offset(unix int64) string { return fmt.Sprintf("+%ds", unix-d.start) }

// line prints one line of the event listing in its columns: time, seq,
// kind (run or step), event, object id, status, and what else there is to
// say.
func (d *demoRun) line(at, seq, kind, event, id, status, more string) {
	s := fmt.Sprintf("%6s  %-4s %-5s %-26s  %-29s  %-17s  %s", at, seq, kind, event, id, status, more)
	fmt.Fprintln(d.out, strings.TrimRight(s, " "))
}

// show prints, and logs, the events committed since the last call.
func (d *demoRun) show(ctx context.Context) error {
	for {
		evs, err := d.store.Events(ctx, d.seq, 256)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		for _, ev := range evs {
			kind, id, status, more := "run", "", "", ""
			if s := ev.Step; s != nil {
				kind, id, status, more = "step", s.ID, string(s.Status), string(s.Type)
				if s.LastError != nil {
					more += "  " + string(s.LastError.Code)
				}
			} else if r := ev.Run; r != nil {
				id, status = r.ID, string(r.Status)
				if ev.Type == events.TypeRunCreated && r.ExpiresAt != nil {
					more = "expires_at " + d.offset(*r.ExpiresAt)
				}
				if r.LastError != nil {
					more = string(r.LastError.Code)
				}
			}
			d.line(d.offset(ev.At), fmt.Sprintf("#%d", ev.Seq), kind, string(ev.Type), id, status, more)
			if d.log != nil {
				if err := d.log.Write(ev); err != nil {
					return err
				}
			}
			d.seq = ev.Seq
		}
	}
}

// skipEarlier passes over the events a shared database already holds from
// earlier demos: they are not this demo's to show, but a log must start at
// seq 1 to replay, so they are written to it.
func (d *demoRun) skipEarlier(ctx context.Context) error {
	for {
		evs, err := d.store.Events(ctx, d.seq, 256)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			if d.log != nil {
				if err := d.log.Write(ev); err != nil {
					return err
				}
			}
			d.seq = ev.Seq
		}
	}
	if d.seq > 0 {
		fmt.Fprintf(d.out, "(the database already holds %d events of earlier demos; they are not shown)\n", d.seq)
	}
	return nil
}

// refused prints a change the engine refused, which wrote no event.
func (d *demoRun) refused(kind, trigger, id, stays, why string) {
	if why != "" {
		why = "(" + why + ")"
	}
	d.line(d.offset(d.clock.Now().Unix()), "-", kind, "refused: "+trigger, id, "stays "+stays, why)
}

// writeTables prints the demo's runs, then their steps.
func (d *demoRun) writeTables(ctx context.Context) error {
	runs := make([]lifecycle.Run, 0, len(d.runs))
	var steps []lifecycle.Step
	for _, id := range d.runs {
		run, err := d.eng.GetRun(ctx, id)
		if err != nil {
			return err
		}
		runs = append(runs, run)
		list, err := d.eng.ListSteps(ctx, engine.ListParams{RunID: id, Order: engine.OrderAsc, Limit: engine.MaxListLimit})
		if err != nil {
			return err
		}
		steps = append(steps, list.Data...)
	}
	fmt.Fprintln(d.out)
	if err := writeRuns(d.out, runs); err != nil {
		return err
	}
	fmt.Fprintln(d.out)
	return writeSteps(d.out, steps)
}

// stamp is one nullable *_at field.
type stamp struct {
	name string
	at   *int64
}

// stamped formats the stamps that are set, such as "completed_at=…", or
// "-" if none is.
func stamped(stamps ...stamp) string {
	var out []string
	for _, s := range stamps {
		if s.at != nil {
			out = append(out, fmt.Sprintf("%s=%d", s.name, *s.at))
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ",")
}

// orDash formats a nullable time, "-" for null.
func orDash(at *int64) string {
	if at == nil {
		return "-"
	}
	return fmt.Sprint(*at)
}

// writeRuns prints runs as an aligned table: for each, its deadline (which
// an expired run keeps and the others clear when they end), the *_at field
// its end stamped, and its error code if it failed.
func writeRuns(w io.Writer, runs []lifecycle.Run) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTATUS\tCREATED_AT\tSTARTED_AT\tEXPIRES_AT\tSTAMPED\tLAST_ERROR")
	for _, r := range runs {
		code := "-"
		if r.LastError != nil {
			code = string(r.LastError.Code)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n",
			r.ID, r.Status, r.CreatedAt, orDash(r.StartedAt), orDash(r.ExpiresAt),
			stamped(stamp{"completed_at", r.CompletedAt}, stamp{"failed_at", r.FailedAt}, stamp{"cancelled_at", r.CancelledAt}),
			code)
	}
	return tw.Flush()
}

// writeSteps prints steps as an aligned table: for each, its run, the one
// *_at field its status stamped, and its error code if it failed.
func writeSteps(w io.Writer, steps []lifecycle.Step) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tRUN\tTYPE\tSTATUS\tCREATED_AT\tSTAMPED\tLAST_ERROR")
	for _, s := range steps {
		code := "-"
		if s.LastError != nil {
			code = string(s.LastError.Code)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
			s.ID, s.RunID, s.Type, s.Status, s.CreatedAt,
			stamped(stamp{"completed_at", s.CompletedAt}, stamp{"failed_at", s.FailedAt},
				stamp{"cancelled_at", s.CancelledAt}, stamp{"expired_at", s.ExpiredAt}),
			code)
	}
	return tw.Flush()
}
