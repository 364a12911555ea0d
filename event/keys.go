package event

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// KeySource supplies the current signing keys. A file or an environment variable implements it
// locally; a secrets store (AWS Secrets Manager) implements it in the cloud. Callers reload
// periodically and swap the keyring with Keyring.Replace.
type KeySource interface {
	Keys(ctx context.Context) ([]Key, error)
}

// keyJSON is the documented key-file format:
//
//	[{"id":"k2026a","secret":"<base64, >= 16 bytes>","retired_at":"2026-12-01T00:00:00Z"}]
type keyJSON struct {
	ID        string `json:"id"`
	Secret    string `json:"secret"`
	RetiredAt string `json:"retired_at,omitempty"`
}

// ParseKeys decodes the key-file format. A single key object ({"id","secret","retired_at"}) is
// read as a set of one key: it is what AWS Secrets Manager can generate on its own (the deployed
// stack's first key), before an operator writes the array. Errors never include secret material.
func ParseKeys(b []byte) ([]Key, error) {
	var raw []keyJSON
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		// Strict: only the key's own fields, id and secret present; any other object (a
		// password secret, a typo) is refused rather than read as an empty key.
		var k keyJSON
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&k); err != nil || dec.More() || k.ID == "" || k.Secret == "" {
			return nil, errors.New("signing keys: not a JSON array of {id, secret, retired_at}, nor one such object")
		}
		raw = []keyJSON{k}
	} else if err := json.Unmarshal(b, &raw); err != nil {
		// Not wrapped: encoding/json's messages quote input characters, which may be secret.
		where := ""
		var se *json.SyntaxError
		if errors.As(err, &se) {
			where = fmt.Sprintf(" (syntax error at byte %d)", se.Offset)
		}
		return nil, fmt.Errorf("signing keys: not a JSON array of {id, secret, retired_at}%s", where)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("signing keys: no keys")
	}
	keys := make([]Key, 0, len(raw))
	for _, k := range raw {
		secret, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("signing keys: key %q: secret is not base64", k.ID)
		}
		key := Key{ID: k.ID, Secret: secret}
		if k.RetiredAt != "" {
			if key.RetiredAt, err = time.Parse(time.RFC3339, k.RetiredAt); err != nil {
				return nil, fmt.Errorf("signing keys: key %q: retired_at is not RFC 3339", k.ID)
			}
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// FileKeys reads keys from a file in the key-file format on every call.
type FileKeys string

// Keys implements KeySource.
func (f FileKeys) Keys(context.Context) ([]Key, error) {
	b, err := os.ReadFile(string(f))
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return ParseKeys(b)
}

// StaticKeys is a fixed key set, e.g. decoded once from an environment variable.
type StaticKeys []Key

// Keys implements KeySource.
func (s StaticKeys) Keys(context.Context) ([]Key, error) { return s, nil }
