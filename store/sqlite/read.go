package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
)

// readStmts are the read pool's statements.
type readStmts struct {
	getStep, getRun, stepKey *sql.Stmt
	stepForUpdate            *sql.Stmt
	runDeadline              *sql.Stmt
	inProgress               *sql.Stmt
	due, nextDeadline        *sql.Stmt
	events                   *sql.Stmt
	// pages[order][bounds] lists a run's steps; see pageQuery.
	pages [2][4]*sql.Stmt
}

// The bounds of a page query.
const (
	boundNone   = 0
	boundAfter  = 1 // key beyond the first cursor
	boundBefore = 2 // key short of the second cursor
)

// pageQuery returns the query of a page of a run's steps walked in
// ascending (or descending) order of (created_at, id), with the given
// bounds. Its parameters are the run id, then the first cursor's
// created_at and id (with boundAfter), then the second's (with
// boundBefore), then the limit. Ids compare as bytes: the BINARY
// collation.
func pageQuery(ascending bool, bounds int) string {
	gt, lt, dir := ">", "<", "ASC"
	if !ascending {
		gt, lt, dir = "<", ">", "DESC"
	}
	var q strings.Builder
	q.WriteString("SELECT version, data FROM steps WHERE run_id = ?")
	if bounds&boundAfter != 0 {
		fmt.Fprintf(&q, " AND (created_at, id) %s (?, ?)", gt)
	}
	if bounds&boundBefore != 0 {
		fmt.Fprintf(&q, " AND (created_at, id) %s (?, ?)", lt)
	}
	fmt.Fprintf(&q, " ORDER BY created_at %s, id %s LIMIT ?", dir, dir)
	return q.String()
}

