// Quickstart is the README's embedding example: a run with one step on a
// mock clock, completed, then a refused transition, then a run that
// expires at its deadline and takes its step with it.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store/memory"
)

func main() {
	ctx := context.Background()
	clk := clock.NewMock() // leave WithClock out for real time
	clk.Set(time.Date(2025, 10, 30, 12, 0, 0, 0, time.UTC))
	eng, err := engine.New(memory.New(), engine.WithClock(clk))
	if err != nil {
		log.Fatal(err)
	}

	// Steps live in a run that is in progress.
	run, err := eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_abc", AssistantID: "asst_abc"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := eng.StartRun(ctx, run.ID); err != nil {
		log.Fatal(err)
	}
	step, err := eng.CreateStep(ctx, engine.NewStep{
		RunID:   run.ID,
		Type:    lifecycle.TypeMessageCreation,
		Details: lifecycle.MessageCreationDetails("msg_abc"),
	})
	if err != nil {
		log.Fatal(err)
	}

	clk.Add(2 * time.Second)
	step, err = eng.Complete(ctx, step.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(step.Status, *step.CompletedAt-step.CreatedAt) // completed 2

	// A terminal step stays terminal: the machine refuses with a typed error.
	if _, err := eng.Cancel(ctx, step.ID); errors.Is(err, lifecycle.ErrInvalidTransition) {
		fmt.Println("refused:", err)
	}

	// A step still in progress when its run's ten minutes are up expires
	// with the run, stamped with the deadline.
	waiting, err := eng.CreateStep(ctx, engine.NewStep{RunID: run.ID, Type: lifecycle.TypeToolCalls})
	if err != nil {
		log.Fatal(err)
	}
	clk.Add(10 * time.Minute)
	if _, err := eng.ExpireDue(ctx); err != nil { // or run eng.Run(ctx) in a goroutine
		log.Fatal(err)
	}
	waiting, err = eng.GetStep(ctx, waiting.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(waiting.Status, *waiting.ExpiredAt == *run.ExpiresAt) // expired true
}
