package event

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// swapSource is a KeySource whose answer the test changes.
type swapSource struct {
	mu   sync.Mutex
	keys []Key
	err  error
}

func (s *swapSource) Keys(context.Context) ([]Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys, s.err
}

func (s *swapSource) set(keys []Key, err error) {
	s.mu.Lock()
	s.keys, s.err = keys, err
	s.mu.Unlock()
}

func TestReloadRotation(t *testing.T) {
	oldKey := Key{ID: "old", Secret: []byte("old-secret-0123456789")}
	newKey := Key{ID: "new", Secret: []byte("new-secret-0123456789")}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	src := &swapSource{keys: []Key{oldKey}}
	ring, err := NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Load(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	signer, err := NewKeyring(oldKey, newKey)
	if err != nil {
		t.Fatal(err)
	}
	signed := func(keyID string) *Detail {
		d := &Detail{EventID: "e-" + keyID, CustomerID: "c", Seq: 1, OccurredAt: "2026-11-26T12:00:00Z", Properties: json.RawMessage(`{"a":1}`)}
		if err := signer.Sign("page_view", d, keyID); err != nil {
			t.Fatal(err)
		}
		return d
	}
	core, logs := observer.New(zap.DebugLevel)
	reloads := make(chan error, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Reload(ctx, ring, src, ReloadConfig{Every: 5 * time.Millisecond, Logger: zap.New(core),
			OnReload: func(err error) { reloads <- err }})
	}()
	// waitReload waits for a reload that started after the source changed.
	waitReload := func(want func(error) bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case err := <-reloads:
				if want(err) {
					return
				}
			case <-deadline:
				t.Fatal("no reload with the expected outcome")
			}
		}
	}
	drain := func() {
		for len(reloads) > 0 {
			<-reloads
		}
	}

	steps := []struct {
		name     string
		keys     []Key
		srcErr   error
		wantErr  bool
		old, new Reason // "" = verifies
	}{
		{"only old", []Key{oldKey}, nil, false, "", ReasonUnknownKey},
		{"both active", []Key{oldKey, newKey}, nil, false, "", ""},
		{"old retired", []Key{{ID: "old", Secret: oldKey.Secret, RetiredAt: now.Add(-time.Minute)}, newKey}, nil, false, ReasonKeyRetired, ""},
		{"store outage keeps the keys", nil, errors.New("secrets store unreachable"), true, ReasonKeyRetired, ""},
		{"invalid set keeps the keys", []Key{{ID: "short", Secret: []byte("x")}}, nil, true, ReasonKeyRetired, ""},
		{"old removed", []Key{newKey}, nil, false, ReasonUnknownKey, ""},
	}
	for _, st := range steps {
		src.set(st.keys, st.srcErr)
		drain()
		waitReload(func(error) bool { return true }) // may have read the previous answer
		waitReload(func(err error) bool { return (err != nil) == st.wantErr })
		for _, c := range []struct {
			id   string
			want Reason
		}{{"old", st.old}, {"new", st.new}} {
			if got := ReasonOf(ring.Verify("page_view", signed(c.id), now)); got != c.want {
				t.Fatalf("%s: event signed with %s: reason %q, want %q", st.name, c.id, got, c.want)
			}
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if logs.FilterMessage("signing keys reloaded").Len() == 0 || logs.FilterMessage("signing keys not reloaded; keeping the current keys").Len() == 0 {
		t.Fatalf("reloads and failures not logged: %v", logs.All())
	}
	for _, l := range logs.All() {
		b, _ := json.Marshal(l.ContextMap())
		for _, s := range []string{string(oldKey.Secret), string(newKey.Secret)} {
			if strings.Contains(l.Message+string(b), s) {
				t.Fatalf("secret logged: %s %s", l.Message, b)
			}
		}
	}
}

func TestReloadConfig(t *testing.T) {
	ring, _ := NewKeyring()
	if err := Reload(t.Context(), ring, &swapSource{}, ReloadConfig{}); err == nil {
		t.Fatal("zero period accepted")
	}
	if err := Reload(t.Context(), nil, &swapSource{}, ReloadConfig{Every: time.Second}); err == nil {
		t.Fatal("nil keyring accepted")
	}
	if err := ring.Load(t.Context(), &swapSource{}); err == nil {
		t.Fatal("empty key set accepted")
	}
}

func TestParseKeysErrorsCarryNoSecret(t *testing.T) {
	const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
	for _, in := range []string{
		`[{"id":"a","secret":"` + secret + `"`,       // truncated
		`[{"id":"a","secret":` + secret + `}]`,       // unquoted
		`{"id":"a","secret":` + secret + `}`,         // an object, unquoted
		`{"id":"a","secret":"` + secret + `!"}`,      // an object, not base64
		`{"password":"` + secret + `"}`,              // another kind of secret
		`{"id":"a","secret":"` + secret + `","x":1}`, // an unknown field
		`{"id":"","secret":"` + secret + `"}`,        // no id
		`[{"id":"a","secret":"` + secret + `!"}]`,    // not base64
		`[{"id":"a","secret":"` + secret + `","retired_at":"soon"}]`,
	} {
		_, err := ParseKeys([]byte(in))
		if err == nil {
			t.Fatalf("%s accepted", in)
		}
		if strings.Contains(err.Error(), secret[:8]) || strings.Contains(err.Error(), "'c'") {
			t.Fatalf("error carries secret material: %v", err)
		}
	}
}

// TestParseKeysSingleObject: one key object is a set of one key (what AWS Secrets Manager
// generates for the deployed stack's first key); the array form is unchanged.
func TestParseKeysSingleObject(t *testing.T) {
	const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
	keys, err := ParseKeys([]byte(" {\"id\":\"k1\",\"secret\":\"" + secret + "\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].ID != "k1" || string(keys[0].Secret) != "secret-secret-secret" || !keys[0].RetiredAt.IsZero() {
		t.Fatalf("keys = %+v", keys)
	}
	arr, err := ParseKeys([]byte(`[{"id":"k1","secret":"` + secret + `"},{"id":"k2","secret":"` + secret + `","retired_at":"2026-01-02T03:04:05Z"}]`))
	if err != nil || len(arr) != 2 || arr[1].RetiredAt.IsZero() {
		t.Fatalf("array form: %+v, %v", arr, err)
	}
}
