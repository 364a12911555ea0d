package kinesiswire

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding/cbor"
	"go.uber.org/goleak"
	"pgregory.net/rapid"
)

// asJSONValue turns a decoded CBOR value into what encoding/json decodes from the JSON body of the
// same request: byte strings as their base64 text, integers as float64.
func asJSONValue(t *rapid.T, v cbor.Value) any {
	switch v := v.(type) {
	case cbor.Map:
		m := map[string]any{}
		for k, e := range v {
			m[k] = asJSONValue(t, e)
		}
		return m
	case cbor.List:
		l := []any{}
		for _, e := range v {
			l = append(l, asJSONValue(t, e))
		}
		return l
	case cbor.String:
		return string(v)
	case cbor.Slice:
		return base64.StdEncoding.EncodeToString(v)
	case cbor.Uint:
		return float64(v)
	}
	t.Fatalf("unexpected CBOR value %T in a request", v)
	return nil
}

// TestRequestCBORIsTheJSONRequest: for any input, the CBOR body holds exactly what the JSON body
// (the SDK's, byte for byte, TestRequestMatchesSDK) holds, data as bytes, and is sized exactly.
func TestRequestCBORIsTheJSONRequest(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := genInput(t)
		var want any
		if err := json.Unmarshal(AppendPutRecords(nil, in), &want); err != nil {
			t.Fatal(err)
		}
		body := AppendPutRecordsCBOR(nil, in)
		if len(body) != putRecordsCBORLen(in) || cap(body) != len(body) {
			t.Fatalf("sized %d, wrote %d (cap %d)", putRecordsCBORLen(in), len(body), cap(body))
		}
		v, err := cbor.Decode(body)
		if err != nil {
			t.Fatalf("%x: %v", body, err)
		}
		if got := asJSONValue(t, v); !reflect.DeepEqual(got, want) {
			t.Fatalf("CBOR body holds\n%v\nJSON body holds\n%v", got, want)
		}
		prefix := []byte("prefix")
		if got := AppendPutRecordsCBOR(prefix, in); !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], body) {
			t.Fatal("appending to a prefix changed the prefix or the body")
		}
	})
}

// cborOf transcodes a JSON answer to CBOR: as smithy-go's encoder writes it (definite lengths) or,
// at random, with indefinite-length maps, arrays and chunked strings, and tags around strings.
func cborOf(t *rapid.T, answer string) []byte {
	dec := json.NewDecoder(strings.NewReader(answer))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", answer, err)
	}
	if rapid.Bool().Draw(t, "definite") {
		return cbor.Encode(toCBOR(t, v))
	}
	return appendLoose(t, nil, v)
}

func toCBOR(t *rapid.T, v any) cbor.Value {
	switch v := v.(type) {
	case map[string]any:
		m := cbor.Map{}
		for k, e := range v {
			m[k] = toCBOR(t, e)
		}
		return m
	case []any:
		l := cbor.List{}
		for _, e := range v {
			l = append(l, toCBOR(t, e))
		}
		return l
	case string:
		return cbor.String(v)
	case json.Number:
		if n, err := v.Int64(); err == nil {
			if n < 0 {
				return cbor.NegInt(uint64(-n))
			}
			return cbor.Uint(n)
		}
		f, _ := v.Float64()
		return cbor.Float64(f)
	case bool:
		return cbor.Bool(v)
	case nil:
		return &cbor.Nil{}
	}
	t.Fatalf("unexpected JSON value %T", v)
	return nil
}

