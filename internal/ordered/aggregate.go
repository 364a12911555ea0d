package ordered

import (
	"crypto/md5"
	"errors"
	"fmt"

	kpl "github.com/awslabs/kinesis-aggregation/go/v2/records"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// Aggregation packs consecutive records of one partition key into one Kinesis record in the KPL
// aggregated format, so a key with many records waiting (a hot customer) writes them all in one
// round trip instead of one per round trip. The zero value is off.
//
// The format is the Kinesis Producer Library's: the magic bytes 0xF3 0x89 0x9A 0xC2, a protobuf
// AggregatedRecord (kinesis-aggregation's records package: one partition key in its table, the
// records' data in order) and the MD5 of that protobuf. The KCL (Java, Python, Node, Go), Firehose
// and Flink's Kinesis connector de-aggregate it, in order: the records inside share the Kinesis
// record's sequence number and have increasing subsequence numbers. A reader that does not
// de-aggregate sees one record of that format instead of the records inside.
type Aggregation struct {
	// MaxRecords bounds the records one aggregate carries; 0 or 1: no aggregation.
	MaxRecords int
	// MaxBytes bounds an aggregate's size as Kinesis counts it (its data in the aggregated format
	// plus the partition key); 0 means MaxRecordBytes. A call's own byte bound (WriterConfig
	// MaxBytes, BytesPerSecond) bounds it too.
	MaxBytes int
}

// DefaultAggregation is the aggregation the worker's sink uses: at most the records one
// PutRecords call could carry plainly, in at most the Kinesis record limit.
var DefaultAggregation = Aggregation{MaxRecords: MaxRecords}

// Validate reports every setting that cannot work.
func (a Aggregation) Validate() error {
	var errs []error
	if a.MaxRecords < 0 {
		errs = append(errs, fmt.Errorf("ordered: Aggregation.MaxRecords %d is negative", a.MaxRecords))
	}
	if a.MaxBytes < 0 || a.MaxBytes > MaxRecordBytes {
		errs = append(errs, fmt.Errorf("ordered: Aggregation.MaxBytes %d not in 0..%d", a.MaxBytes, MaxRecordBytes))
	}
	return errors.Join(errs...)
}

func (a Aggregation) on() bool { return a.MaxRecords > 1 }

// AggregateMagic starts every record in the KPL aggregated format.
var AggregateMagic = [4]byte{0xF3, 0x89, 0x9A, 0xC2}

// aggFixed is the aggregated format's overhead around the protobuf: the magic and the MD5 trailer.
const aggFixed = len(AggregateMagic) + md5.Size

// aggKeySize is the size of the partition key table of an aggregate of key (one entry).
func aggKeySize(key string) int { return 1 + varintLen(len(key)) + len(key) }

// aggRecordSize is what a record of n bytes of data adds to an aggregate: the Records entry's tag
// and length, and inside it the partition key index (tag and 0) and the data's tag and length.
func aggRecordSize(n int) int {
	inner := 2 + 1 + varintLen(n) + n
	return 1 + varintLen(inner) + inner
}

func varintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

// aggregate returns the Kinesis record standing for recs (two or more records of key, in order) in
// the aggregated format, whose Size the caller computed as size; its parts are recs. An encoding
// that does not come out at that size is an error (the bounds were checked against it).
func aggregate(key string, recs []*Record, size int) (*Record, error) {
	zero := uint64(0)
	msg := &kpl.AggregatedRecord{PartitionKeyTable: []string{key}, Records: make([]*kpl.Record, len(recs))}
	for i, r := range recs {
		data := r.Data
		if data == nil {
			data = []byte{} // a required field: nil would be "not set"
		}
		msg.Records[i] = &kpl.Record{PartitionKeyIndex: &zero, Data: data}
	}
	pb, err := proto.Marshal(protoadapt.MessageV2Of(msg))
	if err != nil {
		return nil, fmt.Errorf("ordered: aggregate of %d records: %w", len(recs), err)
	}
	data := make([]byte, 0, aggFixed+len(pb))
	data = append(data, AggregateMagic[:]...)
	data = append(data, pb...)
	sum := md5.Sum(pb)
	data = append(data, sum[:]...)
	a := &Record{Key: key, Data: data, ID: recs[0].ID, parts: recs}
	if a.Size() != size {
		return nil, fmt.Errorf("ordered: aggregate of %d records is %d bytes, computed %d", len(recs), a.Size(), size)
	}
	return a, nil
}
