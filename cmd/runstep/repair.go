package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/runstep/runstep/events"
)

// cmdRepair runs `runstep repair [-n] LOG...`: it makes each event log end
// with a whole line after a crash cut its last write short, and says what
// it did. It changes nothing else: a log with any other problem is left as
// it is, and the command exits 1.
func cmdRepair(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("repair", "runstep repair [-n] LOG...",
		"Makes an event log whose last write a crash cut short end with a whole line:\n"+
			"a torn last line is cut off; a whole last event that only lacks its newline\n"+
			"gets it. Nothing else is ever changed: a log with any other problem is left\n"+
			"as it is (run 'runstep replay --audit LOG' to see them).", stderr)
	dryRun := fs.Bool("n", false, "only say what would be done")
	files, code, ok := parseFiles(fs, args)
	if !ok {
		return code
	}
	status := exitOK
	for _, name := range files {
		plan, err := repairOne(name, *dryRun)
		if err != nil {
			fmt.Fprintf(stderr, "runstep repair: %s\n", strings.TrimPrefix(err.Error(), "events: "))
			status = exitFailure
			continue
		}
		fmt.Fprintln(stdout, describeRepair(name, plan, *dryRun))
	}
	return status
}

func repairOne(name string, dryRun bool) (events.RepairPlan, error) {
	if !dryRun {
		return events.Repair(name)
	}
	f, err := os.Open(name)
	if err != nil {
		return events.RepairPlan{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return events.RepairPlan{}, err
	}
	return events.PlanRepair(f, info.Size(), events.ReadOptions{File: name})
}

// describeRepair says in one line what a repair did, or would do.
func describeRepair(name string, p events.RepairPlan, dryRun bool) string {
	verb := map[bool][2]string{false: {"cut off", "added"}, true: {"would cut off", "would add"}}[dryRun]
	switch p.Action {
	case events.RepairTruncate:
		return fmt.Sprintf("%s:%d: torn last line (%v): %s its %d bytes; %s remain, the last seq %d",
			name, p.Torn.Line, p.Torn.Err, verb[0], p.Size-p.RepairedSize, plural(int(p.Events), "whole event"), p.LastSeq)
	case events.RepairTerminate:
		return fmt.Sprintf("%s:%d: seq %d is a whole event without its newline: %s the newline; %s",
			name, p.Torn.Line, p.Torn.Seq, verb[1], plural(int(p.Events), "event"))
	}
	return fmt.Sprintf("%s: whole, %s: nothing to do", name, plural(int(p.Events), "event"))
}
