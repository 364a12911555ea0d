package kinesiswire

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
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
	o.Protocol = &Protocol{ClientProtocol: o.Protocol}
}

// Protocol is the client's protocol with PutRecords requests and successful answers done here.
// Every other call, and every error answer, goes to the embedded protocol.
type Protocol struct {
	smithyhttp.ClientProtocol
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
	sreq, err := req.SetStream(bytes.NewReader(AppendPutRecords(nil, pr)))
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
