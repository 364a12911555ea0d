package leaktest

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/event/secretsmgr"
	"github.com/kinesis-events/pipeline/forwarder"
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
	"github.com/kinesis-events/pipeline/internal/loadgen"
	"github.com/kinesis-events/pipeline/internal/names"
	"github.com/kinesis-events/pipeline/internal/secretsfake"
	"github.com/kinesis-events/pipeline/processors"
)

// Key material and raw PII the test plants; none may reach a log line.
var (
	signingSecret   = []byte("leaktest-signing-secret-0123456789")
	tokenizerSecret = []byte("leaktest-tokenizer-secret-0123456789")
	rawPII          = []string{"leak.jane.doe@example.com", "+1-555-0199-4242", "Jane Leak Doe"}
)

// forbidden lists every spelling of a secret a log line could carry, and the raw PII values.
func forbidden() []string {
	out := append([]string(nil), rawPII...)
	for _, s := range [][]byte{signingSecret, tokenizerSecret} {
		out = append(out, string(s), base64.StdEncoding.EncodeToString(s), hex.EncodeToString(s), fmt.Sprint(s))
	}
	return out
}

// checkLogs fails on any log line (message or any field, errors included) that carries a forbidden
// value, and on an empty log: a test that observed nothing would prove nothing.
func checkLogs(t *testing.T, component string, logs *observer.ObservedLogs) {
	t.Helper()
	if logs.Len() == 0 {
		t.Fatalf("%s logged nothing: the check would prove nothing", component)
	}
	for _, l := range logs.All() {
		enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
		buf, err := enc.EncodeEntry(l.Entry, l.Context)
		if err != nil {
			t.Fatal(err)
		}
		line := buf.String()
		for _, v := range forbidden() {
			if strings.Contains(line, v) {
				t.Errorf("%s logged %q: %s", component, v[:min(len(v), 12)], line)
			}
		}
	}
	t.Logf("%s: %d log lines checked", component, logs.Len())
}

type fixture struct {
	ring     *event.Keyring
	tk       *event.Tokenizer
	emailTok string
	custTok  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ring, err := event.NewKeyring(event.Key{ID: "k1", Secret: signingSecret})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := event.NewTokenizer(tokenizerSecret)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ring: ring, tk: tk, emailTok: tk.Token("email", rawPII[0]), custTok: tk.Token("customer", "c-1")}
}

// detail is a signed detail JSON.
func (f *fixture) detail(t *testing.T, typ, id, cust string, seq uint64, props string) []byte {
	t.Helper()
	d := &event.Detail{EventID: id, CustomerID: cust, Seq: seq, OccurredAt: "2026-11-26T10:00:00Z", Properties: json.RawMessage(props)}
	if err := f.ring.Sign(typ, d, "k1"); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) line(t *testing.T, id, cust, props string) string {
	return `{"version":"0","id":"b-` + id + `","detail-type":"page_view","source":"shop.web","detail":` + string(f.detail(t, "page_view", id, cust, 1, props)) + `}`
}