// appendLoose writes v with indefinite lengths, chunked strings, tags, undefined for some nulls
// and half-precision floats where they fit.
func appendLoose(t *rapid.T, dst []byte, v any) []byte {
	switch v := v.(type) {
	case map[string]any:
		dst = append(dst, 0xbf)
		for k, e := range v {
			dst = appendLoose(t, dst, k)
			dst = appendLoose(t, dst, e)
		}
		return append(dst, 0xff)
	case []any:
		dst = append(dst, 0x9f)
		for _, e := range v {
			dst = appendLoose(t, dst, e)
		}
		return append(dst, 0xff)
	case string:
		switch rapid.IntRange(0, 2).Draw(t, "strKind") {
		case 0:
			return appendCBORText(dst, v)
		case 1: // a tag (here 32, a URI) around it
			return appendCBORText(append(dst, 0xd8, 32), v)
		}
		dst = append(dst, 0x7f)
		for i := 0; i < len(v); {
			n := 1
			for i+n < len(v) && !isRuneStart(v[i+n]) {
				n++
			}
			dst = appendCBORText(dst, v[i:i+n])
			i += n
		}
		return append(dst, 0xff)
	case json.Number:
		if n, err := v.Int64(); err == nil && n >= 0 {
			return cborHead(dst, cborUint, uint64(n))
		}
		f, _ := v.Float64()
		return binaryAppendFloat64(dst, f)
	case bool:
		if v {
			return append(dst, 0xf5)
		}
		return append(dst, 0xf4)
	case nil:
		return append(dst, rapid.SampledFrom([]byte{0xf6, 0xf7}).Draw(t, "null"))
	}
	t.Fatalf("unexpected JSON value %T", v)
	return nil
}

func isRuneStart(b byte) bool { return b&0xc0 != 0x80 }

func binaryAppendFloat64(dst []byte, f float64) []byte {
	b := math.Float64bits(f)
	return append(dst, 0xfb, byte(b>>56), byte(b>>48), byte(b>>40), byte(b>>32), byte(b>>24), byte(b>>16), byte(b>>8), byte(b))
}

// TestResponseCBORIsTheJSONResponse: for any well-formed answer (TestResponseMatchesSDK's), its
// CBOR form, in definite or indefinite lengths, with tags and chunked strings, reads as the JSON.
func TestResponseCBORIsTheJSONResponse(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		answer := genAnswer(t)
		var fromJSON, fromCBOR kinesis.PutRecordsOutput
		if err := DecodePutRecordsOutput(answer, &fromJSON); err != nil {
			t.Fatalf("%s: %v", answer, err)
		}
		body := cborOf(t, answer)
		if err := DecodePutRecordsOutputCBOR(string(body), &fromCBOR); err != nil {
			t.Fatalf("%s as %x: %v", answer, body, err)
		}
		e1, f1, r1, n1 := plain(&fromJSON)
		e2, f2, r2, n2 := plain(&fromCBOR)
		if e1 != e2 || !reflect.DeepEqual(f1, f2) || !reflect.DeepEqual(r1, r2) || n1 != n2 {
			t.Fatalf("answer %s\nJSON: %q %v %v nil=%v\nCBOR: %q %v %v nil=%v", answer, e1, deref(f1), show(r1), n1, e2, deref(f2), show(r2), n2)
		}
		// Every proper prefix is an error, never a panic or a partial answer taken as whole.
		for _, cut := range []int{0, 1, len(body) / 2, len(body) - 1} {
			if cut < len(body) {
				if err := DecodePutRecordsOutputCBOR(string(body[:cut]), &kinesis.PutRecordsOutput{}); err == nil {
					t.Fatalf("%x cut at %d read without error", body, cut)
				}
			}
		}
	})
}

