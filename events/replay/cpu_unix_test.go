//go:build unix

package replay_test

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time the process has used so far, on every
// thread: on a machine shared with other work, it says what a replay costs
// where wall time cannot.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
