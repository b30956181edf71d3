//go:build unix

package engine_test

import (
	"syscall"
	"testing"
)

// benchFreshPage is a calibration: the first touch of a 4 KiB page of
// memory the process has never used, the price of every byte a store that
// grows keeps, on this machine. The pages come from the operating system
// directly, so that no run reuses what an earlier run freed.
func benchFreshPage(b *testing.B) {
	const page, region = 4096, 64 << 20
	var mem []byte
	for i := 0; b.Loop(); i++ {
		off := i * page % region
		if off == 0 {
			b.StopTimer()
			if mem != nil {
				if err := syscall.Munmap(mem); err != nil {
					b.Fatal(err)
				}
			}
			var err error
			if mem, err = syscall.Mmap(-1, 0, region, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		mem[off] = 1
	}
	if mem != nil {
		if err := syscall.Munmap(mem); err != nil {
			b.Fatal(err)
		}
	}
}
