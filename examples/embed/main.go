// Embed mounts runstep's HTTP endpoints in a program's own http.ServeMux,
// next to the program's routes, and serves them until SIGINT or SIGTERM,
// then shuts down gracefully: the event streams end, the requests under
// way finish.
//
//	go run ./examples/embed --addr 127.0.0.1:8080
//	curl localhost:8080/v1/threads/thread_demo/runs/run_demo/steps
//	curl -N localhost:8080/v1/threads/thread_demo/runs/run_demo/events
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/server"
	"github.com/runstep/runstep/store/memory"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen on `HOST:PORT`")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	eng, err := engine.New(memory.New())
	if err != nil {
		log.Fatal(err)
	}
	if err := seed(ctx, eng); err != nil {
		log.Fatal(err)
	}
	mux, api, err := newMux(eng, os.Getenv("EMBED_TOKEN"))
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	// http.Server.Shutdown waits for every handler; the event streams would
	// keep it waiting until their runs end. This ends them first.
	hs.RegisterOnShutdown(api.Shutdown)
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hs.Shutdown(shutdownCtx); err != nil {
			log.Print(err)
		}
	}()
	log.Printf("listening on http://%s", *addr)
	if err := hs.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// newMux is the program's router: its own routes, and runstep's under
// /v1/. The runstep handler matches the whole path, so it mounts without
// http.StripPrefix; to serve it under another prefix, strip that prefix
// (http.StripPrefix("/api", api) for /api/v1/…). token, if set, is the
// bearer token runstep's endpoints require; the program's own routes
// stay open.
func newMux(eng *engine.Engine, token string) (*http.ServeMux, *server.Server, error) {
	var opts []server.Option
	if token != "" {
		opts = append(opts, server.WithToken(token))
	}
	api, err := server.New(eng, opts...)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "The run steps are at /v1/threads/thread_demo/runs/run_demo/steps.")
	})
	mux.Handle("/v1/", api)
	return mux, api, nil
}

// seed makes a run with two steps, so that there is something to read.
func seed(ctx context.Context, eng *engine.Engine) error {
	if _, err := eng.CreateRun(ctx, engine.NewRun{ID: "run_demo", ThreadID: "thread_demo", AssistantID: "asst_demo"}); err != nil {
		return err
	}
	if _, err := eng.StartRun(ctx, "run_demo"); err != nil {
		return err
	}
	for _, ns := range []engine.NewStep{
		{RunID: "run_demo", Type: lifecycle.TypeToolCalls},
		{RunID: "run_demo", Type: lifecycle.TypeMessageCreation, Details: lifecycle.MessageCreationDetails("msg_demo")},
	} {
		step, err := eng.CreateStep(ctx, ns)
		if err != nil {
			return err
		}
		if _, err := eng.Complete(ctx, step.ID); err != nil {
			return err
		}
	}
	_, err := eng.CompleteRun(ctx, "run_demo")
	return err
}
