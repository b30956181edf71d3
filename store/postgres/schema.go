package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/runstep/runstep/store"
)

// Migrations are the files migrations/NNN_name.sql, applied in order,
// each once; the schema's version is the number of the last one applied.
// A migration, once released, never changes: a new one follows it.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations returns the embedded migrations, numbered 1, 2, … with no
// gap.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries { // ReadDir sorts by name
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(out)+1 {
			return nil, fmt.Errorf("migration %s: want number %03d", e.Name(), len(out)+1)
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	return out, nil
}

// SchemaVersion is the version of the schema this code writes: the number
// of its last migration.
func SchemaVersion() int {
	ms, err := loadMigrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// migrate brings schema up to the code's version. Concurrent Opens of a
// new schema may race on CREATE … IF NOT EXISTS, which PostgreSQL can
// answer with a unique violation; the loser tries again and finds the
// schema made.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for attempt := 1; ; attempt++ {
		err := migrateOnce(ctx, pool, schema, ms)
		if err == nil || attempt == 5 || !hasCode(err, codeUniqueViolation, codeDuplicateSchema, codeDuplicateTable,
			codeDuplicateObject, codeSerializationFailure, codeDeadlock) {
			return err
		}
	}
}

func migrateOnce(ctx context.Context, pool *pgxpool.Pool, schema string, ms []migration) error {
	versionTable := pgx.Identifier{schema, "schema_version"}.Sanitize()
	// The usual case, a schema already current, needs no DDL and no
	// privilege to create anything.
	var have int
	err := pool.QueryRow(ctx, "SELECT version FROM "+versionTable).Scan(&have)
	switch {
	case err == nil && have > len(ms):
		return &SchemaError{Schema: schema, Version: have, Known: len(ms)}
	case err == nil && have == len(ms):
		return nil
	case err != nil && !hasCode(err, codeUndefinedTable, codeInvalidSchemaName):
		return fmt.Errorf("read schema version: %w", mapErr(err))
	}

	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", mapErr(err))
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	for _, stmt := range []string{
		"CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{schema}.Sanitize(),
		"CREATE TABLE IF NOT EXISTS " + versionTable +
			" (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), version integer NOT NULL)",
		"INSERT INTO " + versionTable + " (version) VALUES (0) ON CONFLICT DO NOTHING",
	} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	// The row lock makes concurrent migrators take turns: the second finds
	// the work done.
	if err := tx.QueryRow(ctx, "SELECT version FROM "+versionTable+" FOR UPDATE").Scan(&have); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if have > len(ms) {
		return &SchemaError{Schema: schema, Version: have, Known: len(ms)}
	}
	if have == len(ms) {
		return nil
	}
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range ms[have:] {
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("migrate: %s: %w", m.name, err)
		}
	}
	if _, err := tx.Exec(ctx, "UPDATE "+versionTable+" SET version = $1", len(ms)); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: %w", mapErr(err))
	}
	return nil
}

// queries holds the store's SQL with its schema's tables named in full:
// no search_path, so a connection pooler in front of the database changes
// nothing.
type queries struct {
	getStep, getRun, cursor, inProgress string
	stepForUpdate                       string
	// Indexed by ascending.
	listAll, listFrom, listBetween map[bool]string
	events                         string
	lockDue, claimDue              string
	nextDeadline                   string
	lockSteps, lockRuns            string
	commit                         string
}

