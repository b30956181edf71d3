package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/store"
)

// streamRun serves GET /v1/threads/{thread_id}/runs/{run_id}/events: the
// run's and its steps' events from the start (or after Last-Event-ID),
// then each as it commits, and the done message after the run's terminal
// event.
//
// The run's terminal event is its last: once a run has ended no step of it
// can start, and its steps in progress ended with it, in the same commit
// and before it. So a client that saw the terminal event has seen every
// event of the run. Such a client reconnecting (EventSource reconnects
// even after done) must get done at once rather than wait for events that
// will never come; the stream therefore reads the client's last event
// again to see whether it was the terminal one.
func (s *Server) streamRun(w http.ResponseWriter, r *http.Request) {
	runID := r.PathValue("run_id")
	after, ok := lastEventID(w, r)
	if !ok {
		return
	}
	st, ok := s.newStream(w, r)
	if !ok {
		return
	}
	defer st.close()

	run, err := s.eng.GetRun(st.ctx, runID)
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && run.ThreadID != r.PathValue("thread_id"):
		notFound(w, "run", runID)
		return
	case err != nil:
		st.fail(err)
		return
	}
	if !s.knownEvent(w, st, after) {
		return
	}
	// The client's last event is read again (from after-1) to check it.
	// For an ended run, it must be one of the run's: any other id could lie
	// past the run's end, and the stream would wait for nothing. For a run
	// still going, any position in the log will do, and the stream opens at
	// once.
	if !run.Status.Terminal() || after == 0 {
		if st.open() != nil {
			return
		}
	}
	for ev, err := range s.eng.Subscribe(st.ctx, max(after-1, 0)) {
		if err != nil {
			st.fail(err)
			return
		}
		if ev.Seq <= after { // the client's last event: it has it
			if !st.opened {
				if !ofRun(ev, runID) {
					badRequest(w, &engine.ArgumentError{
						Param: "Last-Event-ID", Value: strconv.FormatInt(after, 10),
						Reason: "not an event of run " + runID,
					})
					return
				}
				if st.open() != nil {
					return
				}
			}
			if endsRun(ev, runID) {
				_ = st.done()
				return
			}
			continue
		}
		if !ofRun(ev, runID) {
			continue
		}
		if st.send(ev) != nil {
			return
		}
		if endsRun(ev, runID) {
			_ = st.done()
			return
		}
	}
}

// streamThread serves GET /v1/threads/{thread_id}/events: the events of
// every run of the thread, and of their steps, from the start (or after
// Last-Event-ID) and then as they commit, until the client leaves or the
// server shuts down. A thread is known only by its runs, so a thread with
// none streams nothing until one starts.
func (s *Server) streamThread(w http.ResponseWriter, r *http.Request) {
	threadID := r.PathValue("thread_id")
	after, ok := lastEventID(w, r)
	if !ok {
		return
	}
	st, ok := s.newStream(w, r)
	if !ok {
		return
	}
	defer st.close()
	if !s.knownEvent(w, st, after) {
		return
	}
	if st.open() != nil {
		return
	}
	for ev, err := range s.eng.Subscribe(st.ctx, after) {
		if err != nil {
			st.fail(err)
			return
		}
		if threadOf(ev) == threadID && st.send(ev) != nil {
			return
		}
	}
}

// lastEventID reads the Last-Event-ID header: the seq of the last event the
// client has, 0 if none. A bad one is answered with a 400.
func lastEventID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		badRequest(w, &engine.ArgumentError{Param: "Last-Event-ID", Value: v, Reason: "must be the id of an event this server sent"})
		return 0, false
	}
	return n, true
}

func ofRun(ev events.Event, runID string) bool {
	return ev.Run != nil && ev.Run.ID == runID || ev.Step != nil && ev.Step.RunID == runID
}

// endsRun reports whether ev is the run's terminal event.
func endsRun(ev events.Event, runID string) bool {
	return ev.Run != nil && ev.Run.ID == runID && ev.Run.Status.Terminal()
}

func threadOf(ev events.Event) string {
	switch {
	case ev.Run != nil:
		return ev.Run.ThreadID
	case ev.Step != nil:
		return ev.Step.ThreadID
	}
	return ""
}

// aLongTimeAgo is a write deadline in the past: setting it makes a stalled
// write return at once. (net/http stops its own writes the same way.)
var aLongTimeAgo = time.Unix(1, 0)

// errSlowClient ends the stream of a client that stopped reading.
var errSlowClient = errors.New("server: client too slow: a write timed out")

// stream is one open event stream: its slot under the cap, its context, and
// its writer.
type stream struct {
	s      *Server
	w      http.ResponseWriter
	r      *http.Request
	rc     *http.ResponseController
	sse    *events.SSEWriter
	id     []byte // the id line, reused
	opened bool   // the headers are sent

	// ctx ends with the request and with the server's Shutdown.
	ctx         context.Context
	cancel      context.CancelFunc
	stopOnClose func() bool

	// mu guards closed and timedOut, which the watchdog's timer goroutine
	// and the handler share.
	mu       sync.Mutex
	closed   bool
	timedOut bool
	watchdog *clock.Timer
}

