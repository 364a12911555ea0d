package worker

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"
	aggpb "github.com/awslabs/kinesis-aggregation/go/v2/records"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"

	"github.com/kinesis-events/pipeline/internal/ordered"
	"github.com/kinesis-events/pipeline/processors"
)

// The raw stream may hold KPL aggregates: the local forwarder writes a customer's waiting events as
// one (its AGGREGATE_KEYS), as any KPL producer may. The worker de-aggregates them itself, before
// the KCL's de-aggregator sees the records: that one drops a whole GetRecords page, unreported,
// when one aggregate does not decode, and panics on a partition key index out of range. Here a
// record is an aggregate exactly when the KCL's de-aggregator would take it for one (the magic, and
// an MD5 trailer that matches); one that then does not decode is handed on whole, marked, and
// quarantined (event.ReasonBadAggregate), never skipped.

// badAggregateTag marks, in front of a record's data, an aggregate that did not decode. The KCL's
// de-aggregator passes it through (no magic at the start) and Record unmarks it. No JSON starts
// with a NUL byte.
var badAggregateTag = []byte("\x00kinesis-events: bad aggregate\x00")

// errNotAggregate: the record is a plain record.
var errNotAggregate = errors.New("not an aggregate")

// deaggregate returns recs with every KPL aggregate replaced by the records inside it, in order,
// each with the aggregate's sequence number, arrival time and encryption type and its own partition
// key. An aggregate that does not decode is returned as one record, its data behind
// badAggregateTag followed by the reason. recs is returned as is when it holds no aggregate.
func deaggregate(recs []types.Record) []types.Record {
	var out []types.Record
	for i, r := range recs {
		parts, err := unpack(r)
		if errors.Is(err, errNotAggregate) {
			if out != nil {
				out = append(out, r)
			}
			continue
		}
		if out == nil {
			out = append(make([]types.Record, 0, len(recs)+len(parts)), recs[:i]...)
		}
		if err != nil {
			bad := r
			bad.Data = markBad(r.Data, err)
			out = append(out, bad)
			continue
		}
		out = append(out, parts...)
	}
	if out == nil {
		return recs
	}
	return out
}

// unpack returns the records inside aggregate r; errNotAggregate when r is a plain record, another
// error when it is an aggregate that does not decode.
func unpack(r types.Record) ([]types.Record, error) {
	d := r.Data
	magic := ordered.AggregateMagic
	if len(d) <= len(magic)+md5.Size || !bytes.Equal(d[:len(magic)], magic[:]) {
		return nil, errNotAggregate
	}
	body, sum := d[len(magic):len(d)-md5.Size], d[len(d)-md5.Size:]
	if got := md5.Sum(body); !bytes.Equal(got[:], sum) {
		return nil, errNotAggregate // what the KCL's de-aggregator also passes through as plain
	}
	var agg aggpb.AggregatedRecord
	if err := proto.Unmarshal(body, protoadapt.MessageV2Of(&agg)); err != nil {
		return nil, fmt.Errorf("protobuf: %w", err)
	}
	if len(agg.Records) == 0 {
		return nil, errors.New("no records inside")
	}
	parts := make([]types.Record, len(agg.Records))
	for i, in := range agg.Records {
		if in.PartitionKeyIndex == nil || *in.PartitionKeyIndex >= uint64(len(agg.PartitionKeyTable)) {
			return nil, fmt.Errorf("record %d: partition key index out of the table of %d", i, len(agg.PartitionKeyTable))
		}
		if _, err := unpack(types.Record{Data: in.Data}); !errors.Is(err, errNotAggregate) {
			// The KCL's de-aggregator would unpack it again, and drop the page if it did not decode.
			return nil, fmt.Errorf("record %d is itself an aggregate", i)
		}
		key := agg.PartitionKeyTable[*in.PartitionKeyIndex]
		parts[i] = types.Record{
			ApproximateArrivalTimestamp: r.ApproximateArrivalTimestamp,
			Data:                        in.Data,
			EncryptionType:              r.EncryptionType,
			PartitionKey:                &key,
			SequenceNumber:              r.SequenceNumber,
		}
	}
	return parts, nil
}

// markBad returns data behind badAggregateTag and the reason, ended by a NUL byte.
func markBad(data []byte, why error) []byte {
	msg := why.Error()
	out := make([]byte, 0, len(badAggregateTag)+len(msg)+1+len(data))
	out = append(out, badAggregateTag...)
	out = append(out, bytes.ReplaceAll([]byte(msg), []byte{0}, nil)...)
	out = append(out, 0)
	return append(out, data...)
}

// unmarkBad returns the original data and the reason of a record markBad marked; ok is false for
// any other record.
func unmarkBad(data []byte) (orig []byte, why string, ok bool) {
	rest, ok := bytes.CutPrefix(data, badAggregateTag)
	if !ok {
		return data, "", false
	}
	msg, orig, ok := bytes.Cut(rest, []byte{0})
	if !ok {
		return data, "", false
	}
	return orig, string(msg), true
}

// toRecords turns records as read (already de-aggregated) into the pipeline's, numbering the records
// of one aggregate (consecutive records with one sequence number) from 0; shard is "" for the
// shard's own records, else the parent they were read from.
func toRecords(in []types.Record, shard string) []processors.Record {
	recs := make([]processors.Record, len(in))
	prev := ""
	sub := 0
	for i, r := range in {
		seq := deref(r.SequenceNumber)
		if i > 0 && seq == prev {
			sub++
		} else {
			sub = 0
		}
		prev = seq
		data, why, bad := unmarkBad(r.Data)
		recs[i] = processors.Record{
			SequenceNumber: seq,
			SubSequence:    sub,
			Data:           data,
			PartitionKey:   deref(r.PartitionKey),
			Shard:          shard,
		}
		if bad {
			recs[i].BadAggregate = why
		}
		if r.ApproximateArrivalTimestamp != nil {
			recs[i].ArrivedAt = *r.ApproximateArrivalTimestamp
		}
	}
	return recs
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// deaggregating is client middleware that de-aggregates every GetRecords answer (deaggregate), for
// the KCL's client.
func deaggregating(stack *middleware.Stack) error {
	if stack.ID() != "GetRecords" {
		return nil
	}
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("Deaggregate",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			if res, ok := out.Result.(*kinesis.GetRecordsOutput); err == nil && ok && res != nil {
				res.Records = deaggregate(res.Records)
			}
			return out, md, err
		}), middleware.After)
}
