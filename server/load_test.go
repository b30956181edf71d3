package server_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/server"
)

var (
	fullLoad   = flag.Bool("load.full", false, "run TestSSELoad at full size: 200 clients while 10,000 step events commit")
	loadEvents = flag.Int("load.events", 0, "if set, how many step events TestSSELoad commits")
)

// Many clients follow one run while it commits thousands of events: every
// client gets every event, in order, then done, and memory stays bounded.
// go test -run TestSSELoad -load.full -v ./server/ runs it at full size.
func TestSSELoad(t *testing.T) {
	clients, stepEvents := 20, 500
	if *fullLoad {
		clients, stepEvents = 200, 10_000
	}
	if *loadEvents > 0 {
		stepEvents = *loadEvents
	}
	r := sseLoad(t, clients, stepEvents)
	t.Log(r)
}

// BenchmarkSSELoad is TestSSELoad at full size, once per iteration.
func BenchmarkSSELoad(b *testing.B) {
	for b.Loop() {
		r := sseLoad(b, 200, 10_000)
		b.ReportMetric(float64(r.peakHeap)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(r.events*r.clients)/r.elapsed.Seconds(), "msgs/s")
		b.Log(r)
	}
}

type loadReport struct {
	clients, events     int
	elapsed             time.Duration
	baseHeap, peakHeap  uint64 // HeapInuse: before the clients, and the most seen
	midLive             uint64 // HeapInuse right after a GC halfway through: what is live
	endHeap             uint64 // after the clients left, the store full
	peakSys             uint64
	peakGoroutines      int
	totalAlloc, numGC   uint64
	slowestClientBehind int64
}

func (r loadReport) String() string {
	mib := func(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	return fmt.Sprintf("%d clients × %d events (%d messages) in %v: HeapInuse %s before, peak %s (live after a GC halfway: %s), %s after the clients left; peak Sys %s; peak goroutines %d; TotalAlloc %s; %d GCs; slowest client %d events behind the head",
		r.clients, r.events, r.clients*r.events, r.elapsed.Round(time.Millisecond),
		mib(r.baseHeap), mib(r.peakHeap), mib(r.midLive), mib(r.endHeap), mib(r.peakSys), r.peakGoroutines,
		mib(r.totalAlloc), r.numGC, r.slowestClientBehind)
}

func sseLoad(tb testing.TB, clients, stepEvents int) loadReport {
	f := newFixture(tb, nil, server.WithMaxStreams(clients))
	ctx := context.Background()
	f.startRun(tb, "run_1", threadID)
	total := stepEvents + 3 // with the run's created, in_progress and completed

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := loadReport{clients: clients, events: total, baseHeap: before.HeapInuse}

	begin := time.Now()
	var ready, finished sync.WaitGroup
	ready.Add(clients)
	finished.Add(clients)
	errs := make(chan error, clients)
	// seen[i] is the last seq client i has read.
	seen := make([]int64, clients)
	var seenMu sync.Mutex
	for i := range clients {
		go func() {
			defer finished.Done()
			err := follow(f, func(seq int64) {
				seenMu.Lock()
				seen[i] = seq
				seenMu.Unlock()
				if seq == 2 {
					ready.Done()
				}
			}, total)
			if err != nil {
				seenMu.Lock()
				if seen[i] < 2 {
					ready.Done()
				}
				seenMu.Unlock()
			}
			errs <- err
		}()
	}
	ready.Wait()

	committed := 0 // steps created and completed
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		r.peakHeap = max(r.peakHeap, m.HeapInuse)
		r.peakSys = max(r.peakSys, m.Sys)
		r.peakGoroutines = max(r.peakGoroutines, runtime.NumGoroutine())
		seenMu.Lock()
		head := int64(2 + 2*committed)
		for _, s := range seen {
			r.slowestClientBehind = max(r.slowestClientBehind, head-s)
		}
		seenMu.Unlock()
	}
	for i := 0; i < stepEvents/2; i++ {
		step := f.toolStep(tb, "run_1")
		_, err := f.eng.Complete(ctx, step.ID)
		require.NoError(tb, err)
		committed = i + 1
		if (i+1)%250 == 0 {
			sample()
		}
		if i+1 == stepEvents/4 {
			var m runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m)
			r.midLive = m.HeapInuse
		}
	}
	_, err := f.eng.CompleteRun(ctx, "run_1")
	require.NoError(tb, err)
	sample()
	finished.Wait()
	r.elapsed = time.Since(begin)
	close(errs)
	for err := range errs {
		require.NoError(tb, err)
	}

	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	r.endHeap = after.HeapInuse
	r.totalAlloc = after.TotalAlloc - before.TotalAlloc
	r.numGC = uint64(after.NumGC - before.NumGC)
	return r
}

// follow reads one run's stream as a client would, and checks that it gets
// every one of the total events, in order, then done.
func follow(f *fixture, onEvent func(seq int64), total int) error {
	resp, err := f.ts.Client().Get(f.ts.URL + "/v1/threads/thread_1/runs/run_1/events")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	// The smallest buffer SSEReader takes as given (64 KiB): its default,
	// 256 KiB for each of hundreds of clients, would outweigh the server.
	r := events.NewSSEReader(bufio.NewReaderSize(resp.Body, 64<<10), events.ReadOptions{MaxLine: 64 << 10})
	var seq int64
	for {
		m, err := r.Read()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("the stream ended after %d events, without done", seq)
		}
		if err != nil {
			return err
		}
		if m.Event == events.SSEDone {
			if seq != int64(total) {
				return fmt.Errorf("done after %d events, want %d", seq, total)
			}
			if _, err := r.Read(); !errors.Is(err, io.EOF) {
				return fmt.Errorf("after done: %v, want the end", err)
			}
			return nil
		}
		got, err := strconv.ParseInt(m.ID, 10, 64)
		if err != nil || got != seq+1 {
			return fmt.Errorf("event id %q after %d", m.ID, seq)
		}
		seq = got
		onEvent(seq)
	}
}
