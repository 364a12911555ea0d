package forwarder

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/ambiguous"
	"github.com/kinesis-events/pipeline/internal/kinesiswire"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/internal/profile"
)

// Environment variables the command reads (flags override them). AWS settings come from the SDK's
// own variables: AWS_REGION, AWS_ENDPOINT_URL_KINESIS, the default credential chain.
const (
	EnvRawStream        = "FORWARDER_RAW_STREAM"
	EnvQuarantineStream = "FORWARDER_QUARANTINE_STREAM"
	EnvPIIPaths         = "FORWARDER_PII_PATHS"
	EnvMaxAttempts      = "FORWARDER_MAX_ATTEMPTS"
	EnvLogLevel         = "FORWARDER_LOG_LEVEL"
	// EnvKinesisWire is how PutRecords calls are encoded: "cbor" (the default) or "json".
	EnvKinesisWire = "FORWARDER_KINESIS_WIRE"
	// EnvAggregateKeys is the worker's variable too: AGGREGATE_KEYS=true turns aggregation on at
	// both ends of a local run.
	EnvAggregateKeys = "AGGREGATE_KEYS"
	// EnvLambdaRuntimeAPI is set by every Lambda runtime (and the Runtime Interface Emulator).
	EnvLambdaRuntimeAPI = "AWS_LAMBDA_RUNTIME_API"
)

