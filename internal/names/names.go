// Package names holds the default names of the pipeline's AWS resources: streams, tables, the
// event bus and the fleet. It is the one definition the forwarder, the worker, kclctl, localrun and
// the tests share; the deploy module (its own Go module) keeps a copy that a test there compares
// with this file. A deployed stack may prefix every name with its stage; the binaries then take
// the names from their configuration.
package names

// Streams and tables.
const (
	RawStream        = "events-raw"
	QuarantineStream = "events-quarantine"
	DLQStream        = "events-dlq"
	LateStream       = "events-late"
	// OtherStream receives events of a type without a stream of its own.
	OtherStream = "analytics-other"
	// AnalyticsPrefix + event type is the analytics stream of a standard type.
	AnalyticsPrefix = "analytics-"

	LeaseTable  = "kcl-leases"
	DedupeTable = "events-dedupe"

	// EventBus is the EventBridge bus producers put to.
	EventBus = "customer-events"
	// ForwarderDLQ is the forwarder's failure queue (SQS): the dead-letter queue of the bus's
	// rule targets and the on-failure destination of the forwarder's asynchronous invocations.
	ForwarderDLQ = "kinesis-events-forwarder-dlq"
	// Application names the worker fleet (workers of one application share leases).
	Application = "events-pipeline"
)

// StandardTypes are the customer event types with an analytics stream of their own.
var StandardTypes = []string{"page_view", "product_view", "add_to_cart", "remove_from_cart", "checkout_started", "purchase"}

// AnalyticsStream is the analytics stream of event type typ.
func AnalyticsStream(typ string) string { return AnalyticsPrefix + typ }
