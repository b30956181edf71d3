package lifecycle_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/internal/schematest"
	"github.com/runstep/runstep/lifecycle"
)

// FuzzStepJSON feeds arbitrary bytes to Step's decoder. Whatever it accepts
// must be a valid step whose JSON form the schema accepts and decodes back
// to the same step; whatever it refuses must be refused with a
// *ValidationError or a *json.SyntaxError, never a panic.
//
// The seeds are the golden files, the recorded step, and a few broken
// inputs; testdata/fuzz/FuzzStepJSON keeps what fuzzing found.
func FuzzStepJSON(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	require.NoError(f, err)
	files = append(files, filepath.Join("testdata", "openai_tool_calls_step_completed.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		require.NoError(f, err)
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"null",
		"{}",
		"[]",
		`{"id":1}`,
		`{"id":"step_1","object":"thread.run","created_at":"now"}`,
		`{"step_details":{"type":"tool_calls","tool_calls":[null]}}`,
		"{\"id\":\"\xff\"",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		var s lifecycle.Step
		if err := json.Unmarshal(data, &s); err != nil {
			var (
				ve     *lifecycle.ValidationError
				syntax *json.SyntaxError
			)
			if !errors.As(err, &ve) && !errors.As(err, &syntax) {
				t.Fatalf("refused with %T, want *lifecycle.ValidationError or *json.SyntaxError: %v", err, err)
			}
			return
		}
		require.NoError(t, s.Validate())
		out, err := json.Marshal(s)
		require.NoError(t, err)
		require.NoError(t, schematest.ValidateStep(out), "%s", out)
		var back lifecycle.Step
		require.NoError(t, json.Unmarshal(out, &back), "%s", out)
		require.Equal(t, s, back, "round trip of %s", out)
	})
}
