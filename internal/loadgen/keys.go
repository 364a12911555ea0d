package loadgen

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/kinesis-events/pipeline/event"
)

// DevKeyID is the id of the development signing key.
const DevKeyID = "dev-insecure"

// unknownKeyID signs the unknown_key bad inputs; no consumer's keyring may hold it.
const unknownKeyID = "loadgen-unknown-key"

// derive returns 32 deterministic bytes for a label. Everything derived this way is public: it exists
// so local runs work without configuration, and it is insecure by construction.
func derive(label string) []byte {
	sum := sha256.Sum256([]byte("kinesis-events/pipeline loadgen " + label))
	return sum[:]
}

// DevKeys returns the development signing key. It is the same on every machine and in every run, so
// a worker given DevKeyFile verifies what the generator signs without any setup. Never use it outside
// local runs.
func DevKeys() []event.Key {
	return []event.Key{{ID: DevKeyID, Secret: derive("development signing key")}}
}

// DevKeyFile returns DevKeys in the key-file format event.ParseKeys reads.
func DevKeyFile() []byte {
	var b []byte
	b = append(b, '[')
	for i, k := range DevKeys() {
		if i > 0 {
			b = append(b, ',')
		}
		// Ids are plain ASCII constants and base64 needs no escaping.
		b = fmt.Appendf(b, `{"id":%q,"secret":%q}`, k.ID, base64.StdEncoding.EncodeToString(k.Secret))
	}
	return append(b, "]\n"...)
}

// DevKeyring returns a keyring holding DevKeys.
func DevKeyring() *event.Keyring {
	k, err := event.NewKeyring(DevKeys()...)
	if err != nil { // DevKeys is a valid constant set
		panic(fmt.Sprintf("loadgen: dev keyring: %v", err))
	}
	return k
}

// DevTokenizer returns a tokenizer with a fixed, public key, for local runs.
func DevTokenizer() *event.Tokenizer {
	t, err := event.NewTokenizer(derive("development tokenizer key"))
	if err != nil { // derive returns 32 bytes
		panic(fmt.Sprintf("loadgen: dev tokenizer: %v", err))
	}
	return t
}

func unknownKeyring() *event.Keyring {
	k, err := event.NewKeyring(event.Key{ID: unknownKeyID, Secret: derive("unknown key")})
	if err != nil {
		panic(fmt.Sprintf("loadgen: unknown-key keyring: %v", err))
	}
	return k
}
