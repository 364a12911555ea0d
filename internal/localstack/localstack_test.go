package localstack_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kintypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/internal/poll"
)

var flavors = []struct {
	name   string
	opts   localstack.Options
	compat bool // slow compatibility tier: not run with -short
}{
	{"default", localstack.Options{}, false},
	{"compat", localstack.Options{Kinesis: localstack.KinesisMock, DynamoDB: localstack.DynamoDBLocal}, true},
}

// TestStack drives each flavor pair through what the rest of the project
// relies on: startup, streams and tables, put and read back (through a shard
// split, so ReadAll must cover closed parents), environment, pause and resume.
func TestStack(t *testing.T) {
	for _, fl := range flavors {
		t.Run(fl.name, func(t *testing.T) {
			if fl.compat && testing.Short() {
				t.Skip("-short: the compatibility tier (kinesis-mock, DynamoDB Local) runs in the full suite")
			}
			t.Parallel()
			begin := time.Now()
			s := localstacktest.Start(t, fl.opts)
			t.Logf("%s + %s healthy after %v", s.KinesisFlavor, s.DynamoDBFlavor, time.Since(begin).Round(time.Millisecond))
			ctx := t.Context()

			for _, ep := range []string{s.KinesisEndpoint, s.DynamoDBEndpoint} {
				if !strings.HasPrefix(ep, "http://127.0.0.1:") {
					t.Errorf("endpoint %q is not on 127.0.0.1", ep)
				}
			}
			checkLoopbackOnly(t, s.KinesisEndpoint)
			checkLoopbackOnly(t, s.DynamoDBEndpoint)
			checkEnv(t, s)

			t.Run("stream put, split, read all", func(t *testing.T) { testStream(ctx, t, s) })
			t.Run("table create twice, put, get", func(t *testing.T) { testTable(ctx, t, s) })
			t.Run("pause and resume dynamodb", func(t *testing.T) {
				testPause(ctx, t, s.DynamoDBPID(), s.PauseDynamoDB, s.ResumeDynamoDB, func(ctx context.Context) error {
					_, err := s.DynamoDB().ListTables(ctx, &dynamodb.ListTablesInput{})
					return err
				})
			})
			t.Run("pause and resume kinesis", func(t *testing.T) {
				testPause(ctx, t, s.KinesisPID(), s.PauseKinesis, s.ResumeKinesis, func(ctx context.Context) error {
					_, err := s.Kinesis().ListStreams(ctx, &kinesis.ListStreamsInput{})
					return err
				})
			})
			t.Run("survives aborted requests", func(t *testing.T) { testAborts(ctx, t, s) })
		})
	}
}

