package infra

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudtrail"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/jsii-runtime-go"
)

// addAudit creates the CloudTrail trail, written encrypted with the key to a bucket whose own
// access is logged to a second bucket. By default it records management events: every change to
// how events are routed (events:PutRule, PutTargets, RemoveTargets, DeleteRule, EnableRule,
// DisableRule on the bus; the function's code and configuration; the streams, tables, key and
// secret) and every read of the signing keys (GetSecretValue), with no per-event charge for
// the first copy. Config.AuditDataEvents adds data events for every stream and every forwarder
// invocation, which record each routed event and are charged per call (deploy/README.md).
func (p *Pipeline) addAudit() {
	accessLogs := awss3.NewBucket(p.Stack, jsii.String("AccessLogsBucket"), &awss3.BucketProps{
		// S3 server access logging delivers only to SSE-S3 buckets.
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		EnforceSSL:        jsii.Bool(true),
		Versioned:         jsii.Bool(true),
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:                          jsii.String("expire-access-logs"),
			Expiration:                  awscdk.Duration_Days(jsii.Number(365)),
			NoncurrentVersionExpiration: awscdk.Duration_Days(jsii.Number(30)),
		}},
		// Buckets are named by CloudFormation, so a retained one never blocks a retry;
		// audit evidence outlives the stack.
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	// cdk-nag's S1 accepts this bucket without its own access logging: it is
	// the access-log destination (logging it into itself would never end).

	trailBucket := awss3.NewBucket(p.Stack, jsii.String("AuditBucket"), &awss3.BucketProps{
		Encryption:             awss3.BucketEncryption_KMS,
		EncryptionKey:          p.Key,
		BucketKeyEnabled:       jsii.Bool(true),
		BlockPublicAccess:      awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:        awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		EnforceSSL:             jsii.Bool(true),
		Versioned:              jsii.Bool(true),
		ServerAccessLogsBucket: accessLogs,
		ServerAccessLogsPrefix: jsii.String("audit-bucket/"),
		RemovalPolicy:          awscdk.RemovalPolicy_RETAIN,
	})

	partition, region, account := *p.Stack.Partition(), *p.Stack.Region(), *p.Stack.Account()
	trailArn := fmt.Sprintf("arn:%s:cloudtrail:%s:%s:trail/%s", partition, region, account, p.Names.Trail)
	cloudtrail := awsiam.NewServicePrincipal(jsii.String("cloudtrail.amazonaws.com"), nil)
	trailBucket.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudTrailAclCheck"),
		Principals: &[]awsiam.IPrincipal{cloudtrail},
		Actions:    jsii.Strings("s3:GetBucketAcl"),
		Resources:  &[]*string{trailBucket.BucketArn()},
		Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceArn": trailArn}},
	}))
	trailBucket.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudTrailWrite"),
		Principals: &[]awsiam.IPrincipal{cloudtrail},
		Actions:    jsii.Strings("s3:PutObject"),
		Resources:  &[]*string{trailBucket.ArnForObjects(jsii.String(fmt.Sprintf("AWSLogs/%s/*", account)))},
		Conditions: &map[string]any{"StringEquals": map[string]any{
			"aws:SourceArn": trailArn,
			"s3:x-amz-acl":  "bucket-owner-full-control",
		}},
	}))

	selector := func(name, resourceType string, arns *[]*string) *awscloudtrail.CfnTrail_AdvancedEventSelectorProperty {
		return &awscloudtrail.CfnTrail_AdvancedEventSelectorProperty{
			Name: jsii.String(name),
			FieldSelectors: &[]*awscloudtrail.CfnTrail_AdvancedFieldSelectorProperty{
				{Field: jsii.String("eventCategory"), EqualTo: jsii.Strings("Data")},
				{Field: jsii.String("resources.type"), EqualTo: jsii.Strings(resourceType)},
				{Field: jsii.String("resources.ARN"), EqualTo: arns},
			},
		}
	}
	selectors := []*awscloudtrail.CfnTrail_AdvancedEventSelectorProperty{{
		Name: jsii.String("Management events"),
		FieldSelectors: &[]*awscloudtrail.CfnTrail_AdvancedFieldSelectorProperty{
			{Field: jsii.String("eventCategory"), EqualTo: jsii.Strings("Management")},
		},
	}}
	if p.Config.AuditDataEvents {
		selectors = append(selectors,
			selector("Pipeline stream data events", "AWS::Kinesis::Stream", p.streamArns(AllStreamNames())),
			selector("Forwarder invocations", "AWS::Lambda::Function", &[]*string{p.Forwarder.FunctionArn()}))
	}
	trail := awscloudtrail.NewCfnTrail(p.Stack, jsii.String("AuditTrail"), &awscloudtrail.CfnTrailProps{
		TrailName:                  jsii.String(p.Names.Trail),
		IsLogging:                  jsii.Bool(true),
		S3BucketName:               trailBucket.BucketName(),
		KmsKeyId:                   p.Key.KeyArn(),
		EnableLogFileValidation:    jsii.Bool(true),
		IsMultiRegionTrail:         jsii.Bool(true),
		IncludeGlobalServiceEvents: jsii.Bool(true),
		AdvancedEventSelectors:     &selectors,
	})
	// CloudTrail checks the bucket policy when the trail is created.
	trail.Node().AddDependency(trailBucket.Policy())
}
