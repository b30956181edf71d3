package replay_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/events/replay"
	"github.com/runstep/runstep/store/memory"
)

// A real OpenAI stream, replayed: every event is what the machines make of
// the state before it, and the store ends as the stream left the run.
func ExampleRun() {
	f, err := os.Open(filepath.Join("..", "testdata", "openai_streaming_tool_call.sse"))
	if err != nil {
		panic(err)
	}
	defer f.Close()
	src, _, err := events.NewSource(f, events.ReadOptions{File: "openai_streaming_tool_call.sse"})
	if err != nil {
		panic(err)
	}

	rep, err := replay.Run(context.Background(), memory.New(), src, replay.Options{})

	fmt.Println(err, rep.Applied, "events")
	for _, run := range rep.RunSteps {
		fmt.Println(run.ID, run.Status, run.Steps)
	}
	// Output:
	// <nil> 10 events
	// run_oyfV44CrJXYJkvb2qsd80LvJ completed map[completed:2]
}