// TestForwarderLogsNoSecrets drives the forwarder through quarantines (raw PII, bad JSON, duplicate
// keys), failed writes and retries, in local mode and as a Lambda invocation.
func TestForwarderLogsNoSecrets(t *testing.T) {
	f := newFixture(t)
	core, logs := observer.New(zap.DebugLevel)
	kin := kinesisfake.New()
	t.Cleanup(func() { kin.CheckViolations(t) })
	kin.EntryErr = func(e kinesisfake.Entry) string {
		if strings.Contains(string(e.Data), `"event_id":"fail`) {
			return "InternalFailure"
		}
		return ""
	}
	fw, err := forwarder.New(forwarder.Config{Logger: zap.New(core), PIIPaths: []string{"properties.email", "properties.phone", "customer_id"},
		MaxAttempts: 2, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}, kin)
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{
		f.line(t, "ok-1", f.custTok, `{"email":"`+f.emailTok+`"}`),
		f.line(t, "pii-1", f.custTok, `{"email":"`+rawPII[0]+`","phone":"`+rawPII[1]+`"}`),
		f.line(t, "pii-2", rawPII[0], `{}`),
		`{"detail-type":"page_view","detail":{"customer_id":"` + rawPII[0] + `","properties":{"name":"` + rawPII[2] + `"`,
		strings.Replace(f.line(t, "dup-1", f.custTok, `{"email":"`+f.emailTok+`"}`), `"email":`, `"email":"`+rawPII[0]+`","email":`, 1),
		f.line(t, "fail-1", f.custTok, `{"note":"`+rawPII[2]+`"}`),
	}
	if _, err := fw.ForwardStream(t.Context(), strings.NewReader(strings.Join(lines, "\n")+"\n"), forwarder.StreamOptions{}); err == nil {
		t.Fatal("the failing write was not reported")
	} else {
		for _, v := range forbidden() {
			if strings.Contains(err.Error(), v) {
				t.Fatalf("error carries a forbidden value: %v", err)
			}
		}
	}
	if _, err := fw.Invoke(t.Context(), []byte(f.line(t, "fail-2", f.custTok, `{"note":"`+rawPII[2]+`"}`))); err == nil {
		t.Fatal("the failing Lambda write was not reported")
	}
	checkLogs(t, "forwarder", logs)
}

// flakyStore is a dedupe store that fails its first calls.
type flakyStore struct {
	inner processors.DedupeStore
	mu    sync.Mutex
	fails int
}

func (s *flakyStore) down() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails > 0 {
		s.fails--
		return errors.New("dedupe store unavailable")
	}
	return nil
}

func (s *flakyStore) Get(ctx context.Context, keys []string) ([]processors.Item, []string, error) {
	if err := s.down(); err != nil {
		return nil, nil, err
	}
	return s.inner.Get(ctx, keys)
}

func (s *flakyStore) Put(ctx context.Context, items []processors.Item) ([]processors.Item, error) {
	if err := s.down(); err != nil {
		return nil, err
	}
	return s.inner.Put(ctx, items)
}

func (s *flakyStore) Swap(ctx context.Context, it processors.Item, prev uint64) (bool, error) {
	if err := s.down(); err != nil {
		return false, err
	}
	return s.inner.Swap(ctx, it, prev)
}

