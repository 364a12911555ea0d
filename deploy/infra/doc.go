// Package infra defines the AWS CDK stack that runs the pipeline on AWS:
// a customer-managed KMS key, the Kinesis streams and DynamoDB tables the
// rest of the project names, the EventBridge bus and rules feeding the
// forwarder Lambda, the KCL worker fleet on ECS Fargate, CloudWatch alarms,
// and a CloudTrail audit trail; cdk-nag's AwsSolutions pack checks it at synth.
//
// Concurrency: construct code runs once, single-threaded, inside one CDK app
// (jsii serialises every call to its Node.js kernel); nothing here is safe to
// share between goroutines, and nothing needs to be.
//
// Delivery semantics encoded here: EventBridge retries a failed delivery to
// the forwarder for up to 24 h and then parks the event in an encrypted SQS
// dead-letter queue; Lambda retries a failed invocation twice and then parks
// the event in the same queue; every stream retains records for
// Config.RetentionHours, which bounds how long the fleet may be down without
// loss. Nothing in the stack drops an event silently: events that fail the
// forwarding rule's content filter are sent to the forwarder by a second rule
// so they are quarantined with a reason.
package infra
