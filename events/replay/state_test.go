package replay

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// ids numbers ids as a map would, whatever their lengths and however many,
// and whether their hashes are all apart or often the same.
func TestIDs(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		x := newIDs()
		if rapid.Bool().Draw(t, "collide") {
			x.hash = func(id string) uint64 { return uint64(len(id) % 4) }
		}
		want := map[string]int{}
		var order []string
		id := rapid.OneOf(
			rapid.StringMatching(`step_[a-c]{1,3}`), // few: often seen again
			rapid.StringMatching(`run_[0-9a-z]{1,30}`),
			rapid.Just(""),
			rapid.Custom(func(t *rapid.T) string { // longer than a chunk's eighth
				return strings.Repeat("x", idChunk/8+rapid.IntRange(-2, 2).Draw(t, "over"))
			}),
		)
		for range rapid.IntRange(1, 3000).Draw(t, "ops") {
			s := id.Draw(t, "id")
			n, ok, hash := x.find(s)
			w, known := want[s]
			require.Equal(t, known, ok, "%q", s)
			if ok {
				require.Equal(t, w, n, "%q", s)
				continue
			}
			require.Equal(t, len(order), x.add(s, hash))
			want[s] = len(order)
			order = append(order, s)
		}
		require.Equal(t, len(order), x.len())
		for n, s := range order {
			require.Equal(t, s, x.id(n))
			got, ok, _ := x.find(s)
			require.True(t, ok)
			require.Equal(t, n, got)
		}
	})
}

// Many ids: the map grows, and the ids fill several chunks.
func TestIDsGrow(t *testing.T) {
	x := newIDs()
	const n = 50_000
	id := func(i int) string { return "step_" + strings.Repeat("0", i%7) + strconv.Itoa(i) }
	for i := range n {
		_, ok, hash := x.find(id(i))
		require.False(t, ok)
		require.Equal(t, i, x.add(id(i), hash))
	}
	require.Greater(t, len(x.chunks), 1)
	for i := range n {
		got, ok, _ := x.find(id(i))
		require.True(t, ok, id(i))
		require.Equal(t, i, got)
	}
	_, ok, _ := x.find("step_x")
	require.False(t, ok)
}

// Ids of one hash are told apart by their bytes.
func TestIDsOfOneHash(t *testing.T) {
	x := newIDs()
	x.hash = func(string) uint64 { return 42 }
	all := []string{"run_a", "run_b", "", "run_c"}
	for want, s := range all {
		_, ok, hash := x.find(s)
		require.False(t, ok, "%q", s)
		require.Equal(t, want, x.add(s, hash))
	}
	for want, s := range all {
		n, ok, _ := x.find(s)
		require.True(t, ok, "%q", s)
		require.Equal(t, want, n)
		require.Equal(t, s, x.id(n))
	}
	_, ok, _ := x.find("run_d")
	require.False(t, ok)
}

func TestList(t *testing.T) {
	var l list[int]
	for i := range 3*chunkLen + 5 {
		require.Equal(t, i, l.add(i*i))
	}
	p := l.at(7)
	for i := range l.len() {
		require.Equal(t, i*i, *l.at(i))
	}
	require.Same(t, p, l.at(7), "an element does not move")
}