func testStream(ctx context.Context, t *testing.T, s *localstack.Stack) {
	const stream = names.RawStream
	if err := s.CreateStream(ctx, stream, 2); err != nil {
		t.Fatal(err)
	}
	// Idempotent: a second create waits for the existing stream.
	if err := s.CreateStream(ctx, stream, 2); err != nil {
		t.Fatalf("second CreateStream: %v", err)
	}
	k := s.Kinesis()
	want := map[string]bool{}
	put := func(from, to int) {
		var entries []kintypes.PutRecordsRequestEntry
		for i := from; i < to; i++ {
			data := fmt.Sprintf("record-%03d", i)
			want[data] = true
			entries = append(entries, kintypes.PutRecordsRequestEntry{
				Data: []byte(data), PartitionKey: aws.String("customer-" + strconv.Itoa(i%7)),
			})
		}
		out, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			t.Fatalf("PutRecords: %v", err)
		}
		if n := aws.ToInt32(out.FailedRecordCount); n != 0 {
			t.Fatalf("PutRecords: %d failed", n)
		}
	}
	put(0, 40)

	// Split the first shard at the middle of its range, then write more: the
	// parent is closed and its records must still be read.
	shards, err := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	parent := shards.Shards[0]
	if _, err := k.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName:         aws.String(stream),
		ShardToSplit:       parent.ShardId,
		NewStartingHashKey: aws.String(midHashKey(t, parent.HashKeyRange)),
	}); err != nil {
		t.Fatalf("SplitShard: %v", err)
	}
	if err := s.CreateStream(ctx, stream, 2); err != nil { // waits for ACTIVE after the split
		t.Fatal(err)
	}
	put(40, 80)

	got, err := s.ReadAll(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	shardsSeen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Record.Data)]++
		shardsSeen[r.ShardID] = true
		if r.ShardID == "" || aws.ToString(r.Record.SequenceNumber) == "" {
			t.Errorf("record %q without shard id or sequence number", r.Record.Data)
		}
	}
	if len(got) != len(want) {
		t.Errorf("ReadAll returned %d records, want %d", len(got), len(want))
	}
	for d := range want {
		if seen[d] != 1 {
			t.Errorf("record %s read %d times, want 1", d, seen[d])
		}
	}
	if !shardsSeen[aws.ToString(parent.ShardId)] {
		t.Errorf("no record from closed parent shard %s", aws.ToString(parent.ShardId))
	}
	if len(shardsSeen) < 3 {
		t.Errorf("records from %d shards, want the closed parent, its sibling and at least one child", len(shardsSeen))
	}
}

func midHashKey(t *testing.T, r *kintypes.HashKeyRange) string {
	t.Helper()
	lo, ok1 := new(big.Int).SetString(aws.ToString(r.StartingHashKey), 10)
	hi, ok2 := new(big.Int).SetString(aws.ToString(r.EndingHashKey), 10)
	if !ok1 || !ok2 {
		t.Fatalf("bad hash key range %v..%v", aws.ToString(r.StartingHashKey), aws.ToString(r.EndingHashKey))
	}
	return new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1).String()
}

func testTable(ctx context.Context, t *testing.T, s *localstack.Stack) {
	const table = names.DedupeTable
	for i := range 2 {
		if err := s.CreateTable(ctx, table, "event_id"); err != nil {
			t.Fatalf("CreateTable #%d: %v", i+1, err)
		}
	}
	d := s.DynamoDB()
	desc, err := d.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	if ks := desc.Table.KeySchema; len(ks) != 1 || aws.ToString(ks[0].AttributeName) != "event_id" || ks[0].KeyType != ddbtypes.KeyTypeHash {
		t.Errorf("key schema %+v, want event_id HASH", ks)
	}
	if _, err := d.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(table),
		Item: map[string]ddbtypes.AttributeValue{
			"event_id": &ddbtypes.AttributeValueMemberS{Value: "e-1"},
			"n":        &ddbtypes.AttributeValueMemberN{Value: "42"},
		},
		ConditionExpression: aws.String("attribute_not_exists(event_id)"),
	}); err != nil {
		t.Fatalf("PutItem: %v", err)
	}
	out, err := d.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(table),
		Key:            map[string]ddbtypes.AttributeValue{"event_id": &ddbtypes.AttributeValueMemberS{Value: "e-1"}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("GetItem: %v", err)
	}
	if n, ok := out.Item["n"].(*ddbtypes.AttributeValueMemberN); !ok || n.Value != "42" {
		t.Errorf("GetItem returned %+v, want n=42", out.Item)
	}
	_, err = d.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(table),
		Item:                map[string]ddbtypes.AttributeValue{"event_id": &ddbtypes.AttributeValueMemberS{Value: "e-1"}},
		ConditionExpression: aws.String("attribute_not_exists(event_id)"),
	})
	var ccf *ddbtypes.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		t.Errorf("second conditional PutItem: got %v, want ConditionalCheckFailedException", err)
	}
}

