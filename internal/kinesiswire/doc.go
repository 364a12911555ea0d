// Package kinesiswire writes PutRecords requests and reads their answers for the SDK's Kinesis
// client, in place of the SDK's generic, schema-driven JSON codec, for the one call this project
// makes per record.
//
// The SDK's codec grows its buffer by doubling while it base64-encodes every record, copies the body
// once more when done, and allocates a pointer and a string for every field of every answered
// entry: under `make bench` that was about a fifth of the forwarder's CPU and over half its
// allocated bytes. This codec sizes the body exactly and writes it once, into a buffer of an earlier
// call that succeeded when there is one (Install adds the step that gives bodies back), and reads an
// answer with one string for the whole body that every field is a slice of.
//
// Everything else stays the SDK's: signing, retries, endpoints, error answers (any status other
// than 2xx is read by the SDK's codec), middleware. Install it on a client with Install; only
// PutRecords is affected, and a PutRecords input this codec does not cover (DryRun, StreamId) goes
// to the SDK's codec too. Its output is checked against the SDK's codec in this package's tests,
// and against kinesalite.
//
// InstallCBOR writes PutRecords in CBOR instead (application/x-amz-cbor-1.1), the encoding the AWS
// SDK for Java and the KPL use with Kinesis: the same members, a record's data as a byte string
// rather than base64 text, so the body is about a quarter smaller, needs no base64 pass, and
// signing hashes less. Kinesis answers such a call in CBOR; success answers are read here
// (DecodePutRecordsOutputCBOR), error answers are handed to the SDK's codec as the JSON they stand
// for, so that they become the same typed errors. The CBOR body holds exactly what the JSON body
// holds (TestRequestCBORIsTheJSONRequest), and a CBOR answer reads as its JSON form does, in any
// of CBOR's layouts (TestResponseCBORIsTheJSONResponse). The forwarder uses it.
package kinesiswire
