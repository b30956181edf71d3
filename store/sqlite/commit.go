package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
)

// request is one Commit handed to the writer.
type request struct {
	ctx    context.Context
	rows   []row
	guards []store.Guard
	done   chan result // buffered: the writer never waits for the caller
}

type result struct {
	first int64
	err   error
}

// row is one event ready to be written: everything the statements need,
// encoded by the caller's goroutine so the writer only writes.
type row struct {
	step      bool
	id        string
	read      int64 // the version the writer read
	runID     string
	createdAt int64
	status    string
	deadline  sql.NullInt64 // a run's armed deadline
	typ       events.Type
	at        int64
	data      string // the object's JSON

	// For the cache: a copy of the object as committed (at version
	// read+1), if it can still change and the store has a cache.
	stepCopy *lifecycle.Step
	runCopy  *lifecycle.Run
}

// Commit implements store.Store. It returns ctx's error, having written
// nothing, if ctx ends before the writer takes the batch up; once the
// writer has begun the batch, Commit waits for the outcome of its
// transaction (at most one group's commit) and returns that, whatever ctx
// does meanwhile. After Close it returns ErrClosed.
func (s *Store) Commit(ctx context.Context, b store.Batch) (int64, error) {
	if err := s.begin(ctx, "commit"); err != nil {
		return 0, err
	}
	rows, err := encode(b, s.cache.max > 0)
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 && len(b.Guards) == 0 {
		return 0, nil
	}
	req := &request{ctx: ctx, rows: rows, guards: b.Guards, done: make(chan result, 1)}
	select {
	case s.queue <- req:
	case <-ctx.Done():
		return 0, fmt.Errorf("sqlite: commit: %w", ctx.Err())
	case <-s.closing:
		return 0, fmt.Errorf("sqlite: commit: %w", ErrClosed)
	}
	select {
	case res := <-req.done:
		return res.first, res.err
	case <-s.writerDone:
		// The writer has stopped. It answers every batch it took before
		// it stops, so a batch without an answer was never begun.
		select {
		case res := <-req.done:
			return res.first, res.err
		default:
			return 0, fmt.Errorf("sqlite: commit: %w", ErrClosed)
		}
	}
}

// encode checks what needs no stored state (the contract's ErrInvalid
// cases, in the memory store's order) and encodes the events, with a copy
// of each object that can still change if cached. The batch is copied in:
// the rows share no memory with it.
func encode(b store.Batch, cached bool) ([]row, error) {
	for i, ev := range b.Events {
		if (ev.Step == nil) == (ev.Run == nil) {
			return nil, fmt.Errorf("sqlite: commit event %d (%s): %w: want exactly one of a step and a run", i, ev.Type, store.ErrInvalid)
		}
	}
	if err := checkDistinct(b); err != nil {
		return nil, err
	}
	rows := make([]row, len(b.Events))
	for i, ev := range b.Events {
		r := &rows[i]
		r.typ, r.at = ev.Type, ev.At
		var data []byte
		var err error
		if step := ev.Step; step != nil {
			r.step, r.id, r.read = true, step.ID, step.Version
			r.runID, r.createdAt, r.status = step.RunID, step.CreatedAt, string(step.Status)
			if err = step.Validate(); err == nil {
				data, err = step.MarshalJSON()
			}
			if cached && !step.Status.Terminal() {
				c := step.Clone()
				c.Version++
				r.stepCopy = &c
			}
		} else {
			run := ev.Run
			r.id, r.read, r.status = run.ID, run.Version, string(run.Status)
			if run.ExpiresAt != nil && !run.Status.Terminal() {
				r.deadline = sql.NullInt64{Int64: *run.ExpiresAt, Valid: true}
			}
			if err = run.Validate(); err == nil {
				data, err = run.MarshalJSON()
			}
			if cached && !run.Status.Terminal() {
				c := run.Clone()
				c.Version++
				r.runCopy = &c
			}
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: commit %s: %w: %w", r.id, store.ErrInvalid, err)
		}
		if r.read < 0 {
			return nil, fmt.Errorf("sqlite: commit %s: %w: negative version %d", r.id, store.ErrInvalid, r.read)
		}
		r.data = string(data)
	}
	return rows, nil
}

