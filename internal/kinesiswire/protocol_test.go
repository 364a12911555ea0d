package kinesiswire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"pgregory.net/rapid"
)

// server answers every call with its current status and body and keeps the last request.
type server struct {
	mu     sync.Mutex
	status int
	answer string
	body   []byte
	header http.Header
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.body, s.header = b, r.Header.Clone()
	status, answer := s.status, s.answer
	s.mu.Unlock()
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(answer)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

func (s *server) set(status int, answer string) {
	s.mu.Lock()
	s.status, s.answer = status, answer
	s.mu.Unlock()
}

func (s *server) last() ([]byte, http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.body, s.header
}

// clients returns a client with the SDK's codec and one with this one, both for srv, with no retries.
func clients(t testing.TB, srv *httptest.Server) (sdk, wire *kinesis.Client) {
	t.Helper()
	o := kinesis.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		RetryMaxAttempts: 1,
	}
	return kinesis.New(o), kinesis.New(o, Install)
}

func start(t testing.TB) (*server, *httptest.Server) {
	s := &server{status: 200, answer: `{"FailedRecordCount":0,"Records":[]}`}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

// genString makes strings that exercise every escaping rule: quotes, backslashes, control
// characters, DEL, U+2028/2029, multi-byte runes and invalid UTF-8.
func genString(t *rapid.T, label string) string {
	pieces := rapid.SliceOfN(rapid.OneOf(
		rapid.StringMatching(`[a-zA-Z0-9_/.:-]{0,12}`),
		rapid.SampledFrom([]string{`"`, `\`, "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "\u2028", "\u2029", "é", "日本", "😀", "\xff", "\xe2\x82", "<>&", "\u00a0"}),
	), 0, 8).Draw(t, label)
	return strings.Join(pieces, "")
}

func genInput(t *rapid.T) *kinesis.PutRecordsInput {
	in := &kinesis.PutRecordsInput{}
	if rapid.Bool().Draw(t, "name") {
		in.StreamName = aws.String(genString(t, "stream"))
	}
	if rapid.Bool().Draw(t, "arn") {
		in.StreamARN = aws.String(genString(t, "arn"))
	}
	n := rapid.IntRange(0, 20).Draw(t, "n")
	if n > 0 || rapid.Bool().Draw(t, "emptyRecords") {
		in.Records = make([]types.PutRecordsRequestEntry, n)
	}
	for i := range in.Records {
		e := &in.Records[i]
		switch rapid.IntRange(0, 3).Draw(t, "dataKind") {
		case 0: // nil: left out
		case 1:
			e.Data = []byte{}
		default:
			e.Data = rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(t, "data")
		}
		if rapid.IntRange(0, 4).Draw(t, "hasKey") > 0 {
			e.PartitionKey = aws.String(genString(t, "key"))
		}
		if rapid.IntRange(0, 4).Draw(t, "hasHash") == 0 {
			e.ExplicitHashKey = aws.String(genString(t, "hash"))
		}
	}
	return in
}

// TestRequestMatchesSDK: for any input, the body this codec sends is byte for byte the body the
// SDK's codec sends, with the same target and content type.
func TestRequestMatchesSDK(t *testing.T) {
	s, srv := start(t)
	sdk, wire := clients(t, srv)
	rapid.Check(t, func(t *rapid.T) {
		in := genInput(t)
		// The SDK validates before either codec runs: inputs it refuses never reach the wire.
		_, errSDK := sdk.PutRecords(context.Background(), in)
		bodySDK, hSDK := s.last()
		_, errWire := wire.PutRecords(context.Background(), in)
		bodyWire, hWire := s.last()
		if (errSDK == nil) != (errWire == nil) {
			t.Fatalf("SDK: %v; wire: %v", errSDK, errWire)
		}
		if errSDK != nil {
			return
		}
		if !bytes.Equal(bodySDK, bodyWire) {
			t.Fatalf("bodies differ:\nSDK:  %q\nwire: %q", bodySDK, bodyWire)
		}
		if got := AppendPutRecords(nil, in); len(got) != putRecordsLen(in) || cap(got) != len(got) {
			t.Fatalf("sized %d, wrote %d (cap %d)", putRecordsLen(in), len(got), cap(got))
		}
		for _, h := range []string{"X-Amz-Target", "Content-Type", "Content-Length"} {
			if hSDK.Get(h) != hWire.Get(h) {
				t.Fatalf("%s: SDK %q, wire %q", h, hSDK.Get(h), hWire.Get(h))
			}
		}
	})
}

// TestAppendKeepsPrefix: AppendPutRecords appends; what dst held stays.
func TestAppendKeepsPrefix(t *testing.T) {
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}}
	for _, dst := range [][]byte{[]byte("pre"), append(make([]byte, 0, 1000), "pre"...)} {
		got := string(AppendPutRecords(dst, in))
		if want := `pre{"Records":[{"Data":"eA==","PartitionKey":"k"}],"StreamName":"s"}`; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
}

// genAnswer makes a well-formed PutRecords answer in a random layout: member order, white space,
// escapes, nulls and unknown members.
func genAnswer(t *rapid.T) string {
	var b strings.Builder
	ws := func() {
		b.WriteString(rapid.SampledFrom([]string{"", "", " ", "\n\t", "\r\n  "}).Draw(t, "ws"))
	}
	str := func(s string) {
		q, _ := json.Marshal(s)
		if rapid.Bool().Draw(t, "asciiEscape") {
			// The same string with every non-ASCII rune and '/' escaped: a server may write either.
			var e strings.Builder
			for _, r := range string(q) {
				switch {
				case r == '/':
					e.WriteString(`\/`)
				case r > 0x7f && r <= 0xffff:
					fmt.Fprintf(&e, `\u%04x`, r)
				case r > 0xffff:
					r -= 0x10000
					fmt.Fprintf(&e, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
				default:
					e.WriteRune(r)
				}
			}
			q = []byte(e.String())
		}
		b.Write(q)
	}
	junk := func() {
		b.WriteString(rapid.SampledFrom([]string{`1`, `-2.5e3`, `true`, `false`, `null`, `"x"`, `{}`, `[]`,
			`{"a":[1,{"b":null}],"c":"\"}"}`, `[[],[{}],"]"]`}).Draw(t, "junk"))
	}
	type member struct {
		name  string
		write func()
	}
	// object writes an object of ms in their order, with white space around every token.
	object := func(ms []member) {
		b.WriteByte('{')
		for i, m := range ms {
			if i > 0 {
				b.WriteByte(',')
			}
			ws()
			str(m.name)
			ws()
			b.WriteByte(':')
			ws()
			m.write()
			ws()
		}
		b.WriteByte('}')
	}
	var top []member
	if rapid.Bool().Draw(t, "enc") {
		v := rapid.SampledFrom([]string{"NONE", "KMS"}).Draw(t, "encv")
		top = append(top, member{"EncryptionType", func() {
			if rapid.IntRange(0, 4).Draw(t, "encNull") == 0 {
				b.WriteString("null")
				return
			}
			str(v)
		}})
	}
	if rapid.Bool().Draw(t, "failed") {
		n := rapid.Int32Range(0, 500).Draw(t, "failedN")
		top = append(top, member{"FailedRecordCount", func() {
			if rapid.IntRange(0, 4).Draw(t, "failedNull") == 0 {
				b.WriteString("null")
				return
			}
			fmt.Fprint(&b, n)
		}})
	}
	if rapid.IntRange(0, 5).Draw(t, "records") > 0 {
		n := rapid.IntRange(0, 30).Draw(t, "n")
		top = append(top, member{"Records", func() {
			if rapid.IntRange(0, 9).Draw(t, "recordsNull") == 0 {
				b.WriteString("null")
				return
			}
			b.WriteByte('[')
			for i := range n {
				if i > 0 {
					b.WriteByte(',')
				}
				ws()
				var fields []member
				for _, f := range []string{"SequenceNumber", "ShardId", "ErrorCode", "ErrorMessage", "Other"} {
					if !rapid.Bool().Draw(t, "has"+f) {
						continue
					}
					v := genString(t, f)
					if !json.Valid([]byte(`"` + v + `"`)) {
						v = strings.ToValidUTF8(v, "?")
					}
					fields = append(fields, member{f, func() {
						switch {
						case f == "Other":
							junk()
						case rapid.IntRange(0, 6).Draw(t, "null") == 0:
							b.WriteString("null")
						default:
							str(v)
						}
					}})
				}
				object(fields)
			}
			ws()
			b.WriteByte(']')
		}})
	}
	if rapid.Bool().Draw(t, "unknown") {
		top = append(top, member{"SomethingNew", junk})
	}
	ws()
	object(rapid.Permutation(top).Draw(t, "order"))
	ws()
	return b.String()
}

// plain is an output without pointers, for comparison.
type plainEntry struct{ ErrorCode, ErrorMessage, SequenceNumber, ShardID *string }

func plain(o *kinesis.PutRecordsOutput) (string, *int32, []plainEntry, bool) {
	var es []plainEntry
	for _, e := range o.Records {
		es = append(es, plainEntry{e.ErrorCode, e.ErrorMessage, e.SequenceNumber, e.ShardId})
	}
	return string(o.EncryptionType), o.FailedRecordCount, es, o.Records == nil
}

// TestResponseMatchesSDK: for any well-formed answer (any member order, whitespace, escapes, nulls,
// unknown members), this codec reads what the SDK's codec reads.
func TestResponseMatchesSDK(t *testing.T) {
	s, srv := start(t)
	sdk, wire := clients(t, srv)
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}}
	rapid.Check(t, func(t *rapid.T) {
		answer := genAnswer(t)
		if !json.Valid([]byte(answer)) {
			t.Fatalf("generator made invalid JSON: %s", answer)
		}
		s.set(200, answer)
		outSDK, errSDK := sdk.PutRecords(context.Background(), in)
		outWire, errWire := wire.PutRecords(context.Background(), in)
		if errSDK != nil || errWire != nil {
			t.Fatalf("answer %s\nSDK: %v\nwire: %v", answer, errSDK, errWire)
		}
		e1, f1, r1, n1 := plain(outSDK)
		e2, f2, r2, n2 := plain(outWire)
		if e1 != e2 || !reflect.DeepEqual(f1, f2) || !reflect.DeepEqual(r1, r2) || n1 != n2 {
			t.Fatalf("answer %s\nSDK:  %q %v %v nil=%v\nwire: %q %v %v nil=%v", answer, e1, deref(f1), show(r1), n1, e2, deref(f2), show(r2), n2)
		}
	})
}

func deref(p *int32) any {
	if p == nil {
		return nil
	}
	return *p
}

func show(es []plainEntry) string {
	var b strings.Builder
	s := func(p *string) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprintf("%q", *p)
	}
	for _, e := range es {
		fmt.Fprintf(&b, "{%s %s %s %s}", s(e.ErrorCode), s(e.ErrorMessage), s(e.SequenceNumber), s(e.ShardID))
	}
	return b.String()
}

// TestMalformedAnswer: a 200 whose body is not a well-formed answer is a deserialization error,
// as with the SDK's codec (which the writer then treats as an unknown outcome).
func TestMalformedAnswer(t *testing.T) {
	s, srv := start(t)
	sdk, wire := clients(t, srv)
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}}
	for _, body := range []string{
		`{"Records":[{"ShardId":"a"}`,
		`{"Records":[{"ShardId":"a"}]`,
		`{"Records":{"ShardId":"a"}}`,
		`{"Records":[{"ShardId":1}]}`,
		`{"FailedRecordCount":"1"}`,
		`{"FailedRecordCount":99999999999}`,
		`{"Records":[]} x`,
		`[1]`,
		`{"Records":[{"ShardId":"a}]}`,
		`{"Records":[{"ShardId":"a"},]}`,
	} {
		s.set(200, body)
		_, errSDK := sdk.PutRecords(context.Background(), in)
		_, errWire := wire.PutRecords(context.Background(), in)
		var de *smithy.DeserializationError
		if !errors.As(errWire, &de) {
			t.Errorf("%s: wire error %v, want a deserialization error", body, errWire)
		}
		if errSDK == nil {
			t.Logf("%s: the SDK's codec accepts it (this codec is stricter)", body)
		}
	}
}

// TestErrorAnswerIsTheSDKs: error answers are read by the SDK's codec: the same typed error.
func TestErrorAnswerIsTheSDKs(t *testing.T) {
	s, srv := start(t)
	_, wire := clients(t, srv)
	s.set(400, `{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard shardId-000000000000"}`)
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}}
	_, err := wire.PutRecords(context.Background(), in)
	var pt *types.ProvisionedThroughputExceededException
	if !errors.As(err, &pt) {
		t.Fatalf("got %v, want ProvisionedThroughputExceededException", err)
	}
	s.set(400, `{"__type":"ResourceNotFoundException","message":"Stream s not found"}`)
	_, err = wire.PutRecords(context.Background(), in)
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("got %v, want ResourceNotFoundException", err)
	}
}

// TestOtherCallsAreTheSDKs: other operations, and PutRecords inputs this codec leaves out, go
// through the SDK's codec unchanged.
func TestOtherCallsAreTheSDKs(t *testing.T) {
	s, srv := start(t)
	sdk, wire := clients(t, srv)
	s.set(200, `{"StreamDescriptionSummary":{"StreamName":"s","OpenShardCount":2}}`)
	for _, c := range []*kinesis.Client{sdk, wire} {
		out, err := c.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
		if err != nil || aws.ToInt32(out.StreamDescriptionSummary.OpenShardCount) != 2 {
			t.Fatalf("DescribeStreamSummary: %v %+v", err, out)
		}
	}
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), StreamId: aws.String("id"),
		Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}}
	if Covers(in) {
		t.Fatal("Covers an input with StreamId")
	}
	s.set(200, `{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","ShardId":"shardId-0"}]}`)
	if _, err := sdk.PutRecords(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	want, _ := s.last()
	if _, err := wire.PutRecords(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.last(); !bytes.Equal(got, want) {
		t.Fatalf("StreamId input: %s, want %s", got, want)
	}
}
