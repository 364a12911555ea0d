// Package cli is the loadgen command: flags and environment to a loadgen.Config, then NDJSON to
// stdout or a file, or straight into the forwarder in-process (--forward), plus the manifest.
//
// Main runs one generation on the calling goroutine; it is not meant to run concurrently with itself
// on the same output. Delivery semantics in --forward mode are the forwarder's (at least once, each
// customer's order kept); a run that leaves any line neither forwarded nor quarantined exits 1.
package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/forwarder"
	"github.com/kinesis-events/pipeline/internal/loadgen"
	"github.com/kinesis-events/pipeline/internal/names"
)

// Exit codes of Main.
const (
	ExitOK          = 0
	ExitError       = 1   // the run failed (I/O, keys, forwarder)
	ExitUsage       = 2   // bad flags or configuration
	ExitInterrupted = 130 // stopped by a signal; output and manifest hold what was emitted
)

// Environment variables Main reads (flags override them).
const (
	EnvSigningKeys      = "SIGNING_KEYS"      // key-file JSON: [{"id":..,"secret":"<base64>","retired_at":..}]
	EnvSigningKeysFile  = "SIGNING_KEYS_FILE" // --keys-file default; wins over SIGNING_KEYS (as for the worker)
	EnvTokenizerKey     = "TOKENIZER_KEY"     // base64, at least 32 bytes
	EnvRawStream        = "RAW_STREAM"        // --raw-stream default
	EnvQuarantineStream = "QUARANTINE_STREAM" // --quarantine-stream default
	EnvRegion           = "AWS_REGION"        // envelope region default
)

type options struct {
	cfg          loadgen.Config
	types        string
	unknownTypes string
	badKinds     string
	start        string
	profile      string
	out          string
	manifest     string
	keysFile     string
	tokenKeyFile string
	forward      bool
	rawStream    string
	quarStream   string
	reqTimeout   time.Duration
	progress     time.Duration
	printDevKeys bool
	seedGiven    bool
	keysSource   string
	tokenSource  string
}

// usageError marks errors that exit with ExitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// Main runs the command with args (without the program name) and returns the exit code. getenv
// supplies the environment; now the clock for the default start time.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, now func() time.Time) int {
	o, err := parse(args, stderr, getenv, now)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", strings.TrimPrefix(err.Error(), "loadgen: "))
		if errors.As(err, new(usageError)) {
			return ExitUsage
		}
		return ExitError
	}
	if o.printDevKeys {
		if _, err := stdout.Write(loadgen.DevKeyFile()); err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return ExitError
		}
		return ExitOK
	}
	err = run(ctx, o, stdout, stderr)
	switch {
	case err == nil:
		return ExitOK
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		fmt.Fprintln(stderr, "loadgen: interrupted:", err)
		return ExitInterrupted
	default:
		fmt.Fprintln(stderr, "loadgen:", strings.TrimPrefix(err.Error(), "loadgen: "))
		return ExitError
	}
}