// newStream takes a slot for a stream, or answers with a 503 if there is
// none or the server is shutting down.
func (s *Server) newStream(w http.ResponseWriter, r *http.Request) (*stream, bool) {
	if s.stopped.Err() != nil {
		unavailable(w, "The server is shutting down.")
		return nil, false
	}
	select {
	case s.streams <- struct{}{}:
	default:
		unavailable(w, "Too many event streams are open. Try again later.")
		return nil, false
	}
	ctx, cancel := context.WithCancel(r.Context())
	st := &stream{
		s: s, w: w, r: r, rc: http.NewResponseController(w), sse: events.NewSSEWriter(w),
		ctx: ctx, cancel: cancel, stopOnClose: context.AfterFunc(s.stopped, cancel),
	}
	return st, true
}

func unavailable(w http.ResponseWriter, msg string) {
	writeError(w, http.StatusServiceUnavailable, apiError{Message: msg, Type: typeServer})
}

// close gives the slot back. The watchdog does nothing after it: the
// handler is returning, and the ResponseWriter must not be used after.
func (st *stream) close() {
	st.mu.Lock()
	st.closed = true
	if st.watchdog != nil {
		st.watchdog.Stop()
	}
	st.mu.Unlock()
	st.stopOnClose()
	st.cancel()
	<-st.s.streams
}

// open sends the headers.
func (st *stream) open() error {
	h := st.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx would hold the events back
	// Lift the http.Server's WriteTimeout, which would cut the stream
	// however fast the client reads; each write has its own timeout.
	if err := st.rc.SetWriteDeadline(time.Time{}); errors.Is(err, http.ErrNotSupported) {
		st.s.logger.WarnContext(st.ctx, "runstep server: the ResponseWriter cannot set write deadlines: a client that stops reading holds its stream until it leaves",
			"path", st.r.URL.Path)
	}
	st.w.WriteHeader(http.StatusOK)
	st.opened = true
	err := st.guard(st.rc.Flush)
	if errors.Is(err, http.ErrNotSupported) {
		st.s.logger.ErrorContext(st.ctx, "runstep server: the ResponseWriter cannot flush: no event stream can be served through it",
			"path", st.r.URL.Path)
	}
	return err
}

// send writes ev as one SSE message with its seq as the id, and flushes it
// to the client.
func (st *stream) send(ev events.Event) error {
	return st.guard(func() error {
		// events.SSEWriter writes the event and data lines; the id line
		// goes first, straight to the ResponseWriter, which is safe because
		// every message is flushed before the next begins.
		st.id = strconv.AppendInt(append(st.id[:0], "id: "...), ev.Seq, 10)
		st.id = append(st.id, '\n')
		if _, err := st.w.Write(st.id); err != nil {
			return err
		}
		if err := st.sse.Write(ev); err != nil {
			return err
		}
		if err := st.sse.Flush(); err != nil {
			return err
		}
		return st.rc.Flush()
	})
}

// done writes the message that ends a run's stream. It carries no id: the
// client's last id stays the terminal event's, which a reconnect answers
// with done again.
func (st *stream) done() error {
	return st.guard(func() error {
		if err := st.sse.Done(); err != nil {
			return err
		}
		return st.rc.Flush()
	})
}

// guard runs write under the watchdog: if it has not returned after the
// write timeout, the connection's write deadline is moved into the past,
// which makes the stalled write fail, and the stream ends.
func (st *stream) guard(write func() error) error {
	st.mu.Lock()
	if st.watchdog == nil {
		st.watchdog = st.s.clock.AfterFunc(st.s.writeTimeout, st.timeout)
	} else {
		st.watchdog.Reset(st.s.writeTimeout)
	}
	st.mu.Unlock()

	err := write()

	st.mu.Lock()
	st.watchdog.Stop()
	timedOut := st.timedOut
	st.mu.Unlock()
	if timedOut {
		st.s.logger.InfoContext(st.ctx, "runstep server: disconnected an event stream's client that stopped reading",
			"path", st.r.URL.Path, "remote", st.r.RemoteAddr)
		return errSlowClient
	}
	return err
}

// timeout is the watchdog's alarm.
func (st *stream) timeout() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return
	}
	st.timedOut = true
	_ = st.rc.SetWriteDeadline(aLongTimeAgo)
	st.cancel()
}

// fail ends the stream after an error of the engine. Before the headers
// are sent it answers as the other endpoints do; after, the client only
// sees the stream end, and resumes with Last-Event-ID.
func (st *stream) fail(err error) {
	switch {
	case st.ctx.Err() != nil && errors.Is(err, st.ctx.Err()):
		// The client left, or the server is shutting down.
		if !st.opened && st.r.Context().Err() == nil {
			unavailable(st.w, "The server is shutting down.")
		}
	case !st.opened:
		st.s.fail(st.w, st.r, err)
	default:
		st.s.logger.ErrorContext(st.ctx, "runstep server: event stream failed", "path", st.r.URL.Path, "err", err)
	}
}

// knownEvent checks that the client's Last-Event-ID names an event the log
// holds, and answers a 400 otherwise: resuming after an id the log has not
// reached would skip every event up to it, or wait for it in silence.
func (s *Server) knownEvent(w http.ResponseWriter, st *stream, after int64) bool {
	if after == 0 {
		return true
	}
	_, ok, err := s.eng.Event(st.ctx, after)
	switch {
	case err != nil:
		st.fail(err)
		return false
	case !ok:
		badRequest(w, &engine.ArgumentError{
			Param: "Last-Event-ID", Value: strconv.FormatInt(after, 10),
			Reason: "no event has this id",
		})
		return false
	}
	return true
}
