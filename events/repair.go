package events

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// RepairAction is what Repair does to a log.
type RepairAction string

// The repair actions.
const (
	// RepairNone: the log ends with a whole line; nothing to do.
	RepairNone RepairAction = "none"
	// RepairTruncate: the last line is torn, part of an event; it is cut
	// off, and the log ends with the line before.
	RepairTruncate RepairAction = "truncate"
	// RepairTerminate: the last line is a whole event, the next in seq,
	// that lacks only its newline; the newline is added, and nothing is
	// lost.
	RepairTerminate RepairAction = "terminate"
)

// RepairPlan is what Repair found in a log and does about it.
type RepairPlan struct {
	Action RepairAction
	// Torn is the torn last line; nil when there is none.
	Torn *LogError
	// Events is the number of whole events the log holds after the
	// repair, and LastSeq the seq of the last of them.
	Events  int64
	LastSeq int64
	// Size is the log's size in bytes before the repair, and RepairedSize
	// after it.
	Size, RepairedSize int64
}

// PlanRepair reads the log r (of size bytes) through and says what Repair
// would do. It returns an error wrapping the *LogError of the first
// problem other than a torn last line: such a log is not Repair's to
// change.
func PlanRepair(r io.Reader, size int64, opts ReadOptions) (RepairPlan, error) {
	plan := RepairPlan{Action: RepairNone, Size: size, RepairedSize: size}
	rd := NewReader(r, opts)
	for {
		ev, err := rd.Read()
		if err == io.EOF {
			return plan, nil
		}
		var le *LogError
		switch {
		case err == nil:
			plan.Events++
			plan.LastSeq = ev.Seq
			continue
		case !errors.As(err, &le):
			return plan, err
		case le.Kind != ErrTornLine:
			return plan, fmt.Errorf("events: %s has a problem repair does not touch, before its last line: %w", describe(opts.File), le)
		}
		plan.Torn = le
		if !rd.tornLooksLikeAnEvent() {
			return plan, fmt.Errorf("events: %s: its last line is not the start of an event, and repair cuts off only that: %w", describe(opts.File), le)
		}
		if le.Seq == 0 {
			plan.Action, plan.RepairedSize = RepairTruncate, le.Offset
			continue // Read returns io.EOF next
		}
		if le.Seq != rd.Next() {
			return plan, fmt.Errorf("events: %s: its last line is a whole event, but out of turn: %w", describe(opts.File), le)
		}
		plan.Action, plan.RepairedSize = RepairTerminate, size+1
		plan.Events++
		plan.LastSeq = le.Seq
	}
}

// tornLooksLikeAnEvent reports whether the torn last line could be the
// start of a line Writer writes: it starts with "{", or holds only the
// blanks or NUL bytes a crash can leave. Anything else is not Repair's to
// cut off: the input may not be a log at all.
func (r *Reader) tornLooksLikeAnEvent() bool {
	rest := bytes.TrimLeft(r.tornStart, " \t\r\x00")
	return len(rest) == 0 || rest[0] == '{'
}

func describe(file string) string {
	if file == "" {
		return "the log"
	}
	return file
}

// Repair makes the log at path end with a whole line, after a crash cut
// its last write short (see ErrTornLine): a torn last line that holds
// part of an event is cut off; one that holds a whole event, the next in
// seq, only lacks its newline, which Repair adds. Nothing else is ever
// changed: a log with any other problem is left as it is, with an error
// that names the problem (see PlanRepair). The change is one truncate or
// one one-byte write, synced to disk. No writer may append to the log
// meanwhile: if its size changes while Repair reads it, Repair changes
// nothing and says so.
func Repair(path string) (RepairPlan, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return RepairPlan{}, fmt.Errorf("events: repair: %w", err)
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return RepairPlan{}, fmt.Errorf("events: repair: %w", err)
	}
	size := before.Size()
	plan, err := PlanRepair(io.NewSectionReader(f, 0, size), size, ReadOptions{File: path})
	if err != nil || plan.Action == RepairNone {
		return plan, err
	}
	after, err := f.Stat()
	if err != nil {
		return plan, fmt.Errorf("events: repair: %w", err)
	}
	if after.Size() != size || !after.ModTime().Equal(before.ModTime()) {
		return plan, fmt.Errorf("events: repair %s: the log changed while it was read; is a writer appending to it?", path)
	}
	switch plan.Action {
	case RepairTruncate:
		err = f.Truncate(plan.RepairedSize)
	case RepairTerminate:
		_, err = f.WriteAt([]byte{'\n'}, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return plan, fmt.Errorf("events: repair %s: %w", path, err)
	}
	return plan, nil
}
