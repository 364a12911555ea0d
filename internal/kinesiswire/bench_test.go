package kinesiswire

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// BenchmarkPutRecordsSDK and BenchmarkPutRecordsWire are one 500-record call (records of 600 bytes, as the raw stream's) through
// each codec against a local HTTP server answering a full, successful answer: the client's CPU per
// record, HTTP and signing included.
func BenchmarkPutRecordsSDK(b *testing.B)  { benchPut(b, false) }
func BenchmarkPutRecordsWire(b *testing.B) { benchPut(b, true) }

func benchPut(b *testing.B, wireCodec bool) {
	const n = 500
	s := &server{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	var ans strings.Builder
	ans.WriteString(`{"FailedRecordCount":0,"Records":[`)
	in := &kinesis.PutRecordsInput{StreamName: aws.String("events-raw")}
	for i := range n {
		if i > 0 {
			ans.WriteByte(',')
		}
		fmt.Fprintf(&ans, `{"SequenceNumber":"4963%052d","ShardId":"shardId-%012d"}`, i, i%4)
		in.Records = append(in.Records, types.PutRecordsRequestEntry{
			Data: []byte(strings.Repeat("x", 600)), PartitionKey: aws.String(fmt.Sprintf("tok_customer%016d", i)),
		})
	}
	ans.WriteString(`]}`)
	s.set(200, ans.String())
	// Up to 3 attempts: now and then (about once in a few thousand calls, either codec) a 200's
	// body read fails with "use of closed network connection" against this local server; that is
	// not what is measured here.
	o := kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""), RetryMaxAttempts: 3}
	var fns []func(*kinesis.Options)
	if wireCodec {
		fns = append(fns, Install)
	}
	client := kinesis.New(o, fns...)
	b.ReportAllocs()
	for b.Loop() {
		out, err := client.PutRecords(context.Background(), in)
		if err != nil {
			b.Fatal(err)
		}
		if len(out.Records) != n {
			b.Fatalf("%d entries answered", len(out.Records))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}
