// Package server serves an engine's runs and run steps over HTTP, with
// OpenAI's paths, parameters, JSON shapes and errors, so that OpenAI's own
// clients can read them:
//
//	GET /v1/threads/{thread_id}/runs/{run_id}                  the run
//	GET /v1/threads/{thread_id}/runs/{run_id}/steps            a page of its steps
//	GET /v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}  one step
//	GET /v1/threads/{thread_id}/runs/{run_id}/events           the run's events, live (SSE)
//	GET /v1/threads/{thread_id}/events                         the thread's events, live (SSE)
//
// The event streams are server-sent events as OpenAI streams them
// ("event: thread.run.step.completed" / "data: {…}"), each with an
// "id: <seq>" line: a client that reconnects with that id in Last-Event-ID
// (browsers' EventSource does so by itself) gets exactly the events it has
// not seen. A run's stream starts with the run's events so far, follows
// new ones as they commit, and ends with "event: done" / "data: [DONE]"
// after the run's terminal event. A thread's stream ends only when the
// client leaves or the server shuts down.
//
// # Slow clients never hold up the engine
//
// Each stream reads the event log through engine.Subscribe, at its own
// pace: a stream that falls behind reads older events later, from the
// store, and holds no buffer that commits fill. So no client, however slow,
// can stall a writer or make the server's memory grow. A client that stops
// reading is disconnected: a write to it that has not gone through after
// the write timeout (WithWriteTimeout) ends its stream, and the number of
// streams open at once is capped (WithMaxStreams).
//
// # Serving and shutting down
//
// A Server is an http.Handler; serve it with an http.Server. Its event
// streams last as long as their runs, so http.Server.Shutdown, which waits
// for every handler to return, must end them first: register the Server's
// Shutdown with the http.Server. Streams also end when the request's
// context does, so an http.Server.BaseContext that is cancelled ends them
// too.
//
//	srv, err := server.New(eng, server.WithToken(token))
//	if err != nil { … }
//	hs := &http.Server{Addr: addr, Handler: srv, ReadHeaderTimeout: 10 * time.Second}
//	hs.RegisterOnShutdown(srv.Shutdown) // ends the event streams
//	go func() {
//		<-ctx.Done() // such as signal.NotifyContext's
//		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
//		defer cancel()
//		hs.Shutdown(shutdownCtx)
//	}()
//	if err := hs.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) { … }
//
// An http.Server.WriteTimeout bounds the non-streaming responses; the event
// streams lift it for themselves and use the per-write timeout instead.
//
// The server only reads: runs and steps are created and moved by the
// orchestrator that embeds the engine.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/runstep/runstep/engine"
)

// Defaults of the options.
const (
	DefaultRequestTimeout = 30 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultMaxStreams     = 1000
)

// Server serves one engine's runs and steps. It is safe for concurrent
// use.
type Server struct {
	eng            *engine.Engine
	handler        http.Handler
	token          []byte // nil: no authentication
	requestTimeout time.Duration
	writeTimeout   time.Duration
	clock          clock.Clock
	logger         *slog.Logger
	maxStreams     int

	// streams holds a token for each open event stream; its capacity is
	// the cap on them.
	streams chan struct{}
	// stopped is done once Shutdown is called; stop makes it so.
	stopped context.Context
	stop    context.CancelFunc
}

// Option configures a Server.
type Option func(*Server)

// WithToken makes every request authenticate with the bearer token
// ("Authorization: Bearer <token>"); requests without it, or with another
// token, get a 401. Browsers' EventSource cannot send the header: serve
// browsers through a proxy that adds it. By default there is no
// authentication.
func WithToken(token string) Option {
	return func(s *Server) { s.token = []byte(token) }
}

// WithRequestTimeout bounds how long a non-streaming request may take
// before it gets a 503. The default is DefaultRequestTimeout.
func WithRequestTimeout(d time.Duration) Option {
	return func(s *Server) { s.requestTimeout = d }
}

