package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kintypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/faultproxy"
	"github.com/kinesis-events/pipeline/internal/kclctl"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/processors"
)

// buildKclctl builds this command into a temporary directory.
func buildKclctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kclctl")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type result struct {
	code           int
	stdout, stderr string
}

// runKclctl runs the binary against the stack, with the lease-table and stream variables cleared so
// the defaults (kcl-leases, events-raw) apply unless args say otherwise.
func runKclctl(t *testing.T, bin string, st *localstack.Stack, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LEASE_TABLE=") && !strings.HasPrefix(kv, "RAW_STREAM=") && !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, st.Env()...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run kclctl %v: %v", args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
}

// leaseRow writes a lease row with the KCL attribute names checkpoint uses.
func leaseRow(t *testing.T, ctx context.Context, ddb *dynamodb.Client, shard, owner string, expires time.Time, checkpoint string, counter int) {
	t.Helper()
	item := map[string]ddbtypes.AttributeValue{
		"ShardID":      &ddbtypes.AttributeValueMemberS{Value: shard},
		"AssignedTo":   &ddbtypes.AttributeValueMemberS{Value: owner},
		"LeaseTimeout": &ddbtypes.AttributeValueMemberS{Value: expires.UTC().Format("2006-01-02T15:04:05.000Z")},
		"Checkpoint":   &ddbtypes.AttributeValueMemberS{Value: checkpoint},
		"LeaseCounter": &ddbtypes.AttributeValueMemberN{Value: strconv.Itoa(counter)},
	}
	if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(names.LeaseTable), Item: item}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckpointsBinary(t *testing.T) {
	bin := buildKclctl(t)
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	if err := st.CreateStream(ctx, names.RawStream, 2); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTable(ctx, names.LeaseTable, "ShardID"); err != nil {
		t.Fatal(err)
	}
	kin, ddb := st.Kinesis(), st.DynamoDB()
	ls, err := kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(names.RawStream)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.Shards) != 2 {
		t.Fatalf("%d shards", len(ls.Shards))
	}
	// Three records on each shard; remember their sequence numbers.
	seqs := map[string][]string{}
	for _, sh := range ls.Shards {
		for i := range 3 {
			out, err := kin.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(names.RawStream), Data: []byte("r" + strconv.Itoa(i)),
				PartitionKey: aws.String("k"), ExplicitHashKey: sh.HashKeyRange.StartingHashKey})
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(out.ShardId) != aws.ToString(sh.ShardId) {
				t.Fatalf("record went to %s, want %s", aws.ToString(out.ShardId), aws.ToString(sh.ShardId))
			}
			seqs[aws.ToString(sh.ShardId)] = append(seqs[aws.ToString(sh.ShardId)], aws.ToString(out.SequenceNumber))
		}
	}
	s0, s1 := aws.ToString(ls.Shards[0].ShardId), aws.ToString(ls.Shards[1].ShardId)
	now := time.Now()
	// Shard 0: live lease, checkpoint at its first record, so two records wait: lag is their age.
	leaseRow(t, ctx, ddb, s0, "worker-a", now.Add(5*time.Minute), seqs[s0][0], 7)
	// Shard 1: caught up, but its owner stopped renewing a minute ago.
	leaseRow(t, ctx, ddb, s1, "worker-b", now.Add(-time.Minute), seqs[s1][2], 12)

	t.Run("table", func(t *testing.T) {
		r := runKclctl(t, bin, st, "checkpoints")
		if r.code != kclctl.ExitWarnings {
			t.Fatalf("exit %d, want %d (expired lease)\nstdout:\n%s\nstderr:\n%s", r.code, kclctl.ExitWarnings, r.stdout, r.stderr)
		}
		t.Logf("kclctl checkpoints:\n%s", r.stdout)
		lines := strings.Split(r.stdout, "\n")
		if !strings.HasPrefix(lines[0], "SHARD ") || !strings.Contains(lines[0], "LEASE EXPIRES IN") || !strings.HasSuffix(strings.Join(strings.Fields(lines[0]), " "), "LAG BEHIND") {
			t.Fatalf("header %q", lines[0])
		}
		row0, row1 := strings.Fields(lines[1]), lines[2]
		// SHARD STATE PARENTS OWNER EXPIRES CHECKPOINT LAG BEHIND; "expires in" is one field ("4m59s").
		if len(row0) != 8 || row0[0] != s0 || row0[1] != "open" || row0[2] != "-" || row0[3] != "worker-a" ||
			row0[5] != kclctl.ShortSeq(seqs[s0][0]) || row0[6] == "0" || row0[6] == "?" || row0[7] != "-" {
			t.Fatalf("row for %s: %q", s0, lines[1])
		}
		if !strings.HasPrefix(row1, s1) || !strings.Contains(row1, "worker-b") || !strings.Contains(row1, "expired 1m00s ago") ||
			!strings.HasSuffix(strings.Join(strings.Fields(row1), " "), " 0 -") {
			t.Fatalf("row for %s: %q", s1, row1)
		}
		if !strings.Contains(r.stdout, "WARNINGS") || !strings.Contains(r.stdout, "expired_lease") {
			t.Fatalf("no expired-lease warning:\n%s", r.stdout)
		}
	})

	t.Run("json", func(t *testing.T) {
		r := runKclctl(t, bin, st, "checkpoints", "--json")
		if r.code != kclctl.ExitWarnings {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		var rep kclctl.Report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("%v:\n%s", err, r.stdout)
		}
		if rep.Table != names.LeaseTable || rep.Stream != names.RawStream || len(rep.Shards) != 2 {
			t.Fatalf("report %+v", rep)
		}
		a, b := rep.Shards[0], rep.Shards[1]
		if a.ShardID != s0 || a.Checkpoint != seqs[s0][0] || a.LeaseCounter != 7 || a.Owner != "worker-a" || !a.HasLease ||
			a.LeaseExpiresInMS == nil || *a.LeaseExpiresInMS <= 0 || a.Lag.Status != kclctl.LagBehind || a.Lag.OldestUnprocessed.IsZero() {
			t.Fatalf("shard 0 %+v", a)
		}
		if age := time.Since(a.Lag.OldestUnprocessed); a.Lag.AgeMS < 0 || time.Duration(a.Lag.AgeMS)*time.Millisecond > age+time.Second {
			t.Fatalf("lag %d ms for a record that arrived %s ago", a.Lag.AgeMS, age)
		}
		if b.ShardID != s1 || b.Checkpoint != seqs[s1][2] || b.Lag.Status != kclctl.LagCaughtUp || b.Lag.AgeMS != 0 || *b.LeaseExpiresInMS > -59000 {
			t.Fatalf("shard 1 %+v", b)
		}
		kinds := map[string]bool{}
		for _, w := range rep.Warnings {
			if w.Shard == s1 {
				kinds[w.Kind] = true
			}
		}
		if !kinds["expired_lease"] {
			t.Fatalf("warnings %+v", rep.Warnings)
		}
	})

	t.Run("healthy fleet exits 0", func(t *testing.T) {
		leaseRow(t, ctx, ddb, s1, "worker-b", time.Now().Add(5*time.Minute), seqs[s1][2], 13)
		r := runKclctl(t, bin, st, "checkpoints")
		if r.code != kclctl.ExitOK || strings.Contains(r.stdout, "WARNINGS") {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("missing table is an error", func(t *testing.T) {
		r := runKclctl(t, bin, st, "--table", "no-such-table", "checkpoints", "--timeout", "5s")
		if r.code != kclctl.ExitError || !strings.Contains(r.stderr, "no-such-table") || r.stdout != "" {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("usage", func(t *testing.T) {
		r := runKclctl(t, bin, st, "checkpoints", "--bogus")
		if r.code != kclctl.ExitUsage || !strings.Contains(r.stderr, "unknown flag") {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
	})
}

// TestOperateBinary drives workers, reset, scale and dlq against kinesalite + dynalite.
func TestOperateBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("binary-level run on the emulators")
	}
	bin := buildKclctl(t)
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	for name, n := range map[string]int{names.RawStream: 2, names.DLQStream: 1} {
		if err := st.CreateStream(ctx, name, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CreateTable(ctx, names.LeaseTable, "ShardID"); err != nil {
		t.Fatal(err)
	}
	kin, ddb := st.Kinesis(), st.DynamoDB()
	ls, err := kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(names.RawStream)})
	if err != nil {
		t.Fatal(err)
	}
	s0, s1 := aws.ToString(ls.Shards[0].ShardId), aws.ToString(ls.Shards[1].ShardId)
	var seqs []string
	for i := range 3 {
		out, err := kin.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(names.RawStream), Data: []byte("r" + strconv.Itoa(i)),
			PartitionKey: aws.String("k"), ExplicitHashKey: ls.Shards[0].HashKeyRange.StartingHashKey})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, aws.ToString(out.SequenceNumber))
	}
	leaseRow(t, ctx, ddb, s0, "worker-a", time.Now().Add(5*time.Minute), seqs[2], 4)
	leaseRow(t, ctx, ddb, s1, "worker-b", time.Now().Add(5*time.Minute), "TRIM_HORIZON", 2)

	t.Run("workers", func(t *testing.T) {
		r := runKclctl(t, bin, st, "workers")
		if r.code != kclctl.ExitOK || !strings.Contains(r.stdout, "worker-a  1       "+s0) || !strings.Contains(r.stdout, "2 worker(s) with live leases, 2 leasable shard(s), 0 unowned, spread 0") {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		leaseRow(t, ctx, ddb, s1, "worker-a", time.Now().Add(5*time.Minute), "TRIM_HORIZON", 3)
		r = runKclctl(t, bin, st, "workers", "--json")
		var rep kclctl.WorkersReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != kclctl.ExitOK || len(rep.Workers) != 1 || len(rep.Workers[0].Shards) != 2 {
			t.Fatalf("exit %d %v\n%s", r.code, err, r.stdout)
		}
	})

	t.Run("reset", func(t *testing.T) {
		// Dry run against a live lease: shows old and new, writes nothing, exit 0.
		r := runKclctl(t, bin, st, "reset", "--shard", s0, "--to", "sequence", seqs[0])
		if r.code != kclctl.ExitOK || !strings.Contains(r.stdout, seqs[2]) || !strings.Contains(r.stdout, "dry-run") || !strings.Contains(r.stdout, "refused without --force") {
			t.Fatalf("dry run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		t.Logf("kclctl reset (dry run):\n%s", r.stdout)
		// --apply refuses while leased: exit 4, row unchanged.
		r = runKclctl(t, bin, st, "reset", "--shard", s0, "--to", "sequence", seqs[0], "--apply")
		if r.code != kclctl.ExitRefused || !strings.Contains(r.stderr, "refused") || !strings.Contains(r.stdout, "refused") {
			t.Fatalf("apply on a leased shard: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		cp := func() map[string]string {
			out, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(names.LeaseTable), ConsistentRead: aws.Bool(true),
				Key: map[string]ddbtypes.AttributeValue{"ShardID": &ddbtypes.AttributeValueMemberS{Value: s0}}})
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]string{}
			for k, v := range out.Item {
				if s, ok := v.(*ddbtypes.AttributeValueMemberS); ok {
					m[k] = s.Value
				}
			}
			return m
		}
		if row := cp(); row["Checkpoint"] != seqs[2] || row["AssignedTo"] != "worker-a" {
			t.Fatalf("refused reset changed the row: %v", row)
		}
		// --force fences the owner out and records who.
		r = runKclctl(t, bin, st, "reset", "--shard", s0, "--to", "sequence="+seqs[0], "--apply", "--force", "--who", "alice")
		if r.code != kclctl.ExitOK || !strings.Contains(r.stdout, "applied") || !strings.Contains(r.stdout, "LastResetBy=alice") {
			t.Fatalf("forced reset: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		t.Logf("kclctl reset --apply --force:\n%s", r.stdout)
		if row := cp(); row["Checkpoint"] != seqs[0] || row["AssignedTo"] != "" || row["LastResetBy"] != "alice" || row["LastResetFrom"] != seqs[2] {
			t.Fatalf("row after forced reset: %v", row)
		}
		// Unleased now: latest and trim-horizon apply without --force.
		r = runKclctl(t, bin, st, "reset", "--shard", s0, "--to", "latest", "--apply", "--json")
		var rep kclctl.ResetReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != kclctl.ExitOK || rep.NewCheckpoint != seqs[2] || rep.Result != kclctl.ResetApplied {
			t.Fatalf("reset to latest: exit %d %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
		}
		r = runKclctl(t, bin, st, "reset", "--shard", s0, "--to", "trim-horizon", "--apply")
		if r.code != kclctl.ExitOK || cp()["Checkpoint"] != "" {
			t.Fatalf("reset to trim horizon: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		r = runKclctl(t, bin, st, "reset", "--shard", "shardId-999999999999", "--to", "latest")
		if r.code != kclctl.ExitError || !strings.Contains(r.stderr, "shard not in stream") {
			t.Fatalf("unknown shard: exit %d\n%s", r.code, r.stderr)
		}
	})

	t.Run("reset past the dedupe horizon", func(t *testing.T) {
		// A worker's pipeline opened s0 with a one-day horizon: its state manifest records it.
		if err := st.CreateTable(ctx, names.DedupeTable, "event_id"); err != nil {
			t.Fatal(err)
		}
		kr, err := event.NewKeyring(event.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")})
		if err != nil {
			t.Fatal(err)
		}
		p, err := processors.New(processors.Config{QuarantineStream: names.QuarantineStream, DLQStream: names.DLQStream, DefaultStream: names.OtherStream,
			DedupeHorizon: 24 * time.Hour}, processors.Deps{Kinesis: kin, Dedupe: processors.NewDynamoDedupe(ddb, names.DedupeTable), Keys: kr})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.OpenShard(ctx, s0, processors.Lineage{}); err != nil {
			t.Fatal(err)
		}
		r := runKclctl(t, bin, st, "reset", "--shard", s0, "--to", "timestamp=-2h")
		if r.code != kclctl.ExitOK || !strings.Contains(r.stdout, "within the dedupe horizon 24h0m0s") {
			t.Fatalf("a rewind within the horizon: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		r = runKclctl(t, bin, st, "reset", "--shard", s0, "--to", "timestamp=-48h", "--json")
		var rep kclctl.ResetReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != kclctl.ExitWarnings || !rep.PastHorizon || rep.Horizon != 24*time.Hour {
			t.Fatalf("a rewind past the horizon: exit %d %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
		}
		t.Logf("kclctl reset past the horizon: %v", rep.Notes)
	})

	t.Run("dlq", func(t *testing.T) {
		for i, c := range []string{"c1", "c2", "c1"} {
			detail := fmt.Sprintf(`{"event_id":"e%d","customer_id":%q,"seq":%d}`, i, c, i)
			dl := event.DeadLetter{Reason: "destination_unavailable: ResourceNotFoundException", Destination: names.AnalyticsStream("purchase"), Attempts: 3,
				FirstFailure: time.Now().Add(-time.Minute), LastFailure: time.Now(), SourceShard: s0, SourceSeq: seqs[i],
				EventID: fmt.Sprintf("e%d", i), CustomerID: c, Original: []byte(`{"v":1,"type":"purchase","detail":` + detail + `}`)}
			b, _ := json.Marshal(dl)
			if _, err := kin.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(names.DLQStream), Data: b, PartitionKey: aws.String(c)}); err != nil {
				t.Fatal(err)
			}
		}
		r := runKclctl(t, bin, st, "dlq", "list")
		if r.code != kclctl.ExitOK || strings.Count(r.stdout, "destination_unavailable") != 4 || !strings.Contains(r.stdout, "3 dead letter(s) in events-dlq") {
			t.Fatalf("dlq list: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		t.Logf("kclctl dlq list:\n%s", r.stdout)
		before := countRecords(t, ctx, kin, names.RawStream)
		r = runKclctl(t, bin, st, "dlq", "replay")
		if r.code != kclctl.ExitOK || !strings.Contains(r.stdout, "would replay 3 into events-raw") || countRecords(t, ctx, kin, names.RawStream) != before {
			t.Fatalf("dry run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		r = runKclctl(t, bin, st, "dlq", "replay", "--apply", "--event-id", "e0,e2")
		if r.code != kclctl.ExitOK || !strings.Contains(r.stdout, "replayed 2 into events-raw") {
			t.Fatalf("replay: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		t.Logf("kclctl dlq replay --apply:\n%s", r.stdout)
		if got := countRecords(t, ctx, kin, names.RawStream); got != before+2 {
			t.Fatalf("raw stream has %d records, want %d", got, before+2)
		}
		// A record that is not a dead letter is a warning.
		if _, err := kin.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(names.DLQStream), Data: []byte("junk"), PartitionKey: aws.String("x")}); err != nil {
			t.Fatal(err)
		}
		r = runKclctl(t, bin, st, "dlq", "list", "--json")
		var rep kclctl.DLQReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != kclctl.ExitWarnings || len(rep.Records) != 3 || len(rep.Warnings) != 1 {
			t.Fatalf("dlq list with junk: exit %d %v\n%s", r.code, err, r.stdout)
		}
	})

	t.Run("scale by split and merge (kinesalite has no UpdateShardCount)", func(t *testing.T) {
		r := runKclctl(t, bin, st, "scale", "--shards", "3")
		if r.code != kclctl.ExitOK || !strings.Contains(r.stdout, "would run") || openShards(t, ctx, kin, names.RawStream) != 2 {
			t.Fatalf("dry run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		r = runKclctl(t, bin, st, "scale", "--shards", "3", "--apply")
		if r.code != kclctl.ExitOK || !strings.Contains(r.stdout, "split-merge; ran 1 step(s)") || !strings.Contains(r.stdout, "UnknownOperationException") {
			t.Fatalf("scale to 3: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		t.Logf("kclctl scale --shards 3 --apply:\n%s", r.stdout)
		if n := openShards(t, ctx, kin, names.RawStream); n != 3 {
			t.Fatalf("%d open shards after scale to 3", n)
		}
		r = runKclctl(t, bin, st, "scale", "--shards", "2", "--apply", "--json")
		var rep kclctl.ScaleReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != kclctl.ExitOK || rep.Method != kclctl.MethodSplitMerge ||
			len(rep.Steps) != 1 || rep.Steps[0].Op != "merge" || len(rep.Lineage) != 5 {
			t.Fatalf("scale to 2: exit %d %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
		}
		if n := openShards(t, ctx, kin, names.RawStream); n != 2 {
			t.Fatalf("%d open shards after scale to 2", n)
		}
	})
}

// TestScaleBinaryUpdateShardCount runs scale on kinesis-local, which implements UpdateShardCount.
func TestScaleBinaryUpdateShardCount(t *testing.T) {
	if testing.Short() {
		t.Skip("binary-level run on the compatibility emulators")
	}
	bin := buildKclctl(t)
	st := localstacktest.Start(t, localstack.Options{Kinesis: localstack.KinesisMock})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if err := st.CreateStream(ctx, names.RawStream, 2); err != nil {
		t.Fatal(err)
	}
	r := runKclctl(t, bin, st, "scale", "--shards", "4", "--apply", "--timeout", "30s")
	if r.code != kclctl.ExitOK || !strings.Contains(r.stdout, "2 -> 4 open shards (uniform; ran 1 step(s))") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("kclctl scale --shards 4 --apply (kinesis-local):\n%s", r.stdout)
	if n := openShards(t, ctx, st.Kinesis(), names.RawStream); n != 4 {
		t.Fatalf("%d open shards, want 4", n)
	}
}

func openShards(t *testing.T, ctx context.Context, kin *kinesis.Client, stream string) int {
	t.Helper()
	out, err := kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range out.Shards {
		if s.SequenceNumberRange.EndingSequenceNumber == nil {
			n++
		}
	}
	return n
}

// countRecords reads every shard of stream from the trim horizon and counts its records.
func countRecords(t *testing.T, ctx context.Context, kin *kinesis.Client, stream string) int {
	t.Helper()
	ls, err := kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range ls.Shards {
		it, err := kin.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: s.ShardId, ShardIteratorType: kintypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		for iter := it.ShardIterator; iter != nil; {
			out, err := kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			n += len(out.Records)
			if len(out.Records) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	return n
}

// TestAutoscaleBinary: `kclctl autoscale run --once` on the local stack reads the load the fault
// proxy counted, splits the throttled raw stream (kinesalite has no UpdateShardCount), and
// `kclctl autoscale status` shows the decision, the leader and the calls left.
func TestAutoscaleBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("binary-level run on the local emulators")
	}
	bin := buildKclctl(t)
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	for _, s := range []string{"events-raw", "events-dlq"} {
		if err := st.CreateStream(ctx, s, 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CreateTable(ctx, "kcl-leases", "ShardID"); err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.Start(ctx, faultproxy.Config{Upstream: st.KinesisEndpoint,
		ShardLimits: &faultproxy.ShardLimits{RecordsPerSecond: 100, BytesPerSecond: 100 << 10, Shards: st.Kinesis()}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg, err := st.AWSConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kc := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(p.URL()) })
	// About 2,000 records/s offered for 3 s to two shards of 100 records/s: most are throttled, however
	// slow the machine is.
	pace := time.NewTicker(50 * time.Millisecond)
	defer pace.Stop()
	began := time.Now()
	for i := range 60 {
		<-pace.C
		es := make([]kintypes.PutRecordsRequestEntry, 100)
		for j := range es {
			es[j] = kintypes.PutRecordsRequestEntry{Data: []byte("payload"), PartitionKey: aws.String(fmt.Sprintf("c%d-%d", i, j))}
		}
		if _, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("events-raw"), Records: es}); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) result {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		env := []string{}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "AWS_") {
				env = append(env, kv)
			}
		}
		cmd.Env = append(append(env, st.Env()...), "AWS_ENDPOINT_URL_KINESIS="+p.URL())
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("run kclctl %v: %v", args, err)
		}
		return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
	}
	window := (time.Since(began) + 2*time.Second).Truncate(time.Second).String() // the whole write, whatever it took
	r := run("autoscale", "run", "--once", "--profile", "local", "--out-window", window, "--source", "proxy", "--proxy-url", p.URL(),
		"--streams", "events-raw,events-dlq", "--id", "test-scaler")
	if r.code != kclctl.ExitOK || !strings.Contains(r.stdout, "events-raw  scale-out  2     4") || !strings.Contains(r.stdout, "ok (split-merge)") ||
		!strings.Contains(r.stdout, "events-dlq  hold") || !strings.Contains(r.stderr, `"msg":"resharded"`) {
		t.Fatalf("autoscale run --once: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("kclctl autoscale run --once:\n%s", r.stdout)
	if n := openShards(t, ctx, st.Kinesis(), "events-raw"); n != 4 {
		t.Fatalf("%d open raw shards, want 4", n)
	}
	r = run("autoscale", "status")
	if r.code != kclctl.ExitOK || !strings.Contains(r.stdout, "leader: test-scaler") || !strings.Contains(r.stdout, "scale-out  2     4   ok (split-merge)") ||
		!regexpMatch(`events-raw\s+provisioned\s+ACTIVE\s+4\s.*\s9\n`, r.stdout) {
		t.Fatalf("autoscale status: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("kclctl autoscale status:\n%s", r.stdout)
	r = run("autoscale", "status", "--json")
	var status kclctl.AutoscaleStatus
	if err := json.Unmarshal([]byte(r.stdout), &status); err != nil || len(status.Streams) != 2 || status.Leader == nil || !status.Leader.Live {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }
