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
	nodes := btree.NewFreeListG[*stepBox](btree.DefaultFreeListSize)
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, smallRun - 1, smallRun, smallRun + 1, 3 * smallRun} {
		keys := make([]*stepBox, n)
		ids := r.Perm(10_000) // distinct, as a store's are, in no order
		for i := range keys {
			// Few seconds, so most steps share theirs with others.
			keys[i] = &stepBox{createdAt: int64(1_700_000_000 + i/40), id: fmt.Sprintf("step_%04d", ids[i])}
		}
		slices.SortFunc(keys, compareBoxes)
		orders := map[string][]*stepBox{
			"in order": keys,
			"reversed": reversed(keys),
			"shuffled": shuffled(r, keys),
		}
		for name, given := range orders {
			t.Run(fmt.Sprintf("%d steps %s", len(keys), name), func(t *testing.T) {
				var x runSteps
				for _, k := range given {
					x.put(k, nodes)
				}
				require.Equal(t, len(keys), x.len())
				require.Equal(t, len(keys) > smallRun, x.large != nil)
				froms := append([]*stepBox{nil}, keys...)
				for _, from := range froms {
					past, before := keys, keys // what lies past from each way
					if from != nil {
						i, _ := slices.BinarySearchFunc(keys, from, compareBoxes)
						past, before = keys[i+1:], keys[:i]
					}
					require.Equal(t, orNil(past), collect(&x, true, from))
					require.Equal(t, orNil(reversed(before)), collect(&x, false, from))
				}

				// A step's later box takes its earlier one's place.
				later := slices.Clone(keys)
				for i := 0; i < len(later); i += 3 {
					b := *later[i]
					later[i] = &b
					x.put(later[i], nodes)
				}
				require.Equal(t, len(keys), x.len())
				require.Equal(t, orNil(later), collect(&x, true, nil))
				if len(keys) > 2 {
					got := 0
					x.walk(true, nil, func(*stepBox) bool { got++; return got < 2 })
					require.Equal(t, 2, got, "a walk stops when told")
				}
			})
		}
	}
}

func collect(x *runSteps, ascending bool, from *stepBox) []*stepBox {
	out := []*stepBox{}
	x.walk(ascending, from, func(b *stepBox) bool { out = append(out, b); return true })
	if len(out) == 0 {
		return nil
	}
	return out
}

func shuffled(r *rand.Rand, keys []*stepBox) []*stepBox {
	s := slices.Clone(keys)
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

func reversed(keys []*stepBox) []*stepBox {
	s := slices.Clone(keys)
	slices.Reverse(s)
	return s
}

func orNil(keys []*stepBox) []*stepBox {
	if len(keys) == 0 {
		return nil
	}
	return keys
}