func parse(args []string, stderr io.Writer, getenv func(string) string, now func() time.Time) (*options, error) {
	o := &options{}
	envOr := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: loadgen [flags]

Generates signed, tokenized customer events as newline-delimited EventBridge events on stdout (or
--out), or forwards them in-process to the raw Kinesis stream (--forward). Output is deterministic for
a given --seed and --start. --manifest writes the ground truth: every unique valid event and the
counts of duplicates, displaced events and malformed inputs.

Keys: --keys-file (`+EnvSigningKeysFile+`) or `+EnvSigningKeys+` (key-file JSON) sign events; without either, the public
development key signs and a warning is printed (loadgen --print-dev-keys writes it for the workers).
`+EnvTokenizerKey+` or --token-key-file (base64, >= 32 bytes) keys the tokenizer.
AWS (--forward): AWS_REGION, AWS_ENDPOINT_URL_KINESIS, default credential chain.
Exit codes: 0 ok, 1 error, 2 usage, 130 interrupted.

flags:
`)
		fs.PrintDefaults()
	}
	c := &o.cfg
	fs.IntVar(&c.Count, "count", loadgen.DefaultCount, "total lines to produce (valid events, duplicates and bad inputs together)")
	fs.Float64Var(&c.Rate, "rate", 0, "lines per second; 0 = as fast as possible")
	fs.StringVar(&o.profile, "profile", "", `rate over time instead of --rate: segments "RATE:DURATION" or "FROM-TO:DURATION" (a ramp), e.g. "150:30s,150-1500:30s,1500:3m"; --count defaults to its lines`)
	fs.Float64Var(&c.HotRate, "hot-rate", 0, "make customer 1 a hot customer sending about this many events per second (needs --rate or --profile)")
	fs.IntVar(&c.Customers, "customers", loadgen.DefaultCustomers, "number of distinct customers")
	fs.StringVar(&o.types, "types", strings.Join(loadgen.DefaultTypes, ","), "comma-separated event types of valid events")
	fs.Float64Var(&c.UnknownRatio, "unknown-ratio", 0, "fraction of valid events with a type outside the routing table")
	fs.StringVar(&o.unknownTypes, "unknown-types", strings.Join(loadgen.DefaultUnknownTypes, ","), "comma-separated types used for --unknown-ratio")
	fs.Float64Var(&c.DupRatio, "dup-ratio", 0, "fraction of lines re-emitting an earlier event verbatim (natural duplicate)")
	fs.Float64Var(&c.ConflictRatio, "conflict-ratio", 0, "fraction of lines reusing an earlier event_id with different, signed content")
	fs.Float64Var(&c.OOORatio, "ooo-ratio", 0, "fraction of valid events emitted after a later event of the same customer (< 0.5)")
	fs.IntVar(&c.OOOMaxDistance, "ooo-max-distance", loadgen.DefaultOOOMaxDistance, "most lines a displaced event trails its successor (capped to rate * reorder window / 2)")
	fs.DurationVar(&c.ReorderWindow, "reorder-window", loadgen.DefaultReorderWindow, "consumer reorder window that displacement must fit in")
	fs.Float64Var(&c.BadRatio, "bad-ratio", 0, "fraction of malformed lines, cycling through --bad-kinds")
	fs.StringVar(&o.badKinds, "bad-kinds", joinKinds(loadgen.AllBadKinds), "comma-separated kinds of malformed input")
	fs.Int64Var(&c.Seed, "seed", 0, "random seed; when not given one is picked and printed")
	fs.StringVar(&o.start, "start", "", "occurred_at of the first event, RFC 3339; default now (pass it for byte-identical output)")
	fs.DurationVar(&c.Step, "step", 0, "occurred_at distance between new events; default 1/rate, or 1ms unpaced")
	fs.StringVar(&c.Source, "source", loadgen.DefaultSource, "EventBridge source")
	fs.StringVar(&c.Region, "region", envOr(EnvRegion, loadgen.DefaultRegion), "EventBridge region field (env "+EnvRegion+")")
	fs.StringVar(&o.out, "out", "", "write NDJSON here instead of stdout (with --forward: also write it here)")
	fs.StringVar(&o.manifest, "manifest", "", "write the manifest JSON to this file")
	fs.StringVar(&o.keysFile, "keys-file", getenv(EnvSigningKeysFile), "file with the signing keys in key-file JSON (env "+EnvSigningKeysFile+"; else the JSON in env "+EnvSigningKeys+")")
	fs.StringVar(&c.KeyID, "key-id", "", "signing key id; default the first key not retired at --start")
	fs.StringVar(&o.tokenKeyFile, "token-key-file", "", "file with the base64 tokenizer key (default env "+EnvTokenizerKey+")")
	fs.BoolVar(&o.forward, "forward", false, "forward events in-process to the raw stream instead of writing NDJSON to stdout")
	fs.StringVar(&o.rawStream, "raw-stream", envOr(EnvRawStream, names.RawStream), "raw stream for --forward (env "+EnvRawStream+")")
	fs.StringVar(&o.quarStream, "quarantine-stream", envOr(EnvQuarantineStream, names.QuarantineStream), "quarantine stream for --forward (env "+EnvQuarantineStream+")")
	fs.DurationVar(&o.reqTimeout, "request-timeout", 10*time.Second, "timeout of one Kinesis request (--forward)")
	fs.DurationVar(&o.progress, "progress", 0, `print {"type":"progress",...} JSON lines to stderr at this interval; 0 = off`)
	fs.BoolVar(&o.printDevKeys, "print-dev-keys", false, "print the development signing key in key-file JSON and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected arguments: %q", fs.Args())
	}
	if o.printDevKeys {
		return o, nil
	}
	countGiven := false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "seed":
			o.seedGiven = true
		case "count":
			countGiven = true
		}
	})
	if o.profile != "" {
		p, err := loadgen.ParseProfile(o.profile)
		if err != nil {
			return nil, usagef("--profile: %v", err)
		}
		c.Profile = p
		if !countGiven {
			c.Count = p.Lines()
		}
	}
	if !o.seedGiven {
		c.Seed = rand.Int64N(1 << 53) // exact in JSON consumers that read numbers as doubles
	}
	if o.start == "" {
		c.Start = now().UTC().Truncate(time.Millisecond)
	} else {
		t, err := time.Parse(time.RFC3339Nano, o.start)
		if err != nil {
			return nil, usagef("--start %q is not RFC 3339", o.start)
		}
		c.Start = t
	}
	if c.Count == 0 {
		return nil, usagef("--count must be positive")
	}
	if c.Customers == 0 {
		return nil, usagef("--customers must be positive")
	}
	if c.OOOMaxDistance == 0 {
		return nil, usagef("--ooo-max-distance must be positive")
	}
	c.Types = splitList(o.types)
	if len(c.Types) == 0 {
		return nil, usagef("--types is empty")
	}
	c.UnknownTypes = splitList(o.unknownTypes)
	for _, k := range splitList(o.badKinds) {
		c.BadKinds = append(c.BadKinds, loadgen.BadKind(k))
	}
	if c.BadRatio > 0 && len(c.BadKinds) == 0 {
		return nil, usagef("--bad-kinds is empty")
	}
	if o.forward && o.reqTimeout <= 0 {
		return nil, usagef("--request-timeout must be positive")
	}
	if o.progress < 0 {
		return nil, usagef("--progress must not be negative")
	}
	if err := loadKeys(o, getenv); err != nil {
		return nil, usageError{err}
	}
	if err := c.Validate(); err != nil {
		return nil, usageError{err}
	}
	return o, nil
}

// loadKeys fills the keyring, key id and tokenizer from flags or environment; without them the
// generator falls back to the development keys, which run warns about.
func loadKeys(o *options, getenv func(string) string) error {
	c := &o.cfg
	var raw []byte
	switch {
	case o.keysFile != "":
		b, err := os.ReadFile(o.keysFile)
		if err != nil {
			return fmt.Errorf("--keys-file: %w", err)
		}
		raw, o.keysSource = b, "--keys-file "+o.keysFile
	case getenv(EnvSigningKeys) != "":
		raw, o.keysSource = []byte(getenv(EnvSigningKeys)), EnvSigningKeys
	}
	if raw != nil {
		keys, err := event.ParseKeys(raw)
		if err != nil {
			return fmt.Errorf("%s: %w", o.keysSource, err)
		}
		ring, err := event.NewKeyring(keys...)
		if err != nil {
			return fmt.Errorf("%s: %w", o.keysSource, err)
		}
		if c.KeyID == "" {
			for _, k := range keys {
				if k.RetiredAt.IsZero() || c.Start.Before(k.RetiredAt) {
					c.KeyID = k.ID
					break
				}
			}
			if c.KeyID == "" {
				return fmt.Errorf("%s: every key is retired at %s", o.keysSource, c.Start.Format(time.RFC3339))
			}
		}
		for _, k := range keys {
			if k.ID == c.KeyID && !k.RetiredAt.IsZero() && !c.Start.Before(k.RetiredAt) {
				return fmt.Errorf("--key-id %s is retired since %s: consumers would reject every event", k.ID, k.RetiredAt.Format(time.RFC3339))
			}
		}
		c.Keyring = ring
	} else if c.KeyID != "" && c.KeyID != loadgen.DevKeyID {
		return fmt.Errorf("--key-id %s given but no keys: set --keys-file or %s", c.KeyID, EnvSigningKeys)
	}

	var tokB64 string
	switch {
	case o.tokenKeyFile != "":
		b, err := os.ReadFile(o.tokenKeyFile)
		if err != nil {
			return fmt.Errorf("--token-key-file: %w", err)
		}
		tokB64, o.tokenSource = strings.TrimSpace(string(b)), "--token-key-file "+o.tokenKeyFile
	case getenv(EnvTokenizerKey) != "":
		tokB64, o.tokenSource = strings.TrimSpace(getenv(EnvTokenizerKey)), EnvTokenizerKey
	}
	if tokB64 != "" {
		key, err := base64.StdEncoding.DecodeString(tokB64)
		if err != nil {
			return fmt.Errorf("%s: not base64", o.tokenSource)
		}
		if c.Tokenizer, err = event.NewTokenizer(key); err != nil {
			return fmt.Errorf("%s: %w", o.tokenSource, err)
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func joinKinds(ks []loadgen.BadKind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ",")
}

// summary is the JSON line printed to stderr at the end of a run.
type summary struct {
	Type       string                  `json:"type"`
	OK         bool                    `json:"ok"`
	Error      string                  `json:"error,omitempty"`
	Seed       int64                   `json:"seed"`
	Start      string                  `json:"start"`
	Requested  int                     `json:"requested"`
	Lines      int                     `json:"lines"`
	Unique     int                     `json:"unique"`
	Duplicates loadgen.Duplicates      `json:"duplicates"`
	OutOfOrder int                     `json:"out_of_order"`
	Bad        map[loadgen.BadKind]int `json:"bad"`
	ElapsedS   float64                 `json:"elapsed_s"`
	RatePerS   float64                 `json:"rate_per_s"`
	Forwarder  *forwarder.Result       `json:"forwarder,omitempty"`
}

type progressLine struct {
	Type     string  `json:"type"`
	ElapsedS float64 `json:"elapsed_s"`
	Lines    int     `json:"lines"`
	RatePerS float64 `json:"rate_per_s"`
}

func writeJSONLine(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil { // plain structs of numbers, strings and maps of them
		b = fmt.Appendf(nil, `{"type":"error","error":%q}`, err.Error())
	}
	fmt.Fprintf(w, "%s\n", b)
}

func run(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	if o.cfg.Keyring == nil {
		fmt.Fprintf(stderr, "loadgen: WARNING: no signing keys configured (--keys-file, %s or %s): signing with the PUBLIC development key %q. "+
			"Workers must be given the same key (loadgen --print-dev-keys); never use it outside local runs.\n", EnvSigningKeysFile, EnvSigningKeys, loadgen.DevKeyID)
	}
	if o.cfg.Tokenizer == nil {
		fmt.Fprintf(stderr, "loadgen: WARNING: no tokenizer key configured (--token-key-file or %s): customer ids are tokenized with the public development key.\n", EnvTokenizerKey)
	}
	if !o.seedGiven {
		fmt.Fprintf(stderr, "loadgen: seed %d (reproduce with --seed %d --start %s)\n", o.cfg.Seed, o.cfg.Seed, o.cfg.Start.Format(time.RFC3339Nano))
	}
	g, err := loadgen.New(o.cfg)
	if err != nil {
		return err
	}

	// Sinks: the NDJSON output (stdout, or --out), and the forwarder's pipe with --forward.
	var sinks []*bufio.Writer
	var closers []func() error
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		closers = append(closers, f.Close)
		sinks = append(sinks, bufio.NewWriterSize(f, 256<<10))
	} else if !o.forward {
		sinks = append(sinks, bufio.NewWriterSize(stdout, 256<<10))
	}
	var fwd *forwardRun
	if o.forward {
		if fwd, err = startForward(ctx, o, stderr); err != nil {
			return err
		}
		sinks = append(sinks, bufio.NewWriterSize(fwd.pw, 256<<10))
	}

	start := time.Now()
	stopProgress := startProgress(o.progress, stderr, start, g)
	// A paced run (a rate or a profile) hands each line on as it is due: occurred_at is its due
	// time, so a line held in the buffer would count the buffer's wait as the consumer's lag (and
	// reach the forwarder in 256 KiB bursts).
	paced := o.cfg.Rate > 0 || len(o.cfg.Profile) > 0
	runErr := g.Run(ctx, func(_ context.Context, line []byte, _ loadgen.Meta) error {
		for _, w := range sinks {
			if _, err := w.Write(line); err != nil {
				return err
			}
			if err := w.WriteByte('\n'); err != nil {
				return err
			}
			if paced {
				if err := w.Flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for _, w := range sinks {
		if err := w.Flush(); err != nil && runErr == nil {
			runErr = fmt.Errorf("write output: %w", err)
		}
	}
	for _, c := range closers {
		if err := c(); err != nil && runErr == nil {
			runErr = fmt.Errorf("close output: %w", err)
		}
	}
	var fres *forwarder.Result
	if fwd != nil {
		res, ferr := fwd.finish(runErr)
		fres = &res
		if ferr != nil {
			runErr = errors.Join(runErr, fmt.Errorf("forwarder: %w", ferr))
		}
	}
	stopProgress()
	elapsed := time.Since(start)

	m := g.Manifest()
	if o.manifest != "" {
		if err := writeManifest(o.manifest, m); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	sum := summary{
		Type: "summary", OK: runErr == nil, Seed: m.Seed, Start: m.Start, Requested: m.Requested, Lines: m.Lines,
		Unique: m.Unique, Duplicates: m.Duplicates, OutOfOrder: m.OutOfOrder, Bad: m.Bad,
		ElapsedS: elapsed.Seconds(), RatePerS: float64(m.Lines) / max(elapsed.Seconds(), 1e-9), Forwarder: fres,
	}
	if runErr != nil {
		sum.Error = runErr.Error()
	}
	writeJSONLine(stderr, sum)
	return runErr
}

// startProgress prints a progress line every interval until the returned function is called.
func startProgress(every time.Duration, stderr io.Writer, start time.Time, g *loadgen.Generator) func() {
	if every <= 0 {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		prev, prevAt := 0, start
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				n := g.Produced()
				writeJSONLine(stderr, progressLine{Type: "progress", ElapsedS: now.Sub(start).Seconds(), Lines: n,
					RatePerS: float64(n-prev) / now.Sub(prevAt).Seconds()})
				prev, prevAt = n, now
			}
		}
	}()
	return func() { close(stop); <-done }
}

// writeManifest writes m atomically (temporary file, then rename).
func writeManifest(path string, m loadgen.Manifest) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return nil
}

// forwardRun is the forwarder reading the generator's lines from a pipe.
type forwardRun struct {
	pw   *io.PipeWriter
	pr   *io.PipeReader
	done chan struct{}
	res  forwarder.Result
	err  error
}

func startForward(ctx context.Context, o *options, stderr io.Writer) (*forwardRun, error) {
	kin, err := forwarder.NewKinesisClient(ctx, o.reqTimeout)
	if err != nil {
		return nil, err
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	zc.OutputPaths, zc.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	logger, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("logger: %w", err)
	}
	f, err := forwarder.New(forwarder.Config{RawStream: o.rawStream, QuarantineStream: o.quarStream, Logger: logger}, kin)
	if err != nil {
		return nil, usageError{err}
	}
	pr, pw := io.Pipe()
	fr := &forwardRun{pw: pw, pr: pr, done: make(chan struct{})}
	go func() {
		defer close(fr.done)
		fr.res, fr.err = f.ForwardStream(ctx, pr, forwarder.StreamOptions{Source: "loadgen"})
		// Unblock the generator if the forwarder stopped before the end of input.
		pr.CloseWithError(errors.New("forwarder stopped reading"))
	}()
	return fr, nil
}

// finish ends the input (with genErr when generation failed) and waits for the forwarder.
func (fr *forwardRun) finish(genErr error) (forwarder.Result, error) {
	if genErr != nil {
		fr.pw.CloseWithError(genErr)
	} else {
		fr.pw.Close()
	}
	<-fr.done
	return fr.res, fr.err
}
