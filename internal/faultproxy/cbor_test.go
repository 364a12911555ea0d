package faultproxy

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/aws/smithy-go/encoding/cbor"
)

// TestCBORTranscoding: a CBOR request reads as the JSON request Kinesis would take (bytes as
// base64, tags read through, negative numbers kept), a JSON answer as its CBOR, and what is not
// CBOR or JSON is an error rather than a guess.
func TestCBORTranscoding(t *testing.T) {
	req := cbor.Encode(cbor.Map{
		"StreamName": cbor.String("raw"),
		"Records":    cbor.List{cbor.Map{"Data": cbor.Slice{0x00, 0xff, 'a'}, "PartitionKey": &cbor.Tag{ID: 32, Value: cbor.String("k")}}},
		"N":          cbor.NegInt(5), "F": cbor.Float64(1.5), "Z": &cbor.Nil{}, "B": cbor.Bool(true),
	})
	got, err := cborRequestAsJSON(req)
	if err != nil {
		t.Fatal(err)
	}
	var v, want any
	_ = json.Unmarshal(got, &v)
	_ = json.Unmarshal([]byte(`{"StreamName":"raw","Records":[{"Data":"AP9h","PartitionKey":"k"}],"N":-5,"F":1.5,"Z":null,"B":true}`), &want)
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("%s", got)
	}
	for _, bad := range [][]byte{[]byte(`{"StreamName":"raw"}`), {0xbf, 0x61}, nil} {
		if _, err := cborRequestAsJSON(bad); err == nil {
			t.Errorf("%q read as a CBOR request", bad)
		}
	}

	ans, err := jsonAnswerAsCBOR([]byte(`{"FailedRecordCount":1,"Records":[{"SequenceNumber":"49","ShardId":"s"},{"ErrorCode":"E","ErrorMessage":null}],"X":-2,"Y":0.5,"T":true}`))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := cbor.Decode(ans)
	if err != nil {
		t.Fatal(err)
	}
	wantAns := cbor.Map{"FailedRecordCount": cbor.Uint(1), "Records": cbor.List{
		cbor.Map{"SequenceNumber": cbor.String("49"), "ShardId": cbor.String("s")},
		cbor.Map{"ErrorCode": cbor.String("E"), "ErrorMessage": &cbor.Nil{}}},
		"X": cbor.NegInt(2), "Y": cbor.Float64(0.5), "T": cbor.Bool(true)}
	if !reflect.DeepEqual(dec, cbor.Value(wantAns)) {
		t.Fatalf("answer as CBOR: %#v", dec)
	}
	for _, bad := range []string{`<html>`, `{"a":1} {"b":2}`, ``} {
		if _, err := jsonAnswerAsCBOR([]byte(bad)); err == nil {
			t.Errorf("%q transcoded", bad)
		}
	}
}
