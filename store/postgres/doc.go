// Package postgres is the Store for many engine processes, on many
// machines, sharing one PostgreSQL database: it keeps steps, runs and the
// event log in one schema, lets every engine write with the same version
// checks as the in-process stores, hands due runs to one sweeper at a time,
// and tells every engine when anyone commits (store.Watcher).
//
// # Tables
//
// Open creates the schema (WithSchema; "runstep" by default) and migrates
// it with the SQL files embedded in the package, recording the version in
// the table schema_version. A schema a newer runstep migrated is refused
// with a *SchemaError (ErrSchemaTooNew), rather than written in a shape the
// newer code does not expect.
//
// steps and runs hold each object as its canonical JSON (MarshalJSON, read
// back with UnmarshalJSON), in a text column: jsonb would reorder keys and
// refuse "\u0000" in a string. Beside it are the columns queries need: id,
// run_id, created_at, status, version and, for runs, expires_at, the
// deadline while the run can still expire (NULL once it ended). Ids are
// COLLATE "C", so they sort by bytes as Go compares strings. events holds
// the log: seq, the event's type and time, and the object after the event.
//
// # Commits
//
// Every Commit is atomic, checked against the versions stored, and tried
// in one of two ways:
//
//   - The fast path is one statement, one round trip, in its own implicit
//     transaction: it guesses that each object is at the version the
//     writer read (absent, for version 0), and writes INSERTs for new
//     objects, UPDATE … WHERE id = … AND version = … for the others (and
//     for each guarded run, a version bump) and the events. The statement
//     counts the rows its UPDATEs matched; if one missed, it divides by
//     zero (SQLSTATE 22012), which rolls the whole statement back.
//   - Then, or when the guess cannot hold, the locked path decides: it
//     locks every step and run the commit names with SELECT … FOR UPDATE,
//     in id order (steps, then runs) so that committers never wait on each
//     other in a cycle, and checks each version against what it locked:
//     0 for an object that must not exist (ErrAlreadyExists if it does),
//     otherwise the stored version (ErrNotFound, ErrConflict). It then
//     writes with the same statement, and COMMITs.
//
// A new object that another writer inserted in the meantime fails the
// INSERT with unique_violation (SQLSTATE 23505), which becomes
// ErrAlreadyExists. Errors are told apart by SQLSTATE codes
// (pgconn.PgError.Code), never by text: a deadlock (40P01) or
// serialization failure (40001) is tried again, then reported as
// ErrConflict.
//
// # A gapless log in commit order
//
// Sequences and identity columns cannot number the log: a rolled-back
// transaction burns its numbers (a gap), and numbers are handed out when a
// transaction asks, not when it commits, so a reader could see seq k+1
// committed while k is still in flight, read past k and never come back
// for it. Instead one row, log_head, holds the last number given out, and
// a commit takes its numbers with
//
//	UPDATE log_head SET seq = seq + n RETURNING seq - n
//
// inside its transaction, just before COMMIT. The row lock makes committers
// take turns from that statement to the end of their commit: the numbers
// are gapless (a rollback releases the row unchanged), and a transaction
// that took k+1 waited for the one that took k to commit, so whoever sees
// k+1 sees k. Events(after, limit) is then a plain ordered read of seq >
// after: a reader that got everything up to k has missed nothing.
//
// The cost is that commits to one schema take turns for that last
// stretch: the head is held from the UPDATE of log_head to the end of the
// commit, WAL flush included, with no round trip to the client in between
// (log_head is updated at the end of the last statement, which COMMIT
// follows in the same round trip, or which commits itself). Reading, checking and writing
// rows before it run in parallel. It is acceptable because that stretch is
// short, and because group commit spreads it: each Store queues its
// concurrent Commits and a committer runs up to WithMaxGroup of them in
// one transaction, each still checked alone (one that fails writes nothing
// and does not stop the others), so one turn at the head and one WAL flush
// serve many commits. Without grouping, commits from several engines
// queue on the one row, and PostgreSQL spends more on handing the row
// lock along than on the commits. On a 2-core machine shared with other
// work, four engines (64 goroutines each) made 9,000–13,000 transitions
// a second grouped (about 10,500 typically) and 1,000–1,500 with one
// commit per transaction, against 16,000–20,000 for a bare UPDATE of the
// same rows (BenchmarkTransitions).
//
// # Deadlines
//
// Each engine sweeps for due runs (engine.ExpireDue). DueRuns claims what
// it returns in one statement: it selects due runs FOR UPDATE SKIP LOCKED,
// passing over those another sweeper is claiming or a writer is committing
// at that instant, and stamps them claimed by this Store until now plus
// WithClaimTTL (a minute; now is the engine's clock). Other Stores' DueRuns
// pass a claimed run over until their clock reaches the claim's end, and
// their NextDeadline counts the claim's end, so they neither race nor spin
// on a run a peer is expiring, and take it over if the peer dies. The
// claim saves work only: the expiry is an ordinary commit at the run's
// version, so even sweepers that claim nothing expire each run once.
//
// # Watching
//
// Every commit that appends events calls pg_notify on a channel named
// after the schema, inside its transaction, so the notification goes out
// when, and only if, the commit does. Watch (store.Watcher) listens on one
// connection per Store and wakes its watchers; when that connection
// breaks it reconnects, backing off on the Store's clock (WithClock), and
// wakes everyone once, since notifications sent meanwhile are lost. A
// watcher then reads Events from where it was. On one machine a
// notification reaches another Store's watcher 0.1–0.2 ms after the
// commit returns (BenchmarkCommitNotified against BenchmarkCommit), at no
// cost while nothing commits. Polling instead costs a query per interval
// P per engine (25–40µs each, BenchmarkPollEmpty) and P/2 of latency on
// average: P = 10 ms is a hundred queries a second per engine for 5 ms
// of latency.
//
// # Failures
//
// A bad DSN, or a server Open cannot reach or log in to, is an error from
// Open naming the host and database (and the SQLSTATE, for a database or
// role the server does not know). A connection that breaks mid-commit
// rolls the transaction back: nothing half committed, and the commit
// returns an error. Only if it breaks with no answer from the server on
// the commit itself is the outcome unknown: the error wraps
// ErrOutcomeUnknown, and store.ErrOutcomeUnknown. The listener
// reconnects; pgxpool replaces pooled connections.
//
// # Other PostgreSQL-compatible databases
//
// The SQL keeps to what CockroachDB and YugabyteDB also speak (unnest …
// WITH ORDINALITY, data-modifying WITH, FOR UPDATE SKIP LOCKED, SQLSTATE
// codes), and settings they lack are skipped (plan_cache_mode), but some
// things would change:
//
//   - LISTEN/NOTIFY: CockroachDB has neither (open with WithoutNotify and
//     let engines poll Events, or tail a changefeed); YugabyteDB has them
//     only from 2025.2.
//
//   - SKIP LOCKED: CockroachDB has it since 22.2; without it DueRuns would
//     wait for a peer's claim instead of passing it over.
//
//   - The log head is one row, so every commit in the cluster goes through
//     the node that leads its range, and serializable retries (40001, which
//     commits retry) grow with contention. Group commit softens this;
//     beyond that, a gapless total order has to give way to one log per
//     shard of runs, ordered by (shard, seq).
//
//   - CockroachDB refuses a statement that changes one table in two WITH
//     clauses (the commit statement updates and inserts steps, and runs)
//     unless the session sets enable_multiple_modifications_of_table.
//
// CockroachDB's STRING already sorts by bytes, so COLLATE "C" would go.
// Its transactions are SERIALIZABLE; those here would run unchanged.
package postgres