// checkDistinct refuses a batch that names one object twice.
func checkDistinct(b store.Batch) error {
	if len(b.Events)+len(b.Guards) < 2 {
		return nil // the usual single transition: nothing to compare
	}
	type object struct {
		run bool
		id  string
	}
	seen := make(map[object]bool, len(b.Events)+len(b.Guards))
	for _, ev := range b.Events {
		o := object{run: ev.Run != nil}
		if o.run {
			o.id = ev.Run.ID
		} else {
			o.id = ev.Step.ID
		}
		if seen[o] {
			return fmt.Errorf("sqlite: commit %s: %w: named twice in one commit", o.id, store.ErrInvalid)
		}
		seen[o] = true
	}
	for _, g := range b.Guards {
		o := object{true, g.RunID}
		if seen[o] {
			return fmt.Errorf("sqlite: commit %s: %w: named twice in one commit", o.id, store.ErrInvalid)
		}
		seen[o] = true
	}
	return nil
}

// write is the writer goroutine: it commits groups of queued batches until
// Close.
func (s *Store) write() {
	defer close(s.writerDone)
	g := &group{
		reqs:    make([]*request, 0, s.maxGroup),
		results: make([]result, 0, s.maxGroup),
		pending: make([]int, 0, s.maxGroup),
	}
	for {
		select {
		case req := <-s.queue:
			g.reset()
			g.add(req)
		case <-s.closing:
			// Nothing of the queued batches was begun: fail them.
			for {
				select {
				case req := <-s.queue:
					req.done <- result{err: fmt.Errorf("sqlite: commit: %w", ErrClosed)}
				default:
					return
				}
			}
		}
		s.commitGroup(g)
	}
}

// group is the batches of one transaction and their outcomes.
type group struct {
	reqs    []*request
	results []result // results[i] is the outcome of reqs[i]
	pending []int    // the indexes of the batches still to commit
}

func (g *group) reset() {
	clear(g.reqs)
	g.reqs, g.results, g.pending = g.reqs[:0], g.results[:0], g.pending[:0]
}

func (g *group) add(req *request) {
	g.pending = append(g.pending, len(g.reqs))
	g.reqs = append(g.reqs, req)
	g.results = append(g.results, result{})
}

// join adds to g the batches queued, up to a full group, and reports
// whether there were any. Before it looks, it yields the processor while
// that brings more batches: the callers of the last group, answered just
// before this one began, are runnable, but on few cores they run only when
// the writer yields. So they commit in this group, rather than split the
// callers into two halves whose groups alternate, each paying an fsync. A
// yield that brings no batch ends the wait: no batch that is not on its way
// is waited for.
func (s *Store) join(g *group) bool {
	for n := -1; len(s.queue) != n && len(g.reqs)+len(s.queue) < s.maxGroup; {
		n = len(s.queue)
		runtime.Gosched()
	}
	added := false
	for len(g.reqs) < s.maxGroup {
		select {
		case req := <-s.queue:
			g.add(req)
			added = true
		default:
			return added
		}
	}
	return added
}

// commitGroup commits the batches of g in one transaction, taking in the
// batches that arrive while it writes, and answers each. A batch whose own
// checks fail is rolled back to its savepoint and the others go on. An
// error that may have ended the transaction itself (I/O, a full disk)
// rolls the group back; the batch that met it gets the error and the rest
// are tried again in a new transaction.
func (s *Store) commitGroup(g *group) {
	for len(g.pending) > 0 {
		culprit, err := s.tryGroup(g)
		if err == nil {
			break
		}
		if culprit < 0 {
			// The transaction as a whole failed (BEGIN or COMMIT): no
			// batch of it is written.
			for _, i := range g.pending {
				if g.results[i].err == nil {
					g.results[i] = result{err: err}
				}
			}
			break
		}
		g.results[culprit] = result{err: err}
		g.pending = deleteValue(g.pending, culprit)
		for _, i := range g.pending {
			g.results[i] = result{}
		}
	}
	// Before any answer: a caller's next read for update sees its commit.
	s.cache.settle(g.reqs, g.results)
	for i, req := range g.reqs {
		req.done <- g.results[i]
	}
}

