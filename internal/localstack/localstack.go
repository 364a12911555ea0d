// Package localstack starts the local AWS emulators (one Kinesis, one
// DynamoDB, and on request one SQS) that tests, `make run` and CI use, and
// hands out SDK clients and environment variables pointing at them.
//
// Emulators are real processes from the npm packages pinned in package.json
// (installed by `make deps`, i.e. npm ci), started through the launchers in
// deploy/local. They bind 127.0.0.1 only, survive clients that abort in-flight
// requests, keep all data in memory, and exit with their parent: a stack lives
// exactly as long as its Stack value (Close) or its process.
//
// Concurrency: Launch and Close may be called from any goroutine; a Stack's
// methods are safe for concurrent use. Pause/Resume deliver SIGSTOP/SIGCONT to
// the emulator's process group, so chaos tests can freeze an emulator while
// clients keep calling it.
//
// Delivery semantics are the emulator's own: ReadAll returns every record still
// in a stream, once per record, in shard order.
package localstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"
)

// Region is the AWS region every local stack uses.
const Region = "us-east-1"

// Credentials the emulators accept (any would do; these are the convention).
const (
	AccessKeyID     = "local"
	SecretAccessKey = "local"
)

// ErrNotInstalled is returned (wrapped) by Launch when an emulator's npm
// package is missing from the repository's node_modules.
var ErrNotInstalled = errors.New("emulators not installed: run `make deps` (npm ci)")

// PortInUseError is returned by Launch when a requested fixed port on
// 127.0.0.1 cannot be bound, before any emulator is started.
type PortInUseError struct {
	Port   int
	Flavor Flavor
	Err    error
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %d on 127.0.0.1 is already in use (wanted by the %s emulator; stop whatever holds it or ask for port 0): %v",
		e.Port, e.Flavor, e.Err)
}

func (e *PortInUseError) Unwrap() error { return e.Err }

// Options configures Launch. The zero value is a fast default stack on free ports.
type Options struct {
	// Kinesis is the Kinesis emulator flavor; default KinesisLite.
	Kinesis Flavor
	// DynamoDB is the DynamoDB emulator flavor; default Dynalite.
	DynamoDB Flavor
	// SQS starts the SQS emulator (SQSLocal) too; off by default, since only
	// the forwarder's failure queue needs it.
	SQS bool
	// Root is the repository root holding node_modules and deploy/local;
	// default: the nearest directory at or above the working directory that has
	// both go.mod and deploy/local/launch.js.
	Root string
	// KinesisPort, DynamoDBPort and SQSPort are fixed ports on 127.0.0.1; 0 picks a free one.
	KinesisPort, DynamoDBPort, SQSPort int
	// Logger gets startup and shutdown events; default zap.NewNop().
	Logger *zap.Logger
	// LogDir receives <flavor>.log with each emulator's stdout and stderr;
	// default: a new temporary directory, removed by Close.
	LogDir string
	// StartTimeout bounds starting both emulators and their first successful
	// API call; default 90s (DynamoDB Local is a JVM on a small, busy machine).
	StartTimeout time.Duration
	// RequestTimeout is the whole-request timeout of the SDK clients; default 10s.
	RequestTimeout time.Duration
	// NodeProfileDir, when set, has every Node.js emulator write a V8 CPU profile there when it
	// exits (node --cpu-prof; open it in Chrome DevTools or speedscope).
	NodeProfileDir string
	// StopTimeout is how long Close waits after SIGTERM before SIGKILL; default 5s.
	StopTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Kinesis == "" {
		o.Kinesis = KinesisLite
	}
	if o.DynamoDB == "" {
		o.DynamoDB = Dynalite
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 90 * time.Second
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = 5 * time.Second
	}
	return o
}

