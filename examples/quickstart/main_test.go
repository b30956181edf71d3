package main

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuickstart(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	stdout := os.Stdout
	os.Stdout = w
	main()
	os.Stdout = stdout
	require.NoError(t, w.Close())
	out, err := io.ReadAll(r)
	require.NoError(t, err)

	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, "completed 2", lines[0])
	assert.Regexp(t, regexp.MustCompile(`^refused: .*cannot cancel from status completed$`), lines[1])
	assert.Equal(t, "expired true", lines[2])
}

// The README shows this program; they must not drift apart.
func TestREADMEShowsThisProgram(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	block := regexp.MustCompile("(?s)```go\n(.*?)```").FindSubmatch(readme)
	require.NotNil(t, block, "README has a go block")
	source, err := os.ReadFile("main.go")
	require.NoError(t, err)
	// The README leaves out the package comment.
	body := source[bytes.Index(source, []byte("package main")):]
	assert.Equal(t, string(body), string(block[1]))
}
