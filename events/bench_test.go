package events

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// BenchmarkDecodeLine compares the fast path with the reference decoder
// on the lines of a real capture's log, the choice fast.go rests on; and
// the fast path of a decoder that remembers the lines before, as a
// Reader's does:
//
//	go test ./events -run '^$' -bench DecodeLine
func BenchmarkDecodeLine(b *testing.B) {
	log, err := os.ReadFile(filepath.Join("testdata", "golden", "openai_streaming_tool_call.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(log, []byte("\n")), []byte("\n"))
	d := newDecoder()
	for _, tc := range []struct {
		name   string
		decode func([]byte) bool
	}{
		{"std", func(l []byte) bool { _, err := decodeEventStd(l); return err == nil }},
		{"fast", func(l []byte) bool { _, ok := decodeCanonical(l); return ok }},
		{"fast-reader", func(l []byte) bool { _, ok := d.canonical(l); return ok }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(log)))
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				for _, l := range lines {
					if !tc.decode(l) {
						b.Fatalf("not decoded: %s", l)
					}
				}
			}
			runtime.ReadMemStats(&after)
			events := float64(b.N * len(lines))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/events, "allocs/event")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/events, "B/event")
		})
	}
}
