package memory

import (
	"slices"
	"strings"

	"github.com/google/btree"
)

// runSteps orders one run's steps by created_at, then id. Most runs have
// a few dozen steps, each created after the last or within its second:
// a sorted slice holds them at the cost of a comparison or two and a
// short copy each. A run that grows past smallRun steps moves to a B-tree,
// which keeps every insertion O(log n) whatever the order.
type runSteps struct {
	small []stepKey              // sorted; nil once large is set
	large *btree.BTreeG[stepKey] // nil until the run outgrows small
}

// smallRun is the most steps a run keeps in its sorted slice.
const smallRun = 128

type stepKey struct {
	createdAt int64
	id        string
}

func lessKeys(a, b stepKey) bool {
	if a.createdAt != b.createdAt { // ids compared only when they decide
		return a.createdAt < b.createdAt
	}
	return a.id < b.id
}

func compareKeys(a, b stepKey) int {
	if a.createdAt != b.createdAt {
		return cmpInt(a.createdAt, b.createdAt)
	}
	return strings.Compare(a.id, b.id)
}

func cmpInt(a, b int64) int {
	if a < b {
		return -1
	}
	return 1
}

// insert adds k, a step not in the index yet; a B-tree it needs takes its
// nodes from nodes.
func (x *runSteps) insert(k stepKey, nodes *btree.FreeListG[stepKey]) {
	if x.large != nil {
		x.large.ReplaceOrInsert(k)
		return
	}
	if len(x.small) == smallRun {
		x.large = btree.NewWithFreeListG(32, lessKeys, nodes)
		for _, k := range x.small {
			x.large.ReplaceOrInsert(k)
		}
		x.small = nil
		x.large.ReplaceOrInsert(k)
		return
	}
	i := len(x.small)
	if i > 0 && !lessKeys(x.small[i-1], k) {
		i, _ = slices.BinarySearchFunc(x.small, k, compareKeys)
	}
	if x.small == nil {
		x.small = make([]stepKey, 0, 8)
	}
	x.small = slices.Insert(x.small, i, k)
}

// len returns the number of steps.
func (x *runSteps) len() int {
	if x.large != nil {
		return x.large.Len()
	}
	return len(x.small)
}

// walk visits the steps in ascending or descending order, starting just
// past from (or at the first if from is nil), until visit returns false.
func (x *runSteps) walk(ascending bool, from *stepKey, visit func(stepKey) bool) {
	if x.large != nil {
		x.walkLarge(ascending, from, visit)
		return
	}
	s := x.small
	if ascending {
		i := 0
		if from != nil {
			i, _ = slices.BinarySearchFunc(s, *from, compareKeys)
		}
		for ; i < len(s); i++ {
			if (from == nil || s[i] != *from) && !visit(s[i]) {
				return
			}
		}
		return
	}
	i := len(s) - 1
	if from != nil {
		j, found := slices.BinarySearchFunc(s, *from, compareKeys)
		i = j - 1
		if found {
			i = j
		}
	}
	for ; i >= 0; i-- {
		if (from == nil || s[i] != *from) && !visit(s[i]) {
			return
		}
	}
}

func (x *runSteps) walkLarge(ascending bool, from *stepKey, visit func(stepKey) bool) {
	pastFrom := func(k stepKey) bool { return k == *from || visit(k) }
	switch {
	case from == nil && ascending:
		x.large.Ascend(visit)
	case from == nil:
		x.large.Descend(visit)
	case ascending:
		x.large.AscendGreaterOrEqual(*from, pastFrom)
	default:
		x.large.DescendLessOrEqual(*from, pastFrom)
	}
}
