package recfile

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestRoundTrip: records come back as written, key then data, appended to one buffer; a file cut
// inside a record is an error, not a clean end.
func TestRoundTrip(t *testing.T) {
	recs := []struct{ key, data string }{{"tok_a", `{"a":1}`}, {"", ""}, {"k", strings.Repeat("x", 70000)}}
	var file bytes.Buffer
	w := NewWriter(&file)
	for _, r := range recs {
		if err := w.Write(r.key, []byte(r.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	whole := file.Bytes()
	r := NewReader(bytes.NewReader(whole))
	var buf []byte
	for i, want := range recs {
		at := len(buf)
		var kl, dl int
		var err error
		buf, kl, dl, err = r.AppendNext(buf)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if k, d := string(buf[at:at+kl]), string(buf[at+kl:at+kl+dl]); k != want.key || d != want.data || at+kl+dl != len(buf) {
			t.Errorf("record %d: key %q, %d data bytes; want %q, %d", i, k, len(d), want.key, len(want.data))
		}
	}
	if _, _, _, err := r.AppendNext(buf); err != io.EOF {
		t.Errorf("after the last record: %v, want io.EOF", err)
	}
	for _, cut := range []int{1, 3, 7, len(whole) - 1} {
		r := NewReader(bytes.NewReader(whole[:cut]))
		var err error
		for err == nil {
			_, _, _, err = r.AppendNext(nil)
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("file cut at %d: %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
	if err := NewWriter(io.Discard).Write("k", make([]byte, MaxField+1)); err == nil {
		t.Error("a record over MaxField written")
	}
}
