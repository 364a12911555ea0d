package faultproxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/smithy-go/encoding/cbor"

	"github.com/kinesis-events/pipeline/internal/kinesiswire"
)

// A PutRecords or PutRecord call in CBOR (kinesiswire.ContentTypeCBOR, what the forwarder sends)
// is read as the JSON call it stands for: its body is transcoded on the way in, so that rules,
// limits and the split of a PutRecords call see what they see of a JSON one and the emulator gets
// JSON, and every answer (the emulator's, or the proxy's own: throttled entries, faults, errors)
// goes back transcoded to CBOR, as Kinesis answers a CBOR call.

// inCBOR reports whether a call of op with this Content-Type is transcoded.
func inCBOR(op, contentType string) bool {
	return (op == "PutRecords" || op == "PutRecord") && strings.HasPrefix(contentType, kinesiswire.ContentTypeCBOR)
}

// cborRequestAsJSON is the JSON body of the call whose CBOR body is body: maps as objects, byte
// strings (a record's Data) as base64 text, tags read through.
func cborRequestAsJSON(body []byte) ([]byte, error) {
	v, err := cbor.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("not a CBOR request: %w", err)
	}
	plain, err := fromCBOR(v, 0)
	if err != nil {
		return nil, err
	}
	return json.Marshal(plain)
}

func fromCBOR(v cbor.Value, depth int) (any, error) {
	if depth > 32 {
		return nil, fmt.Errorf("CBOR request nested deeper than 32")
	}
	switch v := v.(type) {
	case cbor.Map:
		m := make(map[string]any, len(v))
		for k, e := range v {
			x, err := fromCBOR(e, depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = x
		}
		return m, nil
	case cbor.List:
		l := make([]any, len(v))
		for i, e := range v {
			x, err := fromCBOR(e, depth+1)
			if err != nil {
				return nil, err
			}
			l[i] = x
		}
		return l, nil
	case cbor.Slice:
		return []byte(v), nil // encoding/json writes it as base64 text
	case cbor.String:
		return string(v), nil
	case cbor.Uint:
		return uint64(v), nil
	case cbor.NegInt:
		if v == 0 { // -2^64, which smithy-go's decoder wraps around to 0
			return json.Number("-18446744073709551616"), nil
		}
		return json.Number("-" + strconv.FormatUint(uint64(v), 10)), nil
	case cbor.Float32:
		return float64(v), nil
	case cbor.Float64:
		return float64(v), nil
	case cbor.Bool:
		return bool(v), nil
	case *cbor.Nil, *cbor.Undefined:
		return nil, nil
	case *cbor.Tag:
		return fromCBOR(v.Value, depth+1)
	}
	return nil, fmt.Errorf("CBOR value %T in a request", v)
}

// jsonAnswerAsCBOR is the CBOR body of an answer whose JSON body is body (strings, numbers,
// booleans and nulls: PutRecords and PutRecord answers and errors carry no blobs).
func jsonAnswerAsCBOR(body []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("data after the answer")
	}
	c, err := toCBOR(v)
	if err != nil {
		return nil, err
	}
	return cbor.Encode(c), nil
}

func toCBOR(v any) (cbor.Value, error) {
	switch v := v.(type) {
	case map[string]any:
		m := make(cbor.Map, len(v))
		for k, e := range v {
			c, err := toCBOR(e)
			if err != nil {
				return nil, err
			}
			m[k] = c
		}
		return m, nil
	case []any:
		l := make(cbor.List, len(v))
		for i, e := range v {
			c, err := toCBOR(e)
			if err != nil {
				return nil, err
			}
			l[i] = c
		}
		return l, nil
	case string:
		return cbor.String(v), nil
	case json.Number:
		if n, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			return cbor.Uint(n), nil
		}
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && n < 0 {
			return cbor.NegInt(uint64(-(n + 1)) + 1), nil
		}
		f, err := v.Float64()
		return cbor.Float64(f), err
	case bool:
		return cbor.Bool(v), nil
	case nil:
		return &cbor.Nil{}, nil
	}
	return nil, fmt.Errorf("JSON value %T", v)
}

// cborAnswer holds the answer to a call transcoded from CBOR, whoever writes it (a cutOff), and
// sends it in CBOR when the handler is done (finish). An answer whose body is not JSON goes as it
// is. An answer never written (the connection was hijacked to lose or withhold it) is not sent.
type cborAnswer struct {
	cutOff
	rw http.ResponseWriter
}

func newCBORAnswer(rw http.ResponseWriter) *cborAnswer { return &cborAnswer{rw: rw} }

// Flush holds everything until finish.
func (a *cborAnswer) Flush() {}

// Unwrap lets http.ResponseController hijack the client's connection.
func (a *cborAnswer) Unwrap() http.ResponseWriter { return a.rw }

func (a *cborAnswer) finish() {
	if a.status == 0 {
		return
	}
	body := a.body.Bytes()
	if strings.HasPrefix(a.Header().Get("Content-Type"), "application/x-amz-json") {
		if c, err := jsonAnswerAsCBOR(body); err == nil {
			body = c
			a.Header().Set("Content-Type", kinesiswire.ContentTypeCBOR)
		}
	}
	a.writeTo(a.rw, body) // drops the length and checksum headers, sets the length anew
}
