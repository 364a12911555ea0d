//go:build unix

package main

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// withStdin runs f with fd 0 replaced by fd (restored after).
func withStdin(t *testing.T, fd int, f func()) {
	t.Helper()
	saved, err := syscall.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := syscall.Dup2(saved, 0); err != nil {
			t.Errorf("restoring stdin: %v", err)
		}
		syscall.Close(saved)
	}()
	if err := syscall.Dup2(fd, 0); err != nil {
		t.Fatal(err)
	}
	f()
}

// A pipe on stdin is read through the runtime's poller (a file that takes deadlines is pollable),
// and reads what was written; a regular file is read as it is.
func TestInputPipeIsPolled(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	withStdin(t, int(pr.Fd()), func() { // Fd() leaves pr blocking, as a child's inherited stdin is
		in := input()
		if err := in.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Fatalf("stdin pipe is not read through the poller: %v", err)
		}
		if _, err := pw.Write([]byte("line\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16)
		n, err := in.Read(buf)
		if err != nil || string(buf[:n]) != "line\n" {
			t.Fatalf("read %q, %v", buf[:n], err)
		}
	})

	f, err := os.CreateTemp(t.TempDir(), "in")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	withStdin(t, int(f.Fd()), func() {
		if err := input().SetReadDeadline(time.Now()); !errors.Is(err, os.ErrNoDeadline) {
			t.Fatalf("a regular file on stdin: SetReadDeadline = %v, want os.ErrNoDeadline (left as it is)", err)
		}
	})
}
