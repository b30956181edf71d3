// Replay writes the event log of a short engine session, replays it into a
// fresh store to rebuild the same state, and then audits a copy of the log
// in which one event was tampered with.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/events/replay"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/memory"
)

func main() {
	if err := replayDemo(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// replayDemo does the work of main, writing to w.
func replayDemo(ctx context.Context, w io.Writer) error {
	original := memory.New()
	logText := session(ctx, original)

	// Rebuild: the replayed store holds the same JSON for every object.
	rebuilt := memory.New()
	rep, err := replay.Run(ctx, rebuilt, source(logText), replay.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "replayed %d events: steps %v, runs %v\n", rep.Applied, rep.Steps, rep.Runs)
	fmt.Fprintln(w, "same state:", sameState(ctx, original, rebuilt))

	// Audit: a copy that lost its third line (a step's creation) is
	// reported where the gap shows, and so is the step that now completes
	// without having been created.
	lines := strings.SplitAfter(logText, "\n")
	tampered := strings.Join(append(lines[:2:2], lines[3:]...), "")
	rep, _ = replay.Run(ctx, memory.New(), source(tampered), replay.Options{Audit: true})
	for _, p := range rep.Problems {
		fmt.Fprintln(w, "problem:", p.Kind, "at line", p.Line)
	}
	return nil
}

// session drives a run on a mock clock and returns its JSON-lines log.
func session(ctx context.Context, st store.Store) string {
	clk := clock.NewMock()
	clk.Set(time.Date(2025, 10, 30, 12, 0, 0, 0, time.UTC))
	eng, err := engine.New(st, engine.WithClock(clk), engine.WithIDs(engine.SeededIDs(1)))
	if err != nil {
		log.Fatal(err)
	}
	run, err := eng.CreateRun(ctx, engine.NewRun{ThreadID: "thread_1", AssistantID: "asst_1"})
	must(err)
	_, err = eng.StartRun(ctx, run.ID)
	must(err)
	done, err := eng.CreateStep(ctx, engine.NewStep{RunID: run.ID, Type: lifecycle.TypeMessageCreation, Details: lifecycle.MessageCreationDetails("msg_1")})
	must(err)
	clk.Add(2 * time.Second)
	_, err = eng.Complete(ctx, done.ID)
	must(err)
	_, err = eng.CreateStep(ctx, engine.NewStep{RunID: run.ID, Type: lifecycle.TypeToolCalls})
	must(err)
	clk.Add(10 * time.Minute) // the run's deadline passes with a step in progress
	_, err = eng.ExpireDue(ctx)
	must(err)

	var buf bytes.Buffer
	w := events.NewWriter(&buf)
	evs, err := st.Events(ctx, 0, 1000)
	must(err)
	for _, ev := range evs {
		must(w.Write(ev))
	}
	must(w.Flush())
	return buf.String()
}

func source(text string) events.Source {
	src, _, err := events.NewSource(strings.NewReader(text), events.ReadOptions{File: "session.jsonl"})
	must(err)
	return src
}

// sameState reports whether the two stores hold the same JSON for every
// step and run of the first.
func sameState(ctx context.Context, a, b store.Store) bool {
	evs, err := a.Events(ctx, 0, 1000)
	must(err)
	for _, ev := range evs {
		var x, y any
		if ev.Step != nil {
			x, err = a.GetStep(ctx, ev.Step.ID)
			must(err)
			y, err = b.GetStep(ctx, ev.Step.ID)
		} else {
			x, err = a.GetRun(ctx, ev.Run.ID)
			must(err)
			y, err = b.GetRun(ctx, ev.Run.ID)
		}
		if err != nil {
			return false
		}
		jx, _ := json.Marshal(x)
		jy, _ := json.Marshal(y)
		if !bytes.Equal(jx, jy) {
			return false
		}
	}
	return true
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
