package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/benbjohnson/clock"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
)

// Store is a store.Store and a store.Watcher kept in a PostgreSQL schema.
// Many Stores, in one process or many, may share one schema.
type Store struct {
	pool     *pgxpool.Pool
	connCfg  *pgx.ConnConfig // for the listener's own connection
	opts     options
	q        queries
	channel  string // the LISTEN/NOTIFY channel of the schema
	claimant string // this Store's name in runs.claimed_by

	// mu guards the commit queue and closed. Committers wait on cond for
	// the queue to fill.
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []*request
	closed bool

	committers sync.WaitGroup

	// w is the listener behind Watch.
	w watchState

	// ctx ends the listener; Close cancels it.
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Watcher = (*Store)(nil)
)

// Option configures a Store.
type Option func(*options)

type options struct {
	schema     string
	clock      clock.Clock
	maxGroup   int
	committers int
	claimTTL   time.Duration
	notify     bool
}

// DefaultSchema is the schema a Store keeps its tables in unless told
// otherwise.
const DefaultSchema = "runstep"

// WithSchema keeps the store's tables in schema, created if missing. The
// default is DefaultSchema. Stores that share a schema share everything;
// tests give each test a schema of its own.
func WithSchema(schema string) Option { return func(o *options) { o.schema = schema } }

// WithClock sets the clock the listener behind Watch waits on between
// attempts to reconnect. The default is the system clock.
func WithClock(c clock.Clock) Option { return func(o *options) { o.clock = c } }

// WithMaxGroup sets how many concurrent Commits of this Store may share
// one database transaction (group commit; see the package doc). The
// default is 64; 1 gives every Commit a transaction of its own.
func WithMaxGroup(n int) Option { return func(o *options) { o.maxGroup = n } }

// WithCommitters sets how many commit transactions this Store keeps in
// flight at once. The default is 1: a Store's concurrent Commits then wait
// for one transaction and share the next, which makes for big groups and
// little contention for the log's head. More overlap a group's writes with
// another's turn at the head, which helps when groups are small (see
// WithMaxGroup).
func WithCommitters(n int) Option { return func(o *options) { o.committers = n } }

// WithClaimTTL sets how long a run that DueRuns returned stays claimed for
// this Store: other Stores' DueRuns pass it over until their clock reaches
// the claim's end. It is rounded up to whole seconds, the unit of
// deadlines. The default is one minute; 0 claims nothing, so concurrent
// sweepers all get every due run and only versions decide.
func WithClaimTTL(d time.Duration) Option { return func(o *options) { o.claimTTL = d } }

// WithoutNotify leaves pg_notify out of commits, for PostgreSQL-compatible
// databases that lack it (CockroachDB). Watch then fails: engines fall
// back to polling Events.
func WithoutNotify() Option { return func(o *options) { o.notify = false } }

// maxIdentifier is PostgreSQL's limit on a name, in bytes; longer names
// are cut silently, so two schemas could become one.
const maxIdentifier = 63

// Open connects to the database dsn names (a postgres:// URL or key=value
// string, as pgx reads it, pool settings such as pool_max_conns
// included), creates or migrates the store's schema, and returns the
// store. It returns an error wrapping a *SchemaError (ErrSchemaTooNew) if
// the schema was made by a newer runstep, and a clear error for a DSN pgx
// cannot read or a server it cannot reach or log in to.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := options{schema: DefaultSchema, maxGroup: 64, committers: 1, claimTTL: time.Minute, notify: true}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.schema == "":
		return nil, errors.New("postgres: open: empty schema name")
	case len(o.schema) > maxIdentifier || !storable(o.schema):
		return nil, fmt.Errorf("postgres: open: schema name %q: not a PostgreSQL name of at most %d bytes", o.schema, maxIdentifier)
	case o.maxGroup < 1:
		return nil, fmt.Errorf("postgres: open: group size %d is not positive", o.maxGroup)
	case o.committers < 1:
		return nil, fmt.Errorf("postgres: open: %d committers", o.committers)
	case o.claimTTL < 0:
		return nil, fmt.Errorf("postgres: open: claim TTL %v is negative", o.claimTTL)
	}
	if o.clock == nil {
		o.clock = clock.New()
	}

	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's error quotes the DSN with the password masked.
		return nil, fmt.Errorf("postgres: open: parse DSN: %w", err)
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	// The commit statement takes arrays whose lengths vary with each
	// group, so PostgreSQL's default plan cache plans it afresh on every
	// call, which costs more than running it; its generic plan suits
	// every size. The store's other queries are index lookups whose
	// generic plans are their custom ones. A DSN that sets plan_cache_mode
	// has the last word; a database that lacks it goes without.
	if _, set := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !set {
		cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
			if hasCode(err, codeUndefinedObject) {
				return nil
			}
			return err
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	if err := migrate(ctx, pool, o.schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}

	var id [8]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand)
	s := &Store{
		pool:     pool,
		connCfg:  cfg.ConnConfig.Copy(),
		opts:     o,
		q:        newQueries(o.schema, o.notify),
		channel:  channelName(o.schema),
		claimant: hex.EncodeToString(id[:]),
	}
	s.cond = sync.NewCond(&s.mu)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.w.watchers = make(map[chan struct{}]struct{})
	for range o.committers {
		s.committers.Go(s.commitLoop)
	}
	return s, nil
}

