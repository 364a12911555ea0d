package fleet

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kinesis-events/pipeline/processors"
)

// TestUnknownOutcomes reads the counts back from logs written the way the worker writes them.
func TestUnknownOutcomes(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, counts ...int) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), f, zap.InfoLevel))
		log.Info("worker started")
		for _, n := range counts {
			log.Warn(processors.LogUnknownOutcome, zap.String("stream", "s"), zap.Int("records", n), zap.Strings("event_ids", []string{"e1"}))
		}
		log.Sync()
	}
	write("worker-1.log", 59, 3)
	write("worker-2.log")
	write("forwarder.log", 1000) // not a worker log
	e := &Env{Dir: dir}
	n, err := e.UnknownOutcomes()
	if err != nil {
		t.Fatal(err)
	}
	if n != 62 {
		t.Fatalf("UnknownOutcomes() = %d, want 62", n)
	}
	if f, err := e.ForwarderUnknownOutcomes(); err != nil || f != 1000 {
		t.Fatalf("ForwarderUnknownOutcomes() = %d, %v; want 1000", f, err)
	}
}
