package infra

// A copy of the default resource names in the main module's internal/names/names.go, which this
// module (a separate Go module) cannot import. TestNamesMatchTheMainModule parses that file and
// fails when this copy differs. The stack prefixes every one of them with its stage
// (Config.Name).
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

// AnalyticsStream is the analytics stream of event type typ (before the stage prefix).
func AnalyticsStream(typ string) string { return AnalyticsPrefix + typ }