// Validate reports whether o (after defaults) describes a stack that can start.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.Kinesis.service() != serviceKinesis {
		errs = append(errs, fmt.Errorf("Kinesis flavor %q: want %q or %q", o.Kinesis, KinesisLite, KinesisMock))
	}
	if o.DynamoDB.service() != serviceDynamoDB {
		errs = append(errs, fmt.Errorf("DynamoDB flavor %q: want %q or %q", o.DynamoDB, Dynalite, DynamoDBLocal))
	}
	for _, p := range []struct {
		name string
		port int
	}{{"KinesisPort", o.KinesisPort}, {"DynamoDBPort", o.DynamoDBPort}, {"SQSPort", o.SQSPort}} {
		if p.port < 0 || p.port > 65535 {
			errs = append(errs, fmt.Errorf("%s %d: want 0 (free port) or 1-65535", p.name, p.port))
		}
	}
	if o.KinesisPort != 0 && o.KinesisPort == o.DynamoDBPort {
		errs = append(errs, fmt.Errorf("KinesisPort and DynamoDBPort are both %d", o.KinesisPort))
	}
	if o.SQSPort != 0 && (o.SQSPort == o.KinesisPort || o.SQSPort == o.DynamoDBPort) {
		errs = append(errs, fmt.Errorf("SQSPort %d is also the Kinesis or DynamoDB port", o.SQSPort))
	}
	if o.SQSPort != 0 && !o.SQS {
		errs = append(errs, errors.New("SQSPort is set but SQS is not"))
	}
	if o.StartTimeout < 0 || o.RequestTimeout < 0 || o.StopTimeout < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("localstack options: %w", err)
	}
	return nil
}

// Stack is a running pair of emulators, plus the SQS emulator when asked for.
type Stack struct {
	// KinesisEndpoint and DynamoDBEndpoint are http://127.0.0.1:<port> URLs.
	KinesisEndpoint, DynamoDBEndpoint string
	// SQSEndpoint is the SQS emulator's http://127.0.0.1:<port> URL; empty
	// unless Options.SQS was set.
	SQSEndpoint string
	// Region is always Region (us-east-1).
	Region string
	// KinesisFlavor and DynamoDBFlavor say which emulators are running.
	KinesisFlavor, DynamoDBFlavor Flavor

	log            *zap.Logger
	kin, ddb, sqs  *emulator
	logDir         string
	ownLogDir      bool
	requestTimeout time.Duration
	stopTimeout    time.Duration

	clientsOnce sync.Once
	kinClient   *kinesis.Client
	ddbClient   *dynamodb.Client
	sqsClient   *sqs.Client

	closeOnce sync.Once
	closeErr  error
}

