// Package worker runs one member of the KCL worker fleet. It is the only package that imports
// vmware-go-kcl-v2: it adapts the library's synchronous record-processor callbacks to the
// context-aware pipeline in package processors (processor.go), adapts the context-first lease
// store of package checkpoint to the library's Checkpointer (checkpointer.go, which owns the
// context the library's calls run under), injects its own AWS clients (with request timeouts), and
// serves /metrics, /healthz and /readyz.
//
// Delivery: at-least-once from Kinesis, made effectively-once by the pipeline's dedupe. A shard's
// checkpoint only moves to the pipeline's watermark (every record before it written, quarantined,
// dropped as a duplicate or dead-lettered). When a lease is lost the shard's processor stops at once
// and writes nothing more; the new owner replays from the checkpoint. On SIGTERM the worker stops
// fetching, finishes the in-flight batch within a bound, checkpoints and releases its leases.
package worker
