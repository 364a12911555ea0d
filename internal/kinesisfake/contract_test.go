package kinesisfake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
)

// putter is the one call the contract exercises.
type putter interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// TestContract runs the same calls against the fake and kinesalite: what the emulator refuses the
// fake refuses with the same typed exception, and what it accepts the fake accepts, so the fake's
// limits cannot drift from the service's.
func TestContract(t *testing.T) {
	t.Run("fake", func(t *testing.T) {
		f := New()
		f.Streams = map[string]bool{"contract": true}
		runContract(t, f, "contract")
	})
	t.Run("kinesalite", func(t *testing.T) {
		st := localstacktest.Start(t)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if err := st.CreateStream(ctx, "contract", 1); err != nil {
			t.Fatal(err)
		}
		runContract(t, st.Kinesis(), "contract")
	})
}

func runContract(t *testing.T, kin putter, stream string) {
	oneMiB := func(key string) *kinesis.PutRecordsInput {
		return &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String(key), Data: make([]byte, MaxRecordBytes-len(key))}}}
	}
	dataOver := &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("a"), Data: make([]byte, MaxRecordBytes+1)}}}
	cases := []struct {
		name string
		in   *kinesis.PutRecordsInput
		want any // nil: accepted; refused: any error; else a pointer to the typed exception expected
	}{
		{"one record", put(stream, "a"), nil},
		{"500 records", sized(stream, MaxRecords, 1), nil},
		{"501 records", sized(stream, MaxRecords+1, 1), new(*types.ValidationException)},
		{"no records", put(stream), refused}, // the SDK refuses it before sending; the fake answers a ValidationException
		{"1 MiB with its key", oneMiB("ab"), nil},
		{"data of 1 MiB and a byte", dataOver, new(*types.ValidationException)},
		{"request of 5 MiB", sized(stream, 5, MaxRecordBytes-2), nil},
		{"request over 5 MiB", sized(stream, 6, MaxRecordBytes-10), refused}, // kinesalite: HTTP 413; the fake: a ValidationException
		{"empty key", put(stream, "=x"), new(*types.ValidationException)},
		{"key of 256 characters", put(stream, strings.Repeat("k", MaxKeyChars)), nil},
		{"key of 257 characters", put(stream, strings.Repeat("k", MaxKeyChars+1)), new(*types.ValidationException)},
		{"missing stream", put("no-such-stream", "a"), new(*types.ResourceNotFoundException)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			out, err := kin.PutRecords(ctx, tc.in)
			if tc.want == nil {
				if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 || len(out.Records) != len(tc.in.Records) {
					t.Fatalf("want accepted, got %v", describe(out, err))
				}
				for i, r := range out.Records {
					if aws.ToString(r.ShardId) == "" || aws.ToString(r.SequenceNumber) == "" {
						t.Fatalf("entry %d: shard %q seq %q", i, aws.ToString(r.ShardId), aws.ToString(r.SequenceNumber))
					}
				}
				return
			}
			if tc.want == refused {
				if err == nil {
					t.Fatalf("want refused, got %v", describe(out, err))
				}
				return
			}
			if !errors.As(err, tc.want) {
				t.Fatalf("want %T, got %v", tc.want, describe(out, err))
			}
		})
	}
}

// refused marks a case where any error will do.
var refused = new(error)

func describe(out *kinesis.PutRecordsOutput, err error) string {
	if err != nil {
		return fmt.Sprintf("error %T: %v", err, err)
	}
	return fmt.Sprintf("%d of %d entries failed", aws.ToInt32(out.FailedRecordCount), len(out.Records))
}
