package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/lifecycle"
	"github.com/runstep/runstep/server"
	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/memory"
)

func readBody(t *testing.T, resp *http.Response, status int) []byte {
	t.Helper()
	defer resp.Body.Close()
	require.Equal(t, status, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return body
}

func TestGetRun(t *testing.T) {
	f := newFixture(t, nil)
	run := f.startRun(t, "run_1", threadID)
	want, err := run.MarshalJSON()
	require.NoError(t, err)

	body := readBody(t, f.get(t, "/v1/threads/thread_1/runs/run_1"), http.StatusOK)
	assert.JSONEq(t, string(want), string(body))

	for name, path := range map[string]string{
		"unknown run":      "/v1/threads/thread_1/runs/run_2",
		"run of a thread":  "/v1/threads/thread_2/runs/run_1",
		"another resource": "/v1/threads/thread_1/runs/run_1/messages",
	} {
		t.Run(name, func(t *testing.T) {
			e := readError(t, f.get(t, path), http.StatusNotFound)
			assert.Equal(t, "invalid_request_error", e.Error.Type)
			assert.Nil(t, e.Error.Param)
			assert.Nil(t, e.Error.Code)
		})
	}
	e := readError(t, f.get(t, "/v1/threads/thread_2/runs/run_1"), http.StatusNotFound)
	assert.Equal(t, "No run found with id 'run_1'.", e.Error.Message)
}

func TestGetStep(t *testing.T) {
	f := newFixture(t, nil)
	f.startRun(t, "run_1", threadID)
	f.startRun(t, "run_2", threadID)
	step := f.toolStep(t, "run_1")
	want, err := step.MarshalJSON()
	require.NoError(t, err)

	body := readBody(t, f.get(t, "/v1/threads/thread_1/runs/run_1/steps/"+step.ID+"?include[]=step_details.tool_calls[*].file_search.results[*].content"), http.StatusOK)
	assert.JSONEq(t, string(want), string(body))

	for name, path := range map[string]string{
		"unknown step":       "/v1/threads/thread_1/runs/run_1/steps/step_nope",
		"step of a run":      "/v1/threads/thread_1/runs/run_2/steps/" + step.ID,
		"step of a thread":   "/v1/threads/thread_2/runs/run_1/steps/" + step.ID,
		"trailing slash":     "/v1/threads/thread_1/runs/run_1/steps/" + step.ID + "/",
		"unknown run, steps": "/v1/threads/thread_1/runs/run_3/steps",
	} {
		t.Run(name, func(t *testing.T) {
			e := readError(t, f.get(t, path), http.StatusNotFound)
			assert.Equal(t, "invalid_request_error", e.Error.Type)
		})
	}
}

func TestListSteps(t *testing.T) {
	f := newFixture(t, nil)
	f.startRun(t, "run_1", threadID)
	f.startRun(t, "run_2", threadID)
	var steps []lifecycle.Step
	for range 5 {
		f.clock.Add(time.Second)
		steps = append(steps, f.toolStep(t, "run_1"))
	}
	other := f.toolStep(t, "run_2")

	var list struct {
		Object  string            `json:"object"`
		Data    []json.RawMessage `json:"data"`
		FirstID *string           `json:"first_id"`
		LastID  *string           `json:"last_id"`
		HasMore bool              `json:"has_more"`
	}
	body := readBody(t, f.get(t, "/v1/threads/thread_1/runs/run_1/steps?limit=2&order=asc&after="+steps[0].ID+"&include[]=x"), http.StatusOK)
	require.NoError(t, json.Unmarshal(body, &list))
	assert.Equal(t, "list", list.Object)
	require.Len(t, list.Data, 2)
	want, err := steps[1].MarshalJSON()
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(list.Data[0]))
	assert.Equal(t, steps[1].ID, *list.FirstID)
	assert.Equal(t, steps[2].ID, *list.LastID)
	assert.True(t, list.HasMore)

	// The default: 20, newest first.
	body = readBody(t, f.get(t, "/v1/threads/thread_1/runs/run_1/steps"), http.StatusOK)
	require.NoError(t, json.Unmarshal(body, &list))
	require.Len(t, list.Data, 5)
	assert.Equal(t, steps[4].ID, *list.FirstID)
	assert.False(t, list.HasMore)

	// A run without steps lists [], not null, and null ids.
	f.startRun(t, "run_3", threadID)
	body = readBody(t, f.get(t, "/v1/threads/thread_1/runs/run_3/steps"), http.StatusOK)
	assert.JSONEq(t, `{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}`, string(body))

	for _, tc := range []struct {
		query string
		param string
	}{
		{"limit=0", "limit"},
		{"limit=101", "limit"},
		{"limit=-1", "limit"},
		{"limit=ten", "limit"},
		{"limit=99999999999999999999", "limit"},
		{"order=sideways", "order"},
		{"after=step_nope", "after"},
		{"after=" + other.ID, "after"},
		{"before=step_nope", "before"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			e := readError(t, f.get(t, "/v1/threads/thread_1/runs/run_1/steps?"+tc.query), http.StatusBadRequest)
			assert.Equal(t, "invalid_request_error", e.Error.Type)
			require.NotNil(t, e.Error.Param)
			assert.Equal(t, tc.param, *e.Error.Param)
		})
	}
}

