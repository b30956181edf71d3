package memory

import (
	"testing"

	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/storetest"
)

// The whole contract holds when every id hashes alike, so that every step
// after the first is found through the collided map.
func TestConformanceEveryIDCollides(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return newStore(func(string) uint64 { return 42 })
	})
}
