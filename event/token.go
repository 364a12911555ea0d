package event

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"strings"
)

// TokenPrefix starts every token, so a token is recognisable wherever it ends up.
const TokenPrefix = "tok_"

const tokenBodyLen = 26 // base32 characters: 130 bits of the HMAC

var tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Tokenizer turns PII values into keyed, deterministic tokens: the same (kind, value) always yields the
// same token under one key, so joins across events still work, and nobody without the key can reverse
// or confirm a guess. Kind separates namespaces ("email", "phone", "customer", ...), so equal values
// of different kinds give different tokens. Safe for concurrent use.
type Tokenizer struct {
	key []byte
}

// NewTokenizer returns a tokenizer with a secret of at least 32 bytes.
func NewTokenizer(key []byte) (*Tokenizer, error) {
	if len(key) < 32 {
		return nil, errors.New("tokenizer: key shorter than 32 bytes")
	}
	return &Tokenizer{key: append([]byte(nil), key...)}, nil
}

// Token returns the token for value of the given kind. Values are normalised first (trimmed; e-mail
// addresses lower-cased; phone numbers reduced to digits and a leading '+') so trivial spelling
// differences map to one token.
func (t *Tokenizer) Token(kind, value string) string {
	value = Normalize(kind, value)
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(value))
	sum := m.Sum(nil)
	return TokenPrefix + strings.ToLower(tokenEncoding.EncodeToString(sum))[:tokenBodyLen]
}

// Normalize is the normalisation Token applies, exported so producers in other languages can be
// checked against it.
func Normalize(kind, value string) string {
	value = strings.TrimSpace(value)
	switch kind {
	case "email":
		return strings.ToLower(value)
	case "phone":
		var b strings.Builder
		for i, r := range value {
			if (r >= '0' && r <= '9') || (r == '+' && i == 0) {
				b.WriteRune(r)
			}
		}
		return b.String()
	}
	return value
}

// IsToken reports whether s has the shape of a token: the prefix and 26 base32 characters.
func IsToken(s string) bool {
	if len(s) != len(TokenPrefix)+tokenBodyLen || !strings.HasPrefix(s, TokenPrefix) {
		return false
	}
	for _, c := range s[len(TokenPrefix):] {
		if !(c >= 'a' && c <= 'z') && !(c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
