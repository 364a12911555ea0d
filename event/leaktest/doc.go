// Package leaktest holds no code: its test drives every component that logs (the forwarder, the
// worker's pipeline, the load generator, key loading and reloading) through its logging paths with
// known key material and raw PII, and checks with a zap observer that none of it reaches a log line.
// It lives apart from package event so that event's own tests and fuzz targets do not link the
// forwarder, the pipeline and the AWS SDK.
package leaktest
