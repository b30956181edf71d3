package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/runstep/runstep/events"
)

// cmdImport runs `runstep import [-o FILE] CAPTURE.sse...`: it turns
// OpenAI SSE captures into one JSON-lines event log, on stdout or in FILE,
// and says on stderr what it read and passed over. It stops at the first
// problem and exits 1; with -o, FILE is then left as it was.
func cmdImport(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("import", "runstep import [-o FILE] CAPTURE.sse...",
		"Turns OpenAI Assistants SSE captures into one event log (JSON lines): the\n"+
			"created and terminal events of steps and the status changes of runs, each\n"+
			"with the time the capture gives for it; step deltas are merged into their\n"+
			"step; other events (messages, the thread, …) are counted and passed over.\n"+
			"Several captures make one log, in order.", stderr)
	out := fs.String("o", "", "write the log to `FILE`, whole or not at all (default: stdout)")
	files, code, ok := parseFiles(fs, args)
	if !ok {
		return code
	}
	if err := importFiles(files, *out, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "runstep import: %s\n", strings.TrimPrefix(err.Error(), "events: "))
		return exitFailure
	}
	return exitOK
}

// importFiles writes the log of files to the file out, or to stdout.
func importFiles(files []string, out string, stdout, stderr io.Writer) (err error) {
	if out == "" {
		w := events.NewWriter(stdout)
		err := importInto(w, files, stderr)
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
		return err
	}
	// A file next to out, renamed over it once it is whole: a failed import
	// leaves out as it was.
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	w := events.NewWriter(tmp)
	if err := importInto(w, files, stderr); err != nil {
		return err
	}
	if err := w.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// importInto imports each file into w, the seqs going on from one to the
// next, and reports each on stderr.
func importInto(w *events.Writer, files []string, stderr io.Writer) error {
	next := int64(1)
	for _, name := range files {
		stats, err := importFile(w, name, next)
		if stats != nil {
			fmt.Fprintf(stderr, "runstep import: %s: %s\n", name, describeImport(*stats))
			for _, n := range stats.Notes {
				fmt.Fprintf(stderr, "runstep import: note: %s\n", n)
			}
		}
		if err != nil {
			return err
		}
		next = w.Last() + 1
	}
	return nil
}

// importFile imports one capture into w, numbering from first.
func importFile(w *events.Writer, name string, first int64) (*events.ImportStats, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src, format, err := events.NewSource(f, events.ReadOptions{File: name, FirstSeq: first})
	if err != nil {
		return nil, err
	}
	im, ok := src.(*events.Importer)
	if !ok || format != events.FormatSSE {
		return nil, fmt.Errorf("%s is a JSON-lines log already, not an SSE capture", name)
	}
	for {
		ev, err := im.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			stats := im.Stats()
			return &stats, err
		}
		if err := w.Write(ev); err != nil {
			stats := im.Stats()
			return &stats, err
		}
	}
	stats := im.Stats()
	return &stats, nil
}
