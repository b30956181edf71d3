package engine

import "testing"

// BenchmarkNewID measures making a step id, seeded and random, against
// its floor in the same run: the one allocation an id needs, a 29-byte
// string made from bytes already drawn.
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
	b.Run("floor-string-of-drawn-bytes", func(b *testing.B) {
		drawn := []byte("step_0123456789ABCDEFGHIJKLMN")
		var sink string
		b.ReportAllocs()
		for b.Loop() {
			sink = string(drawn)
		}
		_ = sink
	})
}
