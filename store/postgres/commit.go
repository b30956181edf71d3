package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/runstep/runstep/store"
)

// request is one Commit waiting for, or in, a group.
type request struct {
	ctx    context.Context
	writes []write
	guards []store.Guard
	done   chan result // buffered: a committer never waits on the caller
}

type result struct {
	first int64
	err   error
}

// write is one event of a batch, checked and encoded before it queues.
type write struct {
	key       objectKey
	read      int64 // the version the writer read
	runID     string
	createdAt int64
	status    string
	// expiresAt is a run's deadline while it can still expire, nil once
	// it has ended.
	expiresAt *int64
	typ       string
	at        int64
	data      string
}

type objectKey struct {
	run bool
	id  string
}

func (k objectKey) kind() string {
	if k.run {
		return "run"
	}
	return "step"
}

// Commit implements store.Store.
//
// Commits wait in a queue that the Store's committers drain: each takes
// every Commit queued (up to WithMaxGroup) into one transaction, so that
// under load many commits share one round trip to the log's head and one
// WAL flush. Each Commit in a group still stands alone: one that fails its
// checks writes nothing and does not stop the others. A Commit whose ctx
// ends while it waits in the queue leaves it and writes nothing; once in a
// transaction, it reports how the transaction ended.
func (s *Store) Commit(ctx context.Context, b store.Batch) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("postgres: commit: %w", err)
	}
	r, err := prepare(b)
	if err != nil || r == nil {
		return 0, err
	}
	r.ctx = ctx
	r.done = make(chan result, 1)

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, fmt.Errorf("postgres: commit: %w", ErrClosed)
	}
	s.queue = append(s.queue, r)
	s.cond.Signal()
	s.mu.Unlock()

	select {
	case res := <-r.done:
		return res.first, res.err
	case <-ctx.Done():
	}
	s.mu.Lock()
	if i := slices.Index(s.queue, r); i >= 0 {
		s.queue = slices.Delete(s.queue, i, i+1)
		s.mu.Unlock()
		return 0, fmt.Errorf("postgres: commit: %w", ctx.Err())
	}
	s.mu.Unlock()
	// A committer has it: the outcome is coming, and is definite unless
	// the connection broke during COMMIT.
	res := <-r.done
	return res.first, res.err
}

// prepare checks what can be checked without the stored state and
// encodes each object as its canonical JSON. It returns nil for a batch
// that writes nothing.
func prepare(b store.Batch) (*request, error) {
	for i, ev := range b.Events {
		if (ev.Step == nil) == (ev.Run == nil) {
			return nil, fmt.Errorf("postgres: commit event %d (%s): %w: want exactly one of a step and a run", i, ev.Type, store.ErrInvalid)
		}
	}
	if len(b.Events) == 0 && len(b.Guards) == 0 {
		return nil, nil
	}
	r := &request{writes: make([]write, len(b.Events)), guards: slices.Clone(b.Guards)}
	seen := make(map[objectKey]bool, len(b.Events)+len(b.Guards))
	once := func(k objectKey) error {
		if seen[k] {
			return fmt.Errorf("postgres: commit %s %s: %w: named twice in one commit", k.kind(), k.id, store.ErrInvalid)
		}
		seen[k] = true
		return nil
	}
	for i, ev := range b.Events {
		w := write{typ: string(ev.Type), at: ev.At}
		var err error
		var data []byte
		if ev.Step != nil {
			st := ev.Step
			w.key, w.read, w.runID, w.createdAt, w.status = objectKey{false, st.ID}, st.Version, st.RunID, st.CreatedAt, string(st.Status)
			if err = st.Validate(); err == nil {
				data, err = st.MarshalJSON()
			}
		} else {
			run := ev.Run
			w.key, w.read, w.createdAt, w.status = objectKey{true, run.ID}, run.Version, run.CreatedAt, string(run.Status)
			if run.ExpiresAt != nil && !run.Status.Terminal() {
				at := *run.ExpiresAt
				w.expiresAt = &at
			}
			if err = run.Validate(); err == nil {
				data, err = run.MarshalJSON()
			}
		}
		kind, id := w.key.kind(), w.key.id
		switch {
		case err != nil:
			return nil, fmt.Errorf("postgres: commit %s %s: %w: %w", kind, id, store.ErrInvalid, err)
		case w.read < 0:
			return nil, fmt.Errorf("postgres: commit %s %s: %w: negative version", kind, id, store.ErrInvalid)
		case !storable(id) || !storable(w.typ) || !storable(w.runID):
			return nil, fmt.Errorf("postgres: commit %s %s: %w: text PostgreSQL cannot hold (NUL or invalid UTF-8)", kind, id, store.ErrInvalid)
		}
		if err := once(w.key); err != nil {
			return nil, err
		}
		w.data = string(data)
		r.writes[i] = w
	}
	for _, g := range b.Guards {
		if err := once(objectKey{true, g.RunID}); err != nil {
			return nil, err
		}
	}
	for _, g := range b.Guards {
		if !storable(g.RunID) {
			// No run has an id PostgreSQL cannot hold.
			return nil, fmt.Errorf("postgres: guard run %q: %w", g.RunID, store.ErrNotFound)
		}
	}
	return r, nil
}

