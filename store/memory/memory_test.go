package memory_test

import (
	"testing"

	"github.com/runstep/runstep/store"
	"github.com/runstep/runstep/store/memory"
	"github.com/runstep/runstep/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memory.New() })
}
