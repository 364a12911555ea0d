package kinesiswire

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// PutRecordsEntry is what ScanPutRecordsRequest reports of one entry of a PutRecords request.
type PutRecordsEntry struct {
	PartitionKey    string
	ExplicitHashKey string
	// DataLen is the length of the bytes Data encodes (standard base64, as the SDK sends it).
	DataLen int
	// Start and End bound the entry's object in the body: body[Start:End] is its JSON, as sent.
	Start, End int
}

// PutRecordsRequest is what ScanPutRecordsRequest reports of a PutRecords request body.
type PutRecordsRequest struct {
	StreamName, StreamARN string
	Records               []PutRecordsEntry
	// RecordsStart and RecordsEnd bound the Records array in the body: body[RecordsStart:RecordsEnd]
	// is its JSON from '[' to ']' (both zero when the body has no Records array).
	RecordsStart, RecordsEnd int
}

// ScanPutRecordsRequest reads a PutRecords request's JSON body the way a proxy needs it: the
// stream, and each entry's partition key, explicit hash key, decoded data length and place in the
// body, so that a caller can route entries to shards and forward some of them without decoding
// the data (a decoder-side helper: the encoder in encode.go writes these bodies). It reads the
// body once without copying the data; strings are slices of body unless escaped. Unknown members
// are skipped; anything that is not one well-formed JSON object of this shape is an error.
func ScanPutRecordsRequest(body string) (PutRecordsRequest, error) {
	var req PutRecordsRequest
	d := decoder{s: body}
	err := d.object(func(name string) error {
		switch name {
		case "StreamName", "StreamARN":
			s, _, err := d.stringOrNull()
			if name == "StreamName" {
				req.StreamName = s
			} else {
				req.StreamARN = s
			}
			return err
		case "Records":
			if d.null() {
				return nil
			}
			req.RecordsStart = d.i
			if err := d.expect('['); err != nil {
				return err
			}
			req.Records = make([]PutRecordsEntry, 0, d.countElements())
			d.ws()
			if d.peek() == ']' {
				d.i++
				req.RecordsEnd = d.i
				return nil
			}
			for {
				d.ws()
				e := PutRecordsEntry{Start: d.i}
				err := d.object(func(name string) error {
					var dst *string
					switch name {
					case "PartitionKey":
						dst = &e.PartitionKey
					case "ExplicitHashKey":
						dst = &e.ExplicitHashKey
					case "Data":
						s, _, err := d.stringOrNull()
						e.DataLen = decodedLen(s)
						return err
					default:
						return d.skip()
					}
					s, _, err := d.stringOrNull()
					*dst = s
					return err
				})
				if err != nil {
					return err
				}
				e.End = d.i
				req.Records = append(req.Records, e)
				d.ws()
				switch d.peek() {
				case ',':
					d.i++
				case ']':
					d.i++
					req.RecordsEnd = d.i
					return nil
				default:
					return d.errorf("expected , or ] in Records")
				}
			}
		}
		return d.skip()
	})
	if err != nil {
		return PutRecordsRequest{}, fmt.Errorf("PutRecords request: %w", err)
	}
	d.ws()
	if d.i != len(d.s) {
		return PutRecordsRequest{}, fmt.Errorf("PutRecords request: %w", d.errorf("data after the request"))
	}
	return req, nil
}

// decodedLen is the length of the bytes a standard, padded base64 text encodes.
func decodedLen(s string) int {
	pad := len(s) - len(strings.TrimRight(s, "="))
	return max(0, base64.StdEncoding.DecodedLen(len(s))-pad)
}