// testPause checks that a paused emulator is stopped (kernel state T) and does
// not answer, and that it answers again after resume.
func testPause(ctx context.Context, t *testing.T, pid int, pause, resume func() error, call func(context.Context) error) {
	if err := pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			if err := resume(); err != nil {
				t.Errorf("resume: %v", err)
			}
		}
	}()
	waitState(t, pid, func(st byte) bool { return st == 'T' }, "stopped (T)")
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := call(cctx)
	cancel()
	if err == nil {
		t.Fatal("paused emulator answered")
	}
	if err := resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	waitState(t, pid, func(st byte) bool { return st != 'T' }, "running")
	cctx, cancel = context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := call(cctx); err != nil {
		t.Fatalf("after resume: %v", err)
	}
}

// waitState polls /proc/<pid>/stat until the process state satisfies ok.
func waitState(t *testing.T, pid int, ok func(byte) bool, want string) {
	t.Helper()
	poll.Until(t, 5*time.Second, 5*time.Millisecond, fmt.Sprintf("process %d in state %s", pid, want), func() (bool, string) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatalf("process %d: %v", pid, err)
		}
		// Format: pid (comm) state ...; comm may contain spaces.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) {
			t.Fatalf("process %d: unreadable stat %q", pid, b)
		}
		return ok(b[i+2]), fmt.Sprintf("state %c", b[i+2])
	})
}

// testAborts sends requests that clients abandon mid-flight (the body cut off,
// or the connection closed before the response), the way a killed worker or a
// cancelled GetRecords does, then checks that both emulators still answer.
func testAborts(ctx context.Context, t *testing.T, s *localstack.Stack) {
	if err := s.CreateStream(ctx, "abort-probe", 1); err != nil {
		t.Fatal(err)
	}
	it, err := s.Kinesis().GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String("abort-probe"), ShardId: aws.String("shardId-000000000000"),
		ShardIteratorType: kintypes.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatal(err)
	}
	getRecords := fmt.Sprintf(`{"ShardIterator":%q,"Limit":10000}`, aws.ToString(it.ShardIterator))
	bigPut := `{"StreamName":"abort-probe","Records":[` + strings.Repeat(`{"Data":"AAAA","PartitionKey":"k"},`, 2000)
	for _, c := range []struct {
		name, endpoint, target, body string
		declared                     int
	}{
		{"kinesis PutRecords body cut off", s.KinesisEndpoint, "Kinesis_20131202.PutRecords", bigPut, len(bigPut) * 2},
		{"kinesis GetRecords abandoned", s.KinesisEndpoint, "Kinesis_20131202.GetRecords", getRecords, len(getRecords)},
		{"dynamodb PutItem body cut off", s.DynamoDBEndpoint, "DynamoDB_20120810.PutItem", `{"TableName":"x","Item":{`, 4096},
		{"dynamodb ListTables abandoned", s.DynamoDBEndpoint, "DynamoDB_20120810.ListTables", `{}`, 2},
	} {
		for range 3 {
			abortRequest(t, c.endpoint, c.target, c.body, c.declared)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.Kinesis().ListStreams(cctx, &kinesis.ListStreamsInput{}); err != nil {
		t.Errorf("kinesis after aborted requests: %v", err)
	}
	if _, err := s.DynamoDB().ListTables(cctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Errorf("dynamodb after aborted requests: %v", err)
	}
	// A cancelled SDK call mid-flight, as a worker shutting down does.
	for range 3 {
		actx, acancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := s.Kinesis().GetRecords(actx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
			done <- err
		}()
		acancel()
		<-done
	}
	if _, err := s.Kinesis().ListStreams(cctx, &kinesis.ListStreamsInput{}); err != nil {
		t.Errorf("kinesis after cancelled GetRecords: %v", err)
	}
}

// abortRequest writes an HTTP request declaring declared body bytes, sends
// body (which may be shorter) and closes the connection without reading.
func abortRequest(t *testing.T, endpoint, target, body string, declared int) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(endpoint, "http://"), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", endpoint, err)
	}
	defer conn.Close()
	ct := "application/x-amz-json-1.1"
	if strings.HasPrefix(target, "DynamoDB") || strings.HasPrefix(target, "AmazonSQS") {
		ct = "application/x-amz-json-1.0"
	}
	req := fmt.Sprintf("POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nX-Amz-Target: %s\r\n"+
		"X-Amz-Date: 20250101T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=local/20250101/us-east-1/x/aws4_request, "+
		"SignedHeaders=host;x-amz-date;x-amz-target, Signature=00\r\nContent-Length: %d\r\n\r\n%s",
		strings.TrimPrefix(endpoint, "http://"), ct, target, declared, body)
	if err := conn.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatalf("write to %s: %v", endpoint, err)
	}
	// Reset instead of an orderly close, as a killed process's socket does.
	if tc, ok := conn.(*net.TCPConn); ok {
		if err := tc.SetLinger(0); err != nil {
			t.Fatal(err)
		}
	}
}

