package worker

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConfigValidateIsPure(t *testing.T) {
	c := Config{WorkerID: ""}
	before := c
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "worker id is required") {
		t.Fatalf("Validate() with no worker id = %v, want it required (the library reads no host name)", err)
	}
	if !reflect.DeepEqual(c, before) {
		t.Fatalf("Validate changed the config: %+v", c)
	}
	c = Config{WorkerID: "w-1", Pipeline: Defaults().Pipeline}
	if err := c.Validate(); err != nil {
		t.Fatalf("zero fields mean their defaults: Validate() = %v", err)
	}
	if err := Defaults().Validate(); err == nil {
		t.Fatal("Defaults has no worker id: Validate() = nil")
	}
	d := Defaults()
	d.WorkerID = "w-1"
	if err := d.Validate(); err != nil {
		t.Fatalf("Defaults plus a worker id: Validate() = %v", err)
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	c := Config{WorkerID: "w 1", LeaseDuration: 4 * time.Second, LeaseRenew: 2 * time.Second, MaxRecords: 20000,
		TestLeaseClockSkew: 48 * time.Hour, IdleTime: -time.Second, CheckpointRetryBudget: 3 * time.Second}
	c.Pipeline.LatePolicy = "drop"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	for _, want := range []string{"white space", "under half the lease duration", "max records 20000", "clock skew", "idle time -1s", "pipeline:", "LatePolicy",
		"checkpoint retry budget 3s must be at least the lease duration 4s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, want it to mention %q", err, want)
		}
	}
}

func TestConfigWithDefaults(t *testing.T) {
	c := Config{WorkerID: "w-1", LeaseDuration: 20 * time.Second, Pipeline: Defaults().Pipeline}
	got := c.withDefaults()
	if c.Stream != "" || c.ShardSync != 0 {
		t.Fatal("withDefaults changed its receiver")
	}
	d := Defaults()
	if got.Stream != d.Stream || got.LeaseTable != d.LeaseTable || got.ShardSync != d.ShardSync || got.MaxRecords != d.MaxRecords || got.RequestTimeout != d.RequestTimeout {
		t.Fatalf("withDefaults = %+v, want the zero fields from Defaults", got)
	}
	if got.CheckpointRetryBudget != 60*time.Second {
		t.Fatalf("withDefaults: checkpoint retry budget %v, want three lease durations (60s)", got.CheckpointRetryBudget)
	}
	if got.LeaseDuration != 20*time.Second || got.WorkerID != "w-1" {
		t.Fatalf("withDefaults overwrote set fields: %+v", got)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
}
