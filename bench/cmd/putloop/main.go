// Command putloop is make bench's put loop as a process of its own: it writes the records of a
// bench/internal/recfile file to a stream with plain PutRecords calls through the SDK (its own
// codec), in batches of 500 read as they are sent, 4 calls in flight, failed entries sent again
// until none is left, and prints {"records":N} when all are written. It is the baseline a forwarder
// process is compared with in the same terms: a process started, configured the SDK's way from the
// environment, reading its input from a file, putting it, exiting (issue 15). It stays small on
// purpose: what it imports, it pays at start-up.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/bench/internal/recfile"
)

const (
	batchRecords = 500 // the forwarder's default batch
	inFlight     = 4   // and its default calls in flight
)

func main() {
	stream := flag.String("stream", "", "stream to write to")
	flag.Parse()
	if *stream == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: putloop -stream NAME FILE...")
		os.Exit(2)
	}
	n, err := run(context.Background(), *stream, flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "putloop:", err)
		os.Exit(1)
	}
	fmt.Printf("{\"records\":%d}\n", n)
}

// batch is one PutRecords call's records, their bytes in buf; the inFlight+1 batches are reused.
type batch struct {
	buf     []byte
	entries []types.PutRecordsRequestEntry
}

func run(ctx context.Context, stream string, files []string) (int, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(30*time.Second)),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.RateLimiter = ratelimit.None })
		}))
	if err != nil {
		return 0, err
	}
	kc := kinesis.NewFromConfig(cfg)
	free, full := make(chan *batch, inFlight+1), make(chan *batch)
	for range inFlight + 1 {
		free <- &batch{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
		errs  []error
	)
	done := func(n int, err error) {
		mu.Lock()
		defer mu.Unlock()
		total += n
		if err != nil {
			errs = append(errs, err)
			cancel()
		}
	}
	for range inFlight {
		wg.Go(func() {
			for b := range full {
				n, err := put(ctx, kc, stream, b.entries)
				done(n, err)
				if err != nil {
					return
				}
				free <- b
			}
		})
	}
	err = read(ctx, files, free, full)
	close(full)
	wg.Wait()
	done(0, err)
	return total, errors.Join(errs...)
}

// read fills free batches from files, in order, and hands each full one on.
func read(ctx context.Context, files []string, free <-chan *batch, full chan<- *batch) error {
	var b *batch
	var offs []int
	send := func() error {
		for i := range b.entries {
			k, d := offs[3*i], offs[3*i+1]
			b.entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(string(b.buf[k:d])), Data: b.buf[d:offs[3*i+2]]}
		}
		select {
		case full <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		b = nil
		return nil
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		r := recfile.NewReader(f)
		for {
			if b == nil {
				select {
				case b = <-free:
				case <-ctx.Done():
					f.Close()
					return ctx.Err()
				}
				b.buf, b.entries, offs = b.buf[:0], b.entries[:0], offs[:0]
			}
			at := len(b.buf)
			var kl, dl int
			b.buf, kl, dl, err = r.AppendNext(b.buf)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("%s: %w", name, err)
			}
			offs = append(offs, at, at+kl, at+kl+dl)
			b.entries = append(b.entries, types.PutRecordsRequestEntry{})
			if len(b.entries) == batchRecords {
				if err := send(); err != nil {
					f.Close()
					return err
				}
			}
		}
		f.Close()
	}
	if b != nil && len(b.entries) > 0 {
		return send()
	}
	return nil
}

// put writes entries, sending the failed ones again until none is left, and returns how many.
func put(ctx context.Context, kc *kinesis.Client, stream string, entries []types.PutRecordsRequestEntry) (int, error) {
	n := 0
	for len(entries) > 0 {
		out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			return n, fmt.Errorf("put records into %s: %w", stream, err)
		}
		var failed []types.PutRecordsRequestEntry
		for i, e := range out.Records {
			if e.ErrorCode != nil {
				failed = append(failed, entries[i])
			}
		}
		n += len(entries) - len(failed)
		entries = failed
	}
	return n, nil
}