// TestMalformedCBORAnswer: what is not one well-formed answer is an error.
func TestMalformedCBORAnswer(t *testing.T) {
	ok := cbor.Encode(cbor.Map{"FailedRecordCount": cbor.Uint(0), "Records": cbor.List{cbor.Map{"ShardId": cbor.String("a")}}})
	for name, body := range map[string][]byte{
		"empty":                 nil,
		"not a map":             cbor.Encode(cbor.List{}),
		"data after":            append(bytes.Clone(ok), 0x00),
		"Records a map":         cbor.Encode(cbor.Map{"Records": cbor.Map{}}),
		"ShardId a number":      cbor.Encode(cbor.Map{"Records": cbor.List{cbor.Map{"ShardId": cbor.Uint(1)}}}),
		"count negative":        cbor.Encode(cbor.Map{"FailedRecordCount": cbor.NegInt(1)}),
		"count too large":       cbor.Encode(cbor.Map{"FailedRecordCount": cbor.Uint(1 << 31)}),
		"count a string":        cbor.Encode(cbor.Map{"FailedRecordCount": cbor.String("1")}),
		"key not text":          {0xa1, 0x01, 0x02},
		"length past the end":   {0xa1, 0x7a, 0xff, 0xff, 0xff, 0xff},
		"huge map":              {0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"huge array":            {0xa1, 0x67, 'R', 'e', 'c', 'o', 'r', 'd', 's', 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"reserved info":         {0xa1, 0x61, 'x', 0x1c},
		"stray break":           {0xa1, 0x61, 'x', 0xff},
		"unterminated":          {0xbf, 0x61, 'x', 0x01},
		"deep unknown member":   append(append([]byte{0xa1, 0x61, 'x'}, bytes.Repeat([]byte{0x81}, 100)...), 0x00),
		"chunk of another type": {0xa1, 0x7f, 0x41, 'x', 0xff, 0x00},
	} {
		if err := DecodePutRecordsOutputCBOR(string(body), &kinesis.PutRecordsOutput{}); !errors.Is(err, errCBOR) {
			t.Errorf("%s (%x): %v, want a malformed-answer error", name, body, err)
		}
	}
}

// cborServer answers every call with its current status, content type and body.
type cborServer struct {
	mu          sync.Mutex
	status      int
	contentType string
	answer      []byte
	header      http.Header
	body        []byte
}

func (s *cborServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.header = b, r.Header.Clone()
	w.Header().Set("Content-Type", s.contentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(s.answer)))
	w.WriteHeader(s.status)
	_, _ = w.Write(s.answer)
}

func (s *cborServer) set(status int, contentType string, answer []byte) {
	s.mu.Lock()
	s.status, s.contentType, s.answer = status, contentType, answer
	s.mu.Unlock()
}

func cborClient(t *testing.T) (*cborServer, *kinesis.Client) {
	s := &cborServer{}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, kinesis.New(kinesis.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		RetryMaxAttempts: 1,
		// With a timeout, as the forwarder's: the client then watches every request until its
		// answer's body is closed (TestMain's goleak sees one left open).
		HTTPClient: awshttp.NewBuildableClient().WithTimeout(time.Minute),
	}, InstallCBOR)
}

// TestCBORCall: a client with InstallCBOR sends CBOR with its content type and the JSON target,
// reads a CBOR answer, still reads a JSON one, and turns a CBOR error answer into the SDK's typed
// error; an error body that is not CBOR is the SDK's to judge, as with JSON.
func TestCBORCall(t *testing.T) {
	s, c := cborClient(t)
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x\x00\xff"), PartitionKey: aws.String("k")}}}
	s.set(200, ContentTypeCBOR, cbor.Encode(cbor.Map{"FailedRecordCount": cbor.Uint(0), "EncryptionType": cbor.String("NONE"),
		"Records": cbor.List{cbor.Map{"SequenceNumber": cbor.String("49"), "ShardId": cbor.String("shardId-000000000001")}}}))
	out, err := c.PutRecords(context.Background(), in)
	if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 || len(out.Records) != 1 || aws.ToString(out.Records[0].SequenceNumber) != "49" || out.EncryptionType != types.EncryptionTypeNone {
		t.Fatalf("CBOR answer: %v %+v", err, out)
	}
	s.mu.Lock()
	body, h := s.body, s.header
	s.mu.Unlock()
	if h.Get("Content-Type") != ContentTypeCBOR || h.Get("X-Amz-Target") != Target || !bytes.Equal(body, AppendPutRecordsCBOR(nil, in)) {
		t.Fatalf("sent %q %q %x", h.Get("Content-Type"), h.Get("X-Amz-Target"), body)
	}
	s.set(200, ContentType, []byte(`{"FailedRecordCount":1,"Records":[{"ErrorCode":"InternalFailure","ErrorMessage":"m"}]}`))
	if out, err := c.PutRecords(context.Background(), in); err != nil || aws.ToString(out.Records[0].ErrorCode) != "InternalFailure" {
		t.Fatalf("JSON answer to a CBOR request: %v %+v", err, out)
	}

	s.set(400, ContentTypeCBOR, cbor.Encode(cbor.Map{"__type": cbor.String("ProvisionedThroughputExceededException"), "message": cbor.String("Rate exceeded for shard shardId-000000000000")}))
	_, err = c.PutRecords(context.Background(), in)
	var pt *types.ProvisionedThroughputExceededException
	if !errors.As(err, &pt) || !strings.Contains(pt.ErrorMessage(), "Rate exceeded") {
		t.Fatalf("got %v, want ProvisionedThroughputExceededException with its message", err)
	}
	s.set(400, ContentTypeCBOR, cbor.Encode(cbor.Map{"__type": cbor.String("com.amazonaws.kinesis#ResourceNotFoundException"), "Message": cbor.String("Stream s not found")}))
	_, err = c.PutRecords(context.Background(), in)
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) || nf.ErrorMessage() != "Stream s not found" {
		t.Fatalf("got %v, want ResourceNotFoundException with its message", err)
	}
	s.set(400, ContentTypeCBOR, cbor.Encode(cbor.Map{"__type": cbor.String("SomethingNewException"), "message": cbor.String("new")}))
	_, err = c.PutRecords(context.Background(), in)
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "SomethingNewException" || api.ErrorMessage() != "new" {
		t.Fatalf("got %v, want an API error SomethingNewException", err)
	}
	for _, garbage := range [][]byte{[]byte("<html>bad gateway</html>"), {0xbf, 0x61}} {
		s.set(502, ContentTypeCBOR, garbage)
		_, errCBOR := c.PutRecords(context.Background(), in)
		if errCBOR == nil {
			t.Fatalf("502 with %q: no error", garbage)
		}
		s.set(502, ContentType, garbage)
		_, errJSON := c.PutRecords(context.Background(), in)
		var d1, d2 *smithy.DeserializationError
		if errors.As(errCBOR, &d1) != errors.As(errJSON, &d2) {
			t.Fatalf("502 with %q: %v in CBOR, %v in JSON", garbage, errCBOR, errJSON)
		}
	}
}

