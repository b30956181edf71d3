package lifecycle_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runstep/runstep/lifecycle"
)

func TestStepDiagram(t *testing.T) {
	for format, file := range map[lifecycle.DiagramFormat]string{
		lifecycle.DiagramMermaid: "step.mermaid",
		lifecycle.DiagramDOT:     "step.dot",
	} {
		t.Run(string(format), func(t *testing.T) {
			got, err := lifecycle.StepDiagram(format)
			require.NoError(t, err)
			requireGolden(t, file, []byte(got))
		})
	}

	t.Run("unknown format", func(t *testing.T) {
		got, err := lifecycle.StepDiagram("svg")
		requireInvalid(t, err, "format")
		require.Empty(t, got)
	})
}

func TestStatus(t *testing.T) {
	for _, s := range lifecycle.Statuses {
		require.True(t, s.Valid(), s)
		require.Equal(t, s != lifecycle.StatusInProgress, s.Terminal(), s)
	}
	for _, s := range []lifecycle.Status{"", "queued", "IN_PROGRESS"} {
		require.False(t, s.Valid(), s)
		require.False(t, s.Terminal(), s)
	}
}