func deleteValue(s []int, v int) []int {
	out := s[:0]
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// tryGroup runs the pending batches of g in one transaction, and those
// that join it meanwhile, filling in their results. It returns a nil error
// if the transaction committed (the batches that failed their checks carry
// their own errors); otherwise it has rolled everything back and returns
// the error and the index of the batch that met it, or -1 if none did.
func (s *Store) tryGroup(g *group) (culprit int, err error) {
	ctx := context.Background() // the writer's statements are never interrupted
	if _, err := s.w.begin.ExecContext(ctx); err != nil {
		return -1, fmt.Errorf("sqlite: commit: begin: %w", err)
	}
	rollback := func(err error) error {
		if _, rerr := s.w.rollback.ExecContext(ctx); rerr != nil && code(rerr) != sqlite3.SQLITE_ERROR {
			// SQLITE_ERROR: no transaction is active; SQLite rolled it
			// back itself.
			return errors.Join(err, fmt.Errorf("roll back: %w", rerr))
		}
		return err
	}
	var next int64
	if err := s.w.maxSeq.QueryRowContext(ctx).Scan(&next); err != nil {
		return -1, rollback(fmt.Errorf("sqlite: commit: read the last seq: %w", err))
	}
	next++
	// g.pending grows as batches join.
	for k := 0; k < len(g.pending) || s.join(g); k++ {
		i := g.pending[k]
		req := g.reqs[i]
		if err := req.ctx.Err(); err != nil {
			g.results[i] = result{err: fmt.Errorf("sqlite: commit: %w", err)}
			continue
		}
		// A batch of one change needs no savepoint: its one checked write
		// either happens or leaves nothing behind, and a failure after it
		// (writing its event) is not a check and ends the transaction.
		savepoint := len(req.rows)+len(req.guards) > 1
		if savepoint {
			if _, err := s.w.savepoint.ExecContext(ctx); err != nil {
				return i, rollback(fmt.Errorf("sqlite: commit: savepoint: %w", err))
			}
		}
		err := s.apply(ctx, req, next)
		if err == nil {
			if savepoint {
				if _, err := s.w.release.ExecContext(ctx); err != nil {
					return i, rollback(fmt.Errorf("sqlite: commit: release savepoint: %w", err))
				}
			}
			g.results[i] = result{first: next}
			next += int64(len(req.rows))
			continue
		}
		if !isSentinel(err) {
			// The transaction may be gone; start over without this batch.
			return i, rollback(err)
		}
		if savepoint {
			if _, rerr := s.w.rollbackTo.ExecContext(ctx); rerr != nil {
				return i, rollback(errors.Join(err, fmt.Errorf("sqlite: commit: roll back to savepoint: %w", rerr)))
			}
			if _, rerr := s.w.release.ExecContext(ctx); rerr != nil {
				return i, rollback(errors.Join(err, fmt.Errorf("sqlite: commit: release savepoint: %w", rerr)))
			}
		}
		g.results[i] = result{err: err}
	}
	if _, err := s.w.commit.ExecContext(ctx); err != nil {
		return -1, rollback(fmt.Errorf("sqlite: commit: %w", err))
	}
	return -1, nil
}

// isSentinel reports whether err is a batch's own failed check, which
// leaves the transaction intact.
func isSentinel(err error) bool {
	return errors.Is(err, store.ErrAlreadyExists) || errors.Is(err, store.ErrNotFound) ||
		errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrInvalid)
}

// apply checks and writes one batch inside the writer's transaction, its
// events taking seqs from first on. Each object's write checks its version
// in the same statement; only a write that fails is looked into, to say
// why.
func (s *Store) apply(ctx context.Context, req *request, first int64) error {
	for i := range req.rows {
		r := &req.rows[i]
		if err := s.writeObject(ctx, r); err != nil {
			return err
		}
		if _, err := s.w.insertEvent.ExecContext(ctx, first+int64(i), string(r.typ), r.at, r.object(), r.id, r.read+1, r.data); err != nil {
			return fmt.Errorf("sqlite: commit %s: write event: %w", r.id, err)
		}
	}
	for _, g := range req.guards {
		n, err := affected(s.w.guardRun.ExecContext(ctx, g.RunID, g.Version))
		if err != nil {
			return fmt.Errorf("sqlite: commit: guard run %s: %w", g.RunID, err)
		}
		if n == 0 {
			var stored int64
			switch err := s.w.runVersion.QueryRowContext(ctx, g.RunID).Scan(&stored); {
			case errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("sqlite: guard run %s: %w", g.RunID, store.ErrNotFound)
			case err != nil:
				return fmt.Errorf("sqlite: guard run %s: %w", g.RunID, err)
			default:
				return fmt.Errorf("sqlite: guard run %s at version %d (stored %d): %w", g.RunID, g.Version, stored, store.ErrConflict)
			}
		}
	}
	return nil
}

func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// object is what the event's data is: "step" or "run".
func (r *row) object() string {
	if r.step {
		return "step"
	}
	return "run"
}

