package profile

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// hasStrings reads a pprof file (gzipped protobuf) and checks that its string table holds each of
// want: the sample types a CPU or an allocation profile declares.
func hasStrings(t *testing.T, path string, want ...string) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatalf("%s: not a gzipped profile: %v", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, w := range want {
		if !bytes.Contains(b, []byte(w)) {
			t.Errorf("%s: no %q in the profile", path, w)
		}
	}
}

func TestStartWritesBothProfiles(t *testing.T) {
	dir := t.TempDir()
	f := Files{CPU: filepath.Join(dir, "cpu.pprof"), Mem: filepath.Join(dir, "mem.pprof")}
	stop, err := Start(f)
	if err != nil {
		t.Fatal(err)
	}
	sink := 0
	for i := range 200_000 {
		b := make([]byte, 64+i%64)
		sink += len(b)
	}
	_ = sink
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	hasStrings(t, f.CPU, "samples", "cpu", "nanoseconds")
	hasStrings(t, f.Mem, "alloc_objects", "alloc_space", "inuse_space")
}

func TestStartNothing(t *testing.T) {
	stop, err := Start(Files{})
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestStartBadPath(t *testing.T) {
	if _, err := Start(Files{CPU: filepath.Join(t.TempDir(), "no", "such", "dir", "cpu.pprof")}); err == nil {
		t.Fatal("a CPU profile in a missing directory started")
	}
	stop, err := Start(Files{Mem: filepath.Join(t.TempDir(), "no", "such", "mem.pprof")})
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err == nil {
		t.Fatal("an allocation profile in a missing directory was reported written")
	}
}
