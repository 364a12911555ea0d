package secretsmgr

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/kinesis-events/pipeline/event"
	"github.com/kinesis-events/pipeline/internal/secretsfake"
)

// No Secrets Manager emulator runs on this machine, so these tests use internal/secretsfake, a fake of
// the one call; NewClient's wiring to the real service is exercised only on AWS.

const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:events-pipeline/signing-keys-AbCdEf"

var (
	secretA = []byte("secret-a-0123456789abcdef")
	secretB = []byte("secret-b-0123456789abcdef")
)

func keyFile(keys ...string) string { return "[" + strings.Join(keys, ",") + "]" }

func keyJSON(id string, secret []byte, retired string) string {
	s := fmt.Sprintf(`{"id":%q,"secret":%q`, id, base64.StdEncoding.EncodeToString(secret))
	if retired != "" {
		s += fmt.Sprintf(`,"retired_at":%q`, retired)
	}
	return s + "}"
}

func TestKeys(t *testing.T) {
	tests := []struct {
		name    string
		out     *secretsmanager.GetSecretValueOutput
		err     error
		want    []event.Key
		wantErr string
	}{
		{
			name: "string value, two keys, one retiring",
			out:  &secretsmanager.GetSecretValueOutput{SecretString: aws.String(keyFile(keyJSON("a", secretA, "2026-12-01T00:00:00Z"), keyJSON("b", secretB, "")))},
			want: []event.Key{{ID: "a", Secret: secretA, RetiredAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}, {ID: "b", Secret: secretB}},
		},
		{
			name: "binary value",
			out:  &secretsmanager.GetSecretValueOutput{SecretBinary: []byte(keyFile(keyJSON("b", secretB, "")))},
			want: []event.Key{{ID: "b", Secret: secretB}},
		},
		{name: "no value", out: &secretsmanager.GetSecretValueOutput{}, wantErr: "secret has no value"},
		{name: "not the key format", out: &secretsmanager.GetSecretValueOutput{SecretString: aws.String(`{"password":"` + string(secretA) + `"}`)}, wantErr: "not a JSON array"},
		{name: "empty key set", out: &secretsmanager.GetSecretValueOutput{SecretString: aws.String(`[]`)}, wantErr: "no keys"},
		{name: "not found", err: &types.ResourceNotFoundException{Message: aws.String("Secrets Manager can't find the specified secret.")}, wantErr: "secret or version not found"},
		{name: "kms", err: &types.DecryptionFailure{Message: aws.String("denied")}, wantErr: "cannot decrypt"},
		{name: "network", err: errors.New("dial tcp: i/o timeout"), wantErr: "GetSecretValue failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := secretsfake.New(tc.out, tc.err)
			src, err := New(f, Config{SecretID: arn})
			if err != nil {
				t.Fatal(err)
			}
			keys, err := src.Keys(t.Context())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), arn) {
					t.Fatalf("err %v, want one naming the secret and %q", err, tc.wantErr)
				}
				for _, s := range [][]byte{secretA, secretB} {
					if strings.Contains(err.Error(), string(s)) || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(s)) {
						t.Fatalf("error carries a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != len(tc.want) {
				t.Fatalf("keys %d, want %d", len(keys), len(tc.want))
			}
			for i, k := range keys {
				w := tc.want[i]
				if k.ID != w.ID || string(k.Secret) != string(w.Secret) || !k.RetiredAt.Equal(w.RetiredAt) {
					t.Fatalf("key %d: %s retired %v, want %s retired %v", i, k.ID, k.RetiredAt, w.ID, w.RetiredAt)
				}
			}
			in := f.Inputs()[0]
			if aws.ToString(in.SecretId) != arn || aws.ToString(in.VersionStage) != "AWSCURRENT" {
				t.Fatalf("asked for %s / %s", aws.ToString(in.SecretId), aws.ToString(in.VersionStage))
			}
		})
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(secretsfake.New(nil, nil), Config{}); err == nil {
		t.Fatal("no secret id accepted")
	}
	if _, err := New(nil, Config{SecretID: arn}); err == nil {
		t.Fatal("nil client accepted")
	}
	f := secretsfake.New(&secretsmanager.GetSecretValueOutput{SecretString: aws.String(keyFile(keyJSON("a", secretA, "")))}, nil)
	src, err := New(f, Config{SecretID: "name", VersionStage: "AWSPENDING"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Keys(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(f.Inputs()[0].VersionStage); got != "AWSPENDING" {
		t.Fatalf("version stage %q", got)
	}
}

// TestRotationThroughReload: the secret changes (a new key added, then the old one removed) and the
// worker's keyring follows it through event.Reload, with a store outage in between that keeps the
// keys in force.
func TestRotationThroughReload(t *testing.T) {
	f := secretsfake.New(&secretsmanager.GetSecretValueOutput{SecretString: aws.String(keyFile(keyJSON("a", secretA, "")))}, nil)
	src, err := New(f, Config{SecretID: arn})
	if err != nil {
		t.Fatal(err)
	}
	ring, err := event.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Load(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	signer, err := event.NewKeyring(event.Key{ID: "a", Secret: secretA}, event.Key{ID: "b", Secret: secretB})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	verify := func(keyID string) event.Reason {
		d := &event.Detail{EventID: "e", CustomerID: "c", Seq: 1, OccurredAt: now.UTC().Format(time.RFC3339)}
		if err := signer.Sign("purchase", d, keyID); err != nil {
			t.Fatal(err)
		}
		return event.ReasonOf(ring.Verify("purchase", d, now))
	}
	reloads := make(chan error, 64)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- event.Reload(ctx, ring, src, event.ReloadConfig{Every: 5 * time.Millisecond, OnReload: func(err error) { reloads <- err }})
	}()
	// settle waits for two reloads after a change, so at least one read the new value.
	settle := func() {
		t.Helper()
		for len(reloads) > 0 {
			<-reloads
		}
		for range 2 {
			select {
			case <-reloads:
			case <-time.After(10 * time.Second):
				t.Fatal("no reload")
			}
		}
	}
	steps := []struct {
		name   string
		value  string
		err    error
		ra, rb event.Reason
	}{
		{"a only", keyFile(keyJSON("a", secretA, "")), nil, "", event.ReasonUnknownKey},
		{"b added", keyFile(keyJSON("a", secretA, ""), keyJSON("b", secretB, "")), nil, "", ""},
		{"outage", "", &types.InternalServiceError{Message: aws.String("boom")}, "", ""},
		{"a retired", keyFile(keyJSON("a", secretA, now.Add(-time.Hour).UTC().Format(time.RFC3339)), keyJSON("b", secretB, "")), nil, event.ReasonKeyRetired, ""},
		{"a removed", keyFile(keyJSON("b", secretB, "")), nil, event.ReasonUnknownKey, ""},
	}
	for _, st := range steps {
		var out *secretsmanager.GetSecretValueOutput
		if st.err == nil {
			out = &secretsmanager.GetSecretValueOutput{SecretString: aws.String(st.value)}
		}
		f.Set(out, st.err)
		settle()
		if ra, rb := verify("a"), verify("b"); ra != st.ra || rb != st.rb {
			t.Fatalf("%s: key a %q key b %q, want %q %q", st.name, ra, rb, st.ra, st.rb)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
