// Command runstep shows the runstep library at work.
//
//	runstep demo [--db FILE|postgres://…] [--log FILE] [--seed N]
//	runstep graph [--machine step|run] [--format mermaid|dot]
//	runstep steps --db FILE|postgres://… --run ID [--limit N] [--order asc|desc] [--after ID] [--before ID]
//	runstep serve [--db FILE|postgres://…] [--addr HOST:PORT] [--token TOKEN]
//	runstep replay [--audit] [--runs] FILE...
//	runstep import [-o FILE] CAPTURE.sse...
//	runstep repair [-n] LOG...
//
// demo drives three runs on simulated time: one completes after its steps
// complete, fail or are cancelled; one expires at its deadline and one is
// cancelled, each with a step in progress that follows it. It prints each
// run and step event as it commits, and then the runs and the steps.
// graph prints the step or run lifecycle, drawn from the machine's
// definition.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/memory"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // the command line was wrong
)

const usageText = `runstep drives OpenAI-Assistants-style run steps through their lifecycle.

Usage:
  runstep <command> [flags]

Commands:
  demo    run a short scenario on simulated time; print its events, runs and steps
  graph   print the step or run lifecycle diagram (Mermaid or Graphviz DOT)
  steps   list one page of a run's steps from a database, as OpenAI's list JSON
  serve   serve the run-step endpoints and live event streams over HTTP
  replay  check event logs or OpenAI SSE captures against the step and run machines
  import  turn OpenAI SSE captures into an event log
  repair  cut a torn last line off an event log
  help    print this help

Run 'runstep <command> -h' for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args (without the program name) and returns
// the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	switch args[0] {
	case "demo":
		return runDemo(args[1:], stdout, stderr)
	case "graph":
		return runGraph(args[1:], stdout, stderr)
	case "steps":
		return cmdSteps(args[1:], stdout, stderr)
	case "serve":
		return cmdServe(args[1:], stdout, stderr)
	case "replay":
		return cmdReplay(args[1:], stdout, stderr)
	case "import":
		return cmdImport(args[1:], stdout, stderr)
	case "repair":
		return cmdRepair(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	fmt.Fprintf(stderr, "runstep: unknown command %q\n\n%s", args[0], usageText)
	return exitUsage
}

// newFlagSet returns the flag set of a subcommand; its -h prints synopsis,
// what the command does, and the flags.
func newFlagSet(name, synopsis, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("runstep "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\n%s\n\nFlags:\n", synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args into fs. If the command should not go on, it returns
// false and the exit code: 0 for -h, 2 for a bad command line.
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false // the flag package has said what is wrong
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, false
	}
	return exitOK, true
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", "runstep demo [--db FILE|postgres://…] [--log FILE] [--seed N]",
		"Drives three runs on a simulated clock: one completes after its steps\n"+
			"complete, fail or are cancelled; one expires at its deadline and one is\n"+
			"cancelled, each with a step in progress that follows it. Prints each run\n"+
			"and step event as it commits, then the runs and the steps.", stderr)
	dsn := fs.String("db", "runstep.db", "the store: a SQLite `file` (created if missing), postgres://… for PostgreSQL, or :memory: for none")
	logPath := fs.String("log", "", "also write the JSON-lines event log to `FILE`")
	seed := fs.Uint64("seed", 0, "seed of the generated ids: the same seed gives the same ids; 0 picks one at random, so that demos can share a database")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *seed == 0 {
		*seed = rand.Uint64()
	}

	st, err := openDemoStore(*dsn)
	if err != nil {
		fmt.Fprintf(stderr, "runstep demo: %v\n", err)
		return exitFailure
	}
	// The only reading of the real clock: where the simulated time starts.
	opts := demoOptions{Seed: *seed, Start: time.Now().Truncate(time.Second), Store: st}
	var logFile *os.File
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			fmt.Fprintf(stderr, "runstep demo: %v\n", errors.Join(err, st.Close()))
			return exitFailure
		}
		logFile, opts.Log = f, f
	}
	err = demo(context.Background(), stdout, opts)
	if logFile != nil {
		err = errors.Join(err, logFile.Close())
	}
	err = errors.Join(err, st.Close())
	if err != nil {
		fmt.Fprintf(stderr, "runstep demo: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// openDemoStore opens the demo's store: ":memory:" keeps nothing; any
// other dsn is a database for openDB, and a SQLite file is created if it
// does not exist yet.
func openDemoStore(dsn string) (store.Store, error) {
	if dsn == ":memory:" {
		return memory.New(), nil
	}
	return openDB(dsn)
}

func runGraph(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("graph", "runstep graph [--machine step|run] [--format mermaid|dot]",
		"Prints the step or run lifecycle, drawn from the definition of the state machine.", stderr)
	machine := fs.String("machine", "step", "which machine: step or run")
	format := fs.String("format", string(lifecycle.DiagramMermaid), "diagram language: mermaid or dot")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	diagrams := map[string]func(lifecycle.DiagramFormat) (string, error){
		"step": lifecycle.StepDiagram,
		"run":  lifecycle.RunDiagram,
	}
	draw, ok := diagrams[*machine]
	if !ok {
		fmt.Fprintf(stderr, "runstep graph: unknown machine %q: want step or run\n", *machine)
		return exitUsage
	}
	diagram, err := draw(lifecycle.DiagramFormat(*format))
	if err != nil {
		fmt.Fprintf(stderr, "runstep graph: %v\n", err)
		if errors.Is(err, lifecycle.ErrInvalid) {
			return exitUsage
		}
		return exitFailure
	}
	if _, err := io.WriteString(stdout, diagram); err != nil {
		fmt.Fprintf(stderr, "runstep graph: %v\n", err)
		return exitFailure
	}
	return exitOK
}