// WithWriteTimeout sets how long one write to an event stream may take
// before the client is disconnected as too slow. The default is
// DefaultWriteTimeout.
func WithWriteTimeout(d time.Duration) Option {
	return func(s *Server) { s.writeTimeout = d }
}

// WithMaxStreams caps the event streams open at once; a request for one
// more gets a 503. The default is DefaultMaxStreams.
func WithMaxStreams(n int) Option {
	return func(s *Server) { s.maxStreams = n }
}

// WithLogger sets where the server reports errors it does not show
// clients. The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) { s.logger = l }
}

// WithClock sets the clock the write timeout runs on. The default is the
// system clock. It is not the engine's clock: a write to a socket stalls
// in real time even when the engine's time is simulated. Tests pass a
// *clock.Mock to time out a write at will.
func WithClock(c clock.Clock) Option {
	return func(s *Server) { s.clock = c }
}

// New returns a Server of eng. It returns an error for a nil engine, an
// empty token, and a timeout or cap that is not positive.
func New(eng *engine.Engine, opts ...Option) (*Server, error) {
	if eng == nil {
		return nil, errors.New("server: nil engine")
	}
	s := &Server{
		eng:            eng,
		requestTimeout: DefaultRequestTimeout,
		writeTimeout:   DefaultWriteTimeout,
		maxStreams:     DefaultMaxStreams,
		logger:         slog.Default(),
	}
	for _, opt := range opts {
		opt(s)
	}
	switch {
	case s.token != nil && len(s.token) == 0:
		// An unset variable passed as the token must not turn
		// authentication off.
		return nil, errors.New("server: empty token")
	case s.requestTimeout <= 0:
		return nil, fmt.Errorf("server: request timeout %v is not positive", s.requestTimeout)
	case s.writeTimeout <= 0:
		return nil, fmt.Errorf("server: write timeout %v is not positive", s.writeTimeout)
	case s.maxStreams <= 0:
		return nil, fmt.Errorf("server: stream cap %d is not positive", s.maxStreams)
	}
	if s.clock == nil {
		s.clock = clock.New()
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	s.streams = make(chan struct{}, s.maxStreams)
	s.stopped, s.stop = context.WithCancel(context.Background())

	mux := http.NewServeMux()
	s.route(mux, "GET /v1/threads/{thread_id}/runs/{run_id}", s.getRun)
	s.route(mux, "GET /v1/threads/{thread_id}/runs/{run_id}/steps", s.listSteps)
	s.route(mux, "GET /v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}", s.getStep)
	mux.HandleFunc("GET /v1/threads/{thread_id}/runs/{run_id}/events", s.streamRun)
	mux.HandleFunc("GET /v1/threads/{thread_id}/events", s.streamThread)
	// Everything else, wrong methods included, is OpenAI's "Invalid URL"
	// in its error shape, not the mux's plain-text 404 or 405.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, apiError{
			Message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path),
			Type:    typeInvalidRequest,
		})
	})
	s.handler = s.authenticate(mux)
	return s, nil
}

// route registers a non-streaming handler, bounded by the request timeout.
// http.TimeoutHandler answers a request that runs out of time with a 503
// and its body; the Content-Type set here is what that answer carries, and
// a handler that finishes sets its own.
func (s *Server) route(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	body, err := encodeError(apiError{Message: "The request timed out.", Type: typeServer})
	if err != nil {
		panic(err) // a constant error encodes
	}
	th := http.TimeoutHandler(h, s.requestTimeout, string(body))
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentTypeJSON)
		th.ServeHTTP(w, r)
	})
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// Shutdown ends every open event stream, without the done message (the run
// has not ended: a client resumes with Last-Event-ID elsewhere), and
// refuses new ones with a 503. The other endpoints go on serving. It
// returns at once; the streams' handlers return soon after. Register it
// with http.Server.RegisterOnShutdown.
func (s *Server) Shutdown() { s.stop() }
