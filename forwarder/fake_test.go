package forwarder

import (
	"github.com/kinesis-events/pipeline/internal/kinesisfake"
)

// fakeRecord is one record as a stream holds it: what the tests read back from the fake
// (internal/kinesisfake) and from kinesalite.
type fakeRecord struct {
	key  string
	data []byte
}

// written returns the records kin accepted on stream, in write order.
func written(kin *kinesisfake.Fake, stream string) []fakeRecord {
	var out []fakeRecord
	for _, r := range kin.Records(stream) {
		out = append(out, fakeRecord{key: r.Key, data: r.Data})
	}
	return out
}
