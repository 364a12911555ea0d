package forwarder

import (
	"bytes"
	"strings"
	"testing"
)

func TestCommandRejectsBadSettings(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"batch size", []string{"--batch-size", "501"}, nil, "BatchSize"},
		{"concurrency", []string{"--concurrency", "100"}, nil, "Concurrency"},
		{"same streams", []string{"--raw-stream", "x", "--quarantine-stream", "x"}, nil, "both"},
		{"pii path", []string{"--pii-paths", "properties..email"}, nil, "empty segment"},
		{"pii path from env", nil, map[string]string{EnvPIIPaths: ".email"}, "empty segment"},
		{"attempts env", nil, map[string]string{EnvMaxAttempts: "many"}, EnvMaxAttempts},
		{"log level", []string{"--log-level", "loud"}, nil, "log-level"},
		{"stats interval", []string{"--stats-every", "0s"}, nil, "stats-every"},
		{"unknown flag", []string{"--nope"}, nil, "nope"},
		{"wire", []string{"--kinesis-wire", "xml"}, nil, "kinesis-wire"},
		{"wire env", nil, map[string]string{EnvKinesisWire: "CBOR1"}, "kinesis-wire"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			getenv := func(k string) string { return tc.env[k] }
			err := Command(t.Context(), tc.args, getenv, strings.NewReader(""), &stderr)
			if err == nil || !strings.Contains(err.Error()+stderr.String(), tc.want) {
				t.Fatalf("error %v, stderr %q; want mention of %q", err, stderr.String(), tc.want)
			}
		})
	}
	var stderr bytes.Buffer
	if err := Command(t.Context(), []string{"-h"}, func(string) string { return "" }, nil, &stderr); err != nil || !strings.Contains(stderr.String(), "usage: forwarder") {
		t.Fatalf("-h: %v %q", err, stderr.String())
	}
}