// checkLoopbackOnly fails if the emulator's port also answers on a
// non-loopback address of this machine.
func checkLoopbackOnly(t *testing.T, endpoint string) {
	t.Helper()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		// Our own address: the connection never leaves the machine.
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(ipn.IP.String(), port), time.Second)
		if err == nil {
			conn.Close()
			t.Errorf("%s also listens on %s", endpoint, ipn.IP)
		}
	}
}

func checkEnv(t *testing.T, s *localstack.Stack) {
	t.Helper()
	env := map[string]string{}
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, want := range map[string]string{
		"AWS_ENDPOINT_URL_KINESIS":  s.KinesisEndpoint,
		"AWS_ENDPOINT_URL_DYNAMODB": s.DynamoDBEndpoint,
		"AWS_REGION":                "us-east-1",
		"AWS_ACCESS_KEY_ID":         "local",
		"AWS_SECRET_ACCESS_KEY":     "local",
	} {
		if env[k] != want {
			t.Errorf("Env %s=%q, want %q", k, env[k], want)
		}
	}
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	for _, o := range []localstack.Options{{KinesisPort: port}, {DynamoDBPort: port}} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		s, err := localstack.Launch(ctx, o)
		cancel()
		if err == nil {
			s.Close()
			t.Fatalf("Launch(%+v) on a taken port succeeded", o)
		}
		var pe *localstack.PortInUseError
		if !errors.As(err, &pe) || pe.Port != port {
			t.Fatalf("Launch error %v, want PortInUseError for %d", err, port)
		}
		if want := fmt.Sprintf("port %d on 127.0.0.1 is already in use", port); !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestNotInstalled(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "deploy", "local"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", filepath.Join("deploy", "local", "launch.js")} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []localstack.Options{
		{Root: root},
		{Root: root, Kinesis: localstack.KinesisMock, DynamoDB: localstack.DynamoDBLocal},
	} {
		_, err := localstack.Launch(t.Context(), o)
		if !errors.Is(err, localstack.ErrNotInstalled) {
			t.Fatalf("Launch without node_modules: %v, want ErrNotInstalled", err)
		}
		if !strings.Contains(err.Error(), "emulators not installed: run `make deps` (npm ci)") {
			t.Errorf("error %q lacks the install hint", err)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		o    localstack.Options
		ok   bool
	}{
		{"zero", localstack.Options{}, true},
		{"compat", localstack.Options{Kinesis: localstack.KinesisMock, DynamoDB: localstack.DynamoDBLocal}, true},
		{"swapped flavors", localstack.Options{Kinesis: localstack.Dynalite}, false},
		{"unknown flavor", localstack.Options{DynamoDB: "scylla"}, false},
		{"port range", localstack.Options{KinesisPort: 70000}, false},
		{"same port", localstack.Options{KinesisPort: 4567, DynamoDBPort: 4567}, false},
		{"negative timeout", localstack.Options{StartTimeout: -time.Second}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.o.Validate(); (err == nil) != c.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, c.ok)
			}
		})
	}
}