// Launch starts the Kinesis and DynamoDB emulators (and the SQS emulator with
// Options.SQS) on 127.0.0.1 and returns once each answers a real API call
// (ListStreams, ListTables, ListQueues). ctx bounds the startup only; the
// emulators run until Close or until this process exits.
func Launch(ctx context.Context, o Options) (*Stack, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	begin := time.Now()

	root := o.Root
	if root == "" {
		r, err := findRoot()
		if err != nil {
			return nil, err
		}
		root = r
	}
	kinSpec, err := specFor(root, o.Kinesis, o.KinesisPort)
	if err != nil {
		return nil, err
	}
	ddbSpec, err := specFor(root, o.DynamoDB, o.DynamoDBPort)
	if err != nil {
		return nil, err
	}
	for _, sp := range []*spec{&kinSpec, &ddbSpec} {
		if sp.tool == "node" && o.NodeProfileDir != "" {
			sp.args = append([]string{"--cpu-prof", "--cpu-prof-dir=" + o.NodeProfileDir}, sp.args...)
		}
	}
	var sqsSpec *spec
	if o.SQS {
		sp, err := specFor(root, SQSLocal, o.SQSPort)
		if err != nil {
			return nil, err
		}
		sqsSpec = &sp
	}
	for _, p := range []struct {
		port   int
		flavor Flavor
	}{{o.KinesisPort, o.Kinesis}, {o.DynamoDBPort, o.DynamoDB}, {o.SQSPort, SQSLocal}} {
		if err := checkPortFree(p.port, p.flavor); err != nil {
			return nil, err
		}
	}

	s := &Stack{
		Region:         Region,
		KinesisFlavor:  o.Kinesis,
		DynamoDBFlavor: o.DynamoDB,
		log:            o.Logger,
		logDir:         o.LogDir,
		requestTimeout: o.RequestTimeout,
		stopTimeout:    o.StopTimeout,
	}
	if s.logDir == "" {
		dir, err := os.MkdirTemp("", "localstack-")
		if err != nil {
			return nil, fmt.Errorf("localstack log dir: %w", err)
		}
		s.logDir, s.ownLogDir = dir, true
	} else if err := os.MkdirAll(s.logDir, 0o755); err != nil {
		return nil, fmt.Errorf("localstack log dir: %w", err)
	}

	if err := s.start(ctx, o, kinSpec, ddbSpec, sqsSpec); err != nil {
		if cerr := s.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	s.log.Info("local AWS stack ready",
		zap.String("kinesis", s.KinesisEndpoint), zap.String("kinesis_flavor", string(s.KinesisFlavor)),
		zap.String("dynamodb", s.DynamoDBEndpoint), zap.String("dynamodb_flavor", string(s.DynamoDBFlavor)),
		zap.String("sqs", s.SQSEndpoint),
		zap.String("log_dir", s.logDir), zap.Duration("startup", time.Since(begin)))
	return s, nil
}

// start runs the emulators (concurrently: the JVM dominates) and waits for health.
func (s *Stack) start(ctx context.Context, o Options, kinSpec, ddbSpec spec, sqsSpec *spec) error {
	ctx, cancel := context.WithTimeoutCause(ctx, o.StartTimeout,
		fmt.Errorf("local AWS stack not healthy within StartTimeout %v", o.StartTimeout))
	defer cancel()

	env := childEnv()
	var err error
	if s.kin, err = startEmulator(kinSpec, env, filepath.Join(s.logDir, string(kinSpec.flavor)+".log"), s.log); err != nil {
		return err
	}
	if s.ddb, err = startEmulator(ddbSpec, env, filepath.Join(s.logDir, string(ddbSpec.flavor)+".log"), s.log); err != nil {
		return err
	}
	if sqsSpec != nil {
		if s.sqs, err = startEmulator(*sqsSpec, env, filepath.Join(s.logDir, string(sqsSpec.flavor)+".log"), s.log); err != nil {
			return err
		}
	}
	kinPort, err := s.kin.waitReady(ctx)
	if err != nil {
		return err
	}
	s.KinesisEndpoint = fmt.Sprintf("http://127.0.0.1:%d", kinPort)
	ddbPort, err := s.ddb.waitReady(ctx)
	if err != nil {
		return err
	}
	s.DynamoDBEndpoint = fmt.Sprintf("http://127.0.0.1:%d", ddbPort)
	if s.sqs != nil {
		sqsPort, err := s.sqs.waitReady(ctx)
		if err != nil {
			return err
		}
		s.SQSEndpoint = fmt.Sprintf("http://127.0.0.1:%d", sqsPort)
	}

	if err := s.waitHealthy(ctx, s.kin, func(ctx context.Context) error {
		_, err := s.Kinesis().ListStreams(ctx, &kinesis.ListStreamsInput{})
		return err
	}); err != nil {
		return err
	}
	if err := s.waitHealthy(ctx, s.ddb, func(ctx context.Context) error {
		_, err := s.DynamoDB().ListTables(ctx, &dynamodb.ListTablesInput{})
		return err
	}); err != nil {
		return err
	}
	if s.sqs == nil {
		return nil
	}
	return s.waitHealthy(ctx, s.sqs, func(ctx context.Context) error {
		_, err := s.SQS().ListQueues(ctx, &sqs.ListQueuesInput{})
		return err
	})
}

// waitHealthy polls call until it succeeds, the emulator dies or ctx ends.
func (s *Stack) waitHealthy(ctx context.Context, e *emulator, call func(context.Context) error) error {
	return poll(ctx, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		if !e.running() {
			return false, permanent{e.exitError()}
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := call(cctx); err != nil {
			return false, fmt.Errorf("%s health check: %w", e.flavor, err)
		}
		return true, nil
	}, func(last error) error {
		return fmt.Errorf("%s listens but does not answer: %w; last lines of %s:\n%s", e.flavor, last, e.logPath, e.tail())
	})
}

// Close stops the emulators (SIGTERM, then SIGKILL after StopTimeout) and
// removes the temporary log directory if Launch made it. Idempotent.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, e := range []*emulator{s.kin, s.ddb, s.sqs} {
			if e == nil {
				continue
			}
			wg.Go(func() {
				if err := e.stop(s.stopTimeout); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if s.ownLogDir {
			if err := os.RemoveAll(s.logDir); err != nil {
				errs = append(errs, fmt.Errorf("remove localstack log dir: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
		s.log.Info("local AWS stack stopped", zap.Error(s.closeErr))
	})
	return s.closeErr
}

// Env returns the variables that point an AWS SDK in a child process at this
// stack (append to os.Environ(); later entries win).
func (s *Stack) Env() []string {
	env := []string{
		"AWS_ENDPOINT_URL_KINESIS=" + s.KinesisEndpoint,
		"AWS_ENDPOINT_URL_DYNAMODB=" + s.DynamoDBEndpoint,
		"AWS_REGION=" + s.Region,
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		// Credentials are static; never let an SDK probe the EC2 metadata address.
		"AWS_EC2_METADATA_DISABLED=true",
		// The stack is plain HTTP on loopback: a CA bundle set for the machine (some CI images set
		// one) has no use here, and loading it costs every child process about 15 ms of CPU at start,
		// which `make bench` would count against the forwarder.
		"AWS_CA_BUNDLE=",
	}
	if s.SQSEndpoint != "" {
		env = append(env, "AWS_ENDPOINT_URL_SQS="+s.SQSEndpoint)
	}
	return env
}

// LogFiles returns the paths of the Kinesis and DynamoDB emulator logs (they
// disappear with Close when LogDir was left empty).
func (s *Stack) LogFiles() (kinesisLog, dynamodbLog string) {
	return s.kin.logPath, s.ddb.logPath
}

// LogTails returns the last lines of the emulator logs, for test failure output.
func (s *Stack) LogTails() string {
	out := fmt.Sprintf("%s log (%s):\n%s\n%s log (%s):\n%s",
		s.KinesisFlavor, s.kin.logPath, s.kin.tail(), s.DynamoDBFlavor, s.ddb.logPath, s.ddb.tail())
	if s.sqs != nil {
		out += fmt.Sprintf("\n%s log (%s):\n%s", SQSLocal, s.sqs.logPath, s.sqs.tail())
	}
	return out
}

// KinesisPID and DynamoDBPID are the emulator process ids; each is also the
// id of the emulator's own process group.
func (s *Stack) KinesisPID() int { return s.kin.pid() }

// DynamoDBPID: see KinesisPID.
func (s *Stack) DynamoDBPID() int { return s.ddb.pid() }

// PauseDynamoDB freezes the DynamoDB emulator (SIGSTOP to its process group):
// connections are accepted by the kernel but nothing answers until
// ResumeDynamoDB. Close resumes a paused emulator before stopping it.
func (s *Stack) PauseDynamoDB() error { return s.ddb.signal(syscall.SIGSTOP) }

// ResumeDynamoDB continues a paused DynamoDB emulator (SIGCONT).
func (s *Stack) ResumeDynamoDB() error { return s.ddb.signal(syscall.SIGCONT) }

// PauseKinesis freezes the Kinesis emulator; see PauseDynamoDB.
func (s *Stack) PauseKinesis() error { return s.kin.signal(syscall.SIGSTOP) }

// ResumeKinesis continues a paused Kinesis emulator.
func (s *Stack) ResumeKinesis() error { return s.kin.signal(syscall.SIGCONT) }

// findRoot walks up from the working directory to the repository root.
func findRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for dir := wd; ; {
		if isFile(filepath.Join(dir, "go.mod")) && isFile(filepath.Join(dir, "deploy", "local", "launch.js")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find repository root: no directory at or above %s has go.mod and deploy/local/launch.js; set Options.Root", wd)
		}
		dir = parent
	}
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// checkPortFree fails fast with a PortInUseError when a fixed port is taken.
// It cannot reserve the port; a launcher that loses a race exits with
// exitPortInUse and Launch reports that instead.
func checkPortFree(port int, f Flavor) error {
	if port == 0 {
		return nil
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return &PortInUseError{Port: port, Flavor: f, Err: err}
		}
		return fmt.Errorf("port %d on 127.0.0.1 for the %s emulator: %w", port, f, err)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("port %d on 127.0.0.1: release probe: %w", port, err)
	}
	return nil
}

// childEnv is this process's environment without AWS and emulator settings
// that would change the emulators' behaviour, plus the local region.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "AWS_"), strings.HasPrefix(name, "KINESIS_MOCK_"),
			strings.HasSuffix(name, "_DURATION"), name == "SHARD_LIMIT", name == "LOG_LEVEL",
			name == "ROOT_LOG_LEVEL", name == "INITIALIZE_STREAMS", name == "SHOULD_PERSIST_DATA",
			name == "ON_DEMAND_STREAM_COUNT_LIMIT", name == "NODE_OPTIONS":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "AWS_REGION="+Region)
}
