package kinesiswire

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
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
func Install(o *kinesis.Options) {
	if _, ok := o.Protocol.(*Protocol); ok || o.Protocol == nil {
		return
	}
	p := &Protocol{ClientProtocol: o.Protocol, free: make(chan *[]byte, maxFreeBodies)}
	o.Protocol = p
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(reuseBody{p}, middleware.Before)
	})
}

// Protocol is the client's protocol with PutRecords requests and successful answers done here.
// Every other call, and every error answer, goes to the embedded protocol.
type Protocol struct {
	smithyhttp.ClientProtocol

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
	req.Header.Set("Content-Type", ContentType)
	var body []byte
	if h, _ := ctx.Value(bodyKey{}).(*bodyHolder); h != nil && h.buf == nil && p.free != nil {
		h.buf = p.body(putRecordsLen(pr))
		*h.buf = AppendPutRecords(*h.buf, pr)
		body = *h.buf
	} else {
		body = AppendPutRecords(nil, pr)
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

// DeserializeResponse reads a successful PutRecords answer; anything else goes to the embedded
// protocol.
func (p *Protocol) DeserializeResponse(ctx context.Context, schema *smithy.OperationSchema, types *smithy.TypeRegistry, resp *smithyhttp.Response, out smithy.Deserializable) error {
	po, ok := out.(*kinesis.PutRecordsOutput)
	if !ok || resp.StatusCode < 200 || resp.StatusCode >= 300 {
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
	if err := DecodePutRecordsOutput(buf.String(), po); err != nil {
		snap := buf.Bytes()
		return &smithy.DeserializationError{Err: err, Snapshot: bytes.Clone(snap[:min(len(snap), 1024)])}
	}
	return nil
}
