package memory

import "hash/maphash"

// stepIndex finds stored steps by id. A map keyed by the ids themselves
// was most of a store's cost once it held a few million steps: every
// lookup compared an id it had to fetch from elsewhere, and every growth
// of the map fetched and hashed each id again. This one is keyed by a
// 64-bit hash of the id, kept in the map itself; an id whose hash another
// id already holds (which a store may never see) goes to a second map
// keyed by the id. Steps are never removed, so a hash's first holder
// stays, and an id found neither way is not stored.
type stepIndex struct {
	hash     func(string) uint64
	byHash   map[uint64]*stepBox
	collided map[string]*stepBox
}

func newStepIndex(hash func(string) uint64) stepIndex {
	if hash == nil {
		seed := maphash.MakeSeed()
		hash = func(id string) uint64 { return maphash.String(seed, id) }
	}
	return stepIndex{hash: hash, byHash: make(map[uint64]*stepBox)}
}

// get returns the box of the step with the given id, or nil.
func (x *stepIndex) get(id string) *stepBox {
	b := x.byHash[x.hash(id)]
	if b == nil || b.id == id {
		return b
	}
	return x.collided[id]
}

// put stores b as the box of the step with b's id, in place of any
// earlier one.
func (x *stepIndex) put(b *stepBox) {
	h := x.hash(b.id)
	if cur := x.byHash[h]; cur == nil || cur.id == b.id {
		x.byHash[h] = b
		return
	}
	if x.collided == nil {
		x.collided = make(map[string]*stepBox)
	}
	x.collided[b.id] = b
}
