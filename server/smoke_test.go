package server_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// buildRunstep builds cmd/runstep into a temporary directory.
//
// Until cmd/runstep/main.go dispatches "serve" to cmdServe, the build adds
// (through an overlay, leaving the tree alone) a file that does.
func buildRunstep(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the command: not with -short")
	}
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build runstep with")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "runstep")
	args := []string{"build", "-o", bin}

	cmdDir, err := filepath.Abs("../cmd/runstep")
	require.NoError(t, err)
	mainSrc, err := os.ReadFile(filepath.Join(cmdDir, "main.go"))
	require.NoError(t, err)
	if !strings.Contains(string(mainSrc), "cmdServe(") {
		dispatch := filepath.Join(dir, "dispatch.go")
		require.NoError(t, os.WriteFile(dispatch, []byte(`package main

import "os"

func init() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(cmdServe(os.Args[2:], os.Stdout, os.Stderr))
	}
}
`), 0o600))
		overlay, err := json.Marshal(map[string]map[string]string{
			"Replace": {filepath.Join(cmdDir, "zz_serve_dispatch.go"): dispatch},
		})
		require.NoError(t, err)
		overlayFile := filepath.Join(dir, "overlay.json")
		require.NoError(t, os.WriteFile(overlayFile, overlay, 0o600))
		args = append(args, "-overlay", overlayFile)
	}
	build := exec.Command(gotool, append(args, "github.com/runstep/runstep/cmd/runstep")...)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// startServe starts runstep serve and returns the process, its base URL,
// and the rest of its standard output.
func startServe(t *testing.T, bin string, env []string, args ...string) (*exec.Cmd, string, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	require.NoError(t, err, "stderr: %s", stderr.String())
	m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(line)
	require.NotNil(t, m, line)
	return cmd, m[1], out
}

// runstep serve, started as a process: it answers, keeps an event stream
// open, and on SIGTERM ends the stream, shuts down and exits 0.
func TestServeCommand(t *testing.T) {
	bin := buildRunstep(t)

	t.Run("loopback without token", func(t *testing.T) {
		cmd, url, out := startServe(t, bin, nil, "--addr", "127.0.0.1:0")
		resp, err := http.Get(url + "/v1/threads/thread_1/runs/run_1")
		require.NoError(t, err)
		readError(t, resp, http.StatusNotFound)

		stream, err := http.Get(url + "/v1/threads/thread_1/events")
		require.NoError(t, err)
		defer stream.Body.Close()
		require.Equal(t, http.StatusOK, stream.StatusCode)
		assert.Equal(t, "text/event-stream", stream.Header.Get("Content-Type"))

		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		// The open stream ends rather than hold the shutdown up.
		_, err = io.Copy(io.Discard, stream.Body)
		require.NoError(t, err)
		rest, err := io.ReadAll(out)
		require.NoError(t, err)
		assert.Contains(t, string(rest), "shutting down")
		require.NoError(t, cmd.Wait())
		assert.Equal(t, 0, cmd.ProcessState.ExitCode())
	})

	t.Run("every interface needs a token", func(t *testing.T) {
		cmd := exec.Command(bin, "serve", "--addr", "0.0.0.0:0")
		cmd.Env = append(os.Environ(), "RUNSTEP_TOKEN=")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit)
		assert.Equal(t, 2, exit.ExitCode())
		assert.Contains(t, string(out), "RUNSTEP_TOKEN")
	})

	t.Run("token from the environment", func(t *testing.T) {
		cmd, url, _ := startServe(t, bin, []string{"RUNSTEP_TOKEN=s3cret"}, "--addr", "0.0.0.0:0")
		url = strings.Replace(url, "0.0.0.0", "127.0.0.1", 1)
		url = strings.Replace(url, "[::]", "127.0.0.1", 1)
		resp, err := http.Get(url + "/v1/threads/thread_1/runs/run_1")
		require.NoError(t, err)
		readError(t, resp, http.StatusUnauthorized)

		req, err := http.NewRequest(http.MethodGet, url+"/v1/threads/thread_1/runs/run_1", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		readError(t, resp, http.StatusNotFound)

		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, cmd.Wait())
	})
}
