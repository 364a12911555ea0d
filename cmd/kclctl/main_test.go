package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kinesis-events/pipeline/internal/kclctl"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/localstack/localstacktest"
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
	if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("kcl-leases"), Item: item}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckpointsBinary(t *testing.T) {
	bin := buildKclctl(t)
	st := localstacktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	if err := st.CreateStream(ctx, "events-raw", 2); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTable(ctx, "kcl-leases", "ShardID"); err != nil {
		t.Fatal(err)
	}
	kin, ddb := st.Kinesis(), st.DynamoDB()
	ls, err := kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("events-raw")})
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
			out, err := kin.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("events-raw"), Data: []byte("r" + strconv.Itoa(i)),
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
		if !strings.HasPrefix(lines[0], "SHARD ") || !strings.Contains(lines[0], "LEASE EXPIRES IN") || !strings.HasSuffix(lines[0], "LAG") {
			t.Fatalf("header %q", lines[0])
		}
		row0, row1 := strings.Fields(lines[1]), lines[2]
		// SHARD STATE PARENTS OWNER EXPIRES CHECKPOINT LAG; "expires in" is one field ("4m59s").
		if len(row0) != 7 || row0[0] != s0 || row0[1] != "open" || row0[2] != "-" || row0[3] != "worker-a" ||
			row0[5] != kclctl.ShortSeq(seqs[s0][0]) || row0[6] == "0" || row0[6] == "?" {
			t.Fatalf("row for %s: %q", s0, lines[1])
		}
		if !strings.HasPrefix(row1, s1) || !strings.Contains(row1, "worker-b") || !strings.Contains(row1, "expired 1m00s ago") ||
			!strings.HasSuffix(strings.TrimSpace(row1), " 0") {
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
		if rep.Table != "kcl-leases" || rep.Stream != "events-raw" || len(rep.Shards) != 2 {
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
