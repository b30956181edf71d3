package memory

import (
	"slices"
	"strings"

	"github.com/google/btree"
)

// runSteps orders one run's steps by created_at, then id, and holds
// their boxes, so a list reads them without looking each one up. Most runs
// have a few dozen steps, each created after the last or within its
// second: a sorted slice holds them at the cost of a comparison or two and
// a short copy each. A run that grows past smallRun steps moves to a
// B-tree, which keeps every insertion O(log n) whatever the order.
type runSteps struct {
	small []*stepBox              // sorted; nil once large is set
	large *btree.BTreeG[*stepBox] // nil until the run outgrows small
}

// smallRun is the most steps a run keeps in its sorted slice.
const smallRun = 128

// lessBoxes orders boxes by created_at, then id. Neither ever changes in
// a stored box.
func lessBoxes(a, b *stepBox) bool {
	if a.createdAt != b.createdAt { // ids compared only when they decide
		return a.createdAt < b.createdAt
	}
	return a.id < b.id
}

func compareBoxes(a, b *stepBox) int {
	switch {
	case a.createdAt < b.createdAt:
		return -1
	case a.createdAt > b.createdAt:
		return 1
	}
	return strings.Compare(a.id, b.id)
}

// put stores b as its step's box: in place of the step's earlier box, or
// as a new step. A B-tree it needs takes its nodes from nodes.
func (x *runSteps) put(b *stepBox, nodes *btree.FreeListG[*stepBox]) {
	if x.large != nil {
		x.large.ReplaceOrInsert(b)
		return
	}
	i := len(x.small)
	if i > 0 && !lessBoxes(x.small[i-1], b) {
		var found bool
		if i, found = slices.BinarySearchFunc(x.small, b, compareBoxes); found {
			x.small[i] = b
			return
		}
	}
	if len(x.small) == smallRun {
		x.large = btree.NewWithFreeListG(32, lessBoxes, nodes)
		for _, b := range x.small {
			x.large.ReplaceOrInsert(b)
		}
		x.small = nil
		x.large.ReplaceOrInsert(b)
		return
	}
	if x.small == nil {
		x.small = make([]*stepBox, 0, 8)
	}
	x.small = slices.Insert(x.small, i, b)
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
func (x *runSteps) walk(ascending bool, from *stepBox, visit func(*stepBox) bool) {
	if x.large != nil {
		x.walkLarge(ascending, from, visit)
		return
	}
	s := x.small
	if ascending {
		i := 0
		if from != nil {
			i, _ = slices.BinarySearchFunc(s, from, compareBoxes)
		}
		for ; i < len(s); i++ {
			if (from == nil || s[i].id != from.id) && !visit(s[i]) {
				return
			}
		}
		return
	}
	i := len(s) - 1
	if from != nil {
		j, found := slices.BinarySearchFunc(s, from, compareBoxes)
		i = j - 1
		if found {
			i = j
		}
	}
	for ; i >= 0; i-- {
		if (from == nil || s[i].id != from.id) && !visit(s[i]) {
			return
		}
	}
}

func (x *runSteps) walkLarge(ascending bool, from *stepBox, visit func(*stepBox) bool) {
	pastFrom := func(b *stepBox) bool { return b.id == from.id || visit(b) }
	switch {
	case from == nil && ascending:
		x.large.Ascend(visit)
	case from == nil:
		x.large.Descend(visit)
	case ascending:
		x.large.AscendGreaterOrEqual(from, pastFrom)
	default:
		x.large.DescendLessOrEqual(from, pastFrom)
	}
}