func newQueries(schema string, notifying bool) queries {
	r := strings.NewReplacer(
		"{steps}", pgx.Identifier{schema, "steps"}.Sanitize(),
		"{runs}", pgx.Identifier{schema, "runs"}.Sanitize(),
		"{events}", pgx.Identifier{schema, "events"}.Sanitize(),
		"{log_head}", pgx.Identifier{schema, "log_head"}.Sanitize(),
	)
	q := func(sql string) string { return r.Replace(sql) }
	list := func(where string, asc bool) string {
		order := "created_at, id"
		if !asc {
			order = "created_at DESC, id DESC"
		}
		return q(`SELECT version, data FROM {steps} WHERE run_id = $1` + where + ` ORDER BY ` + order + ` LIMIT $2`)
	}
	// commit stores one group (see write): its rows, then the events
	// under the log's head. Each CTE RETURNs a row per row it wrote; if
	// they come to fewer than $26, an UPDATE missed its version, and the
	// head's new value divides by zero, which rolls everything back.
	// Counting the CTEs makes them run before the head is locked.
	commit := q(`WITH
step_updates AS (
	UPDATE {steps} AS s SET status = u.status, version = u.version, data = u.data
	FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::text[])
		AS u(id, read, run_id, created_at, status, version, data)
	WHERE s.id = u.id AND s.version = u.read AND s.run_id = u.run_id AND s.created_at = u.created_at
	RETURNING 1
), step_inserts AS (
	INSERT INTO {steps} (id, run_id, created_at, status, version, data)
	SELECT * FROM unnest($8::text[], $9::text[], $10::bigint[], $11::text[], $12::bigint[], $13::text[])
	RETURNING 1
), run_updates AS (
	UPDATE {runs} AS r SET version = u.version,
		status = coalesce(u.status, r.status),
		expires_at = CASE WHEN u.data IS NULL THEN r.expires_at ELSE u.expires_at END,
		data = coalesce(u.data, r.data)
	FROM unnest($14::text[], $15::bigint[], $16::bigint[], $17::text[], $18::bigint[], $19::text[])
		AS u(id, read, version, status, expires_at, data)
	WHERE r.id = u.id AND r.version = u.read
	RETURNING 1
), run_inserts AS (
	INSERT INTO {runs} (id, created_at, status, version, expires_at, data)
	SELECT * FROM unnest($20::text[], $21::bigint[], $22::text[], $23::bigint[], $24::bigint[], $25::text[])
	RETURNING 1
), written AS (
	SELECT ((SELECT count(*) FROM step_updates) + (SELECT count(*) FROM step_inserts)
		+ (SELECT count(*) FROM run_updates) + (SELECT count(*) FROM run_inserts) = $26::bigint)::int AS ok
), head AS (
	UPDATE {log_head} SET seq = seq + $27::bigint / written.ok FROM written RETURNING seq - $27::bigint AS base
), appended AS (
	INSERT INTO {events} (seq, type, at, is_run, object_id, version, data)
	SELECT head.base + e.n, e.type, e.at, e.is_run, e.object_id, e.version, e.data
	FROM head, unnest($28::text[], $29::bigint[], $30::boolean[], $31::text[], $32::bigint[], $33::text[])
		WITH ORDINALITY AS e(type, at, is_run, object_id, version, data, n)
)
SELECT base, NOTIFY FROM head`)
	notify := `CASE WHEN $27::bigint > 0 THEN pg_notify($34::text, (base + $27::bigint)::text)::text END`
	if !notifying {
		notify = `$34::text`
	}
	commit = strings.Replace(commit, "NOTIFY", notify, 1)
	return queries{
		getStep: q(`SELECT version, data FROM {steps} WHERE id = $1`),
		getRun:  q(`SELECT version, data FROM {runs} WHERE id = $1`),
		// runs.expires_at is set only while the run can expire.
		stepForUpdate: q(`SELECT s.version, s.data, r.expires_at FROM {steps} s LEFT JOIN {runs} r ON r.id = s.run_id WHERE s.id = $1`),
		cursor:        q(`SELECT created_at FROM {steps} WHERE id = $1 AND run_id = $2`),
		inProgress:    q(`SELECT version, data FROM {steps} WHERE run_id = $1 AND status = $2 ORDER BY created_at, id`),
		listAll:       map[bool]string{true: list("", true), false: list("", false)},
		listFrom: map[bool]string{
			true:  list(` AND (created_at, id) > ($3, $4)`, true),
			false: list(` AND (created_at, id) < ($3, $4)`, false),
		},
		listBetween: map[bool]string{
			true:  list(` AND (created_at, id) > ($3, $4) AND (created_at, id) < ($5, $6)`, true),
			false: list(` AND (created_at, id) < ($3, $4) AND (created_at, id) > ($5, $6)`, false),
		},
		events: q(`SELECT seq, type, at, is_run, version, data FROM {events} WHERE seq > $1 ORDER BY seq LIMIT $2`),
		lockDue: q(`SELECT expires_at, version, data FROM {runs}
WHERE expires_at <= $1 ORDER BY expires_at, id LIMIT $2 FOR UPDATE SKIP LOCKED`),
		claimDue: q(`WITH due AS (
	SELECT id FROM {runs}
	WHERE expires_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1 OR claimed_by = $3)
	ORDER BY expires_at, id LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE {runs} AS r SET claimed_by = $3, claimed_until = $4
FROM due WHERE r.id = due.id
RETURNING r.expires_at, r.version, r.data`),
		// Both halves walk an index and stop at their first row: runs
		// others hold claims on are few, and only they are in runs_claimed.
		nextDeadline: q(`SELECT min(at) FROM (
	(SELECT expires_at AS at FROM {runs}
	WHERE expires_at IS NOT NULL AND (claimed_until IS NULL OR claimed_until <= expires_at OR claimed_by = $1)
	ORDER BY expires_at LIMIT 1)
	UNION ALL
	(SELECT claimed_until FROM {runs}
	WHERE expires_at IS NOT NULL AND claimed_until IS NOT NULL AND claimed_until > expires_at AND claimed_by <> $1
	ORDER BY claimed_until LIMIT 1)
) AS next`),
		// ORDER BY id: every committer locks in one order, so two never
		// wait on each other in a cycle.
		lockSteps: q(`SELECT id, version, run_id, created_at FROM {steps} WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`),
		lockRuns:  q(`SELECT id, version FROM {runs} WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`),
		commit:    commit,
	}
}

// SchemaError is a schema made by a newer runstep than this one: Open
// refuses it rather than write rows the newer code does not expect.
type SchemaError struct {
	Schema  string
	Version int // the schema's version
	Known   int // the newest version this code knows
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("postgres: schema %q is at version %d, newer than version %d that this runstep knows: upgrade runstep",
		e.Schema, e.Version, e.Known)
}

// Unwrap returns ErrSchemaTooNew.
func (e *SchemaError) Unwrap() error { return ErrSchemaTooNew }

var (
	// ErrSchemaTooNew is a schema a newer runstep has migrated.
	ErrSchemaTooNew = errors.New("postgres: schema is newer than this code")
	// ErrClosed is a call on a closed Store.
	ErrClosed = errors.New("postgres: store closed")
	// ErrOutcomeUnknown is a Commit whose connection broke while COMMIT
	// was on the wire: the server may or may not have stored it. It wraps
	// store.ErrOutcomeUnknown.
	ErrOutcomeUnknown = fmt.Errorf("postgres: connection lost during COMMIT; the commit may or may not be stored: %w", store.ErrOutcomeUnknown)
)
