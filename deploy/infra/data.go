package infra

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"
)

// dataRemovalPolicy is the removal policy of everything that holds data or is named for the
// stage (key, streams, tables, secret, queues, log groups): CloudFormation's RetainExceptOnCreate.
// A stack update or delete keeps them; but when the create that made them rolls back, they are
// deleted, so a failed first deploy leaves no fixed name behind and can simply be run again.
const dataRemovalPolicy = awscdk.RemovalPolicy_RETAIN_ON_UPDATE_OR_DELETE

// addData creates the streams, the two DynamoDB tables and the signing-key secret, all encrypted
// with the customer-managed key.
func (p *Pipeline) addData() {
	cfg := p.Config
	for _, name := range AllStreamNames() {
		shards := cfg.SideShards
		switch {
		case name == RawStream:
			shards = cfg.RawShards
		case strings.HasPrefix(name, AnalyticsPrefix):
			shards = cfg.AnalyticsShards
		}
		props := &awskinesis.StreamProps{
			StreamName:      jsii.String(cfg.Name(name)),
			Encryption:      awskinesis.StreamEncryption_KMS,
			EncryptionKey:   p.Key,
			RetentionPeriod: awscdk.Duration_Hours(jsii.Number(float64(cfg.RetentionHours))),
			RemovalPolicy:   dataRemovalPolicy,
		}
		if cfg.OnDemand {
			props.StreamMode = awskinesis.StreamMode_ON_DEMAND
		} else {
			props.StreamMode = awskinesis.StreamMode_PROVISIONED
			props.ShardCount = jsii.Number(float64(shards))
		}
		stream := awskinesis.NewStream(p.Stack, jsii.String("Stream-"+name), props)
		suppress(stream, "AwsSolutions-KDS3",
			"A customer-managed key is the product's requirement, not an accident: its key policy limits which services and roles can decrypt customer events, it rotates yearly, and every use is in CloudTrail. The aws/kinesis key allows none of that; the extra KMS request cost is accepted.")
		p.Streams[name] = stream
	}

	// On-demand billing: provisioned lease tables caused duplicate processing under throttling
	// in the KCL's history (lost lease renewals hand shards to a second worker while the first
	// still processes them). Deletion protection: a table dropped by hand loses every checkpoint
	// (lease table) or every dedupe mark (dedupe table).
	table := func(id, name, hashKey, ttl string) awsdynamodb.Table {
		props := &awsdynamodb.TableProps{
			TableName:     jsii.String(cfg.Name(name)),
			PartitionKey:  &awsdynamodb.Attribute{Name: jsii.String(hashKey), Type: awsdynamodb.AttributeType_STRING},
			BillingMode:   awsdynamodb.BillingMode_PAY_PER_REQUEST,
			Encryption:    awsdynamodb.TableEncryption_CUSTOMER_MANAGED,
			EncryptionKey: p.Key,
			PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
				PointInTimeRecoveryEnabled: jsii.Bool(true),
			},
			DeletionProtection: jsii.Bool(true),
			RemovalPolicy:      dataRemovalPolicy,
		}
		if ttl != "" {
			props.TimeToLiveAttribute = jsii.String(ttl)
		}
		return awsdynamodb.NewTable(p.Stack, jsii.String(id), props)
	}
	p.LeaseTable = table("LeaseTable", LeaseTable, "ShardID", "")
	p.DedupeTable = table("DedupeTable", DedupeTable, "event_id", "expires_at")

	// The HMAC signing keys. Secrets Manager generates the first key when the secret is created:
	// {"id":"k1","secret":"<64 alphanumeric characters>"}, a one-key set in the worker's key
	// format (event.ParseKeys; 64 alphanumerics are valid base64 for 48 random bytes). The
	// template holds no value, only how to generate the first one, so CloudFormation never
	// writes the value again: operators rotate by writing the key-set array
	// ([{"id","secret","retired_at"}, ...]) with put-secret-value, the workers re-read it every
	// minute, and nothing drifts. Never edit GenerateSecretString: a changed generator replaces
	// the value.
	p.SigningKeys = awssecretsmanager.NewSecret(p.Stack, jsii.String("SigningKeys"), &awssecretsmanager.SecretProps{
		SecretName:    jsii.String(p.Names.SigningSecret),
		Description:   jsii.String("HMAC-SHA256 event signing keys: JSON [{id, secret (base64), retired_at}] (or one such object); generated once, then rotated by put-secret-value"),
		EncryptionKey: p.Key,
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			SecretStringTemplate: jsii.String(`{"id":"` + signingKeyInitialID + `"}`),
			GenerateStringKey:    jsii.String("secret"),
			PasswordLength:       jsii.Number(64),
			ExcludePunctuation:   jsii.Bool(true),
			IncludeSpace:         jsii.Bool(false),
		},
		RemovalPolicy: dataRemovalPolicy,
	})
	suppress(p.SigningKeys, "AwsSolutions-SMG4",
		"Signing keys rotate by key_id, not by Secrets Manager rotation: a new key is added beside the old one with put-secret-value, producers move to it, and only then is the old key retired (rotation without downtime; the workers re-read the secret every minute). A rotation Lambda replacing the value in place would invalidate every event signed with the old key that is still in flight.")
}