// writeObject creates or updates the step or run of r.
func (s *Store) writeObject(ctx context.Context, r *row) error {
	kind := r.object()
	if r.read == 0 {
		var err error
		if r.step {
			_, err = s.w.insertStep.ExecContext(ctx, r.id, r.runID, r.createdAt, r.status, r.data)
		} else {
			_, err = s.w.insertRun.ExecContext(ctx, r.id, r.status, r.deadline, r.data)
		}
		if code(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
			return fmt.Errorf("sqlite: create %s %s: %w", kind, r.id, store.ErrAlreadyExists)
		}
		if err != nil {
			return fmt.Errorf("sqlite: create %s %s: %w", kind, r.id, err)
		}
		return nil
	}

	var n int64
	var err error
	if r.step {
		n, err = affected(s.w.updateStep.ExecContext(ctx, r.status, r.data, r.id, r.read, r.runID, r.createdAt))
	} else {
		n, err = affected(s.w.updateRun.ExecContext(ctx, r.status, r.deadline, r.data, r.id, r.read))
	}
	if err != nil {
		return fmt.Errorf("sqlite: update %s %s: %w", kind, r.id, err)
	}
	if n == 1 {
		return nil
	}
	// Nothing written: say why, in the memory store's order.
	var stored, createdAt int64
	var runID string
	if r.step {
		err = s.w.stepKey.QueryRowContext(ctx, r.id).Scan(&stored, &runID, &createdAt)
	} else {
		err = s.w.runVersion.QueryRowContext(ctx, r.id).Scan(&stored)
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: update %s %s: %w", kind, r.id, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: update %s %s: %w", kind, r.id, err)
	case stored != r.read:
		return fmt.Errorf("sqlite: update %s %s at version %d (stored %d): %w", kind, r.id, r.read, stored, store.ErrConflict)
	default:
		return fmt.Errorf("sqlite: update step %s: %w: run_id and created_at never change", r.id, store.ErrInvalid)
	}
}

// writeStmts are the writer's statements, prepared on its connection.
type writeStmts struct {
	begin, commit, rollback        *sql.Stmt
	savepoint, release, rollbackTo *sql.Stmt
	maxSeq                         *sql.Stmt
	insertStep, updateStep         *sql.Stmt
	stepKey                        *sql.Stmt
	insertRun, updateRun           *sql.Stmt
	guardRun, runVersion           *sql.Stmt
	insertEvent                    *sql.Stmt
}

func (w *writeStmts) prepare(ctx context.Context, conn *sql.Conn) error {
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&w.begin, "BEGIN IMMEDIATE"},
		{&w.commit, "COMMIT"},
		{&w.rollback, "ROLLBACK"},
		{&w.savepoint, "SAVEPOINT batch"},
		{&w.release, "RELEASE batch"},
		{&w.rollbackTo, "ROLLBACK TO batch"},
		{&w.maxSeq, "SELECT coalesce(max(seq), 0) FROM events"},
		{&w.insertStep, "INSERT INTO steps (id, run_id, created_at, status, version, data) VALUES (?, ?, ?, ?, 1, ?)"},
		{&w.updateStep, "UPDATE steps SET status = ?, version = version + 1, data = ? WHERE id = ? AND version = ? AND run_id = ? AND created_at = ?"},
		{&w.stepKey, "SELECT version, run_id, created_at FROM steps WHERE id = ?"},
		{&w.insertRun, "INSERT INTO runs (id, status, version, expires_at, data) VALUES (?, ?, 1, ?, ?)"},
		{&w.updateRun, "UPDATE runs SET status = ?, version = version + 1, expires_at = ?, data = ? WHERE id = ? AND version = ?"},
		{&w.guardRun, "UPDATE runs SET version = version + 1 WHERE id = ? AND version = ?"},
		{&w.runVersion, "SELECT version FROM runs WHERE id = ?"},
		{&w.insertEvent, "INSERT INTO events (seq, type, at, object, object_id, version, data) VALUES (?, ?, ?, ?, ?, ?, ?)"},
	} {
		var err error
		if *p.stmt, err = conn.PrepareContext(ctx, p.query); err != nil {
			return fmt.Errorf("prepare %q: %w", p.query, err)
		}
	}
	return nil
}

func (w *writeStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{
		w.begin, w.commit, w.rollback, w.savepoint, w.release, w.rollbackTo, w.maxSeq,
		w.insertStep, w.updateStep, w.stepKey, w.insertRun, w.updateRun, w.guardRun, w.runVersion, w.insertEvent,
	} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}
