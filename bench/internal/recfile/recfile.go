// Package recfile is the file of Kinesis records that make bench hands to its put loop process
// (bench/cmd/putloop): each record as its partition key and its data, each preceded by its length
// as a uvarint. It is read with no parsing beyond the lengths, so that the loop's cost is the calls'.
package recfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxField bounds a key's or a record's length as read back (a Kinesis record is at most 1 MiB).
const MaxField = 1 << 20

// Writer writes records.
type Writer struct {
	w   *bufio.Writer
	buf [binary.MaxVarintLen64]byte
}

// NewWriter returns a Writer onto w; Flush it when done.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriter(w)} }

// Write writes one record.
func (w *Writer) Write(key string, data []byte) error {
	if len(key) > MaxField || len(data) > MaxField {
		return fmt.Errorf("record of %d key and %d data bytes: over %d", len(key), len(data), MaxField)
	}
	w.w.Write(w.buf[:binary.PutUvarint(w.buf[:], uint64(len(key)))])
	w.w.WriteString(key)
	w.w.Write(w.buf[:binary.PutUvarint(w.buf[:], uint64(len(data)))])
	_, err := w.w.Write(data)
	return err
}

// Flush writes what is buffered.
func (w *Writer) Flush() error { return w.w.Flush() }

// Reader reads records.
type Reader struct{ r *bufio.Reader }

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 64<<10)} }

// AppendNext appends the next record's key and then its data to buf, and returns buf and the two
// lengths; io.EOF at the end of the file, io.ErrUnexpectedEOF (or a length error) inside a record.
func (r *Reader) AppendNext(buf []byte) (out []byte, keyLen, dataLen int, err error) {
	keyLen, err = r.length()
	if err != nil {
		return buf, 0, 0, err // io.EOF here is a clean end
	}
	if buf, err = r.appendN(buf, keyLen); err != nil {
		return buf, 0, 0, err
	}
	if dataLen, err = r.length(); err != nil {
		return buf, 0, 0, noEOF(err)
	}
	buf, err = r.appendN(buf, dataLen)
	return buf, keyLen, dataLen, err
}

func (r *Reader) length() (int, error) {
	n, err := binary.ReadUvarint(r.r)
	switch {
	case err != nil:
		return 0, err
	case n > MaxField:
		return 0, fmt.Errorf("field of %d bytes: over %d", n, MaxField)
	}
	return int(n), nil
}

func (r *Reader) appendN(buf []byte, n int) ([]byte, error) {
	at := len(buf)
	buf = append(buf, make([]byte, n)...)
	_, err := io.ReadFull(r.r, buf[at:])
	return buf, noEOF(err)
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
