// Package sqlite is the embedded durable Store: one SQLite file, written
// through the pure-Go driver modernc.org/sqlite (no cgo), that keeps every
// committed transition across a crash of the process.
//
// # Durability
//
// The file is in WAL mode. By default synchronous is FULL: a commit returns
// only after its WAL frames are fsynced, so a transition reported committed
// survives a crash of the process (SIGKILL) and of the machine (power loss).
// WithSync(SyncNormal) skips that fsync; WAL keeps every commit atomic, and
// a commit survives the death of the process (the written WAL is in the
// kernel's page cache), but the last commits before a power loss or kernel
// panic may be lost, never half-applied.
//
// # Group commit
//
// Every Commit is handed to one writer goroutine. It takes a batch, begins
// a SQLite transaction, and writes that batch and every batch queued
// behind it, and those queued while it writes, up to WithMaxGroup (default
// 256) batches; then it commits them: one fsync for the group. It never
// waits for more batches to arrive (there is no timer), so a lone writer
// pays one transaction per commit and no added latency, while many
// concurrent writers share their transactions. It only yields the
// processor before it commits, while that brings more batches: the callers
// of the last group, answered just before, then join this one rather than
// the next, and concurrent callers do not split into two halves whose
// groups alternate, each paying an fsync. Each batch is checked against
// the state the batches before it in the group left, and one of several
// changes runs under its own SAVEPOINT, so each caller learns its own
// outcome: a batch that conflicts is rolled back alone and the others
// commit. (A batch whose write fails for another reason, such as a full
// disk, rolls back the whole transaction; it gets its error and the rest of
// the group is tried again without it.)
//
// # Reads
//
// Reads go through a pool of read-only connections (WithReaders); WAL lets
// them run while the writer writes, and each read sees whole commits only.
//
// The reads for update (GetStepForUpdate, GetRunForUpdate) answer from
// memory when they can: the store keeps (WithCache) the steps and runs it
// committed that can still change, as committed. Another process's commit
// is missed there, but the reader's own commit then conflicts, and a batch
// that fails makes the store forget its objects, so the engine's retry
// reads the file. Every other read reads the file.
//
// # Files
//
// The schema is versioned with PRAGMA user_version and migrated on Open; the
// file is marked as runstep's with PRAGMA application_id. Open refuses a file
// that is not a SQLite database, or is another program's (ErrForeign), and
// one written by a newer runstep (ErrSchemaTooNew), and changes nothing in
// such files. Several processes may open one file: SQLite's locks serialize
// their writers. But only Postgres tells an engine when another process
// commits (store.Watcher); SQLite is meant for one engine process.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/runstep/runstep/store"
)

// The errors of this package, besides the store's sentinels.
var (
	// ErrSchemaTooNew is a file whose schema version is newer than this
	// code knows: a newer runstep wrote it. Open wraps it with both
	// versions.
	ErrSchemaTooNew = errors.New("sqlite: schema too new")
	// ErrForeign is a file that is not a runstep database: not SQLite at
	// all, corrupt, or another program's SQLite database.
	ErrForeign = errors.New("sqlite: not a runstep database")
	// ErrClosed is a call on a closed store.
	ErrClosed = errors.New("sqlite: store closed")
)

// Sync is how hard a commit waits for the disk.
type Sync string

// The sync levels: SQLite's synchronous pragma, in WAL mode.
const (
	// SyncFull fsyncs the WAL at every commit: a commit survives power
	// loss.
	SyncFull Sync = "full"
	// SyncNormal fsyncs only at checkpoints: a commit survives the death
	// of the process, but the last ones may be lost with the machine.
	SyncNormal Sync = "normal"
)

// Option configures Open.
type Option func(*options)

type options struct {
	sync        Sync
	busyTimeout time.Duration
	maxGroup    int
	readers     int
	cache       int
}

// WithSync sets the sync level. The default is SyncFull.
func WithSync(s Sync) Option { return func(o *options) { o.sync = s } }

// WithBusyTimeout sets how long a statement waits for a lock another
// process holds before it fails. The default is 5 seconds.
func WithBusyTimeout(d time.Duration) Option { return func(o *options) { o.busyTimeout = d } }

// WithMaxGroup sets how many batches one transaction may commit at most
// (see Group commit in the package comment). The default is 256; 1 turns
// group commit off.
func WithMaxGroup(n int) Option { return func(o *options) { o.maxGroup = n } }

// WithReaders sets the size of the read pool. The default is GOMAXPROCS,
// at least 4.
func WithReaders(n int) Option { return func(o *options) { o.readers = n } }

// WithCache sets how many steps and runs, together, the store keeps in
// memory for the for-update reads (see Reads in the package comment): a
// step with one tool call and a little metadata takes about 800 bytes, so
// the default, 65536, holds at most some 50 MB. When the cache is full, a
// new entry evicts an arbitrary step (a run only if no step is left).
// 0 turns the cache off.
func WithCache(n int) Option { return func(o *options) { o.cache = n } }

