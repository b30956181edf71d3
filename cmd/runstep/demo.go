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
	// Store is where the steps live; nil means a fresh memory store.
	Store store.Store
	// Log, if set, receives the JSON-lines event log.
	Log io.Writer
}

// The parties of the demo run.
const (
	demoThreadID    = "thread_demo"
	demoAssistantID = "asst_demo"
)

// demo runs a small, realistic scenario on a simulated clock and writes
// what happens to w: each event as it commits, a step refused by the
// machine, and a table of the steps at the end. The scenario, all in one
// run:
//
//  1. the assistant calls get_current_weather; the tool output is submitted
//     and the tool_calls step completes with it and its token usage;
//  2. a message_creation step writes the answer and completes;
//  3. a tool_calls step hits the rate limit and fails;
//  4. a message_creation step is cancelled while in progress;
//  5. cancelling the completed first step is refused by the machine.
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
	d := &demoRun{out: w, store: st, clock: mock, start: mock.Now().Unix()}
	if opts.Log != nil {
		d.log = events.NewWriter(opts.Log)
		defer func() {
			if serr := d.log.Sync(); serr != nil {
				err = errors.Join(err, fmt.Errorf("write event log: %w", serr))
			}
		}()
	}

	runID := ids.NewID("run_demo")
	newStep := func(t lifecycle.Type, details lifecycle.StepDetails) engine.NewStep {
		return engine.NewStep{
			RunID: runID, ThreadID: demoThreadID, AssistantID: demoAssistantID,
			Type: t, Details: details,
		}
	}
	fmt.Fprintf(w, "run %s of %s on %s, simulated time from %s (%d)\n\n",
		runID, demoAssistantID, demoThreadID, mock.Now().UTC().Format(time.RFC3339), d.start)

	// 1. The model asks for the weather; the orchestrator runs the function
	// and submits its output, which completes the step.
	callID := ids.NewID("call_")
	weather := func(output *string) lifecycle.StepDetails {
		return lifecycle.ToolCallsDetails(lifecycle.ToolCall{
			ID: callID, Type: lifecycle.ToolCallFunction,
			Function: &lifecycle.FunctionCall{
				Name: "get_current_weather", Arguments: `{"location":"Paris"}`, Output: output,
			},
		})
	}
	lookup, err := eng.CreateStep(ctx, newStep(lifecycle.TypeToolCalls, weather(nil)))
	if err != nil {
		return err
	}
	if err := d.show(ctx); err != nil {
		return err
	}
	d.advance(3 * time.Second)
	output := `{"temperature":18,"unit":"celsius","conditions":"partly cloudy"}`
	if _, err := eng.Complete(ctx, lookup.ID,
		engine.FinalDetails(weather(&output)),
		engine.FinalUsage(lifecycle.Usage{PromptTokens: 312, CompletionTokens: 21, TotalTokens: 333}),
	); err != nil {
		return err
	}
	if err := d.show(ctx); err != nil {
		return err
	}

	// 2. The model writes its answer.
	d.advance(1 * time.Second)
	answer, err := eng.CreateStep(ctx, newStep(lifecycle.TypeMessageCreation,
		lifecycle.MessageCreationDetails(ids.NewID("msg_"))))
	if err != nil {
		return err
	}
	if err := d.show(ctx); err != nil {
		return err
	}
	d.advance(4 * time.Second)
	if _, err := eng.Complete(ctx, answer.ID,
		engine.FinalUsage(lifecycle.Usage{PromptTokens: 371, CompletionTokens: 48, TotalTokens: 419}),
	); err != nil {
		return err
	}
	if err := d.show(ctx); err != nil {
		return err
	}

	// 3. A follow-up question: the model call behind the next tool_calls
	// step hits the rate limit before it names any call.
	d.advance(5 * time.Second)
	limited, err := eng.CreateStep(ctx, newStep(lifecycle.TypeToolCalls, lifecycle.StepDetails{}))
	if err != nil {
		return err
	}
	if err := d.show(ctx); err != nil {
		return err
	}
	d.advance(2 * time.Second)
	if _, err := eng.Fail(ctx, limited.ID, lifecycle.LastError{
		Code:    lifecycle.ErrorCodeRateLimitExceeded,
		Message: "Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, Used 29870, Requested 512. Please try again in 764ms.",
	}); err != nil {
		return err
	}
	if err := d.show(ctx); err != nil {
		return err
	}

	// 4. A retry starts writing a message, and the user cancels it.
	d.advance(3 * time.Second)
	retry, err := eng.CreateStep(ctx, newStep(lifecycle.TypeMessageCreation,
		lifecycle.MessageCreationDetails(ids.NewID("msg_"))))
	if err != nil {
		return err
	}
	if err := d.show(ctx); err != nil {
		return err
	}
	d.advance(2 * time.Second)
	if _, err := eng.Cancel(ctx, retry.ID); err != nil {
		return err
	}
	if err := d.show(ctx); err != nil {
		return err
	}

	// 5. Nothing leaves a terminal status: the machine refuses, and no
	// event is written.
	d.advance(1 * time.Second)
	_, err = eng.Cancel(ctx, lookup.ID)
	var refused *lifecycle.TransitionError
	if !errors.Is(err, lifecycle.ErrInvalidTransition) || !errors.As(err, &refused) {
		return fmt.Errorf("cancel completed step %s: want a transition error, got %v", lookup.ID, err)
	}
	fmt.Fprintf(w, "%5s  %-4s %-25s  %s  %-16s  stays %s\n", d.offset(mock.Now().Unix()),
		"-", "refused: "+refused.Trigger, refused.ID, lookup.Type, refused.From)
	if err := d.show(ctx); err != nil {
		return err
	}

	list, err := eng.ListSteps(ctx, engine.ListParams{RunID: runID, Order: engine.OrderAsc, Limit: engine.MaxListLimit})
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	return writeSteps(w, list.Data)
}