// Command is the forwarder binary. Under a Lambda runtime (EnvLambdaRuntimeAPI set) it serves
// EventBridge invocations through Invoke and does not return. Otherwise it runs local mode: it
// forwards NDJSON EventBridge events from the files named in args ("-" or none: stdin), one file
// after the other, stopping at the first file that leaves an event unwritten (so no customer's later
// event from a later file overtakes it). It prints JSON lines to stderr: {"type":"progress",...}
// every --stats-every with --progress, then a human-readable line per input and one
// {"type":"summary",...} line (see summaryLine) at the end. The error is nil only when every event
// was forwarded or quarantined.
func Command(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stderr io.Writer) error {
	fs := flag.NewFlagSet("forwarder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: forwarder [flags] [file ...]\n\n"+
			"Forwards EventBridge events to Kinesis. Under a Lambda runtime it serves invocations; otherwise it\n"+
			"reads newline-delimited EventBridge events from the files (or stdin) and writes them in batches.\n"+
			"AWS settings: AWS_REGION, AWS_ENDPOINT_URL_KINESIS, default credential chain.\n\nflags:\n")
		fs.PrintDefaults()
	}
	envOr := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	defAttempts := 5
	if v := getenv(EnvMaxAttempts); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s=%q: not an integer", EnvMaxAttempts, v)
		}
		defAttempts = n
	}
	defAggregate := false
	if v := getenv(EnvAggregateKeys); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s=%q: not a boolean", EnvAggregateKeys, v)
		}
		defAggregate = b
	}
	var (
		rawStream   = fs.String("raw-stream", envOr(EnvRawStream, names.RawStream), "raw stream name (env "+EnvRawStream+")")
		quarStream  = fs.String("quarantine-stream", envOr(EnvQuarantineStream, names.QuarantineStream), "quarantine stream name (env "+EnvQuarantineStream+")")
		batchSize   = fs.Int("batch-size", MaxBatchRecords, "records per PutRecords call, 1..500")
		concurrency = fs.Int("concurrency", 4, "PutRecords calls in flight at once (order-safe: one record per customer in flight)")
		maxAttempts = fs.Int("max-attempts", defAttempts, "attempts per record, the first included (env "+EnvMaxAttempts+")")
		minBackoff  = fs.Duration("min-backoff", 50*time.Millisecond, "first retry wait (jittered, doubling)")
		maxBackoff  = fs.Duration("max-backoff", 2*time.Second, "longest retry wait")
		reqTimeout  = fs.Duration("request-timeout", 10*time.Second, "timeout of one Kinesis HTTP request")
		wire        = fs.String("kinesis-wire", envOr(EnvKinesisWire, string(WireCBOR)), "encoding of PutRecords calls: cbor (records as bytes, as the AWS SDK for Java sends them) or json (base64, as the Go SDK does) (env "+EnvKinesisWire+")")
		piiPaths    = fs.String("pii-paths", getenv(EnvPIIPaths), "comma-separated detail paths that must hold tokens, e.g. properties.email,customer_id; empty: PII policy off (env "+EnvPIIPaths+")")
		statsEvery  = fs.Duration("stats-every", time.Second, "interval of --progress lines")
		progress    = fs.Bool("progress", false, `print {"type":"progress",...} JSON lines to stderr every --stats-every`)
		failedOut   = fs.String("failed-out", "", "write the original line of every event not written to this file (for replay)")
		logLevel    = fs.String("log-level", envOr(EnvLogLevel, "warn"), "debug, info, warn or error (env "+EnvLogLevel+")")
		aggregate   = fs.Bool("aggregate-keys", defAggregate, "local mode: send a customer's events waiting behind its record in flight as one KPL aggregated record, so one busy customer is not capped at one event per round trip (the worker de-aggregates; env "+EnvAggregateKeys+")")
		cpuProfile  = fs.String("cpuprofile", "", "local mode: write a pprof CPU profile of the run to this file (for profiling)")
		memProfile  = fs.String("memprofile", "", "local mode: write a pprof allocation profile to this file at the end")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // usage printed
		}
		return err
	}
	var level zapcore.Level
	if err := level.Set(*logLevel); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if *statsEvery <= 0 {
		return errors.New("--stats-every must be positive")
	}
	if *reqTimeout <= 0 {
		return errors.New("--request-timeout must be positive")
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.OutputPaths, zc.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	logger, err := zc.Build()
	if err != nil {
		return fmt.Errorf("logger: %w", err)
	}
	defer func() { _ = logger.Sync() }() // stderr sync fails on some terminals; nothing to do about it

	var paths []string
	for _, p := range strings.Split(*piiPaths, ",") {
		if p = strings.TrimSpace(p); p != "" {
			paths = append(paths, p)
		}
	}
	cfg := Config{
		RawStream: *rawStream, QuarantineStream: *quarStream,
		MaxAttempts: *maxAttempts, MinBackoff: *minBackoff, MaxBackoff: *maxBackoff,
		BatchSize: *batchSize, Concurrency: *concurrency, PIIPaths: paths, Logger: logger,
		AggregateKeys: *aggregate,
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if w := Wire(*wire); w != WireCBOR && w != WireJSON {
		return fmt.Errorf("--kinesis-wire %q: cbor or json", *wire)
	}
	kin, err := NewKinesisClientWire(ctx, *reqTimeout, Wire(*wire))
	if err != nil {
		return err
	}
	f, err := New(cfg, kin)
	if err != nil {
		return err
	}

	if getenv(EnvLambdaRuntimeAPI) != "" {
		logger.Info("serving Lambda invocations", zap.String("stream", *rawStream))
		// CloudWatch embedded-metric-format lines on stdout (emf.go): at once for an invocation that
		// did anything but forward cleanly, gathered for up to FORWARDER_METRICS_EVERY otherwise.
		h, err := newLambdaHandler(f, os.Stdout, getenv)
		if err != nil {
			return err
		}
		lambda.StartWithOptions(h, lambda.WithContext(ctx)) // returns only by exiting the process
		return errors.New("lambda runtime loop ended")
	}
	stopProfile, err := profile.Start(profile.Files{CPU: *cpuProfile, Mem: *memProfile})
	if err != nil {
		return err
	}
	err = runLocal(ctx, f, fs.Args(), stdin, stderr, *failedOut, *progress, *statsEvery)
	return errors.Join(err, stopProfile())
}

// Wire is the encoding of PutRecords calls.
type Wire string

const (
	// WireCBOR sends PutRecords in CBOR (application/x-amz-cbor-1.1): records as bytes, as the AWS
	// SDK for Java and the KPL send them. The default.
	WireCBOR Wire = "cbor"
	// WireJSON sends them in JSON with base64 records, byte for byte as the Go SDK's codec does:
	// the way back should a CBOR answer ever be read wrong.
	WireJSON Wire = "json"
)

// NewKinesisClient is NewKinesisClientWire with the default encoding, WireCBOR.
func NewKinesisClient(ctx context.Context, requestTimeout time.Duration) (*kinesis.Client, error) {
	return NewKinesisClientWire(ctx, requestTimeout, WireCBOR)
}

// NewKinesisClientWire builds a Kinesis client the SDK's way (region, endpoint and credentials from
// the environment and shared config), with a timeout on every HTTP request and the SDK's retries
// kept short and without the client-side retry quota, since the forwarder retries failed entries
// itself. PutRecords calls are encoded as wire says.
func NewKinesisClientWire(ctx context.Context, requestTimeout time.Duration, wire Wire) (*kinesis.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(requestTimeout)),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.MaxBackoff = time.Second
				o.RateLimiter = ratelimit.None
			})
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("AWS config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("AWS region not set: set AWS_REGION (us-east-1 locally)")
	}
	// Every PutRecords attempt whose outcome is unknown is marked, so that the entries it carried
	// are counted (Stats.Unknown): the SDK retries such an attempt, which may write them twice.
	// PutRecords requests and answers go through kinesiswire, not the SDK's generic codec; in CBOR
	// (as the AWS SDK for Java sends them) the records' bytes go as they are, not base64-encoded.
	install := kinesiswire.InstallCBOR
	if wire == WireJSON {
		install = kinesiswire.Install
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.APIOptions = append(o.APIOptions, ambiguous.Middleware("PutRecords", "PutRecord"))
	}, install), nil
}

