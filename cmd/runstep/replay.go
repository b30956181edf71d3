package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/events/replay"
	"github.com/runstep/runstep/lifecycle"
)

// replayListedRuns is how many runs the summary lists without --runs.
const replayListedRuns = 20

// progressMinBytes is the input size from which replay shows a progress
// bar (on a terminal only): below it, replay is over before a bar helps.
var progressMinBytes int64 = 4 << 20

// cmdReplay runs `runstep replay [--audit] [--runs] FILE...`: it replays
// the files, JSON-lines logs or OpenAI SSE captures (told apart by their
// content), in order as one stream, checking every event against the
// lifecycle machines, and prints a summary. The summary is all the
// Replayer's Report, so it replays into no store: it only checks. It exits 1
// if any event is malformed, out of turn or a violation, naming its
// file:line on stderr.
func cmdReplay(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("replay", "runstep replay [--audit] [--runs] FILE...",
		"Replays event logs (JSON lines) or OpenAI SSE captures, in order as one stream,\n"+
			"through the step and run machines, and checks that every\n"+
			"event is what the machines make of the state before it at the event's time.\n"+
			"Prints the steps and runs by status and each run's steps; exits 1, naming\n"+
			"file:line, at the first problem (--audit: after finding every problem).", stderr)
	audit := fs.Bool("audit", false, "go on past problems and report them all")
	allRuns := fs.Bool("runs", false, fmt.Sprintf("list every run (by default the first %d)", replayListedRuns))
	files, code, ok := parseFiles(fs, args)
	if !ok {
		return code
	}

	r := replay.New(nil, replay.Options{Audit: *audit})
	bar := newProgress(files, "replaying", stderr)
	ctx := context.Background()
	var (
		next     int64   = 1 // the seq the next file must start with
		extra    []error     // problems of whole files: unreadable, not a log
		imported []fileImport
		stopped  error // what ended the replay early
	)
	for _, name := range files {
		err := replayFile(ctx, r, name, &next, bar, &imported)
		var le *events.LogError
		switch {
		case err == nil:
			continue
		case !errors.As(err, &le):
			stopped = err // a file that cannot be read, or the store
		case !slices.Contains(r.Report().Problems, le):
			extra = append(extra, err) // the file is no log at all
			if !*audit {
				stopped = err
			}
		case !*audit:
			stopped = err
		}
		if stopped != nil {
			break
		}
	}
	if bar != nil {
		_ = bar.Finish()
		_ = bar.Clear()
	}
	rep := r.Report()

	for _, p := range rep.Problems {
		fmt.Fprintf(stderr, "runstep replay: %s\n", strings.TrimPrefix(p.Error(), "events: "))
	}
	for _, err := range extra {
		fmt.Fprintf(stderr, "runstep replay: %s\n", strings.TrimPrefix(err.Error(), "events: "))
	}
	problems := len(rep.Problems) + len(extra)
	var le *events.LogError
	switch {
	case stopped != nil && !errors.As(stopped, &le):
		fmt.Fprintf(stderr, "runstep replay: %v\n", stopped)
	case problems > 0 && !*audit:
		fmt.Fprintln(stderr, "runstep replay: stopped at the first problem; --audit finds them all")
	}
	if slices.ContainsFunc(rep.Problems, func(p *events.LogError) bool { return errors.Is(p, events.ErrTornLine) }) {
		fmt.Fprintln(stderr, "runstep replay: a torn last line is what a crash during a write leaves; 'runstep repair FILE' cuts it off")
	}

	if err := writeReplaySummary(stdout, files, rep, problems, imported, *allRuns); err != nil {
		fmt.Fprintf(stderr, "runstep replay: %v\n", err)
		return exitFailure
	}
	if problems > 0 || stopped != nil {
		return exitFailure
	}
	return exitOK
}

// fileImport is what replay says about an SSE capture it imported.
type fileImport struct {
	name  string
	stats events.ImportStats
}

// replayFile replays one file into r; next is the seq its first event must
// have, and becomes the one after its last.
func replayFile(ctx context.Context, r *replay.Replayer, name string, next *int64, bar *progressbar.ProgressBar, imported *[]fileImport) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	var in io.Reader = f
	if bar != nil {
		in = io.TeeReader(f, bar)
	}
	src, format, err := events.NewSource(in, events.ReadOptions{File: name, FirstSeq: *next})
	if err != nil {
		return err
	}
	err = r.Replay(ctx, src)
	*next = src.Next()
	if im, ok := src.(*events.Importer); ok && format == events.FormatSSE {
		*imported = append(*imported, fileImport{name, im.Stats()})
	}
	return err
}