// Anything but the endpoints, wrong methods included, is OpenAI's Invalid
// URL, in its error shape.
func TestInvalidURL(t *testing.T) {
	f := newFixture(t, nil)
	f.startRun(t, "run_1", threadID)
	e := readError(t, f.get(t, "/v2/nothing"), http.StatusNotFound)
	assert.Equal(t, "Invalid URL (GET /v2/nothing)", e.Error.Message)

	resp, err := f.ts.Client().Post(f.ts.URL+"/v1/threads/thread_1/runs/run_1/steps", "application/json", nil)
	require.NoError(t, err)
	e = readError(t, resp, http.StatusNotFound)
	assert.Equal(t, "Invalid URL (POST /v1/threads/thread_1/runs/run_1/steps)", e.Error.Message)
}

func TestToken(t *testing.T) {
	f := newFixture(t, nil, server.WithToken("s3cret"))
	f.startRun(t, "run_1", threadID)
	for _, tc := range []struct {
		name, header string
		status       int
		code         string
	}{
		{"no header", "", http.StatusUnauthorized, ""},
		{"not bearer", "Basic czNjcmV0", http.StatusUnauthorized, ""},
		{"empty token", "Bearer ", http.StatusUnauthorized, ""},
		{"wrong token", "Bearer s3cre", http.StatusUnauthorized, "invalid_api_key"},
		{"longer token", "Bearer s3cret!", http.StatusUnauthorized, "invalid_api_key"},
		{"right token", "Bearer s3cret", http.StatusOK, ""},
		{"scheme in lower case", "bearer s3cret", http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/v1/threads/thread_1/runs/run_1", "/v1/threads/thread_1/events", "/nowhere"} {
				var header []string
				if tc.header != "" {
					header = []string{"Authorization", tc.header}
				}
				resp := f.get(t, path, header...)
				if tc.status == http.StatusOK {
					assert.NotEqual(t, http.StatusUnauthorized, resp.StatusCode, path)
					resp.Body.Close()
					continue
				}
				assert.Equal(t, `Bearer realm="runstep"`, resp.Header.Get("WWW-Authenticate"))
				e := readError(t, resp, tc.status)
				assert.Equal(t, "invalid_request_error", e.Error.Type)
				if tc.code == "" {
					assert.Nil(t, e.Error.Code)
				} else {
					require.NotNil(t, e.Error.Code)
					assert.Equal(t, tc.code, *e.Error.Code)
				}
				assert.NotContains(t, e.Error.Message, "s3cre", "the answer never echoes a token")
			}
		})
	}
}

func TestNew(t *testing.T) {
	eng, err := engine.New(memory.New())
	require.NoError(t, err)
	for name, opts := range map[string][]server.Option{
		"empty token":       {server.WithToken("")},
		"request timeout":   {server.WithRequestTimeout(0)},
		"write timeout":     {server.WithWriteTimeout(-time.Second)},
		"no streams at all": {server.WithMaxStreams(0)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := server.New(eng, opts...)
			assert.Error(t, err)
		})
	}
	_, err = server.New(nil)
	assert.Error(t, err)
}

// failingStore fails the reads with an error that must not reach clients.
type failingStore struct {
	store.Store
}

var errDisk = errors.New("disk /var/lib/runstep/db.sqlite: I/O error")

func (failingStore) GetRun(context.Context, string) (lifecycle.Run, error) {
	return lifecycle.Run{}, errDisk
}

func (failingStore) GetStep(context.Context, string) (lifecycle.Step, error) {
	return lifecycle.Step{}, errDisk
}

func TestInternalErrorIsLoggedNotShown(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	f := newFixture(t, func(st store.Store) store.Store { return failingStore{st} }, server.WithLogger(logger))
	for _, path := range []string{
		"/v1/threads/thread_1/runs/run_1",
		"/v1/threads/thread_1/runs/run_1/steps",
		"/v1/threads/thread_1/runs/run_1/steps/step_1",
		"/v1/threads/thread_1/runs/run_1/events",
	} {
		e := readError(t, f.get(t, path), http.StatusInternalServerError)
		assert.Equal(t, "server_error", e.Error.Type)
		assert.Equal(t, "The server had an error while processing your request.", e.Error.Message)
		assert.NotContains(t, e.Error.Message, "disk")
	}
	assert.Contains(t, logs.String(), errDisk.Error())
}

// blockingStore holds GetRun until its context is done.
type blockingStore struct {
	store.Store
}

func (blockingStore) GetRun(ctx context.Context, _ string) (lifecycle.Run, error) {
	<-ctx.Done()
	return lifecycle.Run{}, ctx.Err()
}

func TestRequestTimeout(t *testing.T) {
	f := newFixture(t, func(st store.Store) store.Store { return blockingStore{st} },
		server.WithRequestTimeout(20*time.Millisecond))
	e := readError(t, f.get(t, "/v1/threads/thread_1/runs/run_1"), http.StatusServiceUnavailable)
	assert.Equal(t, "server_error", e.Error.Type)
	assert.Equal(t, "The request timed out.", e.Error.Message)
}
