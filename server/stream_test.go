package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/server"
)

// A run's events arrive in order as the engine commits them; a client
// that reconnects with Last-Event-ID gets exactly the rest, and the stream
// ends with done after the run ends.
func TestRunStream(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.startRun(t, "run_1", threadID)
	f.startRun(t, "run_2", threadID) // its events interleave, and are left out
	first := f.toolStep(t, "run_1")
	f.toolStep(t, "run_2")

	c := f.stream(t, "/v1/threads/thread_1/runs/run_1/events", 0)
	// The current state first: the run's events so far.
	log := f.logEvents(t)
	for _, seq := range []int{1, 2, 5} {
		assert.Equal(t, wantEvent(t, log[seq-1]), c.next(t))
	}

	// Then each commit, as it happens.
	f.clock.Add(time.Second)
	_, err := f.eng.Complete(ctx, first.ID)
	require.NoError(t, err)
	second := f.toolStep(t, "run_1")
	log = f.logEvents(t)
	assert.Equal(t, wantEvent(t, log[6]), c.next(t), "the completion")
	assert.Equal(t, wantEvent(t, log[7]), c.next(t), "the second step")

	// The client goes away; meanwhile the run goes on and ends.
	c.resp.Body.Close()
	_, err = f.eng.CreateStep(ctx, engine.NewStep{RunID: "run_2", Type: lifecycle.TypeToolCalls})
	require.NoError(t, err)
	f.clock.Add(time.Second)
	_, err = f.eng.Complete(ctx, second.ID)
	require.NoError(t, err)
	_, err = f.eng.CompleteRun(ctx, "run_1")
	require.NoError(t, err)

	// It comes back with the id of the last event it had, and gets exactly
	// the rest, then done.
	c = f.stream(t, "/v1/threads/thread_1/runs/run_1/events", 8)
	log = f.logEvents(t)
	require.Len(t, log, 11)
	assert.Equal(t, wantEvent(t, log[9]), c.next(t), "the second step's completion")
	assert.Equal(t, wantEvent(t, log[10]), c.next(t), "the run's completion")
	assert.Equal(t, message{ID: "11", Event: "done", Data: "[DONE]"}, c.next(t), "done keeps the last id")
	c.end(t)

	// Reconnecting after the end, as EventSource does by itself, gets done
	// at once.
	c = f.stream(t, "/v1/threads/thread_1/runs/run_1/events", 11)
	assert.Equal(t, "done", c.next(t).Event)
	c.end(t)

	// A stream of a run that has ended replays it whole, then done.
	c = f.stream(t, "/v1/threads/thread_1/runs/run_1/events", 0)
	for _, seq := range []int{1, 2, 5, 7, 8, 10, 11} {
		assert.Equal(t, wantEvent(t, log[seq-1]), c.next(t))
	}
	assert.Equal(t, "done", c.next(t).Event)
	c.end(t)
}

func TestRunStreamErrors(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.startRun(t, "run_1", threadID)
	f.startRun(t, "run_2", threadID)
	_, err := f.eng.CompleteRun(ctx, "run_1")
	require.NoError(t, err)

	for _, tc := range []struct {
		name, path, lastEventID string
		status                  int
		param                   string
	}{
		{"unknown run", "/v1/threads/thread_1/runs/run_9/events", "", http.StatusNotFound, ""},
		{"run of another thread", "/v1/threads/thread_2/runs/run_1/events", "", http.StatusNotFound, ""},
		{"id that is no number", "/v1/threads/thread_1/runs/run_1/events", "abc", http.StatusBadRequest, "Last-Event-ID"},
		{"negative id", "/v1/threads/thread_1/runs/run_1/events", "-1", http.StatusBadRequest, "Last-Event-ID"},
		{"id of another run's event, once the run has ended", "/v1/threads/thread_1/runs/run_1/events", "4", http.StatusBadRequest, "Last-Event-ID"},
		{"id past the log, run ended", "/v1/threads/thread_1/runs/run_1/events", "99", http.StatusBadRequest, "Last-Event-ID"},
		{"id past the log, run going on", "/v1/threads/thread_1/runs/run_2/events", "99", http.StatusBadRequest, "Last-Event-ID"},
		{"id past the log, thread", "/v1/threads/thread_1/events", "99", http.StatusBadRequest, "Last-Event-ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var header []string
			if tc.lastEventID != "" {
				header = []string{"Last-Event-ID", tc.lastEventID}
			}
			e := readError(t, f.get(t, tc.path, header...), tc.status)
			if tc.param != "" {
				require.NotNil(t, e.Error.Param)
				assert.Equal(t, tc.param, *e.Error.Param)
			}
		})
	}
}

// A thread's stream carries its runs' events and no other thread's, resumes
// from Last-Event-ID, and ends when the server shuts down.
func TestThreadStream(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	f.startRun(t, "run_1", threadID)
	f.startRun(t, "run_x", "thread_2")
	step := f.toolStep(t, "run_1")

	c := f.stream(t, "/v1/threads/thread_1/events", 0)
	log := f.logEvents(t)
	for _, seq := range []int{1, 2, 5} {
		assert.Equal(t, wantEvent(t, log[seq-1]), c.next(t))
	}
	f.startRun(t, "run_2", threadID)
	_, err := f.eng.Complete(ctx, step.ID)
	require.NoError(t, err)
	log = f.logEvents(t)
	for _, seq := range []int{6, 7, 8} {
		assert.Equal(t, wantEvent(t, log[seq-1]), c.next(t))
	}

	resumed := f.stream(t, "/v1/threads/thread_1/events", 6)
	for _, seq := range []int{7, 8} {
		assert.Equal(t, wantEvent(t, log[seq-1]), resumed.next(t))
	}

	// Shutting down ends both streams, without done: the runs go on.
	shutdownCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, f.ts.Config.Shutdown(shutdownCtx))
	c.end(t)
	resumed.end(t)
}