// writeReplaySummary prints what the replay found: counts, the steps and
// runs by status, and each run's steps.
func writeReplaySummary(w io.Writer, files []string, rep replay.Report, problems int, imported []fileImport, allRuns bool) error {
	ew := &errWriter{w: w}
	noun := "files"
	if len(files) == 1 {
		noun = "file"
	}
	fmt.Fprintf(ew, "replayed %d %s: %d events, %d applied, last seq %d, %s\n",
		len(files), noun, rep.Events, rep.Applied, rep.LastSeq, plural(problems, "problem"))
	for _, im := range imported {
		fmt.Fprintf(ew, "%s: OpenAI SSE, %s\n", im.name, describeImport(im.stats))
		for _, n := range im.stats.Notes {
			fmt.Fprintf(ew, "  note: %s\n", n)
		}
	}

	// One table for both: the run statuses hold the step statuses.
	fmt.Fprintln(ew)
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "status\tsteps\truns")
	steps, runs := 0, 0
	for _, s := range lifecycle.RunStatuses {
		n := "-"
		if lifecycle.Status(s).Valid() {
			n = fmt.Sprint(rep.Steps[lifecycle.Status(s)])
			steps += rep.Steps[lifecycle.Status(s)]
		}
		runs += rep.Runs[s]
		fmt.Fprintf(tw, "%s\t%s\t%d\n", s, n, rep.Runs[s])
	}
	fmt.Fprintf(tw, "total\t%d\t%d\n", steps, runs)
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(rep.RunSteps) > 0 {
		fmt.Fprintln(ew)
		tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprint(tw, "run\tstatus\tsteps")
		for _, s := range lifecycle.Statuses {
			fmt.Fprintf(tw, "\t%s", s)
		}
		fmt.Fprintln(tw)
		listed := rep.RunSteps
		if !allRuns && len(listed) > replayListedRuns {
			listed = listed[:replayListedRuns]
		}
		for _, run := range listed {
			fmt.Fprintf(tw, "%s\t%s\t%d", run.ID, run.Status, run.Total())
			for _, s := range lifecycle.Statuses {
				fmt.Fprintf(tw, "\t%d", run.Steps[s])
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if more := len(rep.RunSteps) - len(listed); more > 0 {
			fmt.Fprintf(ew, "… and %d more runs (--runs lists them all)\n", more)
		}
	}
	return ew.err
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// describeImport says in one line what an import read and made.
func describeImport(s events.ImportStats) string {
	imported := 0
	for _, n := range s.Imported {
		imported += n
	}
	passed := 0
	names := make([]string, 0, len(s.Passed))
	for name, n := range s.Passed {
		passed += n
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		return s.Passed[names[i]] > s.Passed[names[j]] || s.Passed[names[i]] == s.Passed[names[j]] && names[i] < names[j]
	})
	var kinds []string
	for _, name := range names {
		kinds = append(kinds, fmt.Sprintf("%s %d", name, s.Passed[name]))
	}
	bodies := plural(s.Bodies, "body")
	if s.Bodies != 1 {
		bodies = fmt.Sprintf("%d bodies", s.Bodies)
	}
	out := fmt.Sprintf("%s, %s: %s, %s merged, %d passed over",
		bodies, plural(s.Messages, "message"), plural(imported, "event"), plural(s.Merged, "delta"), passed)
	if len(kinds) > 0 {
		out += " (" + strings.Join(kinds, ", ") + ")"
	}
	return out
}

// errWriter remembers the first write error, so that a summary checks
// once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// parseFiles parses a command line of flags and at least one file, in any
// order ("--" ends the flags). If the command should not go on, it
// returns false and the exit code.
func parseFiles(fs *flag.FlagSet, args []string) (files []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false // the flag package has said what is wrong
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			files = append(files, rest...)
			break
		}
		files = append(files, rest[0])
		args = rest[1:]
	}
	if len(files) == 0 {
		fmt.Fprintf(fs.Output(), "%s: no file given\n", fs.Name())
		fs.Usage()
		return nil, exitUsage, false
	}
	return files, exitOK, true
}

// newProgress returns a progress bar over the files' bytes, written to
// stderr, or nil: it shows only on a terminal, and only for inputs big
// enough to take a while.
func newProgress(files []string, what string, stderr io.Writer) *progressbar.ProgressBar {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	var total int64
	for _, name := range files {
		if info, err := os.Stat(name); err == nil {
			total += info.Size()
		}
	}
	if total < progressMinBytes {
		return nil
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}
