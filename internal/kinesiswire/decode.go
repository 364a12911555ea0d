package kinesiswire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// DecodePutRecordsOutput reads a PutRecords answer's JSON body into out, as the SDK's codec does:
// EncryptionType, FailedRecordCount and Records (each entry's ErrorCode, ErrorMessage,
// SequenceNumber and ShardId); null members stay unset, unknown members are skipped. The strings
// are slices of body (no copy) unless escaped. Anything that is not one well-formed JSON object of
// these shapes is an error.
func DecodePutRecordsOutput(body string, out *kinesis.PutRecordsOutput) error {
	d := decoder{s: body}
	err := d.object(func(name string) error {
		switch name {
		case "EncryptionType":
			s, ok, err := d.stringOrNull()
			if ok {
				out.EncryptionType = types.EncryptionType(s)
			}
			return err
		case "FailedRecordCount":
			if d.null() {
				return nil
			}
			n, err := d.int32()
			if err != nil {
				return err
			}
			out.FailedRecordCount = &n
			return nil
		case "Records":
			return d.records(out)
		}
		return d.skip()
	})
	if err != nil {
		return err
	}
	d.ws()
	if d.i != len(d.s) {
		return d.errorf("data after the answer")
	}
	return nil
}

// records reads the Records array: the entries come from one allocation, and the pointers to
// their fields from a few.
func (d *decoder) records(out *kinesis.PutRecordsOutput) error {
	if d.null() {
		return nil
	}
	if err := d.expect('['); err != nil {
		return err
	}
	// Answers have as many entries as the request; count them first so the slice is made once.
	out.Records = make([]types.PutRecordsResultEntry, 0, d.countElements())
	var strs stringArena // the entries' fields point into it
	d.ws()
	if d.peek() == ']' {
		d.i++
		return nil
	}
	for {
		var e types.PutRecordsResultEntry
		err := d.object(func(name string) error {
			dst := resultField(&e, name)
			if dst == nil {
				return d.skip()
			}
			s, ok, err := d.stringOrNull()
			if err != nil || !ok {
				return err
			}
			*dst = strs.ptr(s, cap(out.Records)-len(out.Records))
			return nil
		})
		if err != nil {
			return err
		}
		out.Records = append(out.Records, e)
		d.ws()
		switch d.peek() {
		case ',':
			d.i++
			d.ws()
		case ']':
			d.i++
			return nil
		default:
			return d.errorf("expected , or ] in Records")
		}
	}
}

// resultField is the field of an answered entry that its member name sets, nil for any other
// member.
func resultField(e *types.PutRecordsResultEntry, name string) **string {
	switch name {
	case "ErrorCode":
		return &e.ErrorCode
	case "ErrorMessage":
		return &e.ErrorMessage
	case "SequenceNumber":
		return &e.SequenceNumber
	case "ShardId":
		return &e.ShardId
	}
	return nil
}

// stringArena hands out pointers to strings from a few allocations, not one per field.
type stringArena []string

// ptr returns a pointer to a copy of s; entriesLeft sizes the next allocation (four fields each).
func (a *stringArena) ptr(s string, entriesLeft int) *string {
	if cap(*a) == len(*a) {
		*a = make([]string, 0, max(16, 4*entriesLeft))
	}
	*a = append(*a, s)
	return &(*a)[len(*a)-1]
}

// decoder reads JSON from a string.
type decoder struct {
	s string
	i int
}

var errSyntax = errors.New("malformed PutRecords answer")

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", errSyntax, d.i, fmt.Sprintf(format, args...))
}