// progressLine is one --progress line; summaryLine the final line.
type progressLine struct {
	Type     string  `json:"type"`
	ElapsedS float64 `json:"elapsed_s"`
	Stats
	RatePerS float64 `json:"rate_per_s"` // forwarded+quarantined per second since the previous line
}

// summaryLine is the last line: the totals over all sources in Result's field names (so it decodes
// into a Result), plus the per-source Results. DoneThrough and FailedLines are per source; the
// totals carry them only for a single source.
type summaryLine struct {
	Type     string  `json:"type"`
	ElapsedS float64 `json:"elapsed_s"`
	OK       bool    `json:"ok"`
	Error    string  `json:"error,omitempty"`
	Result
	Read    int64    `json:"read"`
	Sources []Result `json:"sources"`
	Skipped []string `json:"skipped,omitempty"` // files not read because an earlier one failed
}

// total adds up per-source results.
func total(rs []Result) Result {
	if len(rs) == 1 {
		return rs[0]
	}
	var t Result
	var names []string
	for _, r := range rs {
		names = append(names, r.Source)
		t.Lines += r.Lines
		t.Blank += r.Blank
		t.Forwarded += r.Forwarded
		t.Quarantined += r.Quarantined
		t.Failed += r.Failed
		t.Retries += r.Retries
		t.Throttles += r.Throttles
		t.Batches += r.Batches
		t.Elapsed += r.Elapsed
		for k, v := range r.QuarantinedBy {
			if t.QuarantinedBy == nil {
				t.QuarantinedBy = map[event.Reason]int64{}
			}
			t.QuarantinedBy[k] += v
		}
	}
	t.Source = strings.Join(names, ",")
	return t
}

func runLocal(ctx context.Context, f *Forwarder, files []string, stdin io.Reader, stderr io.Writer,
	failedOut string, progress bool, every time.Duration) error {
	if len(files) == 0 {
		files = []string{"-"}
	}
	var fo *os.File
	if failedOut != "" {
		var err error
		if fo, err = os.Create(failedOut); err != nil {
			return fmt.Errorf("--failed-out: %w", err)
		}
	}
	start := time.Now()
	var mu sync.Mutex // serialises lines on stderr
	emit := func(v any) {
		b, err := json.Marshal(v)
		if err != nil { // plain structs of numbers and strings
			b = []byte(fmt.Sprintf(`{"type":"error","error":%q}`, err.Error()))
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stderr, "%s\n", b)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if progress {
		wg.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			prev, prevAt := f.Stats(), time.Now()
			for {
				select {
				case <-stop:
					return
				case now := <-t.C:
					s := f.Stats()
					rate := float64(s.Forwarded+s.Quarantined-prev.Forwarded-prev.Quarantined) / now.Sub(prevAt).Seconds()
					prev, prevAt = s, now
					emit(progressLine{Type: "progress", ElapsedS: now.Sub(start).Seconds(), Stats: s, RatePerS: rate})
				}
			}
		})
	}
	sum := summaryLine{Type: "summary"}
	var runErr error
	for i, name := range files {
		if runErr != nil || ctx.Err() != nil {
			sum.Skipped = append(sum.Skipped, files[i:]...)
			break
		}
		r, src, closeFn, err := openInput(name, stdin)
		if err != nil {
			runErr = err
			sum.Skipped = append(sum.Skipped, files[i:]...)
			break
		}
		opts := StreamOptions{Source: src}
		if fo != nil {
			opts.FailedOut = fo
		}
		res, err := f.ForwardStream(ctx, r, opts)
		if cerr := closeFn(); cerr != nil && err == nil {
			err = cerr
		}
		sum.Sources = append(sum.Sources, res)
		runErr = err
	}
	close(stop)
	wg.Wait()
	if fo != nil {
		if err := fo.Close(); err != nil && runErr == nil {
			runErr = fmt.Errorf("--failed-out: %w", err)
		}
	}
	sum.ElapsedS = time.Since(start).Seconds()
	sum.Result = total(sum.Sources)
	sum.Read = sum.Lines - sum.Blank
	sum.OK = runErr == nil
	if runErr != nil {
		sum.Error = runErr.Error()
	}
	for _, r := range sum.Sources {
		fmt.Fprintf(stderr, "forwarder: %s\n", r)
	}
	emit(sum)
	return runErr
}

func openInput(name string, stdin io.Reader) (io.Reader, string, func() error, error) {
	if name == "-" {
		return stdin, "stdin", func() error { return nil }, nil
	}
	fh, err := os.Open(name)
	if err != nil {
		return nil, name, nil, fmt.Errorf("open input: %w", err)
	}
	return fh, name, fh.Close, nil
}
