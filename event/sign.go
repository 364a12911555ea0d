package event

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SigningInput is what a signature covers: the event type and every detail field except the signature
// itself. The byte form is documented in docs/signing.md so producers in any language can sign:
//
//	"kev1" LF type LF event_id LF customer_id LF seq LF occurred_at LF key_id LF canonical(properties)
//
// seq is base-10 without leading zeros; occurred_at is the string exactly as sent; properties is the
// RFC 8785 canonical JSON of the properties object ("{}" when absent or null). No field may contain LF.
func SigningInput(dst []byte, typ string, d *Detail) ([]byte, error) {
	for _, f := range [...]struct{ name, v string }{
		{"type", typ}, {"event_id", d.EventID}, {"customer_id", d.CustomerID},
		{"occurred_at", d.OccurredAt}, {"key_id", d.KeyID},
	} {
		if strings.IndexByte(f.v, '\n') >= 0 {
			return dst, reject(ReasonBadField, "%s contains a line feed", f.name)
		}
	}
	dst = append(dst, "kev1\n"...)
	dst = append(dst, typ...)
	dst = append(dst, '\n')
	dst = append(dst, d.EventID...)
	dst = append(dst, '\n')
	dst = append(dst, d.CustomerID...)
	dst = append(dst, '\n')
	dst = strconv.AppendUint(dst, d.Seq, 10)
	dst = append(dst, '\n')
	dst = append(dst, d.OccurredAt...)
	dst = append(dst, '\n')
	dst = append(dst, d.KeyID...)
	dst = append(dst, '\n')
	switch {
	case d.canon != nil:
		return append(dst, d.canon...), nil
	case len(d.Properties) == 0:
		return append(dst, "{}"...), nil
	}
	n := len(dst)
	dst, err := AppendCanonicalJSON(dst, d.Properties, DefaultLimits)
	if err != nil {
		return dst[:n], err
	}
	// The same reading as ParseDetail: null is absent, anything else must be an object.
	switch props := dst[n:]; {
	case string(props) == "null":
		return append(dst[:n], "{}"...), nil
	case props[0] != '{':
		return dst[:n], reject(ReasonBadField, "properties is not an object")
	}
	return dst, nil
}

// Key is one signing key. A key verifies events while it is not retired; several keys may be active at
// once, which is how keys rotate without downtime: add the new key everywhere, move producers to it,
// then retire the old one.
type Key struct {
	ID     string
	Secret []byte
	// RetiredAt, when set, is the instant from which the key no longer verifies anything.
	RetiredAt time.Time
}

// Keyring verifies and creates signatures. It is safe for concurrent use; Replace swaps the whole set
// atomically (used when keys are reloaded from a secrets store).
type Keyring struct {
	mu   sync.RWMutex
	keys map[string]*keyEntry
	// MaxSkew, when positive, rejects events whose occurred_at is further than this from now.
	MaxSkew time.Duration
}

type keyEntry struct {
	Key
	pool sync.Pool // of hash.Hash keyed with the secret
}

// NewKeyring returns a keyring holding keys. Key IDs must be unique and secrets at least 16 bytes.
func NewKeyring(keys ...Key) (*Keyring, error) {
	k := &Keyring{}
	if err := k.Replace(keys...); err != nil {
		return nil, err
	}
	return k, nil
}

// Replace swaps the set of keys.
func (k *Keyring) Replace(keys ...Key) error {
	m := make(map[string]*keyEntry, len(keys))
	for _, key := range keys {
		if key.ID == "" || strings.ContainsAny(key.ID, "\n") {
			return fmt.Errorf("keyring: invalid key id %q", key.ID)
		}
		if len(key.Secret) < 16 {
			return fmt.Errorf("keyring: key %q: secret shorter than 16 bytes", key.ID)
		}
		if _, dup := m[key.ID]; dup {
			return fmt.Errorf("keyring: duplicate key id %q", key.ID)
		}
		e := &keyEntry{Key: Key{ID: key.ID, Secret: append([]byte(nil), key.Secret...), RetiredAt: key.RetiredAt}}
		e.pool.New = func() any { return hmac.New(sha256.New, e.Secret) }
		m[key.ID] = e
	}
	k.mu.Lock()
	k.keys = m
	k.mu.Unlock()
	return nil
}

// IDs lists the key ids (never the secrets), for logs and health output.
func (k *Keyring) IDs() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	ids := make([]string, 0, len(k.keys))
	for id := range k.keys {
		ids = append(ids, id)
	}
	return ids
}

func (k *Keyring) entry(id string) *keyEntry {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys[id]
}

func (e *keyEntry) mac(dst, msg []byte) []byte {
	h := e.pool.Get().(hash.Hash)
	h.Reset()
	h.Write(msg)
	dst = h.Sum(dst)
	e.pool.Put(h)
	return dst
}

// Sign sets d.KeyID to keyID and d.Signature to the lower-case hex HMAC-SHA256 of the signing input.
func (k *Keyring) Sign(typ string, d *Detail, keyID string) error {
	e := k.entry(keyID)
	if e == nil {
		return fmt.Errorf("sign: unknown key %q", keyID)
	}
	d.KeyID = keyID
	msg, err := SigningInput(make([]byte, 0, 256), typ, d)
	if err != nil {
		return err
	}
	var sum [sha256.Size]byte
	d.Signature = hex.EncodeToString(e.mac(sum[:0], msg))
	return nil
}

// Verify checks d's signature at time now. The error is an *Error with one of the signature reasons,
// or a decoding reason when the properties are not valid canonicalisable JSON.
func (k *Keyring) Verify(typ string, d *Detail, now time.Time) error {
	return k.VerifyBuf(nil, typ, d, now)
}

// VerifyBuf is Verify with a caller-provided scratch buffer, for the per-record hot path.
func (k *Keyring) VerifyBuf(scratch []byte, typ string, d *Detail, now time.Time) error {
	if d.Signature == "" || d.KeyID == "" {
		return reject(ReasonNoSignature, "no signature or key_id")
	}
	e := k.entry(d.KeyID)
	if e == nil {
		return reject(ReasonUnknownKey, "key_id not in keyring")
	}
	if !e.RetiredAt.IsZero() && !now.Before(e.RetiredAt) {
		return reject(ReasonKeyRetired, "key retired")
	}
	if len(d.Signature) != 2*sha256.Size {
		return reject(ReasonBadSignature, "signature is not 64 hex characters")
	}
	var got [sha256.Size]byte
	if _, err := hex.Decode(got[:], []byte(d.Signature)); err != nil {
		return reject(ReasonBadSignature, "signature is not hex")
	}
	msg, err := SigningInput(scratch[:0], typ, d)
	if err != nil {
		return err
	}
	var want [sha256.Size]byte
	if !hmac.Equal(e.mac(want[:0], msg), got[:]) {
		return reject(ReasonBadSignature, "signature does not match")
	}
	if k.MaxSkew > 0 {
		at, err := time.Parse(time.RFC3339Nano, d.OccurredAt)
		if err != nil {
			return reject(ReasonBadField, "occurred_at is not RFC 3339")
		}
		if skew := now.Sub(at); skew > k.MaxSkew || -skew > k.MaxSkew {
			return reject(ReasonClockSkew, "occurred_at %s from now, over %s", skew.Round(time.Second), k.MaxSkew)
		}
	}
	return nil
}
