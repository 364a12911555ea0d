package kinesiswire

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// ContentTypeCBOR is the content type of Kinesis's CBOR encoding of its JSON 1.1 protocol: the
// same members, with blobs (a record's Data) as byte strings, not base64 text. Kinesis answers a
// request made in it in CBOR too, errors included.
const ContentTypeCBOR = "application/x-amz-cbor-1.1"

// CBOR major types (RFC 8949, section 3.1).
const (
	cborUint   = 0
	cborNegInt = 1
	cborBytes  = 2
	cborText   = 3
	cborArray  = 4
	cborMap    = 5
	cborTag    = 6
	cborSimple = 7
)

// cborHead appends the head of an item of major type major with argument n, in its shortest form.
func cborHead(dst []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(dst, m|byte(n))
	case n <= 0xff:
		return append(dst, m|24, byte(n))
	case n <= 0xffff:
		return append(dst, m|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(dst, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func cborHeadLen(n uint64) int {
	switch {
	case n < 24:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	case n <= 0xffffffff:
		return 5
	}
	return 9
}

// appendCBORText appends s as a text string. A text string must be UTF-8: each byte of an invalid
// sequence is written as U+FFFD, as appendString writes it in JSON, so that Kinesis reads the same
// string from either body.
func appendCBORText(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = validText(s)
	}
	return append(cborHead(dst, cborText, uint64(len(s))), s...)
}

func cborTextLen(s string) int {
	if !utf8.ValidString(s) {
		s = validText(s)
	}
	return cborHeadLen(uint64(len(s))) + len(s)
}

// validText is s with each byte of an invalid UTF-8 sequence replaced by U+FFFD.
func validText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// AppendPutRecordsCBOR appends the CBOR body of a PutRecords call for in: the members
// AppendPutRecords writes, in the same order, with each record's Data as a byte string. Kinesis
// reads it as it reads the JSON body; the data is not base64-encoded, so the body is about a
// quarter smaller and signing hashes that much less.
func AppendPutRecordsCBOR(dst []byte, in *kinesis.PutRecordsInput) []byte {
	if n := putRecordsCBORLen(in); cap(dst)-len(dst) < n {
		grown := make([]byte, len(dst), len(dst)+n)
		copy(grown, dst)
		dst = grown
	}
	members := 0
	for _, set := range []bool{in.Records != nil, in.StreamARN != nil, in.StreamName != nil} {
		if set {
			members++
		}
	}
	dst = cborHead(dst, cborMap, uint64(members))
	if in.Records != nil {
		dst = appendCBORText(dst, "Records")
		dst = cborHead(dst, cborArray, uint64(len(in.Records)))
		for i := range in.Records {
			e := &in.Records[i]
			fields := 0
			for _, set := range []bool{e.Data != nil, e.ExplicitHashKey != nil, e.PartitionKey != nil} {
				if set {
					fields++
				}
			}
			dst = cborHead(dst, cborMap, uint64(fields))
			if e.Data != nil {
				dst = append(dst, cborNameData...)
				dst = append(cborHead(dst, cborBytes, uint64(len(e.Data))), e.Data...)
			}
			if e.ExplicitHashKey != nil {
				dst = append(dst, cborNameExplicitHashKey...)
				dst = appendCBORText(dst, *e.ExplicitHashKey)
			}
			if e.PartitionKey != nil {
				dst = append(dst, cborNamePartitionKey...)
				dst = appendCBORText(dst, *e.PartitionKey)
			}
		}
	}
	if in.StreamARN != nil {
		dst = appendCBORText(dst, "StreamARN")
		dst = appendCBORText(dst, *in.StreamARN)
	}
	if in.StreamName != nil {
		dst = appendCBORText(dst, "StreamName")
		dst = appendCBORText(dst, *in.StreamName)
	}
	return dst
}

// The member names written for every record, encoded once.
var (
	cborNameData            = appendCBORText(nil, "Data")
	cborNameExplicitHashKey = appendCBORText(nil, "ExplicitHashKey")
	cborNamePartitionKey    = appendCBORText(nil, "PartitionKey")
)

// putRecordsCBORLen is the exact length AppendPutRecordsCBOR appends for in.
func putRecordsCBORLen(in *kinesis.PutRecordsInput) int {
	n := 1 // the map's head: at most 3 members
	if in.Records != nil {
		n += cborTextLen("Records") + cborHeadLen(uint64(len(in.Records)))
		for i := range in.Records {
			e := &in.Records[i]
			n++ // the entry's head: at most 3 members
			if e.Data != nil {
				n += len(cborNameData) + cborHeadLen(uint64(len(e.Data))) + len(e.Data)
			}
			if e.ExplicitHashKey != nil {
				n += len(cborNameExplicitHashKey) + cborTextLen(*e.ExplicitHashKey)
			}
			if e.PartitionKey != nil {
				n += len(cborNamePartitionKey) + cborTextLen(*e.PartitionKey)
			}
		}
	}
	if in.StreamARN != nil {
		n += cborTextLen("StreamARN") + cborTextLen(*in.StreamARN)
	}
	if in.StreamName != nil {
		n += cborTextLen("StreamName") + cborTextLen(*in.StreamName)
	}
	return n
}

// DecodePutRecordsOutputCBOR reads a PutRecords answer's CBOR body into out, as
// DecodePutRecordsOutput reads a JSON one: EncryptionType, FailedRecordCount and Records (each
// entry's ErrorCode, ErrorMessage, SequenceNumber and ShardId); null and undefined members stay
// unset, unknown members are skipped, tags are read through. Definite and indefinite lengths are
// both read. Strings are slices of body unless sent in chunks. Anything that is not one
// well-formed CBOR map of these shapes is an error.
func DecodePutRecordsOutputCBOR(body string, out *kinesis.PutRecordsOutput) error {
	d := cborDecoder{s: body}
	err := d.mapOf(func(name string) error {
		switch name {
		case "EncryptionType":
			s, ok, err := d.textOrNull()
			if ok {
				out.EncryptionType = types.EncryptionType(s)
			}
			return err
		case "FailedRecordCount":
			n, ok, err := d.uintOrNull()
			if err != nil || !ok {
				return err
			}
			if n > 1<<31-1 {
				return d.errorf("FailedRecordCount %d out of range", n)
			}
			c := int32(n)
			out.FailedRecordCount = &c
			return nil
		case "Records":
			return d.records(out)
		}
		return d.skip(1)
	})
	if err != nil {
		return err
	}
	if d.i != len(d.s) {
		return d.errorf("data after the answer")
	}
	return nil
}

// records reads the Records array: the entries from one allocation, the pointers to their fields
// from a few.
func (d *cborDecoder) records(out *kinesis.PutRecordsOutput) error {
	if d.nullNext() {
		return nil
	}
	var strs stringArena // the entries' fields point into it
	return d.arrayOf(func(n int) {
		out.Records = make([]types.PutRecordsResultEntry, 0, max(n, 0))
	}, func() error {
		var e types.PutRecordsResultEntry
		err := d.mapOf(func(name string) error {
			dst := resultField(&e, name)
			if dst == nil {
				return d.skip(3)
			}
			s, ok, err := d.textOrNull()
			if err != nil || !ok {
				return err
			}
			*dst = strs.ptr(s, cap(out.Records)-len(out.Records))
			return nil
		})
		out.Records = append(out.Records, e)
		return err
	})
}

// cborError is what an error answer in CBOR says: its __type and message.
type cborError struct {
	Type, Message string
}

// decodeCBORError reads an error answer's body: a map whose __type (or code) names the error and
// whose message (or Message) describes it; other members are skipped.
func decodeCBORError(body string) (cborError, error) {
	var e cborError
	d := cborDecoder{s: body}
	err := d.mapOf(func(name string) error {
		var dst *string
		switch strings.ToLower(name) {
		case "__type", "code":
			dst = &e.Type
		case "message":
			dst = &e.Message
		default:
			return d.skip(1)
		}
		s, _, err := d.textOrNull()
		if err == nil && (*dst == "" || name == "__type" || name == "message") {
			*dst = s
		}
		return err
	})
	if err == nil && d.i != len(d.s) {
		err = d.errorf("data after the answer")
	}
	return e, err
}

// cborDecoder reads CBOR from a string.
type cborDecoder struct {
	s string
	i int
}

var errCBOR = errors.New("malformed CBOR PutRecords answer")

// maxCBORDepth bounds nesting in skipped items.
const maxCBORDepth = 32

func (d *cborDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", errCBOR, d.i, fmt.Sprintf(format, args...))
}

// head reads an item's head, tags skipped: its major type, argument, and whether its length is
// indefinite (a byte or text string, array or map whose argument is then 0).
func (d *cborDecoder) head() (major byte, arg uint64, indefinite bool, err error) {
	for {
		if d.i >= len(d.s) {
			return 0, 0, false, d.errorf("unexpected end")
		}
		b := d.s[d.i]
		d.i++
		major, ai := b>>5, b&0x1f
		arg = 0
		switch {
		case ai < 24:
			arg = uint64(ai)
		case ai <= 27:
			n := 1 << (ai - 24)
			if len(d.s)-d.i < n {
				return 0, 0, false, d.errorf("unexpected end")
			}
			for _, c := range []byte(d.s[d.i : d.i+n]) {
				arg = arg<<8 | uint64(c)
			}
			d.i += n
		case ai == 31 && major >= cborBytes && major <= cborMap:
			indefinite = true
		case ai == 31 && major == cborSimple:
			return major, 0, false, d.errorf("unexpected break")
		default:
			return 0, 0, false, d.errorf("reserved additional information %d", ai)
		}
		if major != cborTag {
			return major, arg, indefinite, nil
		}
	}
}

// isBreak consumes the break that ends an indefinite-length item if it is next.
func (d *cborDecoder) isBreak() bool {
	if d.i < len(d.s) && d.s[d.i] == 0xff {
		d.i++
		return true
	}
	return false
}

// nullNext consumes a null or undefined if one is next.
func (d *cborDecoder) nullNext() bool {
	if d.i < len(d.s) && (d.s[d.i] == 0xf6 || d.s[d.i] == 0xf7) {
		d.i++
		return true
	}
	return false
}

// length checks that n bytes remain and returns n as an int.
func (d *cborDecoder) length(n uint64) (int, error) {
	if n > uint64(len(d.s)-d.i) {
		return 0, d.errorf("length %d past the end", n)
	}
	return int(n), nil
}

// textOrNull reads a text string, or a null or undefined (ok false).
func (d *cborDecoder) textOrNull() (string, bool, error) {
	if d.nullNext() {
		return "", false, nil
	}
	s, err := d.text()
	return s, err == nil, err
}

// text reads a text string: a slice of the input, or its chunks joined.
func (d *cborDecoder) text() (string, error) {
	major, arg, indefinite, err := d.head()
	if err != nil {
		return "", err
	}
	if major != cborText {
		return "", d.errorf("expected a text string, found major type %d", major)
	}
	if !indefinite {
		n, err := d.length(arg)
		if err != nil {
			return "", err
		}
		d.i += n
		return d.s[d.i-n : d.i], nil
	}
	var b strings.Builder
	for !d.isBreak() {
		chunk, err := d.text()
		if err != nil {
			return "", err
		}
		b.WriteString(chunk)
	}
	return b.String(), nil
}

// uintOrNull reads an unsigned integer, or a null or undefined (ok false).
func (d *cborDecoder) uintOrNull() (uint64, bool, error) {
	if d.nullNext() {
		return 0, false, nil
	}
	major, arg, _, err := d.head()
	if err != nil {
		return 0, false, err
	}
	if major != cborUint {
		return 0, false, d.errorf("expected an unsigned integer, found major type %d", major)
	}
	return arg, true, nil
}

// mapOf reads a map with text keys, calling member with the reader at each value; member must
// consume it.
func (d *cborDecoder) mapOf(member func(name string) error) error {
	major, arg, indefinite, err := d.head()
	if err != nil {
		return err
	}
	if major != cborMap {
		return d.errorf("expected a map, found major type %d", major)
	}
	for n := uint64(0); indefinite || n < arg; n++ {
		if indefinite && d.isBreak() {
			return nil
		}
		if !indefinite && arg-n > uint64(len(d.s)-d.i) {
			return d.errorf("map of %d members past the end", arg)
		}
		name, err := d.text()
		if err != nil {
			return err
		}
		if err := member(name); err != nil {
			return err
		}
	}
	return nil
}

// arrayOf reads an array, calling size with its length (-1 when indefinite) and then element with
// the reader at each element; element must consume it.
func (d *cborDecoder) arrayOf(size func(n int), element func() error) error {
	major, arg, indefinite, err := d.head()
	if err != nil {
		return err
	}
	if major != cborArray {
		return d.errorf("expected an array, found major type %d", major)
	}
	if indefinite {
		size(-1)
		for !d.isBreak() {
			if err := element(); err != nil {
				return err
			}
		}
		return nil
	}
	n, err := d.length(arg) // every element takes a byte at least
	if err != nil {
		return err
	}
	size(n)
	for range n {
		if err := element(); err != nil {
			return err
		}
	}
	return nil
}

// skip reads past one item of any kind. depth is its nesting.
func (d *cborDecoder) skip(depth int) error {
	if depth > maxCBORDepth {
		return d.errorf("nested deeper than %d", maxCBORDepth)
	}
	major, arg, indefinite, err := d.head()
	if err != nil {
		return err
	}
	switch major {
	case cborUint, cborNegInt, cborSimple:
		return nil // simple values and floats: their bytes are the head's argument
	case cborBytes, cborText:
		if indefinite {
			for !d.isBreak() {
				if err := d.skip(depth + 1); err != nil {
					return err
				}
			}
			return nil
		}
		n, err := d.length(arg)
		d.i += n
		return err
	}
	items := arg // cborArray
	if major == cborMap {
		if arg > uint64(len(d.s)) {
			return d.errorf("map of %d members past the end", arg)
		}
		items = 2 * arg
	}
	if !indefinite {
		if _, err := d.length(items); err != nil {
			return err
		}
	}
	for n := uint64(0); indefinite || n < items; n++ {
		if indefinite && d.isBreak() {
			return nil
		}
		if err := d.skip(depth + 1); err != nil {
			return err
		}
	}
	return nil
}
