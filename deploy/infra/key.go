package infra

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/jsii-runtime-go"
)

// newKey creates the customer-managed key that encrypts every stream, table,
// queue, topic, secret, log group and the audit trail. CDK's default key
// policy (account root: kms:*) lets IAM policies in this account grant use of
// the key; each service that encrypts with it on its own behalf is admitted
// below (CloudWatch Logs, CloudTrail) or where its resource is built
// (EventBridge in forwarder.go, CloudWatch alarms in alarms.go), each with a
// condition that pins it to this stack's resources.
func (p *Pipeline) newKey() awskms.Key {
	stack := p.Stack
	key := awskms.NewKey(stack, jsii.String("Key"), &awskms.KeyProps{
		Alias:             jsii.String(p.Names.KeyAlias),
		Description:       jsii.String("Kinesis events pipeline (" + p.Config.Stage + "): streams, tables, queues, topic, secret, logs, audit trail"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     dataRemovalPolicy,
	})
	partition, region, account := *stack.Partition(), *stack.Region(), *stack.Account()

	// CloudWatch Logs encrypts this stack's log groups (all under logGroupPrefix).
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchLogsForPipelineLogGroups"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String(fmt.Sprintf("logs.%s.amazonaws.com", region)), nil)},
		Actions: jsii.Strings("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
			"kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"),
		Resources: jsii.Strings("*"),
		Conditions: &map[string]any{
			"ArnLike": map[string]any{
				"kms:EncryptionContext:aws:logs:arn": fmt.Sprintf("arn:%s:logs:%s:%s:log-group:%s*", partition, region, account, p.Names.LogGroupPrefix),
			},
		},
	}), nil)

	// CloudTrail encrypts the audit log files; the statements follow the key
	// policy CloudTrail documents (and validates when the trail is created).
	trailArn := fmt.Sprintf("arn:%s:cloudtrail:%s:%s:trail/%s", partition, region, account, p.Names.Trail)
	cloudtrail := awsiam.NewServicePrincipal(jsii.String("cloudtrail.amazonaws.com"), nil)
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudTrailEncryptLogs"),
		Principals: &[]awsiam.IPrincipal{cloudtrail},
		Actions:    jsii.Strings("kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"),
		Conditions: &map[string]any{
			"StringEquals": map[string]any{"aws:SourceArn": trailArn},
			"StringLike": map[string]any{
				"kms:EncryptionContext:aws:cloudtrail:arn": fmt.Sprintf("arn:%s:cloudtrail:*:%s:trail/*", partition, account),
			},
		},
	}), nil)
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudTrailDescribeKey"),
		Principals: &[]awsiam.IPrincipal{cloudtrail},
		Actions:    jsii.Strings("kms:DescribeKey"),
		Resources:  jsii.Strings("*"),
		Conditions: &map[string]any{"StringEquals": map[string]any{"aws:SourceArn": trailArn}},
	}), nil)
	return key
}

// grantServiceDataKeys lets an AWS service principal encrypt messages with
// the key (GenerateDataKey) and read them back (Decrypt) when it acts for one
// of sourceArns: the pattern SQS and SNS need from a service that sends to an
// encrypted queue or topic.
func grantServiceDataKeys(k awskms.Key, sid, service, condition string, sourceArns ...string) {
	k.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String(sid),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String(service), nil)},
		Actions:    jsii.Strings("kms:GenerateDataKey", "kms:Decrypt"),
		Resources:  jsii.Strings("*"),
		Conditions: &map[string]any{condition: map[string]any{"aws:SourceArn": sourceArns}},
	}), nil)
}

// viaServices is the kms:ViaService condition limiting a principal's use of
// the key to requests made through the named services in this region.
func viaServices(region string, services ...string) *map[string]any {
	vs := make([]string, 0, len(services))
	for _, s := range services {
		vs = append(vs, fmt.Sprintf("%s.%s.amazonaws.com", s, region))
	}
	return &map[string]any{"StringEquals": map[string]any{"kms:ViaService": vs}}
}
