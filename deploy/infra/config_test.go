package infra

import (
	"strings"
	"testing"
)

func TestConfigFromContext(t *testing.T) {
	tests := []struct {
		name    string
		ctx     map[string]any
		check   func(Config) bool
		wantErr string
	}{
		{"defaults", nil, func(c Config) bool { return c == DefaultConfig() }, ""},
		{"json numbers and booleans (cdk.json, CDK_CONTEXT_JSON)",
			map[string]any{"rawShards": float64(8), "minWorkers": float64(3), "onDemand": true},
			func(c Config) bool { return c.RawShards == 8 && c.MinWorkers == 3 && c.OnDemand }, ""},
		{"strings (cdk -c key=value)",
			map[string]any{"rawShards": "16", "onDemand": "false", "leaseTable": "my-leases"},
			func(c Config) bool { return c.RawShards == 16 && !c.OnDemand && c.LeaseTable == "my-leases" }, ""},
		{"not a number", map[string]any{"rawShards": "many"}, nil, "context rawShards"},
		{"fraction", map[string]any{"rawShards": 2.5}, nil, "not a whole number"},
		{"not a boolean", map[string]any{"onDemand": "maybe"}, nil, "context onDemand"},
		{"string field given a number", map[string]any{"leaseTable": float64(1)}, nil, "context leaseTable"},
		{"fleet floor above the shard count", map[string]any{"rawShards": float64(2), "minWorkers": float64(3)}, nil, "exceeds rawShards"},
		{"invalid Fargate size", map[string]any{"workerCpu": float64(512), "workerMemoryMiB": float64(512)}, nil, "not a Fargate size"},
		{"log retention not offered", map[string]any{"logRetentionDays": float64(10)}, nil, "logRetentionDays 10"},
		{"same table twice", map[string]any{"dedupeTable": "kcl-leases"}, nil, "both"},
		{"default bus", map[string]any{"eventBusName": "default"}, nil, "custom bus"},
		{"retention below a day", map[string]any{"retentionHours": float64(12)}, nil, "retentionHours 12"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ConfigFromContext(func(k string) any { return tc.ctx[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("config = %+v", c)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := DefaultConfig()
	c.RawShards, c.LeaseTable, c.NatGateways = 0, "", 3
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"rawShards 0", "leaseTable: empty", "natGateways 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config invalid: %v", err)
	}
}

func TestRoutesCoverEveryTypeAndDefault(t *testing.T) {
	r := Routes()
	if r["default"] != StreamOther {
		t.Errorf("default route = %q", r["default"])
	}
	for _, typ := range EventTypes {
		if r[typ] != "analytics-"+typ {
			t.Errorf("route %s = %q", typ, r[typ])
		}
	}
	if len(AllStreamNames()) != 1+len(EventTypes)+4 {
		t.Errorf("streams = %v", AllStreamNames())
	}
}
