package faultproxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinesis-events/pipeline/internal/faultproxy"
)

// TestMaxUpstream: with one slot, a second request waits for the first; when its client gives up
// while waiting, it is never sent upstream, and it is counted as shed.
func TestMaxUpstream(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	p, release, arrived := heldUpstream(t, ctx)
	call := func(ctx context.Context) error { return send(ctx, p, "DescribeStreamSummary") }
	first := make(chan error, 1)
	go func() { first <- call(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for arrived.Load() == 0 { // poll until the first holds the slot
		if time.Now().After(deadline) {
			t.Fatal("the first request never reached the upstream")
		}
		time.Sleep(5 * time.Millisecond)
	}
	short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
	err := call(short)
	stop()
	if err == nil {
		t.Fatal("the second request was answered while the only slot was held")
	}
	for p.Shed() == 0 { // the proxy notices the client left
		if time.Now().After(deadline) {
			t.Fatal("the abandoned request was not shed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := call(ctx); err != nil { // the slot is free again
		t.Fatal(err)
	}
	if n := arrived.Load(); n != 2 {
		t.Fatalf("%d requests reached the upstream, want 2: the abandoned one must never be sent", n)
	}
}

// TestMaxUpstreamTimes: the time a request waits for its slot and the time the upstream takes are
// summed per operation. One slot: the first request is held upstream while the second waits for
// the slot, for at least hold.
func TestMaxUpstreamTimes(t *testing.T) {
	const hold = 60 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	p, release, arrived := heldUpstream(t, ctx)
	const op = "DescribeStreamSummary"
	call := func() error { return send(ctx, p, op) }
	done := make(chan error, 2)
	go func() { done <- call() }()
	deadline := time.Now().Add(30 * time.Second)
	for arrived.Load() == 0 { // the first holds the slot
		if time.Now().After(deadline) {
			t.Fatal("the first request never reached the upstream")
		}
		time.Sleep(5 * time.Millisecond)
	}
	go func() { done <- call() }()
	for p.ByOperation()[op].Requests < 2 { // the second reached the proxy, and waits for the slot
		if time.Now().After(deadline) {
			t.Fatal("the second request never reached the proxy")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(hold) // the time being measured: the second waits while the first is held
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	c := p.ByOperation()[op]
	// The first was upstream for all of hold; the second waited for nearly all of it (from just
	// after it was counted).
	if c.Forwarded != 2 || c.Waited < hold/2 || c.Upstream < hold {
		t.Fatalf("counts %+v: want 2 forwarded, upstream at least %s and a wait of at least %s", c, hold, hold/2)
	}
}

// heldUpstream starts a proxy with one slot in front of an upstream that holds the first request
// it gets until release is closed; arrived counts the requests that reached the upstream.
func heldUpstream(t *testing.T, ctx context.Context) (p *faultproxy.Proxy, release chan struct{}, arrived *atomic.Int64) {
	t.Helper()
	release, arrived = make(chan struct{}), new(atomic.Int64)
	up := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == 1 {
			<-release // the first request holds the only slot
		}
		rw.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(up.Close)
	p, err := faultproxy.Start(ctx, faultproxy.Config{Upstream: up.URL, MaxUpstream: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, release, arrived
}

// send sends one request of Kinesis operation op through p and closes its answer.
func send(ctx context.Context, p *faultproxy.Proxy, op string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL(), strings.NewReader(`{"StreamName":"s"}`))
	if err != nil {
		return err
	}
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return err
}
