// Package infra defines the AWS CDK stack that runs the pipeline on AWS for one stage: a
// customer-managed KMS key, the Kinesis streams and DynamoDB tables the rest of the project names
// (names.go, a copy of internal/names, prefixed with the stage), the EventBridge bus with its
// archive and the rules feeding the forwarder Lambda, the KCL worker fleet on ECS Fargate with its
// metrics sidecar in a VPC that reaches AWS through endpoints only, the stream autoscaler as a
// scheduled task of the worker image (kclctl autoscale run --once every minute), CloudWatch alarms
// and a dashboard, and a CloudTrail audit trail; cdk-nag's AwsSolutions pack checks it at synth.
//
// Concurrency: construct code runs once, single-threaded, inside one CDK app (jsii serialises
// every call to its Node.js kernel); nothing here is safe to share between goroutines, and
// nothing needs to be.
//
// Delivery semantics encoded here: the rules partition the bus, so every event is forwarded,
// quarantined by the forwarder, or (with an event source prefix) parked in the unrouted queue;
// the archive keeps every event for replay. EventBridge retries a failed delivery for up to 24 h
// and then parks the event in an encrypted SQS failure queue; Lambda retries a failed invocation
// twice and then parks the event in the same queue; every stream retains records for
// Config.RetentionHours, which bounds how long the fleet may be down without loss. Each way an
// event can leave this path (a failure queue that cannot be written, Lambda dropping an event) is
// alarmed. A worker stopped by ECS (scale-in, a deployment) gets SHUTDOWN_GRACE within the
// container's stop timeout to finish its batch and checkpoint, so a stop writes no duplicates.
package infra
