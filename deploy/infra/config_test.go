package infra

import (
	"reflect"
	"strings"
	"testing"
)

// required is the smallest context synth accepts: the three settings without a default.
var required = map[string]any{"stage": "prod", "piiPaths": "customer_id", "alarmEmail": "ops@example.com"}

func withRequired(extra map[string]any) map[string]any {
	ctx := map[string]any{}
	for k, v := range required {
		ctx[k] = v
	}
	for k, v := range extra {
		ctx[k] = v
	}
	return ctx
}

func TestConfigFromContext(t *testing.T) {
	defaults := DefaultConfig()
	defaults.Stage, defaults.PIIPaths, defaults.AlarmEmail = "prod", []string{"customer_id"}, "ops@example.com"
	tests := []struct {
		name    string
		ctx     map[string]any
		check   func(Config) bool
		wantErr string
	}{
		{"required settings only", withRequired(nil), func(c Config) bool { return reflect.DeepEqual(c, defaults) }, ""},
		{"json numbers, booleans and arrays (cdk.json, CDK_CONTEXT_JSON)",
			withRequired(map[string]any{"rawShards": float64(8), "minWorkers": float64(3), "onDemand": true,
				"piiPaths": []any{"customer_id", "properties.email"}}),
			func(c Config) bool {
				return c.RawShards == 8 && c.MinWorkers == 3 && c.OnDemand && reflect.DeepEqual(c.PIIPaths, []string{"customer_id", "properties.email"})
			}, ""},
		{"strings (cdk -c key=value)",
			withRequired(map[string]any{"rawShards": "16", "onDemand": "false", "auditDataEvents": "true", "aggregateKeys": "true", "piiPaths": " customer_id , properties.email ,"}),
			func(c Config) bool {
				return c.RawShards == 16 && !c.OnDemand && c.AuditDataEvents && c.AggregateKeys && reflect.DeepEqual(c.PIIPaths, []string{"customer_id", "properties.email"})
			}, ""},
		{"webhook instead of email", map[string]any{"stage": "dev", "piiPaths": "customer_id", "alarmWebhookUrl": "https://hooks.example.com/x"},
			func(c Config) bool { return c.AlarmWebhookURL == "https://hooks.example.com/x" && c.AlarmEmail == "" }, ""},
		{"nothing given: every required setting named", nil, nil, "stage: required"},
		{"no PII paths", map[string]any{"stage": "prod", "alarmEmail": "a@b.c"}, nil, "piiPaths: required"},
		{"PII paths without customer_id", withRequired(map[string]any{"piiPaths": "properties.email"}), nil, "must include customer_id"},
		{"PII path malformed", withRequired(map[string]any{"piiPaths": "customer_id,properties..email"}), nil, "not a dotted detail path"},
		{"no alarm subscriber", map[string]any{"stage": "prod", "piiPaths": "customer_id"}, nil, "alarmEmail or alarmWebhookUrl: required"},
		{"webhook not https", withRequired(map[string]any{"alarmWebhookUrl": "http://hooks.example.com"}), nil, "want an https URL"},
		{"stage not a name", withRequired(map[string]any{"stage": "Prod_1"}), nil, `stage "Prod_1"`},
		{"not a number", withRequired(map[string]any{"rawShards": "many"}), nil, "context rawShards"},
		{"fraction", withRequired(map[string]any{"rawShards": 2.5}), nil, "not a whole number"},
		{"not a boolean", withRequired(map[string]any{"onDemand": "maybe"}), nil, "context onDemand"},
		{"string field given a number", withRequired(map[string]any{"stage": float64(1)}), nil, "context stage"},
		{"fleet floor above the shard count", withRequired(map[string]any{"rawShards": float64(2), "minWorkers": float64(3)}), nil, "exceeds rawShards"},
		{"invalid Fargate size", withRequired(map[string]any{"workerCpu": float64(512), "workerMemoryMiB": float64(512)}), nil, "not a Fargate size"},
		{"log retention not offered", withRequired(map[string]any{"logRetentionDays": float64(10)}), nil, "logRetentionDays 10"},
		{"one NAT gateway for two AZs", withRequired(map[string]any{"natGateways": float64(1)}), nil, "one per AZ"},
		{"retention below a day", withRequired(map[string]any{"retentionHours": float64(12)}), nil, "retentionHours 12"},
		{"failure-queue age alarm past its retention", withRequired(map[string]any{"forwarderDlqAgeAlarmSeconds": float64(15 * 86400)}), nil, "forwarderDlqAgeAlarmSeconds"},
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

// TestSynthFailsWithoutRequiredSettings: the defaults alone are refused, naming every missing
// setting at once.
func TestSynthFailsWithoutRequiredSettings(t *testing.T) {
	err := DefaultConfig().Validate()
	if err == nil {
		t.Fatal("the defaults validate without a stage, PII paths or an alarm subscriber")
	}
	for _, want := range []string{"stage: required", "piiPaths: required", "alarmEmail or alarmWebhookUrl: required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c, err := ConfigFromContext(func(k string) any { return required[k] })
	if err != nil {
		t.Fatal(err)
	}
	c.RawShards, c.NatGateways, c.LogRetentionDays = 0, 3, 1
	err = c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"rawShards 0", "natGateways 3", "logRetentionDays 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestRoutesCoverEveryTypeAndDefault(t *testing.T) {
	c := Config{Stage: "prod"}
	r := c.Routes()
	if r["default"] != "prod-"+OtherStream {
		t.Errorf("default route = %q", r["default"])
	}
	for _, typ := range StandardTypes {
		if r[typ] != "prod-analytics-"+typ {
			t.Errorf("route %s = %q", typ, r[typ])
		}
	}
	if len(AllStreamNames()) != 1+len(StandardTypes)+4 {
		t.Errorf("streams = %v", AllStreamNames())
	}
}
