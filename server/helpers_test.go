package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/events"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/server"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/memory"
)

// start is when every test's engine clock begins.
var start = time.Unix(1761861531, 0)

const (
	threadID    = "thread_1"
	assistantID = "asst_1"
)

type fixture struct {
	store store.Store // the memory store, unwrapped
	eng   *engine.Engine
	clock *clock.Mock
	srv   *server.Server
	ts    *httptest.Server
}

// newFixture serves a fresh engine on a mock clock over a live
// httptest server. The store may be wrapped, such as to make it fail.
func newFixture(t testing.TB, wrap func(store.Store) store.Store, opts ...server.Option) *fixture {
	t.Helper()
	clk := clock.NewMock()
	clk.Set(start)
	mem := memory.New()
	var st store.Store = mem
	if wrap != nil {
		st = wrap(mem)
	}
	eng, err := engine.New(st, engine.WithClock(clk), engine.WithIDs(engine.SeededIDs(7)))
	require.NoError(t, err)
	srv, err := server.New(eng, opts...)
	require.NoError(t, err)
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.RegisterOnShutdown(srv.Shutdown)
	ts.Start()
	t.Cleanup(ts.Close)
	return &fixture{store: mem, eng: eng, clock: clk, srv: srv, ts: ts}
}

// startRun creates a run in progress in the thread.
func (f *fixture) startRun(t testing.TB, id, thread string) lifecycle.Run {
	t.Helper()
	ctx := context.Background()
	_, err := f.eng.CreateRun(ctx, engine.NewRun{ID: id, ThreadID: thread, AssistantID: assistantID})
	require.NoError(t, err)
	run, err := f.eng.StartRun(ctx, id)
	require.NoError(t, err)
	return run
}

func (f *fixture) toolStep(t testing.TB, runID string) lifecycle.Step {
	t.Helper()
	step, err := f.eng.CreateStep(context.Background(), engine.NewStep{RunID: runID, Type: lifecycle.TypeToolCalls})
	require.NoError(t, err)
	return step
}

// get sends a GET with the headers, given as name, value pairs.
func (f *fixture) get(t testing.TB, path string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.ts.URL+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.ts.Client().Do(req)
	require.NoError(t, err)
	return resp
}

// errorBody is OpenAI's error shape, with nulls kept apart from "".
type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// readError checks that resp is an error with the status, in OpenAI's
// shape, and returns it.
func readError(t testing.TB, resp *http.Response, status int) errorBody {
	t.Helper()
	defer resp.Body.Close()
	require.Equal(t, status, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var body errorBody
	dec := json.NewDecoder(resp.Body)
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&body))
	require.NotEmpty(t, body.Error.Message)
	require.NotEmpty(t, body.Error.Type)
	return body
}

// sseClient reads an event stream message by message.
type sseClient struct {
	resp *http.Response
	r    *events.SSEReader
}

func (f *fixture) stream(t testing.TB, path string, lastEventID int64) *sseClient {
	t.Helper()
	var header []string
	if lastEventID > 0 {
		header = []string{"Last-Event-ID", strconv.FormatInt(lastEventID, 10)}
	}
	resp := f.get(t, path, header...)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	t.Cleanup(func() { resp.Body.Close() })
	return &sseClient{resp: resp, r: events.NewSSEReader(bufio.NewReader(resp.Body), events.ReadOptions{})}
}

// message is one SSE message as a client sees it.
type message struct {
	ID    string
	Event string
	Data  string
}

func (c *sseClient) next(t testing.TB) message {
	t.Helper()
	m, err := c.r.Read()
	require.NoError(t, err)
	return message{ID: m.ID, Event: m.Event, Data: string(m.Data)}
}

// end checks that the stream ends after what was read.
func (c *sseClient) end(t testing.TB) {
	t.Helper()
	_, err := c.r.Read()
	require.ErrorIs(t, err, io.EOF)
}

// wantEvent is the message an event should arrive as.
func wantEvent(t testing.TB, ev events.Event) message {
	t.Helper()
	var data []byte
	var err error
	if ev.Step != nil {
		data, err = ev.Step.MarshalJSON()
	} else {
		data, err = ev.Run.MarshalJSON()
	}
	require.NoError(t, err)
	return message{ID: strconv.FormatInt(ev.Seq, 10), Event: string(ev.Type), Data: string(data)}
}

// logEvents returns every event committed so far.
func (f *fixture) logEvents(t testing.TB) []events.Event {
	t.Helper()
	evs, err := f.store.Events(context.Background(), 0, 1<<30)
	require.NoError(t, err)
	return evs
}