func (d *decoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) peek() byte {
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

func (d *decoder) expect(c byte) error {
	d.ws()
	if d.peek() != c {
		return d.errorf("expected %q", c)
	}
	d.i++
	return nil
}

// null consumes a null literal if one is next.
func (d *decoder) null() bool {
	d.ws()
	if len(d.s)-d.i >= 4 && d.s[d.i:d.i+4] == "null" {
		d.i += 4
		return true
	}
	return false
}

// object reads an object, calling member for each member with the reader at its value; member
// must consume the value.
func (d *decoder) object(member func(name string) error) error {
	if err := d.expect('{'); err != nil {
		return err
	}
	d.ws()
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		d.ws()
		name, err := d.str()
		if err != nil {
			return err
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		d.ws()
		if err := member(name); err != nil {
			return err
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.errorf("expected , or }")
		}
	}
}

// stringOrNull reads a string (ok) or null (not ok).
func (d *decoder) stringOrNull() (string, bool, error) {
	if d.null() {
		return "", false, nil
	}
	s, err := d.str()
	return s, err == nil, err
}

// str reads a string: a slice of the input when it has no escapes.
func (d *decoder) str() (string, error) {
	if d.peek() != '"' {
		return "", d.errorf("expected a string")
	}
	start := d.i
	escaped := false
	for d.i++; d.i < len(d.s); d.i++ {
		switch c := d.s[d.i]; {
		case c == '"':
			d.i++
			if !escaped {
				return d.s[start+1 : d.i-1], nil
			}
			var v string
			if err := json.Unmarshal([]byte(d.s[start:d.i]), &v); err != nil {
				return "", d.errorf("bad string: %v", err)
			}
			return v, nil
		case c == '\\':
			escaped = true
			d.i++
		case c < 0x20:
			return "", d.errorf("control character in a string")
		}
	}
	return "", d.errorf("unterminated string")
}

// int32 reads an integer that fits in 32 bits.
func (d *decoder) int32() (int32, error) {
	start := d.i
	for d.i < len(d.s) && (d.s[d.i] == '-' || (d.s[d.i] >= '0' && d.s[d.i] <= '9')) {
		d.i++
	}
	n, err := strconv.ParseInt(d.s[start:d.i], 10, 32)
	if err != nil {
		return 0, d.errorf("bad integer %q", d.s[start:d.i])
	}
	return int32(n), nil
}

// skip moves past one value, checking that it is well formed.
func (d *decoder) skip() error {
	d.ws()
	switch c := d.peek(); {
	case c == '"':
		_, err := d.str()
		return err
	case c == '{':
		return d.object(func(string) error { return d.skip() })
	case c == '[':
		d.i++
		d.ws()
		if d.peek() == ']' {
			d.i++
			return nil
		}
		for {
			if err := d.skip(); err != nil {
				return err
			}
			d.ws()
			switch d.peek() {
			case ',':
				d.i++
			case ']':
				d.i++
				return nil
			default:
				return d.errorf("expected , or ]")
			}
		}
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(d.s)-d.i >= len(lit) && d.s[d.i:d.i+len(lit)] == lit {
				d.i += len(lit)
				return nil
			}
		}
		return d.errorf("bad literal")
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.i
		for d.i < len(d.s) && isNumberByte(d.s[d.i]) {
			d.i++
		}
		if _, err := strconv.ParseFloat(d.s[start:d.i], 64); err != nil {
			return d.errorf("bad number")
		}
		return nil
	}
	return d.errorf("expected a value")
}

func isNumberByte(c byte) bool {
	return c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' || (c >= '0' && c <= '9')
}

// countElements counts the elements of the array whose '[' was just read, without moving: the
// commas at its own depth, plus one unless it is empty. Strings are skipped whole.
func (d *decoder) countElements() int {
	depth, n, any := 0, 0, false
	for i := d.i; i < len(d.s); i++ {
		switch c := d.s[i]; c {
		case '"':
			any = true
			for i++; i < len(d.s) && d.s[i] != '"'; i++ {
				if d.s[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			any = true
			depth++
		case '}', ']':
			if depth == 0 {
				if any {
					n++
				}
				return n
			}
			depth--
		case ',':
			if depth == 0 {
				n++
			}
		case ' ', '\t', '\n', '\r':
		default:
			any = true
		}
	}
	return n
}
