package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/postgres"
	"github.com/runstep/runstep/store/sqlite"
)

const stepsSynopsis = "runstep steps --db FILE --run ID [--limit N] [--order asc|desc] [--after ID] [--before ID]"

// cmdSteps lists one page of a run's steps from a database, as the OpenAI
// API lists them: {"object":"list","data":[…],"first_id":…,"last_id":…,
// "has_more":…}.
func cmdSteps(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("steps", stepsSynopsis,
		"Prints one page of a run's steps as the OpenAI API lists them, newest\n"+
			"first unless --order asc. Page on with --after the last_id printed (or\n"+
			"--before the first_id).", stderr)
	db := fs.String("db", "", "the database: a SQLite `FILE`, or a postgres:// URL")
	runID := fs.String("run", "", "the `ID` of the run whose steps to list")
	limit := fs.Int("limit", engine.DefaultListLimit, "how many steps a page holds, 1 to 100")
	order := fs.String("order", string(engine.OrderDesc), "asc or desc, by created_at then id")
	after := fs.String("after", "", "start the page after the step `ID`")
	before := fs.String("before", "", "end the page before the step `ID`")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	for _, required := range []struct{ name, value string }{{"db", *db}, {"run", *runID}} {
		if required.value == "" {
			fmt.Fprintf(stderr, "runstep steps: --%s is required\n", required.name)
			fs.Usage()
			return exitUsage
		}
	}

	// A listing only reads: it must not leave a new, empty database behind
	// a mistyped path.
	if !isPostgres(*db) {
		if _, err := os.Stat(*db); errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "runstep steps: no database at %s\n", *db)
			return exitFailure
		}
	}
	st, err := openDB(*db)
	if err != nil {
		fmt.Fprintf(stderr, "runstep steps: %v\n", err)
		return exitFailure
	}
	code := listSteps(st, engine.ListParams{
		RunID: *runID, Limit: *limit, Order: engine.Order(*order), After: *after, Before: *before,
	}, stdout, stderr)
	if err := st.Close(); err != nil {
		fmt.Fprintf(stderr, "runstep steps: %v\n", err)
		return exitFailure
	}
	return code
}

func listSteps(st store.Store, p engine.ListParams, stdout, stderr io.Writer) int {
	eng, err := engine.New(st)
	if err != nil {
		fmt.Fprintf(stderr, "runstep steps: %v\n", err)
		return exitFailure
	}
	if p.Limit < 1 {
		// The engine reads 0 as "the default"; on the command line it is a
		// mistake, as the flag's help says.
		fmt.Fprintf(stderr, "runstep steps: --limit %d: must be between 1 and 100\n", p.Limit)
		return exitUsage
	}
	if _, err := eng.GetRun(context.Background(), p.RunID); err != nil {
		// An unknown run would list as empty: say so instead.
		fmt.Fprintf(stderr, "runstep steps: %v\n", err)
		return exitFailure
	}
	list, err := eng.ListSteps(context.Background(), p)
	if err != nil {
		fmt.Fprintf(stderr, "runstep steps: %v\n", err)
		if errors.Is(err, engine.ErrInvalidArgument) {
			return exitUsage
		}
		return exitFailure
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(list); err != nil {
		fmt.Fprintf(stderr, "runstep steps: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// openDB opens the store a --db flag names: a postgres:// (or
// postgresql://) URL opens Postgres (creating runstep's schema there if it
// is missing), anything else is the path of a SQLite file, created if it
// does not exist.
func openDB(dsn string) (store.Store, error) {
	if dsn == "" {
		return nil, errors.New("no database given")
	}
	if isPostgres(dsn) {
		st, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	st, err := sqlite.Open(dsn)
	if err != nil {
		return nil, err
	}
	return st, nil
}
