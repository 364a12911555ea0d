//go:build unix

package main

import (
	"os"
	"syscall"
)

// input is stdin as the forwarder reads it. A pipe (loadgen | forwarder, localrun's stack) is
// switched to non-blocking and read through the runtime's poller: a read that waits for the next
// line then parks its goroutine instead of holding a thread in a blocking read(2), which keeps the
// runtime's monitor thread waking every 20 µs to take the thread's processor back (a quarter of
// the forwarder's CPU at 150 lines/s on the development VM). Anything else (a file, a terminal,
// whose non-blocking flag other processes share) is read as it is.
func input() *os.File {
	var st syscall.Stat_t
	if err := syscall.Fstat(0, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return os.Stdin
	}
	if err := syscall.SetNonblock(0, true); err != nil {
		return os.Stdin
	}
	return os.NewFile(0, "/dev/stdin")
}
