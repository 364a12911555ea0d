// Package event defines the wire contract shared by producers, the forwarder and the worker: the
// EventBridge event a producer emits, the raw record the forwarder writes to the raw stream, the
// analytics record the worker writes to the per-type streams, the canonical byte form that is signed,
// HMAC-SHA256 signing and verification with rotating keys (docs/signing.md documents the signed bytes
// for producers in other languages), key sources and their periodic reload (Reload; the AWS Secrets
// Manager source is in event/secretsmgr), PII tokenization, and the PII policy that checks configured
// detail fields hold tokens and redacts raw values from records kept for inspection.
//
// Everything here is pure and safe for concurrent use once constructed; nothing does I/O except
// loading keys. Decoding never panics on hostile input: it returns an error whose Reason is a stable
// code, which the callers put on the quarantine record.
package event
