package memory

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/btree"
	"github.com/stretchr/testify/require"
)

// A run's index walks its steps in order from any of them, in either
// direction, in its small form and after it has moved to a B-tree, for
// steps given in order, in reverse and shuffled.
func TestRunStepsWalk(t *testing.T) {
	nodes := btree.NewFreeListG[stepKey](btree.DefaultFreeListSize)
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, smallRun - 1, smallRun, smallRun + 1, 3 * smallRun} {
		keys := make([]stepKey, n)
		for i := range keys {
			// Few seconds, so most steps share theirs with others.
			keys[i] = stepKey{createdAt: int64(1_700_000_000 + i/40), id: fmt.Sprintf("step_%04d", r.IntN(10_000))}
		}
		slices.SortFunc(keys, compareKeys)
		keys = slices.CompactFunc(keys, func(a, b stepKey) bool { return a == b })
		orders := map[string][]stepKey{
			"in order": keys,
			"reversed": reversed(keys),
			"shuffled": shuffled(r, keys),
		}
		for name, given := range orders {
			t.Run(fmt.Sprintf("%d steps %s", len(keys), name), func(t *testing.T) {
				var x runSteps
				for _, k := range given {
					x.insert(k, nodes)
				}
				require.Equal(t, len(keys), x.len())
				require.Equal(t, len(keys) > smallRun, x.large != nil)
				froms := []*stepKey{nil}
				for i := range keys {
					froms = append(froms, &keys[i])
				}
				for _, from := range froms {
					want := keys
					if from != nil {
						i, _ := slices.BinarySearchFunc(keys, *from, compareKeys)
						want = keys[i+1:]
					}
					require.Equal(t, orNil(want), collect(&x, true, from))
					want = slices.Clone(keys)
					if from != nil {
						i, _ := slices.BinarySearchFunc(keys, *from, compareKeys)
						want = slices.Clone(keys[:i])
					}
					require.Equal(t, orNil(reversed(want)), collect(&x, false, from))
				}
				if len(keys) > 2 {
					got := 0
					x.walk(true, nil, func(stepKey) bool { got++; return got < 2 })
					require.Equal(t, 2, got, "a walk stops when told")
				}
			})
		}
	}
}

func collect(x *runSteps, ascending bool, from *stepKey) []stepKey {
	out := []stepKey{}
	x.walk(ascending, from, func(k stepKey) bool { out = append(out, k); return true })
	if len(out) == 0 {
		return nil
	}
	return out
}

func shuffled(r *rand.Rand, keys []stepKey) []stepKey {
	s := slices.Clone(keys)
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

func reversed(keys []stepKey) []stepKey {
	s := slices.Clone(keys)
	slices.Reverse(s)
	return s
}

func orNil(keys []stepKey) []stepKey {
	if len(keys) == 0 {
		return nil
	}
	return keys
}
