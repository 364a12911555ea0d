package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/audit"
	"github.com/kinesis-events/pipeline/internal/fleet"
	"github.com/kinesis-events/pipeline/internal/localstack"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/internal/poll"
)

// This file is the binary-level proof of the trust boundary (issue 4): hostile input of every kind
// is quarantined with its reason while good events keep flowing, raw PII appears in no stream, table
// or log line, and signing keys rotate through a key-file reload without a restart.

// producer builds EventBridge lines the way a producer would: tokenized ids, signed details.
type producer struct {
	t    *testing.T
	ring *event.Keyring
	tk   *event.Tokenizer
}

func newProducer(t *testing.T, keys ...event.Key) *producer {
	t.Helper()
	ring, err := event.NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := event.NewTokenizer(randomBytes(t, 32))
	if err != nil {
		t.Fatal(err)
	}
	return &producer{t: t, ring: ring, tk: tk}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// detail returns the JSON of a detail signed with keyID.
func (p *producer) detail(typ, id, cust string, seq uint64, props, keyID string) string {
	p.t.Helper()
	d := &event.Detail{EventID: id, CustomerID: cust, Seq: seq, OccurredAt: time.Now().UTC().Format(time.RFC3339Nano), Properties: json.RawMessage(props)}
	if err := p.ring.Sign(typ, d, keyID); err != nil {
		p.t.Fatal(err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		p.t.Fatal(err)
	}
	return string(b)
}

// line is one NDJSON EventBridge event; marker goes into the EventBridge id, which the raw record
// and any quarantine original keep.
func line(marker, typ, detail string) string {
	return `{"version":"0","id":"` + marker + `","detail-type":"` + typ + `","source":"shop.web","account":"123456789012","time":"` +
		time.Now().UTC().Format(time.RFC3339) + `","region":"us-east-1","resources":[],"detail":` + detail + `}`
}

// rawRecord is a raw-stream record as the forwarder writes it.
// brokenAggregate is a raw record in the KPL aggregated format, magic and a matching MD5 trailer,
// whose protobuf does not decode (wire type 7 in its first tag): the KCL's own de-aggregator drops
// the whole GetRecords page on such a record; the worker must quarantine it.
func brokenAggregate(marker string) string {
	body := []byte("\xff\xff " + marker)
	sum := md5.Sum(body)
	return "\xf3\x89\x9a\xc2" + string(body) + string(sum[:])
}

func rawRecord(marker, typ, detail string) string {
	return `{"v":1,"type":"` + typ + `","source":"shop.web","bridge_id":"` + marker + `","forwarded_at":"` +
		time.Now().UTC().Format(time.RFC3339Nano) + `","detail":` + detail + `}`
}

// forward runs the forwarder binary over lines (local mode) and returns its output.
func (d *deployment) forward(t *testing.T, name string, lines []string, flags ...string) string {
	t.Helper()
	in := filepath.Join(d.env.Dir, name+".ndjson")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	args := append([]string{"-raw-stream", names.RawStream, "-quarantine-stream", names.QuarantineStream, "-log-level", "debug"}, flags...)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "forwarder"), append(args, in)...)
	cmd.Env = append(os.Environ(), d.env.StackEnv...)
	out, err := cmd.CombinedOutput()
	if werr := os.WriteFile(filepath.Join(d.env.Dir, name+".forwarder.log"), out, 0o600); werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatalf("forwarder %s: %v\n%s", name, err, out)
	}
	return string(out)
}

