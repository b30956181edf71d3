package engine

import "testing"

func BenchmarkNewID(b *testing.B) {
	for _, g := range []struct {
		name string
		ids  IDGenerator
	}{{"seeded", SeededIDs(1)}, {"random", RandomIDs()}} {
		b.Run(g.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = g.ids.NewID("step_")
			}
		})
	}
}
