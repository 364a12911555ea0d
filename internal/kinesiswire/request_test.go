package kinesiswire

import (
	"encoding/json"
	"testing"

	"pgregory.net/rapid"
)

// TestScanRequestMatchesJSON: for any request this package encodes (byte for byte the SDK's, see
// TestRequestMatchesSDK), ScanPutRecordsRequest reads what encoding/json reads: the stream, each
// entry's keys and data length, and entry spans that decode to the same entries.
func TestScanRequestMatchesJSON(t *testing.T) {
	type entry struct {
		Data            []byte
		PartitionKey    string
		ExplicitHashKey string
	}
	rapid.Check(t, func(t *rapid.T) {
		in := genInput(t)
		body := string(AppendPutRecords(nil, in))
		got, err := ScanPutRecordsRequest(body)
		if err != nil {
			t.Fatalf("scan %s: %v", body, err)
		}
		var want struct {
			StreamName, StreamARN string
			Records               []entry
		}
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatal(err)
		}
		if got.StreamName != want.StreamName || got.StreamARN != want.StreamARN || len(got.Records) != len(want.Records) {
			t.Fatalf("scan %+v, json %+v", got, want)
		}
		if in.Records != nil {
			var arr []json.RawMessage
			if err := json.Unmarshal([]byte(body[got.RecordsStart:got.RecordsEnd]), &arr); err != nil || len(arr) != len(in.Records) {
				t.Fatalf("Records span %q: %v, %d entries", body[got.RecordsStart:got.RecordsEnd], err, len(arr))
			}
		}
		for i, e := range got.Records {
			w := want.Records[i]
			if e.PartitionKey != w.PartitionKey || e.ExplicitHashKey != w.ExplicitHashKey || e.DataLen != len(w.Data) {
				t.Fatalf("entry %d: scan %+v, json %+v (data %d bytes)", i, e, w, len(w.Data))
			}
			var span entry
			if err := json.Unmarshal([]byte(body[e.Start:e.End]), &span); err != nil || span.PartitionKey != w.PartitionKey ||
				string(span.Data) != string(w.Data) || span.ExplicitHashKey != w.ExplicitHashKey {
				t.Fatalf("entry %d span %q: %v", i, body[e.Start:e.End], err)
			}
		}
	})
}

func TestScanRequestMalformed(t *testing.T) {
	for _, body := range []string{``, `{`, `{"Records":[{"Data":"eA=="}`, `{"Records":[{"Data":"eA=="},]}`, `{"Records":{}}`, `{} x`, `[]`} {
		if _, err := ScanPutRecordsRequest(body); err == nil {
			t.Errorf("ScanPutRecordsRequest(%q) = nil error", body)
		}
	}
	req, err := ScanPutRecordsRequest(`{"StreamName":"s","Records":[]}`)
	if err != nil || req.StreamName != "s" || len(req.Records) != 0 {
		t.Fatalf("empty Records: %+v, %v", req, err)
	}
}