// channelName returns the notification channel of a schema: PostgreSQL
// refuses names over 63 bytes, so a long schema name is shortened with a
// hash to keep channels of different schemas apart.
func channelName(schema string) string {
	name := "runstep." + schema
	if len(name) <= maxIdentifier {
		return name
	}
	h := fnv.New64a()
	h.Write([]byte(schema))
	return fmt.Sprintf("runstep.%s~%016x", schema[:maxIdentifier-len("runstep.~")-16], h.Sum64())
}

// storable reports whether PostgreSQL can hold s as text: valid UTF-8 and
// no NUL. An id that is not can name nothing stored.
func storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// Close stops the committers (commits still queued fail with ErrClosed;
// those in flight finish), ends every watch and closes the pool. It
// returns nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		queued := s.queue
		s.queue = nil
		s.cond.Broadcast()
		s.mu.Unlock()
		for _, r := range queued {
			r.done <- result{err: fmt.Errorf("postgres: commit: %w", ErrClosed)}
		}
		s.committers.Wait()
		s.cancel()
		s.stopWatching()
		s.pool.Close()
	})
	return nil
}

// GetStep implements store.Store.
func (s *Store) GetStep(ctx context.Context, id string) (lifecycle.Step, error) {
	if err := ctx.Err(); err != nil {
		return lifecycle.Step{}, fmt.Errorf("postgres: get step %s: %w", id, err)
	}
	if !storable(id) {
		return lifecycle.Step{}, fmt.Errorf("postgres: get step %q: %w", id, store.ErrNotFound)
	}
	var version int64
	var data []byte
	err := s.pool.QueryRow(ctx, s.q.getStep, id).Scan(&version, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		return lifecycle.Step{}, fmt.Errorf("postgres: get step %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return lifecycle.Step{}, fmt.Errorf("postgres: get step %s: %w", id, mapErr(err))
	}
	step, err := decodeStep(version, data)
	if err != nil {
		return lifecycle.Step{}, fmt.Errorf("postgres: get step %s: %w", id, err)
	}
	return step, nil
}

// GetStepForUpdate implements store.Store: GetStep and the run's deadline
// in one query.
func (s *Store) GetStepForUpdate(ctx context.Context, id string) (lifecycle.Step, store.RunDeadline, error) {
	if err := ctx.Err(); err != nil {
		return lifecycle.Step{}, store.RunDeadline{}, fmt.Errorf("postgres: get step %s: %w", id, err)
	}
	if !storable(id) {
		return lifecycle.Step{}, store.RunDeadline{}, fmt.Errorf("postgres: get step %q: %w", id, store.ErrNotFound)
	}
	var version int64
	var data []byte
	var deadline *int64
	err := s.pool.QueryRow(ctx, s.q.stepForUpdate, id).Scan(&version, &data, &deadline)
	if errors.Is(err, pgx.ErrNoRows) {
		return lifecycle.Step{}, store.RunDeadline{}, fmt.Errorf("postgres: get step %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return lifecycle.Step{}, store.RunDeadline{}, fmt.Errorf("postgres: get step %s: %w", id, mapErr(err))
	}
	step, err := decodeStep(version, data)
	if err != nil {
		return lifecycle.Step{}, store.RunDeadline{}, fmt.Errorf("postgres: get step %s: %w", id, err)
	}
	if deadline == nil {
		return step, store.RunDeadline{}, nil
	}
	return step, store.RunDeadline{At: *deadline, Armed: true}, nil
}

// GetRunForUpdate implements store.Store: a plain GetRun.
func (s *Store) GetRunForUpdate(ctx context.Context, id string) (lifecycle.Run, error) {
	return s.GetRun(ctx, id)
}

// GetRun implements store.Store.
func (s *Store) GetRun(ctx context.Context, id string) (lifecycle.Run, error) {
	if err := ctx.Err(); err != nil {
		return lifecycle.Run{}, fmt.Errorf("postgres: get run %s: %w", id, err)
	}
	if !storable(id) {
		return lifecycle.Run{}, fmt.Errorf("postgres: get run %q: %w", id, store.ErrNotFound)
	}
	var version int64
	var data []byte
	err := s.pool.QueryRow(ctx, s.q.getRun, id).Scan(&version, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		return lifecycle.Run{}, fmt.Errorf("postgres: get run %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return lifecycle.Run{}, fmt.Errorf("postgres: get run %s: %w", id, mapErr(err))
	}
	run, err := decodeRun(version, data)
	if err != nil {
		return lifecycle.Run{}, fmt.Errorf("postgres: get run %s: %w", id, err)
	}
	return run, nil
}

func decodeStep(version int64, data []byte) (lifecycle.Step, error) {
	var step lifecycle.Step
	if err := json.Unmarshal(data, &step); err != nil {
		return lifecycle.Step{}, fmt.Errorf("stored step: %w", err)
	}
	step.Version = version
	return step, nil
}

func decodeRun(version int64, data []byte) (lifecycle.Run, error) {
	var run lifecycle.Run
	if err := json.Unmarshal(data, &run); err != nil {
		return lifecycle.Run{}, fmt.Errorf("stored run: %w", err)
	}
	run.Version = version
	return run, nil
}

// collectSteps reads rows of (version, data) into steps.
func collectSteps(rows pgx.Rows) ([]lifecycle.Step, error) {
	var out []lifecycle.Step
	var version int64
	var data []byte
	_, err := pgx.ForEachRow(rows, []any{&version, &data}, func() error {
		step, err := decodeStep(version, data)
		if err != nil {
			return err
		}
		out = append(out, step)
		return nil
	})
	return out, err
}

// ListSteps implements store.Store.
func (s *Store) ListSteps(ctx context.Context, q store.StepQuery) (store.StepPage, error) {
	if err := ctx.Err(); err != nil {
		return store.StepPage{}, fmt.Errorf("postgres: list steps of run %s: %w", q.RunID, err)
	}
	after, err := s.cursor(ctx, q.RunID, q.After)
	if err != nil {
		return store.StepPage{}, err
	}
	before, err := s.cursor(ctx, q.RunID, q.Before)
	if err != nil {
		return store.StepPage{}, err
	}
	ascending := q.Order != store.OrderDesc
	// Walk away from the cursor the page was asked from, Limit+1 steps at
	// most: the extra one only says whether there are more.
	var sql string
	args := []any{q.RunID, q.Limit + 1}
	backwards := before != nil && after == nil
	switch {
	case backwards:
		// Only Before: the Limit steps just before it, read walking back.
		sql = s.q.listFrom[!ascending]
		args = append(args, before.createdAt, before.id)
	case after == nil:
		sql = s.q.listAll[ascending]
	case before == nil:
		sql = s.q.listFrom[ascending]
		args = append(args, after.createdAt, after.id)
	case ascending && after.less(*before) || !ascending && before.less(*after):
		sql = s.q.listBetween[ascending]
		args = append(args, after.createdAt, after.id, before.createdAt, before.id)
	default:
		// After does not come before Before: nothing lies between them.
		return store.StepPage{Steps: []lifecycle.Step{}}, nil
	}
	if !storable(q.RunID) {
		return store.StepPage{Steps: []lifecycle.Step{}}, nil
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return store.StepPage{}, fmt.Errorf("postgres: list steps of run %s: %w", q.RunID, mapErr(err))
	}
	steps, err := collectSteps(rows)
	if err != nil {
		return store.StepPage{}, fmt.Errorf("postgres: list steps of run %s: %w", q.RunID, mapErr(err))
	}
	page := store.StepPage{HasMore: len(steps) > q.Limit}
	if page.HasMore {
		steps = steps[:q.Limit] // the extra one is the farthest from the cursor
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

// stepKey is a step's place in the list order.
type stepKey struct {
	createdAt int64
	id        string
}

func (k stepKey) less(o stepKey) bool {
	return k.createdAt < o.createdAt || k.createdAt == o.createdAt && k.id < o.id
}

// cursor returns the place of the step id names in the run's list, nil
// for no cursor, and ErrNotFound if the run has no such step.
func (s *Store) cursor(ctx context.Context, runID, id string) (*stepKey, error) {
	if id == "" {
		return nil, nil
	}
	k := stepKey{id: id}
	err := pgx.ErrNoRows
	if storable(id) && storable(runID) {
		err = s.pool.QueryRow(ctx, s.q.cursor, id, runID).Scan(&k.createdAt)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: list steps of run %s: cursor %s: %w", runID, id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: list steps of run %s: cursor %s: %w", runID, id, mapErr(err))
	}
	return &k, nil
}

// StepsInProgress implements store.Store.
func (s *Store) StepsInProgress(ctx context.Context, runID string) ([]lifecycle.Step, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("postgres: steps in progress of run %s: %w", runID, err)
	}
	if !storable(runID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, s.q.inProgress, runID, string(lifecycle.StatusInProgress))
	if err != nil {
		return nil, fmt.Errorf("postgres: steps in progress of run %s: %w", runID, mapErr(err))
	}
	steps, err := collectSteps(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: steps in progress of run %s: %w", runID, mapErr(err))
	}
	return steps, nil
}

// DueRuns implements store.Store. Several engines on several machines
// sweep the same runs, so DueRuns claims what it returns: it locks the
// due runs with FOR UPDATE SKIP LOCKED, passing over those another
// sweeper is claiming or a writer is committing at that instant, and
// marks them claimed by this Store until now plus the claim TTL
// (WithClaimTTL), all in one statement. Other Stores' DueRuns pass a
// claimed run over until their clock reaches the claim's end; this
// Store's see it again (and extend the claim). So DueRuns returns up to
// limit runs that have not ended, whose expires_at is at or before now,
// and that no other Store holds a live claim on, earliest deadline first,
// then by id.
//
// A claim only spares sweepers work: it never decides who expires a run.
// The expiry commits with the run's version like any write, so even two
// sweepers with claims off (or clocks apart) expire a run once.
func (s *Store) DueRuns(ctx context.Context, now int64, limit int) ([]lifecycle.Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("postgres: due runs: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	var rows pgx.Rows
	var err error
	// Whole seconds, rounded up, like the deadlines the claims guard.
	if ttl := int64((s.opts.claimTTL + time.Second - 1) / time.Second); ttl > 0 {
		rows, err = s.pool.Query(ctx, s.q.claimDue, now, limit, s.claimant, now+ttl)
	} else {
		rows, err = s.pool.Query(ctx, s.q.lockDue, now, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: due runs: %w", mapErr(err))
	}
	type due struct {
		at  int64
		run lifecycle.Run
	}
	var found []due
	var at, version int64
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&at, &version, &data}, func() error {
		run, err := decodeRun(version, data)
		if err != nil {
			return err
		}
		found = append(found, due{at, run})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: due runs: %w", mapErr(err))
	}
	// UPDATE … RETURNING keeps no order.
	slices.SortFunc(found, func(a, b due) int {
		if a.at != b.at {
			return cmpInt(a.at, b.at)
		}
		return strings.Compare(a.run.ID, b.run.ID)
	})
	out := make([]lifecycle.Run, len(found))
	for i, d := range found {
		out[i] = d.run
	}
	return out, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// NextDeadline implements store.Store. A run that another Store has
// claimed (see DueRuns) counts at the end of the claim if that is later
// than its deadline: that is when this Store could next expire it. So an
// engine whose peer is expiring a run does not spin on a deadline that has
// passed, and takes the run over if the peer dies holding the claim.
func (s *Store) NextDeadline(ctx context.Context) (int64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, fmt.Errorf("postgres: next deadline: %w", err)
	}
	var next *int64
	if err := s.pool.QueryRow(ctx, s.q.nextDeadline, s.claimant).Scan(&next); err != nil {
		return 0, false, fmt.Errorf("postgres: next deadline: %w", mapErr(err))
	}
	if next == nil {
		return 0, false, nil
	}
	return *next, true, nil
}

// Events implements store.Store.
func (s *Store) Events(ctx context.Context, after int64, limit int) ([]events.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("postgres: events after %d: %w", after, err)
	}
	if limit <= 0 {
		return []events.Event{}, nil
	}
	rows, err := s.pool.Query(ctx, s.q.events, max(after, 0), int64(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: events after %d: %w", after, mapErr(err))
	}
	out := []events.Event{}
	var ev events.Event
	var isRun bool
	var version int64
	var typ string
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&ev.Seq, &typ, &ev.At, &isRun, &version, &data}, func() error {
		ev.Type = events.Type(typ)
		ev.Step, ev.Run = nil, nil
		if isRun {
			run, err := decodeRun(version, data)
			if err != nil {
				return fmt.Errorf("event %d: %w", ev.Seq, err)
			}
			ev.Run = &run
		} else {
			step, err := decodeStep(version, data)
			if err != nil {
				return fmt.Errorf("event %d: %w", ev.Seq, err)
			}
			ev.Step = &step
		}
		out = append(out, ev)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: events after %d: %w", after, mapErr(err))
	}
	return out, nil
}
