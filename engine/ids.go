package engine

import (
	mrand "math/rand/v2"
	"sync"
)

// IDGenerator makes object ids: a prefix such as "step_" and 24 base62
// characters, the shape of OpenAI's ids.
type IDGenerator interface {
	NewID(prefix string) string
}

// RandomIDs returns the default generator: unpredictable ids from the
// runtime's ChaCha8 generators (math/rand/v2's top-level functions), which
// the operating system seeds and which need no lock.
func RandomIDs() IDGenerator { return randomIDs{} }

// SeededIDs returns a generator whose ids are the same for the same seed
// every time, for tests and reproducible demos.
func SeededIDs(seed uint64) IDGenerator {
	return &seededIDs{r: mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// idLen is the number of random characters, as in OpenAI's ids.
const idLen = 24

// base62x8 is 62⁸: one uniform draw below it gives eight characters.
const base62x8 = 62 * 62 * 62 * 62 * 62 * 62 * 62 * 62

// draws holds the draws that make one id.
type draws [idLen / 8]uint64

type randomIDs struct{}

func (randomIDs) NewID(prefix string) string {
	var d draws
	for i := range d {
		d[i] = mrand.Uint64N(base62x8)
	}
	return d.id(prefix)
}

type seededIDs struct {
	// mu guards r, which is not safe for concurrent use.
	mu sync.Mutex
	r  *mrand.Rand
}

func (g *seededIDs) NewID(prefix string) string {
	var d draws
	g.mu.Lock()
	for i := range d {
		d[i] = g.r.Uint64N(base62x8)
	}
	g.mu.Unlock()
	return d.id(prefix)
}

// pairs[n] is the two characters of n < 62², lower digit first.
var pairs = func() (p [62 * 62][2]byte) {
	for n := range p {
		p[n] = [2]byte{base62[n%62], base62[n/62]}
	}
	return p
}()

// id returns prefix and the characters of the draws, each draw's lower
// digits first, two at a time.
func (d *draws) id(prefix string) string {
	var buf [64]byte
	b := append(buf[:0], prefix...) // on the stack unless prefix is long
	for _, v := range d {
		for range 4 {
			p := pairs[v%(62*62)]
			b = append(b, p[0], p[1])
			v /= 62 * 62
		}
	}
	return string(b)
}