// Store is a store.Store in one SQLite file. Open it with Open.
type Store struct {
	path string

	// The writer: one connection, used only by the writer goroutine once
	// Open returns.
	wdb   *sql.DB
	wconn *sql.Conn
	w     writeStmts

	// The read pool.
	rdb *sql.DB
	r   readStmts

	cache *cache

	maxGroup   int
	queue      chan *request
	closing    chan struct{} // closed by Close: the writer stops
	writerDone chan struct{} // closed by the writer when it has stopped

	closed    atomic.Bool
	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open opens the runstep database at path, creating the file if it does not
// exist and migrating its schema to the current version. It returns an error
// wrapping ErrForeign for a file that is not a runstep database and
// ErrSchemaTooNew for one a newer runstep wrote; such files are left as they
// were. ":memory:" is refused: every pooled connection would open its own
// empty database.
func Open(path string, opts ...Option) (*Store, error) {
	o := options{sync: SyncFull, busyTimeout: 5 * time.Second, maxGroup: 256, readers: max(4, runtime.GOMAXPROCS(0)), cache: 1 << 16}
	for _, opt := range opts {
		opt(&o)
	}
	var syncPragma string
	switch o.sync {
	case SyncFull:
		syncPragma = "FULL"
	case SyncNormal:
		syncPragma = "NORMAL"
	default:
		return nil, fmt.Errorf("sqlite: open %s: unknown sync level %q: want full or normal", path, o.sync)
	}
	switch {
	case path == "":
		return nil, errors.New("sqlite: open: empty path")
	case path == ":memory:":
		return nil, fmt.Errorf("sqlite: open %s: want a file path (an in-memory database would be one per pooled connection)", path)
	case o.busyTimeout < 0:
		return nil, fmt.Errorf("sqlite: open %s: negative busy timeout %v", path, o.busyTimeout)
	case o.maxGroup < 1:
		return nil, fmt.Errorf("sqlite: open %s: max group %d: want at least 1", path, o.maxGroup)
	case o.readers < 1:
		return nil, fmt.Errorf("sqlite: open %s: %d readers: want at least 1", path, o.readers)
	case o.cache < 0:
		return nil, fmt.Errorf("sqlite: open %s: cache of %d objects: want 0 or more", path, o.cache)
	}

	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s := &Store{
		path:       abs,
		maxGroup:   o.maxGroup,
		queue:      make(chan *request, o.maxGroup),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
		cache:      newCache(o.cache),
	}
	if err := s.open(o, syncPragma); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), s.closeDBs())
	}
	go s.write()
	return s, nil
}

// dsn returns the driver's name for the file with the given connection
// settings. None of them writes to the file, so a foreign file is left
// untouched until it is known to be ours.
func dsn(path string, params url.Values) string {
	// A file: URI of the absolute path, so that a '?' or '#' in the path is
	// escaped rather than read as the start of the parameters.
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + params.Encode()
}

func (s *Store) open(o options, syncPragma string) error {
	ctx := context.Background()
	common := url.Values{
		"_busy_timeout": {fmt.Sprint(o.busyTimeout.Milliseconds())},
		// Savepoints keep their journal in memory, not in a temporary file.
		"_pragma": {"temp_store(MEMORY)"},
	}

	wparams := cloneValues(common)
	wparams.Set("_synchronous", syncPragma)
	wconnector, err := msqlite.NewConnector(dsn(s.path, wparams))
	if err != nil {
		return err
	}
	s.wdb = sql.OpenDB(wconnector)
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	if s.wconn, err = s.wdb.Conn(ctx); err != nil {
		return classify(err)
	}
	if err := migrate(ctx, s.wconn); err != nil {
		return err
	}
	if err := s.w.prepare(ctx, s.wconn); err != nil {
		return err
	}

	rparams := cloneValues(common)
	rparams.Set("_query_only", "1")
	rconnector, err := msqlite.NewConnector(dsn(s.path, rparams))
	if err != nil {
		return err
	}
	s.rdb = sql.OpenDB(rconnector)
	s.rdb.SetMaxOpenConns(o.readers)
	s.rdb.SetMaxIdleConns(o.readers)
	s.rdb.SetConnMaxLifetime(0)
	s.rdb.SetConnMaxIdleTime(0)
	return s.r.prepare(ctx, s.rdb)
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// Close waits for the commit in progress, fails the commits still queued
// with ErrClosed (nothing of them is written), and closes the file. Later
// calls return nil; every other method returns ErrClosed once Close has
// begun.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.closing)
		<-s.writerDone
		if err = s.closeDBs(); err != nil {
			err = fmt.Errorf("sqlite: close %s: %w", s.path, err)
		}
	})
	return err
}

// closeDBs releases the connections; it is safe on a half-opened store.
func (s *Store) closeDBs() error {
	var errs []error
	errs = append(errs, s.w.close(), s.r.close())
	if s.wconn != nil {
		errs = append(errs, s.wconn.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	return errors.Join(errs...)
}

// begin checks what every method checks first: the store is open and ctx
// is not done.
func (s *Store) begin(ctx context.Context, op string) error {
	if s.closed.Load() {
		return fmt.Errorf("sqlite: %s: %w", op, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return nil
}

// code returns the SQLite result code (extended) of err, or 0 if err does
// not come from SQLite.
func code(err error) int {
	var se *msqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// classify adds ErrForeign to an error that says the file is not a
// database or is corrupt.
func classify(err error) error {
	switch code(err) & 0xff { // the primary code
	case sqlite3.SQLITE_NOTADB:
		return fmt.Errorf("%w: not a SQLite database: %w", ErrForeign, err)
	case sqlite3.SQLITE_CORRUPT:
		return fmt.Errorf("%w: corrupt: %w", ErrForeign, err)
	}
	return err
}
