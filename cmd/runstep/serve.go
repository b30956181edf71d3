package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/server"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/memory"
)

const serveSynopsis = "runstep serve [--db FILE|postgres://…] [--addr HOST:PORT] [--token TOKEN]"

// serveShutdownTimeout bounds how long serve waits, once told to stop, for
// the requests under way to finish.
const serveShutdownTimeout = 10 * time.Second

// cmdServe serves the OpenAI run-step endpoints and live event streams
// until SIGINT or SIGTERM, then shuts down gracefully and returns 0.
func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", serveSynopsis,
		"Serves runs and run steps over HTTP with OpenAI's paths and shapes:\n"+
			"  GET /v1/threads/{thread_id}/runs/{run_id}\n"+
			"  GET /v1/threads/{thread_id}/runs/{run_id}/steps[/{step_id}]\n"+
			"and their events live as server-sent events:\n"+
			"  GET /v1/threads/{thread_id}/runs/{run_id}/events\n"+
			"  GET /v1/threads/{thread_id}/events\n"+
			"On a loopback address the token is optional; on any other it is\n"+
			"required (--token, or RUNSTEP_TOKEN, which stays out of the process\n"+
			"list). Stops gracefully on SIGINT or SIGTERM.", stderr)
	dsn := fs.String("db", "", "serve from a SQLite `FILE` or a postgres:// database; empty serves a fresh in-memory store")
	addr := fs.String("addr", "127.0.0.1:8080", "listen on `HOST:PORT`; port 0 picks a free one, printed at start")
	token := fs.String("token", "", "require `TOKEN` as a bearer token (default $RUNSTEP_TOKEN)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	tok := cmp.Or(*token, os.Getenv("RUNSTEP_TOKEN"))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "runstep serve: %v\n", err)
		return exitFailure
	}
	// Judge the address actually bound: a name such as "localhost" could
	// resolve to anything, and "" or "0.0.0.0" means every interface.
	if tok == "" && !isLoopback(ln.Addr()) {
		ln.Close()
		fmt.Fprintf(stderr, "runstep serve: %s is reachable from other machines: give a token with --token or RUNSTEP_TOKEN\n", ln.Addr())
		return exitUsage
	}

	st, err := openServeStore(*dsn)
	if err != nil {
		ln.Close()
		fmt.Fprintf(stderr, "runstep serve: %v\n", err)
		return exitFailure
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = serve(ctx, ln, st, tok, stdout, stderr)
	err = errors.Join(err, st.Close())
	if err != nil {
		fmt.Fprintf(stderr, "runstep serve: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// serve serves on ln until ctx is done, then shuts down: the listener
// closes, the event streams end, and the requests under way get
// serveShutdownTimeout to finish.
func serve(ctx context.Context, ln net.Listener, st store.Store, token string, stdout, stderr io.Writer) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	eng, err := engine.New(st, engine.WithLogger(logger))
	if err != nil {
		ln.Close()
		return err
	}
	var opts []server.Option
	if token != "" {
		opts = append(opts, server.WithToken(token))
	}
	opts = append(opts, server.WithLogger(logger))
	srv, err := server.New(eng, opts...)
	if err != nil {
		ln.Close()
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(srv.Shutdown)

	// The engine expires runs at their deadlines while the server runs.
	var wg sync.WaitGroup
	engineCtx, stopEngine := context.WithCancel(context.Background())
	defer stopEngine()
	wg.Go(func() {
		// Without the loop nothing expires and shared-store streams never
		// hear of other processes' commits: better to stop than to serve
		// half a service.
		if err := eng.Run(engineCtx); err != nil && engineCtx.Err() == nil {
			stop(fmt.Errorf("the engine stopped: %w", err))
		}
	})

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	auth := "no token: loopback only"
	if token != "" {
		auth = "bearer token required"
	}
	fmt.Fprintf(stdout, "runstep serve: listening on http://%s (%s)\n", ln.Addr(), auth)

	select {
	case err = <-served: // the listener failed
	case <-ctx.Done():
		fmt.Fprintln(stdout, "runstep serve: shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), serveShutdownTimeout)
		err = hs.Shutdown(shutdownCtx)
		cancel()
		if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
			err = errors.Join(err, serveErr)
		}
	}
	stopEngine()
	wg.Wait()
	if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
		err = errors.Join(err, cause) // the engine failed, not a signal
	}
	return err
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// openServeStore opens the store serve serves from. dsn "" is a fresh
// in-process memory store (nothing outlives the process); any other is a
// database for openDB. With Postgres, several serve processes (and the
// engines that write) share one database, and each follows all commits.
func openServeStore(dsn string) (store.Store, error) {
	if dsn == "" {
		return memory.New(), nil
	}
	return openDB(dsn)
}