// demoRun is the state of one demo: where it writes, and how far it has
// read the event log.
type demoRun struct {
	out   io.Writer
	log   *events.Writer // nil without --log
	store store.Store
	clock *clock.Mock
	start int64 // Unix seconds
	seq   int64 // the last event shown
}

// advance moves the simulated time.
func (d *demoRun) advance(by time.Duration) { d.clock.Add(by) }

// offset formats a time as seconds since the start, such as "+3s".
func (d *demoRun) offset(unix int64) string { return fmt.Sprintf("+%ds", unix-d.start) }

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
			s := ev.Step
			var why string
			if s.LastError != nil {
				why = "  " + string(s.LastError.Code)
			}
			fmt.Fprintf(d.out, "%5s  #%-3d %-25s  %s  %-16s  %s%s\n",
				d.offset(ev.At), ev.Seq, ev.Type, s.ID, s.Type, s.Status, why)
			if d.log != nil {
				if err := d.log.Write(ev); err != nil {
					return err
				}
			}
			d.seq = ev.Seq
		}
	}
}

// writeSteps prints steps as an aligned table: for each, the one *_at
// field its status stamped, and its error code if it failed.
func writeSteps(w io.Writer, steps []lifecycle.Step) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tSTATUS\tCREATED_AT\tSTAMPED\tLAST_ERROR")
	for _, s := range steps {
		var stamped []string
		for _, f := range []struct {
			name string
			at   *int64
		}{
			{"completed_at", s.CompletedAt}, {"failed_at", s.FailedAt},
			{"cancelled_at", s.CancelledAt}, {"expired_at", s.ExpiredAt},
		} {
			if f.at != nil {
				stamped = append(stamped, fmt.Sprintf("%s=%d", f.name, *f.at))
			}
		}
		if len(stamped) == 0 {
			stamped = []string{"-"}
		}
		code := "-"
		if s.LastError != nil {
			code = string(s.LastError.Code)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n",
			s.ID, s.Type, s.Status, s.CreatedAt, strings.Join(stamped, ","), code)
	}
	return tw.Flush()
}
