//go:build !unix

package main

import "os"

// input is stdin as the forwarder reads it (see stdin_unix.go).
func input() *os.File { return os.Stdin }