// commitLoop is one committer: it takes the queued commits as a group
// and runs them in one transaction, until the store closes.
func (s *Store) commitLoop() {
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closed {
			s.cond.Wait()
		}
		if s.closed {
			s.mu.Unlock()
			return
		}
		group := s.takeLocked()
		s.mu.Unlock()
		s.runGroup(group)
	}
}

// maxGroupEvents bounds the events of one group, so a few big cascades do
// not make one huge transaction; a single commit may exceed it.
const maxGroupEvents = 2048

// takeLocked takes the next group off the queue. Commits whose context
// ended while they waited are answered at once: they write nothing.
func (s *Store) takeLocked() []*request {
	var group []*request
	n, events := 0, 0
	for _, r := range s.queue {
		if len(group) == s.opts.maxGroup || len(group) > 0 && events+len(r.writes) > maxGroupEvents {
			break
		}
		n++
		if err := r.ctx.Err(); err != nil {
			r.done <- result{err: fmt.Errorf("postgres: commit: %w", err)}
			continue
		}
		group = append(group, r)
		events += len(r.writes)
	}
	s.queue = slices.Delete(s.queue, 0, n)
	if len(s.queue) > 0 {
		s.cond.Signal() // more for another committer
	}
	return group
}

// runGroup commits a group and answers each of its commits.
func (s *Store) runGroup(group []*request) {
	if len(group) == 0 {
		return
	}
	// The transaction runs until every commit in it has given up: one
	// caller leaving does not undo the others' work.
	ctx, cancel := context.WithCancel(context.Background())
	left := atomic.Int64{}
	left.Store(int64(len(group)))
	stops := make([]func() bool, len(group))
	for i, r := range group {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	results := s.commitGroup(ctx, group)
	for i, r := range group {
		stops[i]()
		if err := r.ctx.Err(); err != nil && results[i].err != nil && !errors.Is(results[i].err, err) {
			// The caller gave up: say so first.
			results[i].err = fmt.Errorf("%w: %w", err, results[i].err)
		}
		r.done <- results[i]
	}
	cancel()
}

// maxAttempts bounds how often a group is tried again after the database
// aborted it for another transaction (deadlock, serialization failure).
const maxAttempts = 4

// errGuess is a group the fast path would not try: a commit in it fails
// even against the state the group's reads suggest.
var errGuess = errors.New("a commit fails against the state the group read")

// commitGroup commits group and returns each commit's result. It tries
// the fast path first, then the locked one (see the package doc).
func (s *Store) commitGroup(ctx context.Context, group []*request) []result {
	fast := true
	for attempt := 1; ; attempt++ {
		var results []result
		var err error
		if fast {
			results, err = s.fastGroup(ctx, group)
			// The guess was wrong (or a new object of several commits' was
			// taken meanwhile): lock and look.
			if errors.Is(err, errGuess) || hasCode(err, codeDivisionByZero) || hasCode(err, codeUniqueViolation) && len(group) > 1 {
				fast = false
				results, err = s.lockedGroup(ctx, group)
			}
		} else {
			results, err = s.lockedGroup(ctx, group)
		}
		switch {
		case err == nil:
			return results
		case hasCode(err, codeUniqueViolation) && len(group) > 1:
			// Another writer created one of the group's new objects after
			// the group read. Which commit it hit, only a commit on its own
			// can tell.
			out := make([]result, len(group))
			for i := range group {
				out[i] = s.commitGroup(ctx, group[i:i+1])[0]
			}
			return out
		case hasCode(err, codeUniqueViolation):
			err = fmt.Errorf("postgres: commit: a new %s: %w", tableKind(err), store.ErrAlreadyExists)
		case retryable(err) && attempt < maxAttempts:
			continue
		default:
			err = fmt.Errorf("postgres: commit: %w", mapErr(err))
		}
		out := make([]result, len(group))
		for i := range out {
			out[i].err = err
		}
		return out
	}
}

// tableKind names the kind of object a unique violation was about, from
// the error's table field.
func tableKind(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.TableName == "runs" {
		return "run already exists"
	}
	return "step already exists"
}

// object is what a group knows of one step or run: its state when the
// group began (as read, or as guessed), and what the group has made of
// it so far.
type object struct {
	existed   bool  // when the group began
	lockedAt  int64 // its version when the group began
	exists    bool
	version   int64
	runID     string
	createdAt int64
	last      *write // the group's last event on it; nil if none (only guarded)
	dirty     bool   // changed by the group
}

// plan is a group decided: which commits pass, the objects as they leave
// it, and the events to append.
type plan struct {
	objects        map[objectKey]*object
	stepIDs        []string // sorted
	runIDs         []string // sorted
	results        []result
	evs            []*write
	offsets        []int // offsets[i]: how many events come before commit i's
	passed, failed int
}

// newPlan names every object of group, in no state yet.
func newPlan(group []*request) *plan {
	p := &plan{objects: map[objectKey]*object{}, results: make([]result, len(group)), offsets: make([]int, len(group))}
	name := func(k objectKey) {
		if _, ok := p.objects[k]; ok {
			return
		}
		p.objects[k] = &object{}
		if k.run {
			p.runIDs = append(p.runIDs, k.id)
		} else {
			p.stepIDs = append(p.stepIDs, k.id)
		}
	}
	for _, r := range group {
		for _, w := range r.writes {
			name(w.key)
		}
		for _, g := range r.guards {
			name(objectKey{true, g.RunID})
		}
	}
	slices.Sort(p.stepIDs)
	slices.Sort(p.runIDs)
	return p
}

// decide checks the commits in queue order, as if they ran one after
// another, and applies those that pass.
func (p *plan) decide(group []*request) {
	for i, r := range group {
		p.offsets[i] = len(p.evs)
		if err := check(r, p.objects); err != nil {
			p.results[i].err = err
			p.failed++
			continue
		}
		p.passed++
		for j := range r.writes {
			w := &r.writes[j]
			o := p.objects[w.key]
			if !o.exists {
				o.exists, o.runID, o.createdAt = true, w.runID, w.createdAt
			}
			o.version, o.last, o.dirty = w.read+1, w, true
			p.evs = append(p.evs, w)
		}
		for _, g := range r.guards {
			o := p.objects[objectKey{true, g.RunID}]
			o.version++
			o.dirty = true
		}
	}
}

// finish gives the commits that passed their first sequence numbers, the
// log having stood at base before the group.
func (p *plan) finish(base int64) []result {
	for i := range p.results {
		if p.results[i].err == nil {
			p.results[i].first = base + 1 + int64(p.offsets[i])
		}
	}
	return p.results
}

// fastGroup commits group in one statement, one round trip, on a guess:
// that each object is at the version the group's first commit naming it
// read (absent, for version 0). The statement writes as if the guess were
// right, counts the rows its conditional UPDATEs matched, and divides by
// zero if any missed, which rolls it all back (SQLSTATE 22012): then the
// guess was wrong and lockedGroup decides. It returns errGuess, writing
// nothing, for a group in which a commit fails even on the guess.
func (s *Store) fastGroup(ctx context.Context, group []*request) ([]result, error) {
	p := newPlan(group)
	guessed := map[objectKey]bool{}
	guess := func(k objectKey, read int64, w *write) {
		if guessed[k] {
			return
		}
		guessed[k] = true
		o := p.objects[k]
		o.existed, o.exists, o.lockedAt, o.version = read > 0, read > 0, read, read
		if w != nil {
			// A step's run and creation time are checked by the UPDATE.
			o.runID, o.createdAt = w.runID, w.createdAt
		}
	}
	for _, r := range group {
		for i := range r.writes {
			guess(r.writes[i].key, r.writes[i].read, &r.writes[i])
		}
		for _, g := range r.guards {
			guess(objectKey{true, g.RunID}, g.Version, nil)
		}
	}
	p.decide(group)
	if p.failed > 0 {
		return nil, errGuess
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	base, err := s.write(ctx, conn, p, false)
	if err != nil {
		return nil, err
	}
	return p.finish(base), nil
}

// lockedGroup runs group in one transaction that first locks every object
// it names with SELECT … FOR UPDATE, in id order (steps, then runs) so
// that committers never wait on each other in a cycle; decides each
// commit against what it finds (and what the commits before it in the
// group did); and then writes those that pass, their events, and COMMIT.
// Two round trips.
func (s *Store) lockedGroup(ctx context.Context, group []*request) ([]result, error) {
	p := newPlan(group)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release() // destroys the connection if a transaction is left open

	var b pgx.Batch
	b.Queue("BEGIN")
	if len(p.stepIDs) > 0 {
		b.Queue(s.q.lockSteps, p.stepIDs).Query(func(rows pgx.Rows) error {
			var id, runID string
			var version, createdAt int64
			_, err := pgx.ForEachRow(rows, []any{&id, &version, &runID, &createdAt}, func() error {
				o := p.objects[objectKey{false, id}]
				o.existed, o.exists, o.lockedAt, o.version, o.runID, o.createdAt = true, true, version, version, runID, createdAt
				return nil
			})
			return err
		})
	}
	if len(p.runIDs) > 0 {
		b.Queue(s.q.lockRuns, p.runIDs).Query(func(rows pgx.Rows) error {
			var id string
			var version int64
			_, err := pgx.ForEachRow(rows, []any{&id, &version}, func() error {
				o := p.objects[objectKey{true, id}]
				o.existed, o.exists, o.lockedAt, o.version = true, true, version, version
				return nil
			})
			return err
		})
	}
	if err := conn.SendBatch(ctx, &b).Close(); err != nil {
		rollback(ctx, conn)
		return nil, err
	}
	p.decide(group)
	if p.passed == 0 {
		rollback(ctx, conn)
		return p.results, nil
	}
	base, err := s.write(ctx, conn, p, true)
	if err != nil {
		return nil, err
	}
	return p.finish(base), nil
}

// write runs the statement that stores what p decided, and COMMIT after
// it if inTx, and returns where the log stood before. Each object goes as
// the group left it: new ones inserted, the others updated at the version
// the group found (or guessed), guarded runs bumped. The log's head is
// locked last, after every row is written, so it is held only for the
// events' insert and the commit.
func (s *Store) write(ctx context.Context, conn *pgxpool.Conn, p *plan, inTx bool) (int64, error) {
	var b pgx.Batch
	var base int64
	b.Queue(s.q.commit, s.writeArgs(p)...).QueryRow(func(row pgx.Row) error {
		var notified *string
		return row.Scan(&base, &notified)
	})
	var tag pgconn.CommandTag
	if inTx {
		b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error {
			tag = ct
			return nil
		})
	}
	err := conn.SendBatch(ctx, &b).Close()
	var pgErr *pgconn.PgError
	switch {
	case inTx && tag.String() == "COMMIT", !inTx && err == nil:
		// COMMIT (or the statement, committing itself) answered: stored,
		// whatever broke after.
		return base, nil
	case err == nil:
		return 0, fmt.Errorf("transaction ended with %q, not COMMIT", tag.String())
	case !errors.As(err, &pgErr) && !pgconn.SafeToRetry(err):
		// The connection broke with no word from the server on the
		// commit, which it may have made.
		return 0, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	default:
		// The server refused a statement, or ended the session, before
		// committing: the transaction is rolled back.
		rollback(ctx, conn)
		return 0, err
	}
}

// writeArgs returns the arguments of the commit statement for p.
func (s *Store) writeArgs(p *plan) []any {
	type stepRows struct {
		ids, runIDs, statuses, data []string
		reads, created, versions    []int64
	}
	type runRows struct {
		ids                      []string
		statuses, data           []*string
		reads, created, versions []int64
		expires                  []*int64
	}
	var stepIns, stepUpd stepRows
	var runIns, runUpd runRows
	for _, id := range p.stepIDs {
		o := p.objects[objectKey{false, id}]
		if !o.dirty {
			continue
		}
		rs := &stepUpd
		if !o.existed {
			rs = &stepIns
		}
		rs.ids, rs.reads, rs.runIDs, rs.created = append(rs.ids, id), append(rs.reads, o.lockedAt), append(rs.runIDs, o.runID), append(rs.created, o.createdAt)
		rs.statuses, rs.versions, rs.data = append(rs.statuses, o.last.status), append(rs.versions, o.version), append(rs.data, o.last.data)
	}
	for _, id := range p.runIDs {
		o := p.objects[objectKey{true, id}]
		if !o.dirty {
			continue
		}
		// A run only guarded keeps its status and data: NULL leaves them.
		var status, data *string
		var expires *int64
		var created int64
		if o.last != nil {
			status, data, expires, created = &o.last.status, &o.last.data, o.last.expiresAt, o.last.createdAt
		}
		rs := &runUpd
		if !o.existed {
			rs = &runIns
		}
		rs.ids, rs.reads, rs.created, rs.versions = append(rs.ids, id), append(rs.reads, o.lockedAt), append(rs.created, created), append(rs.versions, o.version)
		rs.statuses, rs.expires, rs.data = append(rs.statuses, status), append(rs.expires, expires), append(rs.data, data)
	}
	n := len(p.evs)
	types, ats, isRun, ids, versions, data := make([]string, n), make([]int64, n), make([]bool, n), make([]string, n), make([]int64, n), make([]string, n)
	for i, w := range p.evs {
		types[i], ats[i], isRun[i], ids[i], versions[i], data[i] = w.typ, w.at, w.key.run, w.key.id, w.read+1, w.data
	}
	rows := int64(len(stepIns.ids) + len(stepUpd.ids) + len(runIns.ids) + len(runUpd.ids))
	return []any{
		nonNil(stepUpd.ids), nonNil(stepUpd.reads), nonNil(stepUpd.runIDs), nonNil(stepUpd.created), nonNil(stepUpd.statuses), nonNil(stepUpd.versions), nonNil(stepUpd.data),
		nonNil(stepIns.ids), nonNil(stepIns.runIDs), nonNil(stepIns.created), nonNil(stepIns.statuses), nonNil(stepIns.versions), nonNil(stepIns.data),
		nonNil(runUpd.ids), nonNil(runUpd.reads), nonNil(runUpd.versions), nonNil(runUpd.statuses), nonNil(runUpd.expires), nonNil(runUpd.data),
		nonNil(runIns.ids), nonNil(runIns.created), nonNil(runIns.statuses), nonNil(runIns.versions), nonNil(runIns.expires), nonNil(runIns.data),
		rows, int64(n), types, ats, isRun, ids, versions, data, s.channel,
	}
}

// nonNil returns s, or an empty slice for nil: pgx sends nil as a NULL
// array.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// check decides one commit against the objects as the group has them,
// in the order memory.Store checks: each event's version (and a step's
// fixed fields), then the guards.
func check(r *request, objects map[objectKey]*object) error {
	for _, w := range r.writes {
		o := objects[w.key]
		kind, id := w.key.kind(), w.key.id
		switch {
		case w.read == 0 && o.exists:
			return fmt.Errorf("postgres: create %s %s: %w", kind, id, store.ErrAlreadyExists)
		case w.read > 0 && !o.exists:
			return fmt.Errorf("postgres: update %s %s: %w", kind, id, store.ErrNotFound)
		case w.read > 0 && o.version != w.read:
			return fmt.Errorf("postgres: update %s %s at version %d (stored %d): %w", kind, id, w.read, o.version, store.ErrConflict)
		case !w.key.run && w.read > 0 && (o.runID != w.runID || o.createdAt != w.createdAt):
			return fmt.Errorf("postgres: update step %s: %w: run_id and created_at never change", id, store.ErrInvalid)
		}
	}
	for _, g := range r.guards {
		o := objects[objectKey{true, g.RunID}]
		switch {
		case !o.exists:
			return fmt.Errorf("postgres: guard run %s: %w", g.RunID, store.ErrNotFound)
		case o.version != g.Version:
			return fmt.Errorf("postgres: guard run %s at version %d (stored %d): %w", g.RunID, g.Version, o.version, store.ErrConflict)
		}
	}
	return nil
}

// rollback ends a failed transaction. If it cannot, the connection is
// left in the transaction and pgxpool destroys it on release.
func rollback(ctx context.Context, conn *pgxpool.Conn) {
	if conn.Conn().PgConn().TxStatus() != 'I' && !conn.Conn().IsClosed() {
		_, _ = conn.Exec(ctx, "ROLLBACK")
	}
}
