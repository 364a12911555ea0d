package event_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kinesis-events/pipeline/event"
)

// Example_signing is the worked example of docs/signing.md; the test keeps the document honest.
func Example_signing() {
	tk, _ := event.NewTokenizer([]byte("example-tokenizer-key-32-bytes!!"))
	ring, _ := event.NewKeyring(event.Key{ID: "k2026a", Secret: []byte("example-signing-secret-32-bytes!")})

	customer := tk.Token("customer", "customer-42")
	email := tk.Token("email", " Jane.Doe@Example.com ")
	fmt.Println("customer_id:", customer)
	fmt.Println("email:      ", email)

	d := &event.Detail{
		EventID:    "0f8c2a4e-6b1d-4c3e-9a57-2d7e1b9c4f10",
		CustomerID: customer,
		Seq:        42,
		OccurredAt: "2026-11-26T10:15:30.250Z",
		Properties: json.RawMessage(`{"sku": "A-1", "qty": 2.0, "price": 19.90, "email": "` + email + `", "note": "caf\u00e9 <b>", "tags": ["x", "y"]}`),
	}
	if err := ring.Sign("purchase", d, "k2026a"); err != nil {
		panic(err)
	}
	d.KeyID = "k2026a"
	in, _ := event.SigningInput(nil, "purchase", d)
	fmt.Printf("signing input:\n%s\n", in)
	fmt.Println("signature:", d.Signature)

	// What the worker does with the detail as sent.
	wire, _ := json.Marshal(d)
	parsed, err := event.ParseDetail(wire)
	if err != nil {
		panic(err)
	}
	fmt.Println("verify:", ring.Verify("purchase", parsed, time.Date(2026, 11, 26, 10, 15, 31, 0, time.UTC)))
	// Output:
	// customer_id: tok_aanfegjmoqlehrj2vacokxbloi
	// email:       tok_334ygrzlzoyenolr32pcueuksn
	// signing input:
	// kev1
	// purchase
	// 0f8c2a4e-6b1d-4c3e-9a57-2d7e1b9c4f10
	// tok_aanfegjmoqlehrj2vacokxbloi
	// 42
	// 2026-11-26T10:15:30.250Z
	// k2026a
	// {"email":"tok_334ygrzlzoyenolr32pcueuksn","note":"café <b>","price":19.9,"qty":2,"sku":"A-1","tags":["x","y"]}
	// signature: a5a222ff3e51f16f653d917b32c754efc5c32db7918784305f4020541c9d713c
	// verify: <nil>
}