// Shutdown ends the streams, and new ones are refused; the rest still
// serves.
func TestShutdown(t *testing.T) {
	f := newFixture(t, nil)
	f.startRun(t, "run_1", threadID)
	run := f.stream(t, "/v1/threads/thread_1/runs/run_1/events", 0)
	thread := f.stream(t, "/v1/threads/thread_1/events", 0)
	run.next(t)
	thread.next(t)

	f.srv.Shutdown()
	run.next(t) // the in_progress event was already on its way
	run.end(t)
	thread.next(t)
	thread.end(t)

	e := readError(t, f.get(t, "/v1/threads/thread_1/runs/run_1/events"), http.StatusServiceUnavailable)
	assert.Equal(t, "server_error", e.Error.Type)
	readBody(t, f.get(t, "/v1/threads/thread_1/runs/run_1"), http.StatusOK)
}

func TestStreamCap(t *testing.T) {
	f := newFixture(t, nil, server.WithMaxStreams(2))
	f.startRun(t, "run_1", threadID)
	a := f.stream(t, "/v1/threads/thread_1/runs/run_1/events", 0)
	f.stream(t, "/v1/threads/thread_1/events", 0)

	e := readError(t, f.get(t, "/v1/threads/thread_1/runs/run_1/events"), http.StatusServiceUnavailable)
	assert.Equal(t, "server_error", e.Error.Type)

	// A stream that ends gives its slot back before the client sees the end.
	_, err := f.eng.CompleteRun(context.Background(), "run_1")
	require.NoError(t, err)
	for range 3 {
		a.next(t)
	}
	assert.Equal(t, "done", a.next(t).Event)
	a.end(t)
	b := f.stream(t, "/v1/threads/thread_1/runs/run_1/events", 3)
	assert.Equal(t, "done", b.next(t).Event)
}

// stallingWriter is a client that has stopped reading: every flush blocks
// until the write deadline is moved into the past, as a socket write with
// full buffers would.
type stallingWriter struct {
	header    http.Header
	stalled   chan struct{} // closed when a flush blocks
	unblock   chan struct{} // closed by a deadline in the past
	mu        sync.Mutex
	deadlines []time.Time
}

func newStallingWriter() *stallingWriter {
	return &stallingWriter{header: http.Header{}, stalled: make(chan struct{}), unblock: make(chan struct{})}
}

func (w *stallingWriter) Header() http.Header         { return w.header }
func (w *stallingWriter) WriteHeader(int)             {}
func (w *stallingWriter) Write(b []byte) (int, error) { return len(b), nil }

func (w *stallingWriter) FlushError() error {
	close(w.stalled)
	<-w.unblock
	return os.ErrDeadlineExceeded
}

func (w *stallingWriter) SetWriteDeadline(d time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadlines = append(w.deadlines, d)
	if !d.IsZero() {
		close(w.unblock)
	}
	return nil
}

// A client that stops reading is disconnected after the write timeout, and
// holds up no commit meanwhile.
func TestSlowClientIsDisconnected(t *testing.T) {
	wall := clock.NewMock() // the server's clock, apart from the engine's
	f := newFixture(t, nil, server.WithClock(wall), server.WithWriteTimeout(5*time.Second), server.WithMaxStreams(1))
	f.startRun(t, "run_1", threadID)

	w := newStallingWriter()
	req := httptest.NewRequest(http.MethodGet, "/v1/threads/thread_1/runs/run_1/events", nil)
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		f.srv.ServeHTTP(w, req)
	}()
	<-w.stalled

	// The engine commits on while the client is stuck.
	for range 500 {
		step := f.toolStep(t, "run_1")
		_, err := f.eng.Complete(context.Background(), step.ID)
		require.NoError(t, err)
	}
	select {
	case <-returned:
		t.Fatal("the stream ended before its write timed out")
	default:
	}

	wall.Add(5 * time.Second)
	<-returned
	w.mu.Lock()
	defer w.mu.Unlock()
	require.Len(t, w.deadlines, 2)
	assert.True(t, w.deadlines[0].IsZero(), "the stream lifts the server's WriteTimeout")
	assert.True(t, w.deadlines[1].Before(start), "the watchdog's deadline is in the past")

	// Its slot is free again.
	c := f.stream(t, "/v1/threads/thread_1/runs/run_1/events", 0)
	assert.Equal(t, "1", c.next(t).ID)
}

// A Last-Event-ID of a run still going may be any position in the log.
func TestRunStreamFromAnyPosition(t *testing.T) {
	f := newFixture(t, nil)
	f.startRun(t, "run_1", threadID)
	f.startRun(t, "run_2", threadID)
	step := f.toolStep(t, "run_1")
	log := f.logEvents(t)
	c := f.stream(t, "/v1/threads/thread_1/runs/run_1/events", 3) // run_2's
	assert.Equal(t, wantEvent(t, log[4]), c.next(t))
	assert.Equal(t, step.ID, log[4].Step.ID)
}
