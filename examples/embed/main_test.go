package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/engine"
	"github.com/runstep/runstep/store/memory"
)

func TestEmbed(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewMock()
	clk.Set(time.Date(2025, 10, 30, 12, 0, 0, 0, time.UTC))
	eng, err := engine.New(memory.New(), engine.WithClock(clk))
	require.NoError(t, err)
	require.NoError(t, seed(ctx, eng))
	mux, api, err := newMux(eng, "t0ken")
	require.NoError(t, err)
	ts := httptest.NewUnstartedServer(mux)
	ts.Config.RegisterOnShutdown(api.Shutdown)
	ts.Start()
	defer ts.Close()

	get := func(path string, auth bool) (int, string) {
		req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		require.NoError(t, err)
		if auth {
			req.Header.Set("Authorization", "Bearer t0ken")
		}
		resp, err := ts.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}

	// The program's own routes, open.
	code, body := get("/healthz", false)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	code, _ = get("/", false)
	assert.Equal(t, http.StatusOK, code)

	// runstep's, behind the token.
	code, _ = get("/v1/threads/thread_demo/runs/run_demo/steps", false)
	assert.Equal(t, http.StatusUnauthorized, code)
	code, body = get("/v1/threads/thread_demo/runs/run_demo/steps?order=asc", true)
	require.Equal(t, http.StatusOK, code)
	var list struct {
		Data []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	require.Len(t, list.Data, 2)
	for _, s := range list.Data {
		assert.Equal(t, "completed", s.Status)
	}

	// The run has ended: its stream replays it, then done.
	code, body = get("/v1/threads/thread_demo/runs/run_demo/events", true)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, 7, strings.Count(body, "\nevent: thread.run."), body)
	assert.True(t, strings.HasSuffix(body, "event: done\ndata: [DONE]\n\n"), body)

	// A thread's stream lasts until the server shuts down.
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/v1/threads/thread_demo/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := ts.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	lines := bufio.NewScanner(resp.Body)
	for n := 0; n < 7 && lines.Scan(); {
		if strings.HasPrefix(lines.Text(), "event: thread.run.") {
			n++
		}
	}
	shutdownCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, ts.Config.Shutdown(shutdownCtx))
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.NotContains(t, string(rest), "event: done", "the thread's stream has no end but the server's")
}
