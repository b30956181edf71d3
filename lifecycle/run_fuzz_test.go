package lifecycle_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/lifecycle"
)

// FuzzRunJSON feeds arbitrary bytes to Run's decoder. Whatever it accepts
// must be a valid run whose JSON form decodes back to the same run;
// whatever it refuses must be refused with a *ValidationError or a
// *json.SyntaxError, never a panic.
//
// The seeds are the golden files (the step ones are runs of the wrong
// object), the recorded runs, and a few broken inputs;
// testdata/fuzz/FuzzRunJSON keeps what fuzzing found.
func FuzzRunJSON(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	require.NoError(f, err)
	for _, name := range files {
		b, err := os.ReadFile(name)
		require.NoError(f, err)
		f.Add(b)
	}
	for _, rec := range recordedRuns {
		f.Add([]byte(rec.data))
	}
	for _, s := range []string{
		"",
		"null",
		"{}",
		"[]",
		`{"id":1}`,
		`{"id":"run_1","object":"thread.run.step","created_at":1761861531,"assistant_id":"asst_1","thread_id":"thread_1","status":"queued"}`,
		`{"id":"run_1","object":"thread.run","created_at":"now","assistant_id":"asst_1","thread_id":"thread_1","status":"queued"}`,
		`{"id":"run_1","object":"thread.run","created_at":1761861531,"assistant_id":"asst_1","thread_id":"thread_1","status":"failed","failed_at":1,"last_error":{"code":"invalid_prompt","message":""}}`,
		`{"id":"run_1","object":"thread.run","created_at":1761861531,"assistant_id":"asst_1","thread_id":"thread_1","status":"queued","metadata":{"k":null}}`,
		`{"id":"run_1","object":"thread.run","created_at":1761861531,"assistant_id":"asst_1","thread_id":"thread_1","status":"queued","ID":"run_2","Status":"expired"}`,
		recordedRunCompleted[:len(recordedRunCompleted)/2],
		"{\"id\":\"\xff\"",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		var r lifecycle.Run
		if err := json.Unmarshal(data, &r); err != nil {
			var (
				ve     *lifecycle.ValidationError
				syntax *json.SyntaxError
			)
			if !errors.As(err, &ve) && !errors.As(err, &syntax) {
				t.Fatalf("refused with %T, want *lifecycle.ValidationError or *json.SyntaxError: %v", err, err)
			}
			require.Zero(t, r, "a refused run was half decoded")
			return
		}
		require.NoError(t, r.Validate())
		out, err := json.Marshal(r)
		require.NoError(t, err)
		var back lifecycle.Run
		require.NoError(t, json.Unmarshal(out, &back), "%s", out)
		require.Equal(t, r, back, "round trip of %s", out)
	})
}
