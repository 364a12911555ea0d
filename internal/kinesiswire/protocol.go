package kinesiswire

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Target is the X-Amz-Target of a PutRecords call (Kinesis's awsJson1_1 service name and the
// operation).
const Target = "Kinesis_20131202.PutRecords"

// ContentType is the awsJson1_1 content type.
const ContentType = "application/x-amz-json-1.1"

// Install puts this codec in front of the client's protocol, for PutRecords only:
//
//	kinesis.NewFromConfig(cfg, kinesiswire.Install)
func Install(o *kinesis.Options) { install(o, false) }

// InstallCBOR is Install with PutRecords requests written in CBOR (ContentTypeCBOR), the encoding
// the AWS SDK for Java uses for Kinesis by default: a record's data goes as bytes, not base64. The
// answers, errors included, come in CBOR; an error answer is handed to the SDK's codec as the JSON
// it would have been, so that it becomes the same typed error.
func InstallCBOR(o *kinesis.Options) { install(o, true) }

func install(o *kinesis.Options, cbor bool) {
	if _, ok := o.Protocol.(*Protocol); ok || o.Protocol == nil {
		return
	}
	p := &Protocol{ClientProtocol: o.Protocol, cbor: cbor, free: make(chan *[]byte, maxFreeBodies)}
	o.Protocol = p
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(reuseBody{p}, middleware.Before)
	})
}

// Protocol is the client's protocol with PutRecords requests and successful answers done here.
// Every other call, and every error answer, goes to the embedded protocol.
type Protocol struct {
	smithyhttp.ClientProtocol

	// cbor is whether PutRecords requests are written in CBOR (InstallCBOR).
	cbor bool

	// free holds the bodies of calls that succeeded, for the next calls. A successful answer means
	// Kinesis read the whole body, and the SDK reads it no more (its retries, which send the same
	// bytes again, are over). After a failed call the transport may still be writing the body (an
	// answer can come before the body is sent), so it is left to the collector. Bodies above
	// maxFreeBody are never kept.
	free chan *[]byte
}

const (
	maxFreeBodies = 8       // about the calls a client has in flight
	maxFreeBody   = 4 << 20 // a full call is at most 5 MiB of data, base64-encoded
)

// body returns a buffer with room for n bytes, a free one when there is one.
func (p *Protocol) body(n int) *[]byte {
	var b *[]byte
	select {
	case b = <-p.free:
	default:
		b = new([]byte)
	}
	if cap(*b) < n {
		*b = make([]byte, 0, n+n/4) // room for the next, slightly larger bodies
	}
	*b = (*b)[:0]
	return b
}

func (p *Protocol) release(b *[]byte) {
	if cap(*b) > maxFreeBody {
		return
	}
	select {
	case p.free <- b:
	default:
	}
}

// bodyHolder carries a call's body from SerializeRequest out to reuseBody.
type bodyHolder struct{ buf *[]byte }

type bodyKey struct{}

// reuseBody is the outermost step of every PutRecords call: it gives SerializeRequest a holder for
// the body it writes, and gives the body back when the call succeeded.
type reuseBody struct{ p *Protocol }

func (reuseBody) ID() string { return "kinesiswire.reuseBody" }

func (r reuseBody) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	if _, ok := in.Parameters.(*kinesis.PutRecordsInput); !ok {
		return next.HandleInitialize(ctx, in)
	}
	h := &bodyHolder{}
	out, md, err := next.HandleInitialize(context.WithValue(ctx, bodyKey{}, h), in)
	if err == nil && h.buf != nil {
		r.p.release(h.buf)
	}
	return out, md, err
}

// SerializeRequest writes a PutRecords request; anything else goes to the embedded protocol.
func (p *Protocol) SerializeRequest(ctx context.Context, schema *smithy.OperationSchema, in smithy.Serializable, req *smithyhttp.Request) error {
	pr, ok := in.(*kinesis.PutRecordsInput)
	if !ok || !Covers(pr) {
		return p.ClientProtocol.SerializeRequest(ctx, schema, in, req)
	}
	req.Method = http.MethodPost
	if req.URL.Path == "" {
		req.URL.Path = "/"
	}
	req.Header.Set("X-Amz-Target", Target)
	appendBody, bodyLen := AppendPutRecords, putRecordsLen
	req.Header.Set("Content-Type", ContentType)
	if p.cbor {
		appendBody, bodyLen = AppendPutRecordsCBOR, putRecordsCBORLen
		req.Header.Set("Content-Type", ContentTypeCBOR)
	}
	var body []byte
	if h, _ := ctx.Value(bodyKey{}).(*bodyHolder); h != nil && h.buf == nil && p.free != nil {
		h.buf = p.body(bodyLen(pr))
		*h.buf = appendBody(*h.buf, pr)
		body = *h.buf
	} else {
		body = appendBody(nil, pr)
	}
	sreq, err := req.SetStream(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("set stream: %w", err)
	}
	*req = *sreq
	return nil
}

// bodies are the buffers answers are read into; their bytes become one string per answer.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// DeserializeResponse reads a successful PutRecords answer, in JSON or CBOR as its Content-Type
// says; anything else goes to the embedded protocol, an error answer in CBOR as the JSON it
// would have been.
func (p *Protocol) DeserializeResponse(ctx context.Context, schema *smithy.OperationSchema, types *smithy.TypeRegistry, resp *smithyhttp.Response, out smithy.Deserializable) error {
	po, ok := out.(*kinesis.PutRecordsOutput)
	if !ok {
		return p.ClientProtocol.DeserializeResponse(ctx, schema, types, resp, out)
	}
	inCBOR := strings.HasPrefix(resp.Header.Get("Content-Type"), ContentTypeCBOR)
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		if inCBOR {
			if err := cborErrorAsJSON(resp); err != nil {
				return err
			}
		}
		return p.ClientProtocol.DeserializeResponse(ctx, schema, types, resp, out)
	}
	buf := bodies.Get().(*bytes.Buffer)
	buf.Reset()
	defer bodies.Put(buf)
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return &smithy.DeserializationError{Err: err}
	}
	if buf.Len() == 0 {
		return nil
	}
	decode := DecodePutRecordsOutput
	if inCBOR {
		decode = DecodePutRecordsOutputCBOR
	}
	if err := decode(buf.String(), po); err != nil {
		snap := buf.Bytes()
		return &smithy.DeserializationError{Err: err, Snapshot: bytes.Clone(snap[:min(len(snap), 1024)])}
	}
	return nil
}

// cborErrorAsJSON replaces an error answer's CBOR body with the JSON one Kinesis sends for the
// same error ({"__type":...,"message":...}), for the SDK's codec to read. A body that is not such
// a CBOR map is handed on as it is: the SDK's codec then fails on it as on any undecodable body.
func cborErrorAsJSON(resp *smithyhttp.Response) error {
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close() // read whole: the connection goes back to the pool
	if err != nil {
		return &smithy.DeserializationError{Err: fmt.Errorf("read error answer: %w", err)}
	}
	body := raw
	if e, err := decodeCBORError(string(raw)); err == nil {
		answer := map[string]string{"__type": e.Type}
		if e.Message != "" {
			answer["message"] = e.Message
		}
		body, _ = json.Marshal(answer) // strings only: cannot fail
		resp.Header.Set("Content-Type", ContentType)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return nil
}
