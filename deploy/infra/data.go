package infra

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskinesis"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"
)

// addData creates the streams, the two DynamoDB tables and the signing-key
// secret, all encrypted with the customer-managed key and retained when the
// stack is deleted (they hold events, checkpoints and keys).
func (p *Pipeline) addData() {
	cfg := p.Config
	for _, name := range AllStreamNames() {
		shards := cfg.SideShards
		switch {
		case name == StreamRaw:
			shards = cfg.RawShards
		case strings.HasPrefix(name, "analytics-"):
			shards = cfg.AnalyticsShards
		}
		props := &awskinesis.StreamProps{
			StreamName:      jsii.String(name),
			Encryption:      awskinesis.StreamEncryption_KMS,
			EncryptionKey:   p.Key,
			RetentionPeriod: awscdk.Duration_Hours(jsii.Number(float64(cfg.RetentionHours))),
			RemovalPolicy:   awscdk.RemovalPolicy_RETAIN,
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

	// On-demand billing: provisioned lease tables caused duplicate processing
	// under throttling in the KCL's history (lost lease renewals hand shards to
	// a second worker while the first still processes them).
	table := func(id, name, hashKey, ttl string) awsdynamodb.Table {
		props := &awsdynamodb.TableProps{
			TableName:     jsii.String(name),
			PartitionKey:  &awsdynamodb.Attribute{Name: jsii.String(hashKey), Type: awsdynamodb.AttributeType_STRING},
			BillingMode:   awsdynamodb.BillingMode_PAY_PER_REQUEST,
			Encryption:    awsdynamodb.TableEncryption_CUSTOMER_MANAGED,
			EncryptionKey: p.Key,
			PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
				PointInTimeRecoveryEnabled: jsii.Bool(true),
			},
			DeletionProtection: jsii.Bool(true),
			RemovalPolicy:      awscdk.RemovalPolicy_RETAIN,
		}
		if ttl != "" {
			props.TimeToLiveAttribute = jsii.String(ttl)
		}
		return awsdynamodb.NewTable(p.Stack, jsii.String(id), props)
	}
	p.LeaseTable = table("LeaseTable", cfg.LeaseTable, "ShardID", "")
	p.DedupeTable = table("DedupeTable", cfg.DedupeTable, "event_id", "expires_at")

	// The HMAC signing keys, in the worker's key-file format (event.ParseKeys):
	// a JSON array of {"id", "secret" (base64), "retired_at"}. Secrets Manager
	// can only generate a string, so the first key's secret is generated into
	// a seed secret (64 alphanumeric characters: valid base64 for 48 random
	// bytes) and spliced into the array by a CloudFormation dynamic reference;
	// the key never appears in the template. Rotation adds an entry beside it
	// and later sets its retired_at.
	seed := awssecretsmanager.NewSecret(p.Stack, jsii.String("SigningKeySeed"), &awssecretsmanager.SecretProps{
		SecretName:    jsii.String(signingSeedName),
		Description:   jsii.String("Generated secret of the first signing key (" + signingKeyInitialID + "); copied into " + signingSecretName + ", not read at run time"),
		EncryptionKey: p.Key,
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			PasswordLength:     jsii.Number(64),
			ExcludePunctuation: jsii.Bool(true),
			IncludeSpace:       jsii.Bool(false),
		},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	suppress(seed, "AwsSolutions-SMG4",
		"The seed only initialises the first signing key and is never read at run time; rotating it would change nothing. Signing keys rotate inside "+signingSecretName+" by key_id.")
	initial := fmt.Sprintf(`[{"id":%q,"secret":"%s"}]`, signingKeyInitialID, *seed.SecretValue().UnsafeUnwrap())
	p.SigningKeys = awssecretsmanager.NewSecret(p.Stack, jsii.String("SigningKeys"), &awssecretsmanager.SecretProps{
		SecretName:        jsii.String(signingSecretName),
		Description:       jsii.String("HMAC-SHA256 event signing keys: JSON [{id, secret (base64), retired_at}]"),
		EncryptionKey:     p.Key,
		SecretStringValue: awscdk.SecretValue_UnsafePlainText(jsii.String(initial)),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	suppress(p.SigningKeys, "AwsSolutions-SMG4",
		"Signing keys rotate by key_id, not by Secrets Manager rotation: a new key is added beside the old one, producers move to it, and only then is the old key removed (issue 4's rotation without downtime). A rotation Lambda replacing the value in place would invalidate every event signed with the old key that is still in flight.")
}
