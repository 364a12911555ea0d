package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/forwarder"
)

// lambdaLog is what the deployed forwarder logs per invocation, measured in process: one event of
// the load through the forwarder's own Lambda handler (forwarder.EMF), on a Kinesis that accepts
// every record. EventBytes is the mean size of the load's EventBridge events.
type lambdaLog struct {
	EMFBytes, EventBytes float64
}

// measureLambdaLog reads the NDJSON load file and runs its first event through the EMF handler.
func measureLambdaLog(ctx context.Context, file string) (lambdaLog, error) {
	var res lambdaLog
	f, err := os.Open(file)
	if err != nil {
		return res, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var first []byte
	var lines, total int
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if first == nil {
			first = bytes.Clone(sc.Bytes())
		}
		lines++
		total += len(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return res, err
	}
	if lines == 0 {
		return res, fmt.Errorf("%s: no events", file)
	}
	res.EventBytes = float64(total) / float64(lines)
	fw, err := forwarder.New(forwarder.Config{}, acceptAll{})
	if err != nil {
		return res, err
	}
	var out bytes.Buffer
	h := forwarder.NewEMF(fw, &out, "KinesisEventsPipeline/prod", "prod-kinesis-events-forwarder", 0)
	if _, err := h.Invoke(ctx, first); err != nil {
		return res, fmt.Errorf("forwarder handler: %w", err)
	}
	if fw.Stats().Forwarded != 1 {
		return res, fmt.Errorf("forwarder handler did not forward the load's first event (%+v)", fw.Stats())
	}
	res.EMFBytes = float64(out.Len())
	return res, nil
}

// acceptAll is a Kinesis that writes every record.
type acceptAll struct{}

func (acceptAll) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	for i := range in.Records {
		out.Records[i] = types.PutRecordsResultEntry{ShardId: aws.String("shardId-000000000000"), SequenceNumber: aws.String(strconv.Itoa(i + 1))}
	}
	return out, nil
}
