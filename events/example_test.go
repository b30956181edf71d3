package events_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/runstep/runstep/events"
)

// A log is written a line an event, and read back line by line; a problem
// says where it is.
func ExampleReader() {
	var log bytes.Buffer
	w := events.NewWriter(&log)
	for _, ev := range sampleEvents()[:3] {
		if err := w.Write(ev); err != nil {
			panic(err)
		}
	}
	if err := w.Flush(); err != nil {
		panic(err)
	}
	log.WriteString(`{"seq":4,"event":"thread.run.st`) // a crash in the middle of a write

	r := events.NewReader(&log, events.ReadOptions{File: "run.jsonl"})
	for {
		ev, err := r.Read()
		if err == io.EOF {
			break
		}
		if errors.Is(err, events.ErrTornLine) {
			fmt.Println(err)
			continue
		}
		fmt.Println(ev.Seq, ev.Type)
	}
	// Output:
	// 1 thread.run.created
	// 2 thread.run.in_progress
	// 3 thread.run.step.created
	// events: run.jsonl:4: torn final line: incomplete line (31 bytes)
}

// An OpenAI stream, imported: the changes of steps and runs, each at the
// time the stream gives for it.
func ExampleImporter() {
	f, err := os.Open(filepath.Join("testdata", "openai_runs_streamed_create.sse"))
	if err != nil {
		panic(err)
	}
	defer f.Close()
	im := events.NewImporter(f, events.ReadOptions{})
	for {
		ev, err := im.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		if ev.Seq <= 5 {
			fmt.Println(ev.Seq, ev.At, ev.Type)
		}
	}
	fmt.Println(im.Stats().Passed["thread.message.delta"], "message deltas passed over")
	// Output:
	// 1 1714255664 thread.run.created
	// 2 1714255665 thread.run.in_progress
	// 3 1714255666 thread.run.step.created
	// 4 1714255666 thread.run.step.completed
	// 5 1714255666 thread.run.completed
	// 30 message deltas passed over
}
