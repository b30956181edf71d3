package replay

import (
	"hash/maphash"

	"github.com/runstep/runstep/lifecycle"
)

// The Replayer's state of every step and run. A replay keeps the state of
// every object the log created to its end, and a log may create millions:
// so a state is small, an element of a slice that never moves (growing a
// slice of a million states copies them all), found by its id's number
// (see ids), and, but for the runs still going, holds no pointer for the
// collector to follow.

type stepState struct {
	version int64
	run     int   // its run's index
	status  uint8 // its index in lifecycle.Statuses
}

type runState struct {
	version int64
	live    *liveRun // while the run has not ended
	steps   [5]int32 // by status, in the order of lifecycle.Statuses
	status  uint8    // its index in lifecycle.RunStatuses
}

// liveRun is a run that has not ended: all of it, for the machine to move
// it on, and its steps in progress.
type liveRun struct {
	run       lifecycle.Run // its pointers point to stamps and lastError
	stamps    [5]int64
	lastError lifecycle.LastError
	running   []runningStep // few at a time
}

// runningStep is a step in progress: all of it, for the machine to end
// it.
type runningStep struct {
	index int
	step  *lifecycle.Step
}

// set makes r the run's state. The state keeps its own copy of what r's
// pointers point to, so as not to keep the memory r is part of (a
// decoder allocates events together) as long as the run goes on. Its
// metadata, a map of its own, it shares.
func (lr *liveRun) set(r *lifecycle.Run) {
	lr.run = *r
	for i, p := range []**int64{&lr.run.StartedAt, &lr.run.ExpiresAt, &lr.run.CancelledAt, &lr.run.FailedAt, &lr.run.CompletedAt} {
		if *p != nil {
			lr.stamps[i] = **p
			*p = &lr.stamps[i]
		}
	}
	if r.LastError != nil {
		lr.lastError = *r.LastError
		lr.run.LastError = &lr.lastError
	}
}

// newLive returns a liveRun for a run that starts, reusing one of a run
// that ended.
func (r *Replayer) newLive() *liveRun {
	if n := len(r.spare); n > 0 {
		lr := r.spare[n-1]
		r.spare = r.spare[:n-1]
		return lr
	}
	return new(liveRun)
}

// end lets go of the liveRun of a run that has ended.
func (r *Replayer) end(rs *runState) {
	lr := rs.live
	rs.live = nil
	clear(lr.running)
	*lr = liveRun{running: lr.running[:0]}
	r.spare = append(r.spare, lr)
}

// chunkLen is how many elements a chunk of a list holds.
const chunkLen = 1 << 12

// list is a slice that grows a chunk at a time, so that its elements
// never move.
type list[T any] struct {
	chunks [][]T
	n      int
}

func (l *list[T]) len() int { return l.n }

// at returns element i, which must be below len.
func (l *list[T]) at(i int) *T { return &l.chunks[i/chunkLen][i%chunkLen] }

// add appends v and returns its index.
func (l *list[T]) add(v T) int {
	if l.n%chunkLen == 0 {
		l.chunks = append(l.chunks, make([]T, chunkLen))
	}
	*l.at(l.n) = v
	l.n++
	return l.n - 1
}

// ids numbers the ids of steps (or runs) 0, 1, 2, … in the order they
// are added, and finds an id's number. Its map is keyed by each id's
// 64-bit hash, not the id: neither key nor value is a pointer, so the
// collector does not look into it, and growing it rehashes integers, not
// ids. The ids' bytes are kept in large chunks without pointers, which the
// collector marks without looking into, where a string for each id would
// be an object of its own for it to mark at each collection.
type ids struct {
	hash    func(string) uint64
	numbers map[uint64]uint32 // by hash, of the first id of each hash
	others  map[string]int    // the rare ids whose hash an earlier id has
	refs    list[idRef]
	chunks  [][]byte
	fill    int // 1 + the index of the chunk short ids go to; 0 for none yet
}

// idRef is where an id's bytes are.
type idRef struct{ chunk, off, len uint32 }

// idChunk is the size of a chunk of ids' bytes. An id longer than an
// eighth of it has a chunk of its own.
const idChunk = 64 << 10

func newIDs() ids {
	seed := maphash.MakeSeed()
	return ids{
		hash:    func(id string) uint64 { return maphash.String(seed, id) },
		numbers: make(map[uint64]uint32),
	}
}

// is reports whether id is numbered n.
func (x *ids) is(n int, id string) bool {
	ref := x.refs.at(n)
	return string(x.chunks[ref.chunk][ref.off:ref.off+ref.len]) == id
}

// id returns the id numbered n.
func (x *ids) id(n int) string {
	ref := x.refs.at(n)
	return string(x.chunks[ref.chunk][ref.off : ref.off+ref.len])
}

// len returns how many ids there are.
func (x *ids) len() int { return x.refs.len() }

// find returns id's number, and the hash that add takes.
func (x *ids) find(id string) (n int, ok bool, hash uint64) {
	hash = x.hash(id)
	i, ok := x.numbers[hash]
	if !ok {
		return 0, false, hash
	}
	if x.is(int(i), id) {
		return int(i), true, hash
	}
	n, ok = x.others[id]
	return n, ok, hash
}

// add numbers id, which find did not find and gave hash, and returns its
// number.
func (x *ids) add(id string, hash uint64) int {
	n := x.refs.add(x.keep(id))
	if _, taken := x.numbers[hash]; taken {
		if x.others == nil {
			x.others = make(map[string]int)
		}
		x.others[id] = n
	} else {
		x.numbers[hash] = uint32(n)
	}
	return n
}

// keep copies id's bytes into a chunk.
func (x *ids) keep(id string) idRef {
	if len(id) > idChunk/8 {
		x.chunks = append(x.chunks, []byte(id))
		return idRef{uint32(len(x.chunks) - 1), 0, uint32(len(id))}
	}
	if x.fill == 0 || idChunk-len(x.chunks[x.fill-1]) < len(id) {
		x.chunks = append(x.chunks, make([]byte, 0, idChunk))
		x.fill = len(x.chunks)
	}
	c := &x.chunks[x.fill-1]
	off := len(*c)
	*c = append(*c, id...)
	return idRef{uint32(x.fill - 1), uint32(off), uint32(len(id))}
}
