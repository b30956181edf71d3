// Orchestrator drives one assistant run the way an orchestrator does, on a
// mock clock: a fake model asks for two tool calls, the run waits for
// their outputs (requires_action), the orchestrator runs the tools and
// submits the outputs, and the model writes its answer. A subscriber
// prints every event as it commits, as a UI following the run would.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store/memory"
)

func main() {
	if err := orchestrate(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// reply is what the fake model answers on one turn, after thinking for a
// while: tool calls to make, or (with none) a message.
type reply struct {
	think time.Duration
	calls []lifecycle.FunctionCall
	usage lifecycle.Usage
}

// fakeModel answers like a model with a weather tool asked which of two
// cities is warmer: first it calls the tool for each city, then, given
// the outputs, it writes its answer.
func fakeModel(outputs []string) reply {
	if outputs == nil {
		return reply{
			think: 2 * time.Second,
			calls: []lifecycle.FunctionCall{
				{Name: "get_weather", Arguments: `{"city":"Paris"}`},
				{Name: "get_weather", Arguments: `{"city":"Tokyo"}`},
			},
			usage: lifecycle.Usage{PromptTokens: 210, CompletionTokens: 38, TotalTokens: 248},
		}
	}
	return reply{
		think: 3 * time.Second,
		usage: lifecycle.Usage{PromptTokens: 301, CompletionTokens: 25, TotalTokens: 326},
	}
}

// getWeather is the tool; it takes a second of simulated time.
func getWeather(clk *clock.Mock, args string) string {
	clk.Add(time.Second)
	if strings.Contains(args, "Tokyo") {
		return `{"city":"Tokyo","celsius":24}`
	}
	return `{"city":"Paris","celsius":17}`
}

// orchestrate runs the scenario and writes the events to w.
func orchestrate(ctx context.Context, w io.Writer) error {
	clk := clock.NewMock()
	clk.Set(time.Date(2025, 10, 30, 12, 0, 0, 0, time.UTC))
	ids := engine.SeededIDs(1) // the same ids every time
	eng, err := engine.New(memory.New(), engine.WithClock(clk), engine.WithIDs(ids))
	if err != nil {
		return err
	}
	run, err := eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_weather", AssistantID: "asst_weather"})
	if err != nil {
		return err
	}

	// The subscriber follows the run from its first event until it ends.
	printed := make(chan error, 1)
	go func() { printed <- printEvents(ctx, eng, run, w) }()

	if err := drive(ctx, eng, clk, ids, run.ID); err != nil {
		return err
	}
	return <-printed
}

// drive is the orchestrator's loop: ask the model, act on its reply, until
// it answers with a message.
func drive(ctx context.Context, eng *engine.Engine, clk *clock.Mock, ids engine.IDGenerator, runID string) error {
	clk.Add(time.Second) // waiting in the queue
	if _, err := eng.StartRun(ctx, runID); err != nil {
		return err
	}
	var outputs []string
	for {
		r := fakeModel(outputs)
		clk.Add(r.think)
		if r.calls == nil {
			msg, err := eng.CreateStep(ctx, engine.NewStep{
				RunID: runID, Type: lifecycle.TypeMessageCreation,
				Details: lifecycle.MessageCreationDetails(ids.NewID("msg_")),
			})
			if err != nil {
				return err
			}
			clk.Add(time.Second) // streaming the message
			if _, err := eng.Complete(ctx, msg.ID, engine.FinalUsage(r.usage)); err != nil {
				return err
			}
			_, err = eng.CompleteRun(ctx, runID)
			return err
		}

		// The model asked for tools: record the calls, and wait for their
		// outputs as the Assistants API does.
		calls := make([]lifecycle.ToolCall, len(r.calls))
		for i, c := range r.calls {
			calls[i] = lifecycle.ToolCall{ID: ids.NewID("call_"), Type: lifecycle.ToolCallFunction, Function: &c}
		}
		step, err := eng.CreateStep(ctx, engine.NewStep{
			RunID: runID, Type: lifecycle.TypeToolCalls, Details: lifecycle.ToolCallsDetails(calls...),
		})
		if err != nil {
			return err
		}
		if _, err := eng.RequireAction(ctx, runID); err != nil {
			return err
		}
		for i := range calls {
			out := getWeather(clk, calls[i].Function.Arguments)
			calls[i].Function.Output = &out
			outputs = append(outputs, out)
		}
		if _, err := eng.SubmitToolOutputs(ctx, runID); err != nil {
			return err
		}
		clk.Add(time.Second) // back through the queue
		if _, err := eng.StartRun(ctx, runID); err != nil {
			return err
		}
		if _, err := eng.Complete(ctx, step.ID,
			engine.FinalDetails(lifecycle.ToolCallsDetails(calls...)), engine.FinalUsage(r.usage)); err != nil {
			return err
		}
	}
}

// printEvents prints the run's events as they commit, one line each, and
// returns once the run has ended.
func printEvents(ctx context.Context, eng *engine.Engine, run lifecycle.Run, w io.Writer) error {
	for ev, err := range eng.Subscribe(ctx, 0) {
		if err != nil {
			return err
		}
		at := fmt.Sprintf("+%ds", ev.At-run.CreatedAt)
		switch {
		case ev.Run != nil && ev.Run.ID == run.ID:
			fmt.Fprintf(w, "%5s  #%-2d %-28s %s  %s\n", at, ev.Seq, ev.Type, ev.Run.ID, ev.Run.Status)
			if ev.Run.Status.Terminal() {
				return nil
			}
		case ev.Step != nil && ev.Step.RunID == run.ID:
			s := ev.Step
			fmt.Fprintf(w, "%5s  #%-2d %-28s %s  %s%s\n", at, ev.Seq, ev.Type, s.ID, s.Status, describe(s))
		}
	}
	return nil
}

// describe says what a step holds: its tool calls and their outputs, or
// its message, and the tokens it used.
func describe(s *lifecycle.Step) string {
	const indent = "\n                 "
	var b strings.Builder
	if mc := s.Details.MessageCreation; mc != nil {
		fmt.Fprintf(&b, "  message %s", mc.MessageID)
	}
	for _, c := range s.Details.ToolCalls {
		fmt.Fprintf(&b, "%s%s %s(%s)", indent, c.ID, c.Function.Name, c.Function.Arguments)
		if c.Function.Output != nil {
			fmt.Fprintf(&b, " = %s", *c.Function.Output)
		}
	}
	if s.Usage != nil {
		fmt.Fprintf(&b, "%s%d tokens", indent, s.Usage.TotalTokens)
	}
	return b.String()
}