func (r *readStmts) prepare(ctx context.Context, db *sql.DB) error {
	prep := func(dst **sql.Stmt, query string) error {
		var err error
		if *dst, err = db.PrepareContext(ctx, query); err != nil {
			return fmt.Errorf("prepare %q: %w", query, classify(err))
		}
		return nil
	}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&r.getStep, "SELECT version, data FROM steps WHERE id = ?"},
		// runs.expires_at is set only while the run can expire.
		{&r.stepForUpdate, "SELECT s.version, s.data, r.expires_at FROM steps s LEFT JOIN runs r ON r.id = s.run_id WHERE s.id = ?"},
		{&r.runDeadline, "SELECT expires_at FROM runs WHERE id = ?"},
		{&r.getRun, "SELECT version, data FROM runs WHERE id = ?"},
		{&r.stepKey, "SELECT created_at FROM steps WHERE id = ? AND run_id = ?"},
		{&r.inProgress, "SELECT version, data FROM steps WHERE run_id = ? AND status = 'in_progress' ORDER BY created_at, id"},
		{&r.due, "SELECT version, data FROM runs WHERE expires_at <= ? ORDER BY expires_at, id LIMIT ?"},
		{&r.nextDeadline, "SELECT min(expires_at) FROM runs WHERE expires_at IS NOT NULL"},
		{&r.events, "SELECT seq, type, at, object, version, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?"},
	} {
		if err := prep(p.stmt, p.query); err != nil {
			return err
		}
	}
	for order := range r.pages {
		for bounds := range r.pages[order] {
			if err := prep(&r.pages[order][bounds], pageQuery(order == 0, bounds)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *readStmts) close() error {
	all := []*sql.Stmt{r.getStep, r.stepForUpdate, r.runDeadline, r.getRun, r.stepKey, r.inProgress, r.due, r.nextDeadline, r.events}
	for _, p := range r.pages {
		all = append(all, p[:]...)
	}
	var errs []error
	for _, st := range all {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

func decodeStep(version int64, data []byte) (lifecycle.Step, error) {
	var step lifecycle.Step
	if err := step.UnmarshalJSON(data); err != nil {
		return lifecycle.Step{}, err
	}
	step.Version = version
	return step, nil
}

func decodeRun(version int64, data []byte) (lifecycle.Run, error) {
	var run lifecycle.Run
	if err := run.UnmarshalJSON(data); err != nil {
		return lifecycle.Run{}, err
	}
	run.Version = version
	return run, nil
}

// GetStep implements store.Store.
func (s *Store) GetStep(ctx context.Context, id string) (lifecycle.Step, error) {
	if err := s.begin(ctx, "get step "+id); err != nil {
		return lifecycle.Step{}, err
	}
	var version int64
	var data []byte
	err := s.r.getStep.QueryRowContext(ctx, id).Scan(&version, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return lifecycle.Step{}, fmt.Errorf("sqlite: get step %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return lifecycle.Step{}, fmt.Errorf("sqlite: get step %s: %w", id, err)
	}
	step, err := decodeStep(version, data)
	if err != nil {
		return lifecycle.Step{}, fmt.Errorf("sqlite: get step %s: decode: %w", id, err)
	}
	return step, nil
}

// GetStepForUpdate implements store.Store. A cached step comes with its
// cached run's deadline, or the one the file holds; a step not cached is
// read with its run's deadline in one query.
func (s *Store) GetStepForUpdate(ctx context.Context, id string) (lifecycle.Step, store.RunDeadline, error) {
	if err := s.begin(ctx, "get step "+id); err != nil {
		return lifecycle.Step{}, store.RunDeadline{}, err
	}
	if step, deadline, known, ok := s.cache.step(id); ok {
		if known {
			return step, deadline, nil
		}
		var at sql.NullInt64
		err := s.r.runDeadline.QueryRowContext(ctx, step.RunID).Scan(&at)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return lifecycle.Step{}, store.RunDeadline{}, fmt.Errorf("sqlite: get step %s: deadline of run %s: %w", id, step.RunID, err)
		}
		return step, store.RunDeadline{At: at.Int64, Armed: at.Valid}, nil
	}
	var version int64
	var data []byte
	var deadline sql.NullInt64
	err := s.r.stepForUpdate.QueryRowContext(ctx, id).Scan(&version, &data, &deadline)
	if errors.Is(err, sql.ErrNoRows) {
		return lifecycle.Step{}, store.RunDeadline{}, fmt.Errorf("sqlite: get step %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return lifecycle.Step{}, store.RunDeadline{}, fmt.Errorf("sqlite: get step %s: %w", id, err)
	}
	step, err := decodeStep(version, data)
	if err != nil {
		return lifecycle.Step{}, store.RunDeadline{}, fmt.Errorf("sqlite: get step %s: decode: %w", id, err)
	}
	return step, store.RunDeadline{At: deadline.Int64, Armed: deadline.Valid}, nil
}

// GetRunForUpdate implements store.Store: the cached run, or GetRun.
func (s *Store) GetRunForUpdate(ctx context.Context, id string) (lifecycle.Run, error) {
	if err := s.begin(ctx, "get run "+id); err != nil {
		return lifecycle.Run{}, err
	}
	if run, ok := s.cache.run(id); ok {
		return run, nil
	}
	return s.GetRun(ctx, id)
}

// GetRun implements store.Store.
func (s *Store) GetRun(ctx context.Context, id string) (lifecycle.Run, error) {
	if err := s.begin(ctx, "get run "+id); err != nil {
		return lifecycle.Run{}, err
	}
	var version int64
	var data []byte
	err := s.r.getRun.QueryRowContext(ctx, id).Scan(&version, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return lifecycle.Run{}, fmt.Errorf("sqlite: get run %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return lifecycle.Run{}, fmt.Errorf("sqlite: get run %s: %w", id, err)
	}
	run, err := decodeRun(version, data)
	if err != nil {
		return lifecycle.Run{}, fmt.Errorf("sqlite: get run %s: decode: %w", id, err)
	}
	return run, nil
}

// querySteps returns the steps the rows of st with args hold, in order.
func querySteps(ctx context.Context, st *sql.Stmt, args ...any) ([]lifecycle.Step, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []lifecycle.Step
	for rows.Next() {
		var version int64
		var data sql.RawBytes
		if err := rows.Scan(&version, &data); err != nil {
			return nil, err
		}
		step, err := decodeStep(version, data)
		if err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		out = append(out, step)
	}
	return out, rows.Err()
}

// stepKey is where a step sits in a run's list.
type stepKey struct {
	createdAt int64
	id        string
}

// less reports whether a comes before b in ascending order.
func (a stepKey) less(b stepKey) bool {
	return a.createdAt < b.createdAt || a.createdAt == b.createdAt && a.id < b.id
}

// ListSteps implements store.Store.
func (s *Store) ListSteps(ctx context.Context, q store.StepQuery) (store.StepPage, error) {
	op := "list steps of run " + q.RunID
	if err := s.begin(ctx, op); err != nil {
		return store.StepPage{}, err
	}
	// A step's run and created_at never change and steps are never
	// deleted, so the cursors need not be read in the page's snapshot.
	cursor := func(id string) (*stepKey, error) {
		if id == "" {
			return nil, nil
		}
		k := stepKey{id: id}
		err := s.r.stepKey.QueryRowContext(ctx, id, q.RunID).Scan(&k.createdAt)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("sqlite: %s: cursor %s: %w", op, id, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: %s: cursor %s: %w", op, id, err)
		}
		return &k, nil
	}
	after, err := cursor(q.After)
	if err != nil {
		return store.StepPage{}, err
	}
	before, err := cursor(q.Before)
	if err != nil {
		return store.StepPage{}, err
	}

	ascending := q.Order != store.OrderDesc
	order := 0
	if !ascending {
		order = 1
	}
	// Walk away from the cursor the page was asked from, Limit+1 steps at
	// most: the extra one only says whether there are more.
	args := []any{q.RunID}
	var bounds int
	backwards := before != nil && after == nil
	switch {
	case backwards:
		// Only Before: the Limit steps just before it, walked in the
		// other order from it, and turned round.
		order = 1 - order
		bounds = boundAfter
		args = append(args, before.createdAt, before.id)
	case after != nil && before != nil:
		if ascending && !after.less(*before) || !ascending && !before.less(*after) {
			// Nothing lies between them.
			return store.StepPage{Steps: []lifecycle.Step{}}, nil
		}
		bounds = boundAfter | boundBefore
		args = append(args, after.createdAt, after.id, before.createdAt, before.id)
	case after != nil:
		bounds = boundAfter
		args = append(args, after.createdAt, after.id)
	}
	args = append(args, q.Limit+1)
	steps, err := querySteps(ctx, s.r.pages[order][bounds], args...)
	if err != nil {
		return store.StepPage{}, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	page := store.StepPage{HasMore: len(steps) > q.Limit}
	if page.HasMore {
		steps = steps[:max(q.Limit, 0)] // the extra one is the farthest from the cursor
	}
	if backwards {
		slices.Reverse(steps)
	}
	if steps == nil {
		steps = []lifecycle.Step{}
	}
	page.Steps = steps
	return page, nil
}

// StepsInProgress implements store.Store.
func (s *Store) StepsInProgress(ctx context.Context, runID string) ([]lifecycle.Step, error) {
	op := "steps in progress of run " + runID
	if err := s.begin(ctx, op); err != nil {
		return nil, err
	}
	steps, err := querySteps(ctx, s.r.inProgress, runID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return steps, nil
}

// DueRuns implements store.Store.
func (s *Store) DueRuns(ctx context.Context, now int64, limit int) ([]lifecycle.Run, error) {
	if err := s.begin(ctx, "due runs"); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil // SQLite reads a negative LIMIT as none
	}
	rows, err := s.r.due.QueryContext(ctx, now, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due runs: %w", err)
	}
	defer rows.Close()
	var out []lifecycle.Run
	for rows.Next() {
		var version int64
		var data sql.RawBytes
		if err := rows.Scan(&version, &data); err != nil {
			return nil, fmt.Errorf("sqlite: due runs: %w", err)
		}
		run, err := decodeRun(version, data)
		if err != nil {
			return nil, fmt.Errorf("sqlite: due runs: decode: %w", err)
		}
		out = append(out, run)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: due runs: %w", err)
	}
	return out, nil
}

// NextDeadline implements store.Store.
func (s *Store) NextDeadline(ctx context.Context) (int64, bool, error) {
	if err := s.begin(ctx, "next deadline"); err != nil {
		return 0, false, err
	}
	var next sql.NullInt64
	if err := s.r.nextDeadline.QueryRowContext(ctx).Scan(&next); err != nil {
		return 0, false, fmt.Errorf("sqlite: next deadline: %w", err)
	}
	return next.Int64, next.Valid, nil
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, after int64, limit int) ([]events.Event, error) {
	if err := s.begin(ctx, "events"); err != nil {
		return nil, err
	}
	out := []events.Event{}
	if limit <= 0 {
		return out, nil
	}
	rows, err := s.r.events.QueryContext(ctx, max(after, 0), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: events after %d: %w", after, err)
	}
	defer rows.Close()
	for rows.Next() {
		var ev events.Event
		var version int64
		var object string
		var data sql.RawBytes
		if err := rows.Scan(&ev.Seq, &ev.Type, &ev.At, &object, &version, &data); err != nil {
			return nil, fmt.Errorf("sqlite: events after %d: %w", after, err)
		}
		if object == "step" {
			step, err := decodeStep(version, data)
			if err != nil {
				return nil, fmt.Errorf("sqlite: event %d: decode: %w", ev.Seq, err)
			}
			ev.Step = &step
		} else {
			run, err := decodeRun(version, data)
			if err != nil {
				return nil, fmt.Errorf("sqlite: event %d: decode: %w", ev.Seq, err)
			}
			ev.Run = &run
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: events after %d: %w", after, err)
	}
	return out, nil
}