// FuzzDecodeCBOR: any body is read or refused, never a panic; a body read is read again the same
// after it is written back by smithy-go's encoder.
func FuzzDecodeCBOR(f *testing.F) {
	f.Add(cbor.Encode(cbor.Map{"FailedRecordCount": cbor.Uint(1), "Records": cbor.List{
		cbor.Map{"SequenceNumber": cbor.String("1"), "ShardId": cbor.String("shardId-0")},
		cbor.Map{"ErrorCode": cbor.String("ProvisionedThroughputExceededException"), "ErrorMessage": &cbor.Nil{}}}}))
	f.Add([]byte{0xbf, 0x67, 'R', 'e', 'c', 'o', 'r', 'd', 's', 0x9f, 0xbf, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		var out kinesis.PutRecordsOutput
		if err := DecodePutRecordsOutputCBOR(string(body), &out); err != nil {
			return
		}
		m := cbor.Map{}
		if out.FailedRecordCount != nil {
			m["FailedRecordCount"] = cbor.Uint(*out.FailedRecordCount)
		}
		if out.EncryptionType != "" {
			m["EncryptionType"] = cbor.String(out.EncryptionType)
		}
		if out.Records != nil {
			l := cbor.List{}
			for _, e := range out.Records {
				em := cbor.Map{}
				for k, v := range map[string]*string{"ErrorCode": e.ErrorCode, "ErrorMessage": e.ErrorMessage, "SequenceNumber": e.SequenceNumber, "ShardId": e.ShardId} {
					if v != nil {
						em[k] = cbor.String(*v)
					}
				}
				l = append(l, em)
			}
			m["Records"] = l
		}
		var again kinesis.PutRecordsOutput
		if err := DecodePutRecordsOutputCBOR(string(cbor.Encode(m)), &again); err != nil {
			t.Fatalf("%x read, written back, refused: %v", body, err)
		}
		e1, f1, r1, _ := plain(&out)
		e2, f2, r2, _ := plain(&again)
		if e1 != e2 || !reflect.DeepEqual(f1, f2) || !reflect.DeepEqual(r1, r2) {
			t.Fatalf("%x: read %q %v %s, again %q %v %s", body, e1, deref(f1), show(r1), e2, deref(f2), show(r2))
		}
	})
}

// TestMain checks that no test leaves a goroutine behind: an answer's body left unclosed keeps the
// HTTP client's per-request goroutine waiting.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