// TestPipelineLogsNoSecrets drives the worker's pipeline through a dedupe store outage, failing
// writes, an opening and closing breaker, dead-lettering and quarantines of raw PII.
func TestPipelineLogsNoSecrets(t *testing.T) {
	f := newFixture(t)
	core, logs := observer.New(zap.DebugLevel)
	var mu sync.Mutex
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	sleep := func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
		return ctx.Err()
	}
	brokenUntil := 40 // calls to the analytics stream that fail
	kin := kinesisfake.New()
	t.Cleanup(func() { kin.CheckViolations(t) })
	kin.CallErr = func(c kinesisfake.Call) error {
		if c.Stream == names.AnalyticsStream("page_view") && c.N <= brokenUntil {
			return errors.New("analytics stream unavailable")
		}
		return nil
	}
	p, err := processors.New(processors.Config{
		Routes:           map[string]string{"page_view": names.AnalyticsStream("page_view")},
		QuarantineStream: names.QuarantineStream, DLQStream: names.DLQStream,
		PIIPaths:    []string{"properties.email", "customer_id"},
		BreakerHold: time.Second, BreakerOpenTimeout: 100 * time.Millisecond,
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	}, processors.Deps{Kinesis: kin, Dedupe: &flakyStore{inner: processors.NewMemoryDedupe(clock), fails: 3}, Keys: f.ring,
		Logger: zap.New(core), Now: clock, Sleep: sleep})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(seq int, detail []byte) processors.Record {
		data := `{"v":1,"type":"page_view","source":"s","forwarded_at":"2026-11-26T10:00:00Z","detail":` + string(detail) + `}`
		return processors.Record{SequenceNumber: fmt.Sprintf("%020d", seq), Data: []byte(data), ArrivedAt: now}
	}
	recs := []processors.Record{
		rec(1, f.detail(t, "page_view", "e1", f.custTok, 1, `{"email":"`+f.emailTok+`"}`)),
		rec(2, f.detail(t, "page_view", "e2", f.custTok, 2, `{"email":"`+rawPII[0]+`"}`)),
		rec(3, f.detail(t, "page_view", "e3", rawPII[0], 1, `{}`)),
		{SequenceNumber: "4", Data: []byte(`{"v":1,"detail":{"customer_id":"` + rawPII[0] + `","properties":{"email":"` + rawPII[1] + `"`)},
		rec(5, []byte(strings.Replace(string(f.detail(t, "page_view", "e5", f.custTok, 3, `{"n":1}`)), `"n":1`, `"n":2,"email":"`+rawPII[2]+`"`, 1))),
	}
	s, err := p.OpenShard(t.Context(), "shard-0", processors.Lineage{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Process(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Minute) // the reorder window passes: what is held is released
	mu.Unlock()
	if _, err := s.Process(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if logs.FilterMessage("destination unavailable past the hold, dead-lettering").Len() == 0 ||
		logs.FilterMessageSnippet("dedupe store").Len() == 0 {
		t.Fatalf("the outage paths were not logged: %v", logs.All())
	}
	checkLogs(t, "pipeline", logs)
}

// TestLoadgenLogsNoSecrets: the load generator, with the development keys and with real ones.
func TestLoadgenLogsNoSecrets(t *testing.T) {
	f := newFixture(t)
	core, logs := observer.New(zap.DebugLevel)
	for _, cfg := range []loadgen.Config{
		{Count: 50, Customers: 5, BadRatio: 0.2, DupRatio: 0.1, ConflictRatio: 0.1, Logger: zap.New(core)},
		{Count: 50, Customers: 5, BadRatio: 0.2, Keyring: f.ring, KeyID: "k1", Tokenizer: f.tk, Logger: zap.New(core)},
	} {
		g, err := loadgen.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for range g.All() {
		}
	}
	checkLogs(t, "loadgen", logs)
}

// TestKeyLoadingLogsNoSecrets: the worker's key reload from a secret, through a good value, an
// outage, a value that is not the key format, and a key too short to use.
func TestKeyLoadingLogsNoSecrets(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	b64 := base64.StdEncoding.EncodeToString(signingSecret)
	values := []struct {
		value string
		err   error
	}{
		{`[{"id":"k1","secret":"` + b64 + `"}]`, nil},
		{"", errors.New("connection refused")},
		{`[{"id":"k1","secret":"` + b64 + `"`, nil},       // truncated: a syntax error
		{`{"k1":"` + b64 + `"}`, nil},                     // not the key format
		{`[{"id":"k1","secret":"` + b64 + `!!"}]`, nil},   // not base64
		{`[{"id":"k1","secret":"` + b64[:8] + `"}]`, nil}, // too short
		{`[{"id":"k2","secret":"` + b64 + `","retired_at":"x"}]`, nil},
		{`[{"id":"k1","secret":"` + b64 + `"},{"id":"k2","secret":"` + b64 + `"}]`, nil},
	}
	sm := secretsfake.New(nil, nil)
	src, err := secretsmgr.New(sm, secretsmgr.Config{SecretID: "arn:aws:secretsmanager:us-east-1:000000000000:secret:keys"})
	if err != nil {
		t.Fatal(err)
	}
	ring, err := event.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	reloads := make(chan error)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := event.Reload(ctx, ring, src, event.ReloadConfig{Every: time.Millisecond, Logger: zap.New(core),
			OnReload: func(err error) {
				select {
				case reloads <- err:
				case <-ctx.Done():
				}
			}}); err != nil {
			t.Error(err)
		}
	}()
	for _, v := range values {
		sm.Set(&secretsmanager.GetSecretValueOutput{SecretString: aws.String(v.value)}, v.err)
		// Two reloads: the second certainly read this value.
		for range 2 {
			if err := <-reloads; err != nil {
				for _, f := range forbidden() {
					if strings.Contains(err.Error(), f) {
						t.Errorf("key loading error carries key material: %v", err)
					}
				}
			}
		}
	}
	cancel()
	<-done
	checkLogs(t, "key reload", logs)
}
