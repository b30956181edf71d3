package postgres_test

// Benchmarks against a real server; they skip without RUNSTEP_POSTGRES_DSN.
//
//	RUNSTEP_POSTGRES_DSN='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  go test ./store/postgres/ -run '^$' -bench . -benchtime 40000x
//
// BenchmarkTransitions is engine.Complete of b.N steps from 4 engines,
// each on its own Store (its own pool of 8 connections), 64 goroutines
// per engine: with the default group commit, with two committers per
// Store, and with one commit per transaction (4 committers per Store);
// and, as the floor, the same rows moved by a bare pgx UPDATE each, from
// 4 pools and as many goroutines (no read, no event, no log head). Each
// reports transitions/s.
//
// BenchmarkCommitNotified times a commit until another Store's Watch has
// seen it, against BenchmarkCommit alone; BenchmarkPollEmpty is one poll
// of the log that finds nothing, what polling costs per interval instead.

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/postgres"
)

const (
	benchEngines   = 4
	benchPerEngine = 64 // goroutines per engine: an orchestrator's steps in flight
)

// benchDSN is the test DSN with a pool big enough for the goroutines,
// unless it sets one.
func benchDSN(b *testing.B) string {
	u, err := url.Parse(dsn(b))
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	if q.Get("pool_max_conns") == "" {
		q.Set("pool_max_conns", "8")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// seedSteps creates n steps in progress, 100 to a run, in big commits,
// and returns their ids.
func seedSteps(b *testing.B, st store.Store, n int) []string {
	b.Helper()
	ids := make([]string, n)
	var batch []events.Event
	flush := func() {
		if _, err := st.Commit(context.Background(), store.Events(batch...)); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := range ids {
		ids[i] = fmt.Sprintf("step_%08d", i)
		step := testStep(ids[i], int64(i%1000))
		step.RunID = fmt.Sprintf("run_%06d", i/100)
		batch = append(batch, events.Event{Type: events.TypeStepCreated, At: step.CreatedAt, Step: &step})
		if len(batch) == 500 {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	return ids
}

// spread runs work(g, i) for i in [0, n) on benchEngines*benchPerEngine
// goroutines, goroutine g serving engine g%benchEngines.
func spread(b *testing.B, n int, work func(g, i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := range benchEngines * benchPerEngine {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := work(g, i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkTransitions(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []postgres.Option
	}{
		{"Engine", nil},
		{"Engine2Committers", []postgres.Option{postgres.WithCommitters(2)}},
		{"EngineUngrouped", []postgres.Option{postgres.WithMaxGroup(1), postgres.WithCommitters(4)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			schema := freshSchema(b)
			mock := clock.NewMock()
			mock.Set(time.Unix(1761861600, 0))
			engines := make([]*engine.Engine, benchEngines)
			var ids []string
			for i := range engines {
				st, err := postgres.Open(context.Background(), benchDSN(b), append(bc.opts, postgres.WithSchema(schema))...)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { st.Close() })
				if engines[i], err = engine.New(st, engine.WithClock(mock)); err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					ids = seedSteps(b, st, b.N)
				}
			}
			b.ResetTimer()
			spread(b, b.N, func(g, i int) error {
				_, err := engines[g%benchEngines].Complete(context.Background(), ids[i])
				return err
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
		})
	}

	b.Run("BareUpdate", func(b *testing.B) {
		schema := freshSchema(b)
		st := open(b, schema)
		ids := seedSteps(b, st, b.N)
		st.Close()
		// Each row's completed state, made before the clock starts.
		data := make([]string, len(ids))
		for i, id := range ids {
			step := testStep(id, int64(i%1000))
			step.RunID = fmt.Sprintf("run_%06d", i/100)
			done, err := step.Apply(lifecycle.Change{Trigger: lifecycle.TriggerComplete, At: time.Unix(1761861600, 0)})
			if err != nil {
				b.Fatal(err)
			}
			j, err := done.MarshalJSON()
			if err != nil {
				b.Fatal(err)
			}
			data[i] = string(j)
		}
		pools := make([]*pgxpool.Pool, benchEngines)
		for i := range pools {
			var err error
			if pools[i], err = pgxpool.New(context.Background(), benchDSN(b)); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(pools[i].Close)
		}
		update := `UPDATE ` + pgx.Identifier{schema, "steps"}.Sanitize() +
			` SET status = 'completed', version = version + 1, data = $2 WHERE id = $1 AND version = 1`
		b.ResetTimer()
		spread(b, b.N, func(g, i int) error {
			ct, err := pools[g%benchEngines].Exec(context.Background(), update, ids[i], data[i])
			if err == nil && ct.RowsAffected() != 1 {
				err = fmt.Errorf("updated %d rows", ct.RowsAffected())
			}
			return err
		})
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
	})
}

// BenchmarkCommit is one commit at a time, from one goroutine: the
// latency of a commit.
func BenchmarkCommit(b *testing.B) {
	st := open(b, freshSchema(b))
	defer st.Close()
	b.ResetTimer()
	for i := range b.N {
		step := testStep(fmt.Sprintf("step_%08d", i), 0)
		if _, err := st.Commit(context.Background(), store.Events(events.Event{Type: events.TypeStepCreated, At: step.CreatedAt, Step: &step})); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommitNotified is BenchmarkCommit plus waiting until another
// Store's Watch has seen it: the difference is the notification's
// latency.
func BenchmarkCommitNotified(b *testing.B) {
	schema := freshSchema(b)
	writer, watcher := open(b, schema), open(b, schema)
	defer writer.Close()
	defer watcher.Close()
	ch, err := watcher.Watch(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		step := testStep(fmt.Sprintf("step_%08d", i), 0)
		if _, err := writer.Commit(context.Background(), store.Events(events.Event{Type: events.TypeStepCreated, At: step.CreatedAt, Step: &step})); err != nil {
			b.Fatal(err)
		}
		<-ch
	}
}

// BenchmarkPollEmpty is one poll of the log that finds nothing new: what
// an engine pays per poll interval to learn of others' commits without
// Watch.
func BenchmarkPollEmpty(b *testing.B) {
	st := open(b, freshSchema(b))
	defer st.Close()
	seedSteps(b, st, 1000)
	b.ResetTimer()
	for range b.N {
		evs, err := st.Events(context.Background(), 1000, 256)
		if err != nil || len(evs) != 0 {
			b.Fatal(err, len(evs))
		}
	}
}
