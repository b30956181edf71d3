package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// applicationID marks a SQLite file as runstep's (PRAGMA application_id):
// "RnSt" in ASCII.
const applicationID = 0x526e5374

// migrations are the schema changes, oldest first: migrations[i] takes a
// file from user_version i to i+1. Append to this list; never edit an entry
// a release has shipped.
var migrations = []string{
	// 1: steps, runs and the event log.
	`
CREATE TABLE steps (
	id         TEXT PRIMARY KEY,
	run_id     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	status     TEXT NOT NULL,
	version    INTEGER NOT NULL,
	data       TEXT NOT NULL -- the step's JSON, without its version
) STRICT;
-- ListSteps: a run's steps by created_at, then id in byte order (BINARY).
CREATE INDEX steps_by_run ON steps (run_id, created_at, id);
-- StepsInProgress.
CREATE INDEX steps_in_progress ON steps (run_id, created_at, id) WHERE status = 'in_progress';

CREATE TABLE runs (
	id         TEXT PRIMARY KEY,
	status     TEXT NOT NULL,
	version    INTEGER NOT NULL,
	-- The deadline of a run that can still expire: the run's expires_at
	-- while it has not ended, NULL once it has (an expired run keeps its
	-- expires_at in data).
	expires_at INTEGER,
	data       TEXT NOT NULL -- the run's JSON, without its version
) STRICT;
-- DueRuns and NextDeadline.
CREATE INDEX runs_due ON runs (expires_at, id) WHERE expires_at IS NOT NULL;

CREATE TABLE events (
	-- Gapless: the writer assigns max+1 inside the transaction that
	-- commits the event, and nothing deletes from this table.
	seq       INTEGER PRIMARY KEY,
	type      TEXT NOT NULL,
	at        INTEGER NOT NULL,
	object    TEXT NOT NULL CHECK (object IN ('step', 'run')),
	object_id TEXT NOT NULL, -- the step's or run's id
	version   INTEGER NOT NULL, -- the object's version after the change
	data      TEXT NOT NULL -- the object's JSON after the change
) STRICT;
`,
}

// tables are the tables the current schema has; a file that claims the
// current version but lacks one is not ours.
var tables = []string{"events", "runs", "steps"}

// migrate checks that the file on conn is a runstep database, or an empty
// one, switches it to WAL and brings its schema to the current version. It
// writes nothing to a file it refuses.
func migrate(ctx context.Context, conn *sql.Conn) error {
	appID, version, objects, err := identify(ctx, conn)
	if err != nil {
		return err
	}
	latest := len(migrations)
	switch {
	case appID == 0 && version == 0 && objects == 0:
		// A new or empty file: ours to make.
	case appID == 0 && version == 0:
		return fmt.Errorf("%w: a SQLite database of another program (%d tables or indexes, and no runstep mark)", ErrForeign, objects)
	case appID != applicationID:
		return fmt.Errorf("%w: a SQLite database of another program (application_id %#x)", ErrForeign, appID)
	case version > latest:
		return fmt.Errorf("%w: the file has schema version %d, this runstep knows up to %d", ErrSchemaTooNew, version, latest)
	}

	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return fmt.Errorf("set WAL mode: %w", classify(err))
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("set WAL mode: the file stays in %s mode", mode)
	}

	for version < latest {
		if version, err = step(ctx, conn); err != nil {
			return err
		}
	}
	return checkTables(ctx, conn)
}

// identify reads what says whose the file is.
func identify(ctx context.Context, conn *sql.Conn) (appID int64, version int, objects int, err error) {
	if err := conn.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return 0, 0, 0, classify(err)
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, 0, 0, classify(err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&objects); err != nil {
		return 0, 0, 0, classify(err)
	}
	return appID, version, objects, nil
}

// step applies the next migration in one transaction and returns the
// version the file is at after it. Another process may have migrated the
// file meanwhile; the version is read again under the write lock.
func step(ctx context.Context, conn *sql.Conn) (version int, err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return 0, fmt.Errorf("migrate: %w", classify(err))
	}
	defer func() {
		if err != nil {
			if _, rerr := conn.ExecContext(ctx, "ROLLBACK"); rerr != nil {
				err = errors.Join(err, fmt.Errorf("roll back: %w", rerr))
			}
		}
	}()
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, fmt.Errorf("migrate: %w", classify(err))
	}
	if version >= len(migrations) {
		_, err := conn.ExecContext(ctx, "COMMIT")
		return version, err
	}
	if version == 0 {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
			return 0, fmt.Errorf("migrate to version 1: %w", err)
		}
	}
	if _, err := conn.ExecContext(ctx, migrations[version]); err != nil {
		return 0, fmt.Errorf("migrate to version %d: %w", version+1, classify(err))
	}
	// PRAGMA takes no parameters; the version is an int we made.
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version+1)); err != nil {
		return 0, fmt.Errorf("migrate to version %d: %w", version+1, err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return 0, fmt.Errorf("migrate to version %d: commit: %w", version+1, err)
	}
	return version + 1, nil
}

// checkTables refuses a file that has runstep's marks but not its tables.
func checkTables(ctx context.Context, conn *sql.Conn) error {
	rows, err := conn.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
	if err != nil {
		return classify(err)
	}
	var have []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		have = append(have, name)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return classify(err)
	}
	if !slices.Equal(have, tables) {
		return fmt.Errorf("%w: tables %v, want %v", ErrForeign, have, tables)
	}
	return nil
}
