package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/kclctl"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/internal/poll"
)

// TestOpsKclctl drives kclctl against a running fleet of two workers: checkpoints and workers
// (with the MillisBehindLatest the workers publish), a reset of a live shard (dry run, refusal,
// forced re-read from the trim horizon), and a DLQ replay. Replaying is proven safe both ways:
// records that were never delivered are delivered exactly once, and records that were already
// delivered (replayed a second time, plus delivered events put in the DLQ) are dropped by dedupe.
// E2E_KCLCTL_OUT=dir keeps every command's output (for docs/operations.md).
func TestOpsKclctl(t *testing.T) {
	if testing.Short() {
		t.Skip("binary-level operations run; not in -short")
	}
	topo := fleet.DefaultTopology()
	d := deploy(t, topo)
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	const staging = "events-staging" // raw records that never reach the fleet: the "undelivered" dead letters
	if err := d.stack.CreateStream(ctx, staging, 1); err != nil {
		t.Fatal(err)
	}
	f := newOpsFleet(t, d)
	f.start(1)
	f.start(2)
	send, err := d.env.Send(fleet.Load{Count: 3000, Customers: 300, Rate: 600, Seed: 31})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(send.Stop)
	tail := d.env.NewTail(d.stack.Kinesis())
	f.tail = tail
	resA, err := send.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, tail, 3*time.Minute, "batch A delivered", func(s audit.Snapshot) bool { return s.Unique >= resA.Manifest.Unique })
	f.convergence("two workers", time.Now(), 0, 2*time.Minute, 0, 1, 2)
	f.caughtUp(2 * time.Minute)

	run := func(name string, wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := f.kclctl(args...)
		if code != wantCode {
			t.Fatalf("kclctl %s: exit %d, want %d\n%s\n%s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		if name != "" {
			record(t, name, "kclctl "+strings.Join(args, " "), out+errOut)
		}
		return out
	}

	// checkpoints and workers: every shard owned, caught up, BEHIND published by the owner.
	run("checkpoints", kclctl.ExitOK, "checkpoints")
	var rep kclctl.Report
	if err := json.Unmarshal([]byte(run("", kclctl.ExitOK, "checkpoints", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	for _, sh := range rep.Shards {
		if sh.Owner == "" || sh.Behind == nil || sh.Lag.Status != kclctl.LagCaughtUp {
			t.Fatalf("shard %+v: want owned, caught up, MillisBehindLatest published", sh)
		}
	}
	run("workers", kclctl.ExitOK, "workers")

	// reset a live shard: dry run (exit 0), refused without --force (exit 4), forced to the trim
	// horizon: the fleet re-reads the whole shard and dedupe drops every event in it.
	shard, owner := rep.Shards[0].ShardID, rep.Shards[0].Owner
	run("reset-dry-run", kclctl.ExitOK, "reset", "--shard", shard, "--to", "trim-horizon")
	run("reset-refused", kclctl.ExitRefused, "reset", "--shard", shard, "--to", "trim-horizon", "--apply")
	hits := func() float64 {
		return f.metric(1, "pipeline_dedupe_hits_total") + f.metric(2, "pipeline_dedupe_hits_total")
	}
	before := hits()
	run("reset-force", kclctl.ExitOK, "reset", "--shard", shard, "--to", "trim-horizon", "--apply", "--force", "--who", "ops-test")
	f.caughtUp(3 * time.Minute)
	snap := f.snapshot()
	for _, sh := range snap.Shards {
		if sh.ShardID == shard && (sh.LastResetBy != "ops-test" || sh.Owner == "") {
			t.Fatalf("shard %s after the reset: %+v", shard, sh)
		}
	}
	reread := hits() - before
	t.Logf("OPS reset of %s (owned by %s) to the trim horizon: the fleet re-read it, %v dedupe hits", shard, owner, reread)
	if reread == 0 {
		t.Fatal("the reset shard was not re-read (no dedupe hits)")
	}

	// Batch B goes to a stream no worker reads: its raw records stand for events that were never
	// delivered. Different tokenizer key, so its customers are new ones.
	resB := stagingBatch(t, d, staging, 200, 32)
	var dead []event.DeadLetter
	records, err := d.stack.ReadAll(ctx, staging)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		dead = append(dead, deadLetterOf(t, r.ShardID, r.Record))
	}
	raws, err := d.stack.ReadAll(ctx, names.RawStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range raws[:100] { // already delivered
		dead = append(dead, deadLetterOf(t, r.ShardID, r.Record))
	}
	putDeadLetters(t, ctx, d.stack.Kinesis(), dead)
	t.Logf("OPS DLQ: %d dead letters, %d never delivered, %d already delivered", len(dead), len(records), 100)

	out := run("dlq-list", kclctl.ExitOK, "dlq", "list")
	if !strings.Contains(out, strconv.Itoa(len(dead))+" dead letter(s) in events-dlq") {
		t.Fatalf("dlq list:\n%s", out)
	}
	run("dlq-replay-dry-run", kclctl.ExitOK, "dlq", "replay")
	before = hits()
	out = run("dlq-replay", kclctl.ExitOK, "dlq", "replay", "--apply")
	if !strings.Contains(out, "replayed "+strconv.Itoa(len(dead))+" into events-raw") {
		t.Fatalf("dlq replay:\n%s", out)
	}
	expected := append(fleet.Expected(resA.Manifest), fleet.Expected(resB.Manifest)...)
	waitFor(t, tail, 3*time.Minute, "the never-delivered events", func(s audit.Snapshot) bool { return s.Unique >= len(expected) })
	f.caughtUp(2 * time.Minute)
	if err := tail.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	check := tail.Check(expected)
	first := hits() - before
	t.Logf("OPS replay 1: %s; dedupe hits +%v", check, first)
	if !exactlyOnce(t, d, check) || first < 100 {
		t.Fatalf("replay 1 not exactly-once: lost=%d duplicates=%d order=%d unexpected=%v; dedupe hits +%v (want >= 100)",
			len(check.Lost), check.Duplicates, check.OrderViol, check.Unwanted, first)
	}

	// Replay everything again: now every record was delivered; nothing may arrive twice.
	before = hits()
	run("", kclctl.ExitOK, "dlq", "replay", "--apply")
	poll.Until(t, 3*time.Minute, 250*time.Millisecond, fmt.Sprintf("second replay: %d dedupe hits", len(dead)), func() (bool, string) {
		if n := hits() - before; n < float64(len(dead)) {
			f.keepTail()
			return false, fmt.Sprintf("%v dedupe hits", n)
		}
		return true, ""
	})
	f.caughtUp(2 * time.Minute)
	if err := tail.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	check = tail.Check(expected)
	t.Logf("OPS replay 2 (all already delivered): %s; dedupe hits +%v", check, hits()-before)
	if !exactlyOnce(t, d, check) {
		t.Fatalf("replay of delivered records delivered duplicates: %d (lost %d)", check.Duplicates, len(check.Lost))
	}
	// A reset re-read and two replays flag nothing: the never-delivered events belong to customers
	// of their own, and everything else was dropped as a duplicate.
	if check.Late > 0 || check.Gaps > 0 || len(check.Quarantined) > 0 {
		t.Errorf("after the reset and the replays: %d late, %d gap seqs, quarantined %v; want none", check.Late, check.Gaps, check.Quarantined)
	}
	run("checkpoints-after", kclctl.ExitOK, "checkpoints")
	run("workers-after", kclctl.ExitOK, "workers")
}

// stagingBatch generates count signed events with a fresh tokenizer key and forwards them to stream
// with the real loadgen and forwarder binaries.
func stagingBatch(t *testing.T, d *deployment, stream string, count int, seed int64) *fleet.SendResult {
	t.Helper()
	dir := t.TempDir()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	keyFile, ndjson, manifest := filepath.Join(dir, "token.key"), filepath.Join(dir, "b.ndjson"), filepath.Join(dir, "b.json")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for _, c := range [][]string{
		{"loadgen", "-count", strconv.Itoa(count), "-customers", "50", "-seed", strconv.FormatInt(seed, 10), "-keys-file", d.env.KeysFile,
			"-token-key-file", keyFile, "-manifest", manifest, "-out", ndjson},
		{"forwarder", "-raw-stream", stream, "-quarantine-stream", names.QuarantineStream, ndjson},
	} {
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, c[0]), c[1:]...)
		cmd.Env = append(os.Environ(), d.env.StackEnv...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", c[0], err, out)
		}
	}
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	res := &fleet.SendResult{}
	if err := json.Unmarshal(b, &res.Manifest); err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Unique != count {
		t.Fatalf("staging manifest has %d unique events, want %d", res.Manifest.Unique, count)
	}
	return res
}

// deadLetterOf wraps a raw record the way the worker does when a destination stays unavailable.
func deadLetterOf(t *testing.T, shard string, r types.Record) event.DeadLetter {
	t.Helper()
	var raw event.Raw
	var detail event.Detail
	if err := json.Unmarshal(r.Data, &raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw.Detail, &detail); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	return event.DeadLetter{Reason: "destination_unavailable: analytics stream unavailable (test)", Destination: names.AnalyticsPrefix + raw.Type,
		Attempts: 12, FirstFailure: now.Add(-time.Minute), LastFailure: now, SourceShard: shard, SourceSeq: aws.ToString(r.SequenceNumber),
		EventID: detail.EventID, CustomerID: detail.CustomerID, Original: r.Data}
}

func putDeadLetters(t *testing.T, ctx context.Context, kin *kinesis.Client, dead []event.DeadLetter) {
	t.Helper()
	for len(dead) > 0 {
		n := min(len(dead), 100)
		entries := make([]types.PutRecordsRequestEntry, n)
		for i, dl := range dead[:n] {
			b, err := json.Marshal(dl)
			if err != nil {
				t.Fatal(err)
			}
			entries[i] = types.PutRecordsRequestEntry{Data: b, PartitionKey: aws.String(dl.SourceShard)}
		}
		out, err := kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(names.DLQStream), Records: entries})
		if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("put dead letters: %v (%d failed)", err, aws.ToInt32(out.FailedRecordCount))
		}
		dead = dead[n:]
	}
}
