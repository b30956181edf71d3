// Package schematest checks JSON against the run step schema of the spec
// (a copy of shared/spec/run_step.bundle.schema.json), for tests.
package schematest

import (
	"bytes"
	_ "embed"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed testdata/run_step.bundle.schema.json
var bundle []byte

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(bundle))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	const url = "run_step.bundle.schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
})

// ValidateStep returns nil if data is one run step the schema accepts.
func ValidateStep(data []byte) error {
	sch, err := compiled()
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// RequireValidStep fails t unless data is a run step the schema accepts.
func RequireValidStep(t testing.TB, data []byte) {
	t.Helper()
	if err := ValidateStep(data); err != nil {
		t.Fatalf("step JSON does not match the spec's schema: %v\n%s", err, data)
	}
}
