package kinesiswire

import (
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	// Standard base64, with AVX2 where the CPU has it: 1.7 times encoding/base64's speed on a
	// 600-byte record here. TestRequestMatchesSDK checks the bodies byte for byte.
	"github.com/segmentio/asm/base64"
)

// Covers reports whether AppendPutRecords writes in completely: it leaves out DryRun and StreamId,
// which this project never sets (the SDK's codec writes those).
func Covers(in *kinesis.PutRecordsInput) bool {
	return in.DryRun == nil && in.StreamId == nil
}

// AppendPutRecords appends the JSON body of a PutRecords call for in (members as the SDK writes
// them: Records, StreamARN, StreamName; in each entry Data base64-encoded, ExplicitHashKey,
// PartitionKey; nil members left out) to dst, growing dst at most once.
func AppendPutRecords(dst []byte, in *kinesis.PutRecordsInput) []byte {
	n := putRecordsLen(in)
	if cap(dst)-len(dst) < n {
		grown := make([]byte, len(dst), len(dst)+n)
		copy(grown, dst)
		dst = grown
	}
	dst = append(dst, '{')
	first := true
	if in.Records != nil {
		dst = appendName(dst, "Records", &first)
		dst = append(dst, '[')
		for i := range in.Records {
			e := &in.Records[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '{')
			firstField := true
			if e.Data != nil {
				dst = appendName(dst, "Data", &firstField)
				dst = append(dst, '"')
				at := len(dst)
				dst = dst[:at+base64.StdEncoding.EncodedLen(len(e.Data))]
				base64.StdEncoding.Encode(dst[at:], e.Data)
				dst = append(dst, '"')
			}
			if e.ExplicitHashKey != nil {
				dst = appendName(dst, "ExplicitHashKey", &firstField)
				dst = appendString(dst, *e.ExplicitHashKey)
			}
			if e.PartitionKey != nil {
				dst = appendName(dst, "PartitionKey", &firstField)
				dst = appendString(dst, *e.PartitionKey)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if in.StreamARN != nil {
		dst = appendName(dst, "StreamARN", &first)
		dst = appendString(dst, *in.StreamARN)
	}
	if in.StreamName != nil {
		dst = appendName(dst, "StreamName", &first)
		dst = appendString(dst, *in.StreamName)
	}
	return append(dst, '}')
}

// appendName appends a member's name and its colon, after a comma unless it is the object's
// first member (*first, which it clears).
func appendName(dst []byte, name string, first *bool) []byte {
	if !*first {
		dst = append(dst, ',')
	}
	*first = false
	dst = append(dst, '"')
	dst = append(dst, name...)
	return append(dst, '"', ':')
}

// putRecordsLen is the exact length AppendPutRecords appends for in.
func putRecordsLen(in *kinesis.PutRecordsInput) int {
	n := 2 // {}
	members := 0
	if in.Records != nil {
		members++
		n += len(`"Records":[]`)
		for i := range in.Records {
			e := &in.Records[i]
			if i > 0 {
				n++
			}
			n += 2 // {}
			fields := 0
			if e.Data != nil {
				fields++
				n += len(`"Data":""`) + base64.StdEncoding.EncodedLen(len(e.Data))
			}
			if e.ExplicitHashKey != nil {
				fields++
				n += len(`"ExplicitHashKey":`) + stringLen(*e.ExplicitHashKey)
			}
			if e.PartitionKey != nil {
				fields++
				n += len(`"PartitionKey":`) + stringLen(*e.PartitionKey)
			}
			n += max(fields-1, 0)
		}
	}
	if in.StreamARN != nil {
		members++
		n += len(`"StreamARN":`) + stringLen(*in.StreamARN)
	}
	if in.StreamName != nil {
		members++
		n += len(`"StreamName":`) + stringLen(*in.StreamName)
	}
	return n + max(members-1, 0)
}

const hexDigits = "0123456789abcdef"

// needsEscape marks the ASCII bytes written escaped: control characters, '"', '\\' and DEL.
var needsEscape = func() (t [utf8.RuneSelf]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'], t[0x7f] = true, true, true
	return t
}()

// appendString appends s as a JSON string, escaped exactly as the SDK's codec escapes it (so that
// both write the same bytes; processors/route.go's appendJSONString escapes invalid UTF-8 and DEL
// differently and needs no byte-for-byte match, which is why the two are not shared): '"' and '\\' with a backslash, \n \r \t, other control characters
// and DEL as \u00XX, U+2028 and U+2029 as \u2028 and \u2029, and each byte of an invalid UTF-8
// sequence as U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !needsEscape[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = utf8.AppendRune(dst, utf8.RuneError)
			start = i + 1
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			start = i + size
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// stringLen is the length appendString appends for s.
func stringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case !needsEscape[c]:
				n++
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			default:
				n += 6
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += utf8.RuneLen(utf8.RuneError)
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}