// writeKeys replaces the key file atomically, so a reloading worker never reads half of it.
func writeKeys(t *testing.T, path string, keys ...event.Key) {
	t.Helper()
	type kj struct {
		ID        string `json:"id"`
		Secret    string `json:"secret"`
		RetiredAt string `json:"retired_at,omitempty"`
	}
	var list []kj
	for _, k := range keys {
		e := kj{ID: k.ID, Secret: base64.StdEncoding.EncodeToString(k.Secret)}
		if !k.RetiredAt.IsZero() {
			e.RetiredAt = k.RetiredAt.UTC().Format(time.RFC3339)
		}
		list = append(list, e)
	}
	b, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// hostile is one bad input and what the pipeline must do with it.
type hostile struct {
	kind   string
	marker string
	data   string       // the line (via the forwarder) or the raw record (direct)
	direct bool         // written straight to the raw stream, bypassing the forwarder
	stage  string       // "forwarder" or "worker"
	want   event.Reason // quarantine reason
}

// TestHostileInput sends good events interleaved with 35 kinds of bad input through the real
// forwarder (PII policy on) and 2 workers (PII policy on), plus records written straight to the raw
// stream that bypass the forwarder. Every bad input must be quarantined with its reason by the
// expected stage, no bad event may reach analytics, every good event must arrive exactly once and in
// order, and no raw PII value may appear in any stream, table or log line.
func TestHostileInput(t *testing.T) {
	if testing.Short() {
		t.Skip("binary-level end-to-end run; not in -short")
	}
	d := deploy(t, fleet.Topology{RawShards: 2, AnalyticsShards: 1, Types: names.StandardTypes})
	active := event.Key{ID: "k-active", Secret: randomBytes(t, 32)}
	retired := event.Key{ID: "k-retired", Secret: randomBytes(t, 32), RetiredAt: time.Now().Add(-time.Hour)}
	rogue := event.Key{ID: "k-rogue", Secret: randomBytes(t, 32)} // only the attacker has it
	keysPath := filepath.Join(d.env.Dir, "trust-keys.json")
	writeKeys(t, keysPath, active, retired)
	piiPaths := "customer_id,properties.email,properties.phone"
	for n := 1; n <= 2; n++ {
		d.worker(n, "-keys-file", keysPath, "-pii-paths", piiPaths, "-log-level", "debug")
	}
	p := newProducer(t, active, retired, rogue)

	// Raw PII of set A goes through the forwarder, whose policy must stop it: it may appear nowhere.
	// Set B is written straight into the raw stream (a producer bypassing the forwarder): the worker
	// must stop it, so it may appear nowhere but in the raw stream, where the test put it.
	piiA := []string{"pii-a-jane.doe@example.com", "pii-a-customer-77", "+1-555-0100-991"}
	piiB := []string{"pii-b-john.roe@example.com", "pii-b-customer-88", "pii-b-dup@example.com"}

	cust := func(n int) string { return p.tk.Token("customer", "customer-"+strconv.Itoa(n)) }
	badCust := cust(999)
	emailTok := p.tk.Token("email", "someone@example.com")
	signed := func(id string) string { return p.detail("page_view", id, badCust, 1, `{"path":"/x"}`, "k-active") }
	good0 := p.detail("purchase", "good-c1-dup", cust(1), 1, `{"sku":"A-1","email":"`+emailTok+`"}`, "k-active")

	hs := []hostile{
		{kind: "garbage line", data: "this is not json mk-01"},
		{kind: "truncated JSON", data: `{"version":"0","id":"mk-02","detail-type":"page_view","detail":{"event_id":`},
		{kind: "top level is an array", data: `["mk-03"]`, want: event.ReasonBadEnvelope},
		{kind: "invalid UTF-8", data: line("mk-04", "page_view", strings.Replace(signed("b04"), `"/x"`, "\"/\xff\xfe\"", 1)), want: event.ReasonInvalidUTF8},
		{kind: "duplicate key in detail", data: line("mk-05", "page_view", strings.Replace(signed("b05"), `"seq":1`, `"seq":1,"seq":2`, 1)), want: event.ReasonDuplicateKey},
		{kind: "duplicate key in properties", data: line("mk-06", "page_view", strings.Replace(signed("b06"), `"path":"/x"`, `"path":"/x","path":"/y"`, 1)), want: event.ReasonDuplicateKey},
		{kind: "missing customer_id", data: line("mk-07", "page_view", strings.Replace(signed("b07"), `"customer_id":"`+badCust+`",`, ``, 1)), want: event.ReasonMissingField},
		{kind: "missing detail", data: `{"version":"0","id":"mk-08","detail-type":"page_view","source":"shop.web"}`, want: event.ReasonMissingField},
		{kind: "seq is a string", data: line("mk-09", "page_view", strings.Replace(signed("b09"), `"seq":1`, `"seq":"1"`, 1)), want: event.ReasonBadField},
		{kind: "seq is fractional", data: line("mk-10", "page_view", strings.Replace(signed("b10"), `"seq":1`, `"seq":1.5`, 1)), want: event.ReasonBadField},
		{kind: "seq overflows uint64", data: line("mk-11", "page_view", strings.Replace(signed("b11"), `"seq":1`, `"seq":18446744073709551616`, 1)), want: event.ReasonBadField},
		{kind: "seq zero", data: line("mk-12", "page_view", strings.Replace(signed("b12"), `"seq":1`, `"seq":0`, 1)), want: event.ReasonMissingField},
		{kind: "huge number in properties", data: line("mk-13", "page_view", strings.Replace(signed("b13"), `"/x"`, `1e400`, 1)), want: event.ReasonBadNumber},
		{kind: "nesting 40 deep", data: line("mk-14", "page_view", strings.Replace(signed("b14"), `"/x"`, strings.Repeat("[", 40)+strings.Repeat("]", 40), 1)), want: event.ReasonTooDeep},
		{kind: "event_id of 200 bytes", data: line("mk-15", "page_view", strings.Replace(signed("b15"), `"event_id":"b15"`, `"event_id":"`+strings.Repeat("e", 200)+`"`, 1)), want: event.ReasonBadField},
		{kind: "control character in event_id", data: line("mk-16", "page_view", strings.Replace(signed("b16"), `"event_id":"b16"`, `"event_id":"b\u000116"`, 1)), want: event.ReasonBadField},
		{kind: "occurred_at not RFC 3339", data: line("mk-17", "page_view", p.detailRaw("b17", badCust, "yesterday")), want: event.ReasonBadField},
		{kind: "lone surrogate escape", data: line("mk-18", "page_view", strings.Replace(signed("b18"), `"/x"`, `"\ud800"`, 1)), want: event.ReasonInvalidUTF8},
		{kind: "9 KiB string in properties", data: line("mk-19", "page_view", strings.Replace(signed("b19"), `"/x"`, `"`+strings.Repeat("s", 9<<10)+`"`, 1)), want: event.ReasonTooLarge},
		{kind: "1001 members in properties", data: line("mk-20", "page_view", strings.Replace(signed("b20"), `{"path":"/x"}`, manyMembers(1001), 1)), want: event.ReasonTooLarge},
		{kind: "properties is an array", data: line("mk-21", "page_view", strings.Replace(signed("b21"), `{"path":"/x"}`, `["/x"]`, 1)), want: event.ReasonBadField},
		{kind: "1.2 MiB event", data: line("mk-22", "page_view", strings.Replace(signed("b22"), `"key_id"`, `"pad":"`+strings.Repeat("p", 1200<<10)+`","key_id"`, 1)), want: event.ReasonTooLarge},
		{kind: "raw e-mail (validly signed)", data: line("mk-23", "page_view", p.detail("page_view", "b23", badCust, 1, `{"email":"`+piiA[0]+`"}`, "k-active")), want: event.ReasonRawPII},
		{kind: "raw customer id (validly signed)", data: line("mk-24", "page_view", p.detail("page_view", "b24", piiA[1], 1, `{}`, "k-active")), want: event.ReasonRawPII},
		{kind: "raw phone behind an escaped key", data: line("mk-25", "page_view", strings.Replace(p.detail("page_view", "b25", badCust, 1, `{"phone":"`+piiA[2]+`"}`, "k-active"), `"phone"`, `"ph\u006fne"`, 1)), want: event.ReasonRawPII},

		// Valid envelopes the forwarder passes on; only signature verification (worker) catches them.
		{kind: "no signature", data: line("mk-26", "page_view", strings.Replace(signed("b26"), `"signature":"`, `"signature_":"`, 1)), stage: "worker", want: event.ReasonNoSignature},
		{kind: "property changed after signing", data: line("mk-27", "page_view", strings.Replace(signed("b27"), `"/x"`, `"/admin"`, 1)), stage: "worker", want: event.ReasonBadSignature},
		{kind: "type changed after signing", data: line("mk-28", "purchase", signed("b28")), stage: "worker", want: event.ReasonBadSignature},
		{kind: "signature not hex", data: line("mk-29", "page_view", p.withSignature(signed("b29"), strings.Repeat("zz", 32))), stage: "worker", want: event.ReasonBadSignature},
		{kind: "unknown key id (attacker's key)", data: line("mk-30", "page_view", p.detail("page_view", "b30", badCust, 1, `{}`, "k-rogue")), stage: "worker", want: event.ReasonUnknownKey},
		{kind: "retired key", data: line("mk-31", "page_view", p.detail("page_view", "b31", badCust, 1, `{}`, "k-retired")), stage: "worker", want: event.ReasonKeyRetired},
		{kind: "conflicting duplicate event_id", data: line("mk-32", "purchase", p.detail("purchase", "good-c1-dup", cust(1), 1, `{"sku":"B-2"}`, "k-active")), stage: "worker", want: event.ReasonConflictingDupe},

		// Straight into the raw stream, past the forwarder.
		{kind: "raw record not JSON", data: "\x00\x01mk-33 binary", direct: true, stage: "worker", want: event.ReasonNotJSON},
		{kind: "raw envelope version 2", data: strings.Replace(rawRecord("mk-34", "page_view", signed("b34")), `"v":1`, `"v":2`, 1), direct: true, stage: "worker", want: event.ReasonUnsupportedRaw},
		{kind: "raw record over the worker's 700 KiB limit", data: rawRecord("mk-35", "page_view", strings.Replace(signed("b35"), `"key_id"`, `"pad":"`+strings.Repeat("p", 750<<10)+`","key_id"`, 1)), direct: true, stage: "worker", want: event.ReasonTooLarge},
		{kind: "raw e-mail past the forwarder (validly signed)", data: rawRecord("mk-36", "page_view", p.detail("page_view", "b36", badCust, 1, `{"email":"`+piiB[0]+`"}`, "k-active")), direct: true, stage: "worker", want: event.ReasonRawPII},
		{kind: "raw customer id and invalid UTF-8 past the forwarder", data: rawRecord("mk-37", "page_view", strings.Replace(p.detail("page_view", "b37", piiB[1], 1, `{"path":"/x"}`, "k-active"), `"/x"`, "\"\xff\"", 1)), direct: true, stage: "worker", want: event.ReasonInvalidUTF8},
		{kind: "raw e-mail in a duplicate key past the forwarder", data: rawRecord("mk-38", "page_view", strings.Replace(signed("b38"), `"path":"/x"`, `"email":"`+emailTok+`","email":"`+piiB[2]+`"`, 1)), direct: true, stage: "worker", want: event.ReasonDuplicateKey},
		{kind: "raw KPL aggregate that does not decode", data: brokenAggregate("mk-39"), direct: true, stage: "worker", want: event.ReasonBadAggregate},
	}
	for i := range hs {
		h := &hs[i]
		h.marker = fmt.Sprintf("mk-%02d", i+1)
		if !strings.Contains(h.data, h.marker) {
			t.Fatalf("%s: input does not carry its marker %s", h.kind, h.marker)
		}
		if h.stage == "" {
			h.stage = "forwarder"
		}
		if h.want == "" {
			h.want = event.ReasonNotJSON
		}
	}

	// Good events: 12 customers x 15 events of all types, in seq order, with the bad lines spread
	// between them and one exact replay of a good event (a natural duplicate, dropped by dedupe).
	var (
		lines    []string
		expected []audit.Expected
		bad      int
	)
	for i := range 12 * 15 {
		c, seq := i%12+1, uint64(i/12+1)
		typ := names.StandardTypes[i%len(names.StandardTypes)]
		id := fmt.Sprintf("good-c%d-s%d", c, seq)
		det := p.detail(typ, id, cust(c), seq, fmt.Sprintf(`{"n":%d,"email":"%s"}`, i, emailTok), "k-active")
		if c == 1 && seq == 1 {
			typ, id, det = "purchase", "good-c1-dup", good0
		}
		lines = append(lines, line(fmt.Sprintf("good-%d", i), typ, det))
		expected = append(expected, audit.Expected{EventID: id, Type: typ, CustomerID: cust(c), Seq: seq})
		if i == 40 {
			lines = append(lines, line("good-replay", "purchase", good0))
		}
		if i%5 == 4 && bad < len(hs) {
			for bad < len(hs) && hs[bad].direct {
				bad++
			}
			if bad < len(hs) {
				lines = append(lines, hs[bad].data)
				bad++
			}
		}
	}
	for ; bad < len(hs); bad++ {
		if !hs[bad].direct {
			lines = append(lines, hs[bad].data)
		}
	}

	tail := d.env.NewTail(d.stack.Kinesis())
	half := len(lines) / 2
	out := d.forward(t, "trust-1", lines[:half], "-pii-paths", piiPaths)
	directSeq := map[string]string{} // marker -> sequence number in the raw stream
	for _, h := range hs {
		if !h.direct {
			continue
		}
		res, err := d.stack.Kinesis().PutRecord(t.Context(), &kinesis.PutRecordInput{
			StreamName: aws.String(names.RawStream), Data: []byte(h.data), PartitionKey: aws.String(h.marker)})
		if err != nil {
			t.Fatalf("%s: %v", h.kind, err)
		}
		directSeq[h.marker] = aws.ToString(res.SequenceNumber)
	}
	out += d.forward(t, "trust-2", lines[half:], "-pii-paths", piiPaths)
	t.Logf("forwarder: %s", lastLine(out))

	waitFor(t, tail, 4*time.Minute, "every good event delivered and every bad input quarantined", func(s audit.Snapshot) bool {
		n := 0
		for _, c := range s.Quarantined {
			n += c
		}
		return s.Unique >= len(expected) && n >= len(hs)
	})
	rep := tail.Check(expected)
	if !exactlyOnce(t, d, rep) || len(rep.Unwanted) > 0 || rep.Delivered-rep.Resent != len(expected) {
		t.Fatalf("good events not delivered exactly once and in order, or a bad event delivered: %s (unwanted %v)", rep, rep.Unwanted)
	}

	// Every bad input: quarantined once, with its reason, by the expected stage.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	qrecs, err := d.stack.ReadAll(ctx, names.QuarantineStream)
	if err != nil {
		t.Fatal(err)
	}
	if len(qrecs) < len(hs) {
		t.Errorf("%d quarantine records for %d bad inputs", len(qrecs), len(hs))
	} else if len(qrecs) > len(hs) {
		t.Logf("%d quarantine records for %d bad inputs (a retried write may repeat one)", len(qrecs), len(hs))
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n| # | bad input | path | stage | reason | original kept |\n| --- | --- | --- | --- | --- | --- |\n")
	for i, h := range hs {
		q, ok := findQuarantine(t, qrecs, h, directSeq[h.marker])
		path := "forwarder"
		if h.direct {
			path = "raw stream"
		}
		if !ok {
			t.Errorf("%s (%s): not quarantined", h.kind, h.marker)
			continue
		}
		if q.Reason != h.want || q.Stage != h.stage {
			t.Errorf("%s: quarantined by %s as %s (%s), want %s by %s", h.kind, q.Stage, q.Reason, q.Detail, h.want, h.stage)
		}
		var kept string
		switch {
		case q.Original == nil:
			kept = "withheld (size + sha256)"
		case bytes.Contains(q.Original, []byte(event.Redacted)):
			kept = "redacted"
		case bytes.Equal(q.Original, []byte(h.data)):
			kept = "verbatim"
		case bytes.HasPrefix([]byte(h.data), q.Original):
			kept = "truncated"
		case q.Stage == "worker" && !h.direct:
			kept = "the forwarder's raw record"
		default:
			t.Errorf("%s: original is neither the input, a prefix of it, redacted nor withheld", h.kind)
		}
		fmt.Fprintf(&table, "| %d | %s | %s | %s | %s | %s |\n", i+1, h.kind, path, q.Stage, q.Reason, kept)
	}
	fmt.Fprintf(&table, "| %d | exact replay of a good event | forwarder | worker | dropped as a natural duplicate (delivered once) | - |\n", len(hs)+1)
	t.Logf("bad inputs (good events delivered meanwhile: %d of %d, exactly once, in order):%s", rep.Unique, len(expected), table.String())

	// No raw PII anywhere: streams, tables, logs.
	secrets := []string{string(active.Secret), base64.StdEncoding.EncodeToString(active.Secret), base64.StdEncoding.EncodeToString(retired.Secret)}
	streams := append([]string{names.RawStream, names.QuarantineStream, names.DLQStream, names.LateStream}, d.env.Topology.AnalyticsStreams()...)
	for _, s := range streams {
		recs, err := d.stack.ReadAll(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			where := s + " record " + aws.ToString(r.Record.SequenceNumber)
			text := string(r.Record.Data) + " " + aws.ToString(r.Record.PartitionKey)
			assertAbsent(t, where, text, piiA...)
			if s != names.RawStream {
				assertAbsent(t, where, text, piiB...)
			}
			// A quarantine original is base64 in the record: look inside it too.
			var q event.Quarantine
			if s == names.QuarantineStream && json.Unmarshal(r.Record.Data, &q) == nil {
				assertAbsent(t, where+" (original)", string(q.Original), append(piiA, piiB...)...)
			}
		}
	}
	for _, table := range []string{names.DedupeTable, names.LeaseTable} {
		text := scanTable(ctx, t, d.stack.DynamoDB(), table)
		assertAbsent(t, "table "+table, text, append(piiA, piiB...)...)
	}
	logs, err := filepath.Glob(filepath.Join(d.env.Dir, "*.log"))
	if err != nil || len(logs) < 3 {
		t.Fatalf("logs %v: %v", logs, err)
	}
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for n := 1; sc.Scan(); n++ {
			where := fmt.Sprintf("%s:%d", filepath.Base(path), n)
			assertAbsent(t, where, sc.Text(), append(append(piiA, piiB...), secrets...)...)
		}
	}
}

// detailRaw is a signed-looking detail with an arbitrary occurred_at (Sign would not care, but
// encoding it by hand keeps the bad value verbatim).
func (p *producer) detailRaw(id, cust, occurredAt string) string {
	return `{"event_id":"` + id + `","customer_id":"` + cust + `","seq":1,"occurred_at":"` + occurredAt +
		`","properties":{},"key_id":"k-active","signature":"` + strings.Repeat("ab", 32) + `"}`
}

func (p *producer) withSignature(detail, sig string) string {
	var d event.Detail
	if err := json.Unmarshal([]byte(detail), &d); err != nil {
		p.t.Fatal(err)
	}
	return strings.Replace(detail, d.Signature, sig, 1)
}

func manyMembers(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	b.WriteByte('}')
	return b.String()
}

// findQuarantine finds h's quarantine record: by the raw-stream sequence number for a direct record,
// by its marker in the original, or by the SHA-256 of the input for a withheld original.
func findQuarantine(t *testing.T, recs []localstack.ShardRecord, h hostile, seq string) (event.Quarantine, bool) {
	t.Helper()
	sum := sha256.Sum256([]byte(h.data))
	digest := hex.EncodeToString(sum[:])
	for _, r := range recs {
		var q event.Quarantine
		if err := json.Unmarshal(r.Record.Data, &q); err != nil {
			t.Fatalf("quarantine record is not an event.Quarantine: %v", err)
		}
		switch {
		case seq != "" && q.SourceSeq == seq,
			seq == "" && q.Stage == "forwarder" && bytes.Contains(q.Original, []byte(h.marker)),
			seq == "" && q.Stage == "worker" && bytes.Contains(q.Original, []byte(`"bridge_id":"`+h.marker+`"`)),
			seq == "" && strings.Contains(q.Detail, digest):
			return q, true
		}
	}
	return event.Quarantine{}, false
}

func assertAbsent(t *testing.T, where, text string, values ...string) {
	t.Helper()
	for _, v := range values {
		if v != "" && strings.Contains(text, v) {
			t.Errorf("%s holds %q", where, clipText(v, 24))
		}
	}
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// scanTable returns every item of a DynamoDB table as text.
func scanTable(ctx context.Context, t *testing.T, db *dynamodb.Client, table string) string {
	t.Helper()
	var b strings.Builder
	in := &dynamodb.ScanInput{TableName: aws.String(table)}
	for {
		out, err := db.Scan(ctx, in)
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		for _, it := range out.Items {
			fmt.Fprintf(&b, "%v\n", it)
			for k, v := range it {
				fmt.Fprintf(&b, "%s=%s\n", k, attrText(v))
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return b.String()
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

func attrText(v types.AttributeValue) string {
	switch a := v.(type) {
	case *types.AttributeValueMemberS:
		return a.Value
	case *types.AttributeValueMemberN:
		return a.Value
	case *types.AttributeValueMemberB:
		return string(a.Value)
	case *types.AttributeValueMemberSS:
		return strings.Join(a.Value, ",")
	case *types.AttributeValueMemberL:
		var parts []string
		for _, e := range a.Value {
			parts = append(parts, attrText(e))
		}
		return strings.Join(parts, ",")
	case *types.AttributeValueMemberM:
		var parts []string
		for k, e := range a.Value {
			parts = append(parts, k+"="+attrText(e))
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

// TestKeyRotation rotates signing keys through the worker's key-file reload, without a restart:
// while an old and a new key are both active, events signed with either are delivered; once the old
// key's retired_at has passed its events are quarantined as signature_key_retired; once it is removed
// from the file, as signature_unknown_key. Events signed with the new key flow throughout.
func TestKeyRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("binary-level end-to-end run; not in -short")
	}
	d := deploy(t, fleet.Topology{RawShards: 1, AnalyticsShards: 1, Types: names.StandardTypes})
	oldKey := event.Key{ID: "k-2026-old", Secret: randomBytes(t, 32)}
	newKey := event.Key{ID: "k-2026-new", Secret: randomBytes(t, 32)}
	keysPath := filepath.Join(d.env.Dir, "rotating-keys.json")
	writeKeys(t, keysPath, oldKey)
	w := d.worker(1, "-keys-file", keysPath, "-keys-reload", "200ms")
	p := newProducer(t, oldKey, newKey)
	tail := d.env.NewTail(d.stack.Kinesis())

	var expected []audit.Expected
	// send forwards n events of a fresh customer signed with keyID and returns them.
	send := func(name, keyID string, n int) []audit.Expected {
		t.Helper()
		c := p.tk.Token("customer", name)
		var lines []string
		var evs []audit.Expected
		for s := 1; s <= n; s++ {
			id := fmt.Sprintf("%s-%d", name, s)
			lines = append(lines, line("rot-"+id, "page_view", p.detail("page_view", id, c, uint64(s), `{"n":1}`, keyID)))
			evs = append(evs, audit.Expected{EventID: id, Type: "page_view", CustomerID: c, Seq: uint64(s)})
		}
		d.forward(t, name, lines)
		return evs
	}
	// reloaded waits until the worker has logged a reload whose key list is want.
	reloaded := func(want string) {
		t.Helper()
		poll.True(t, time.Minute, 100*time.Millisecond, fmt.Sprintf("the worker reloads the keys to %q", want), func() bool {
			b, err := os.ReadFile(w.LogPath)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(string(b), "\n") {
				var e struct {
					Msg  string `json:"msg"`
					Keys string `json:"keys"`
				}
				if json.Unmarshal([]byte(l), &e) == nil && e.Msg == "signing keys reloaded" && e.Keys == want {
					return true
				}
			}
			return false
		})
	}
	quarantined := func(r event.Reason) func(audit.Snapshot) bool {
		return func(s audit.Snapshot) bool { return s.Quarantined[r] >= 5 }
	}
	total := func(s audit.Snapshot) int {
		n := 0
		for _, c := range s.Quarantined {
			n += c
		}
		return n
	}

	// 1. Only the old key: its events pass; the new key is unknown so far.
	expected = append(expected, send("before-old", oldKey.ID, 5)...)
	send("before-new", newKey.ID, 5)
	waitFor(t, tail, 3*time.Minute, "old-key events delivered, new-key events unknown", func(s audit.Snapshot) bool {
		return s.Unique >= 5 && s.Quarantined[event.ReasonUnknownKey] >= 5
	})

	// 2. Both active: both pass.
	writeKeys(t, keysPath, oldKey, newKey)
	reloaded(newKey.ID + ", " + oldKey.ID)
	expected = append(expected, send("both-old", oldKey.ID, 5)...)
	expected = append(expected, send("both-new", newKey.ID, 5)...)
	waitFor(t, tail, 3*time.Minute, "events of both keys delivered", func(s audit.Snapshot) bool { return s.Unique >= 15 })

	// 3. The old key retired: its events are quarantined, the new key's pass.
	retiredAt := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	writeKeys(t, keysPath, event.Key{ID: oldKey.ID, Secret: oldKey.Secret, RetiredAt: retiredAt}, newKey)
	reloaded(newKey.ID + ", " + oldKey.ID + " (retired at " + retiredAt.Format(time.RFC3339) + ")")
	send("retired-old", oldKey.ID, 5)
	expected = append(expected, send("retired-new", newKey.ID, 5)...)
	waitFor(t, tail, 3*time.Minute, "retired-key events quarantined", quarantined(event.ReasonKeyRetired))

	// 4. The old key removed: its events are unknown-key.
	writeKeys(t, keysPath, newKey)
	reloaded(newKey.ID)
	send("removed-old", oldKey.ID, 5)
	expected = append(expected, send("removed-new", newKey.ID, 5)...)
	s := waitFor(t, tail, 3*time.Minute, "every expected event delivered and removed-key events quarantined", func(s audit.Snapshot) bool {
		return s.Unique >= len(expected) && s.Quarantined[event.ReasonUnknownKey] >= 10
	})
	rep := tail.Check(expected)
	if !exactlyOnce(t, d, rep) || len(rep.Unwanted) > 0 {
		t.Fatalf("rotation run: %s (unwanted %v)", rep, rep.Unwanted)
	}
	if total(s) != 15 || s.Quarantined[event.ReasonKeyRetired] != 5 || s.Quarantined[event.ReasonUnknownKey] != 10 {
		t.Fatalf("quarantined %v, want 5 signature_key_retired and 10 signature_unknown_key", s.Quarantined)
	}
	t.Logf("rotation: delivered %d (old key while active: 10, new key once added: 15); quarantined %v", rep.Unique, s.Quarantined)
}
