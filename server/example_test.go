package server_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/server"
	"github.com/runstep/runstep/store/memory"
)

// exampleEngine returns an engine on a mock clock with one run in
// progress, run_1 of thread_1, and its step step_1.
func exampleEngine() *engine.Engine {
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(time.Unix(1761861531, 0))
	eng, err := engine.New(memory.New(), engine.WithClock(clk))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := eng.CreateRun(ctx, engine.NewRun{ID: "run_1", ThreadID: "thread_1", AssistantID: "asst_1"}); err != nil {
		log.Fatal(err)
	}
	if _, err := eng.StartRun(ctx, "run_1"); err != nil {
		log.Fatal(err)
	}
	if _, err := eng.CreateStep(ctx, engine.NewStep{ID: "step_1", RunID: "run_1", Type: lifecycle.TypeToolCalls}); err != nil {
		log.Fatal(err)
	}
	return eng
}

func ExampleNew() {
	srv, err := server.New(exampleEngine())
	if err != nil {
		log.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	for _, path := range []string{
		"/v1/threads/thread_1/runs/run_1/steps/step_1",
		"/v1/threads/thread_1/runs/run_2/steps/step_1",
	} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n%s", resp.Status, body)
	}
	// Output:
	// 200 OK
	// {"id":"step_1","object":"assistant.run.step","created_at":1761861531,"assistant_id":"asst_1","thread_id":"thread_1","run_id":"run_1","type":"tool_calls","status":"in_progress","step_details":{"type":"tool_calls","tool_calls":[]},"last_error":null,"expired_at":null,"cancelled_at":null,"failed_at":null,"completed_at":null,"metadata":null,"usage":null}
	// 404 Not Found
	// {"error":{"message":"No run step found with id 'step_1'.","type":"invalid_request_error","param":null,"code":null}}
}

// A run's event stream, once the run has ended: its events, each with its
// seq as the id, then done.
func ExampleServer_events() {
	eng := exampleEngine()
	ctx := context.Background()
	if _, err := eng.Complete(ctx, "step_1"); err != nil {
		log.Fatal(err)
	}
	if _, err := eng.CompleteRun(ctx, "run_1"); err != nil {
		log.Fatal(err)
	}
	srv, err := server.New(eng)
	if err != nil {
		log.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	req, err := http.NewRequest(http.MethodGet, ts.URL+"/v1/threads/thread_1/runs/run_1/events", nil)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Last-Event-ID", "3") // the client has the events up to 3
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n%s", resp.Header.Get("Content-Type"), body)
	// Output:
	// text/event-stream
	// id: 4
	// event: thread.run.step.completed
	// data: {"id":"step_1","object":"assistant.run.step","created_at":1761861531,"assistant_id":"asst_1","thread_id":"thread_1","run_id":"run_1","type":"tool_calls","status":"completed","step_details":{"type":"tool_calls","tool_calls":[]},"last_error":null,"expired_at":null,"cancelled_at":null,"failed_at":null,"completed_at":1761861531,"metadata":null,"usage":null}
	//
	// id: 5
	// event: thread.run.completed
	// data: {"id":"run_1","object":"thread.run","created_at":1761861531,"assistant_id":"asst_1","thread_id":"thread_1","status":"completed","started_at":1761861531,"expires_at":null,"cancelled_at":null,"failed_at":null,"completed_at":1761861531,"last_error":null,"metadata":null}
	//
	// event: done
	// data: [DONE]
}
