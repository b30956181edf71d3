package engine

import (
	"crypto/rand"
	mrand "math/rand/v2"
	"sync"
)

// IDGenerator makes object ids: a prefix such as "step_" and 24 base62
// characters, the shape of OpenAI's ids.
type IDGenerator interface {
	NewID(prefix string) string
}

// RandomIDs returns the default generator: unpredictable ids from a ChaCha8
// stream seeded by the operating system.
func RandomIDs() IDGenerator {
	var seed [32]byte
	_, _ = rand.Read(seed[:]) // crypto/rand.Read never fails since Go 1.24
	return &randomIDs{r: mrand.New(mrand.NewChaCha8(seed))}
}

// SeededIDs returns a generator whose ids are the same for the same seed
// every time, for tests and reproducible demos.
func SeededIDs(seed uint64) IDGenerator {
	return &randomIDs{r: mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// idLen is the number of random characters, as in OpenAI's ids.
const idLen = 24

// base62x8 is 62⁸: one uniform draw below it gives eight characters.
const base62x8 = 62 * 62 * 62 * 62 * 62 * 62 * 62 * 62

type randomIDs struct {
	// mu guards r, which is not safe for concurrent use.
	mu sync.Mutex
	r  *mrand.Rand
}

func (g *randomIDs) NewID(prefix string) string {
	var draws [idLen / 8]uint64
	g.mu.Lock()
	for i := range draws {
		draws[i] = g.r.Uint64N(base62x8)
	}
	g.mu.Unlock()
	b := make([]byte, len(prefix), len(prefix)+idLen)
	copy(b, prefix)
	for _, d := range draws {
		for range 8 {
			b = append(b, base62[d%62])
			d /= 62
		}
	}
	return string(b)
}
