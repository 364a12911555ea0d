package fleet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kinesis-events/pipeline/internal/reshard"
)

// Pool is a fleet of worker processes that grows and shrinks, as an ECS service does: Start adds a
// worker, StopNewest stops the youngest with SIGTERM (it checkpoints and releases its leases).
// Workers are numbered from 1 in start order and a number is never reused, so every process has
// its own worker id (w<n>). Safe for concurrent use.
type Pool struct {
	env  *Env
	opts WorkerOptions // MetricsPort is ignored: each worker gets a free port

	mu      sync.Mutex
	next    int
	running []*PoolWorker
	stopped []*PoolWorker
}

// PoolWorker is one worker of a Pool.
type PoolWorker struct {
	*Proc
	N       int
	Port    int // metrics port on 127.0.0.1
	Started time.Time
	Stopped time.Time // zero while running
}

// NewPool returns an empty pool of workers started with opts.
func (e *Env) NewPool(opts WorkerOptions) *Pool { return &Pool{env: e, opts: opts, next: 1} }

// Start starts the next worker.
func (p *Pool) Start() (*PoolWorker, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	n := p.next
	p.next++
	p.mu.Unlock()
	o := p.opts
	o.MetricsPort = port
	proc, err := p.env.StartWorkerWith(n, o)
	if err != nil {
		return nil, err
	}
	w := &PoolWorker{Proc: proc, N: n, Port: port, Started: time.Now()}
	p.mu.Lock()
	p.running = append(p.running, w)
	p.mu.Unlock()
	return w, nil
}

// StopNewest stops the youngest running worker (SIGTERM, then SIGKILL after grace), after
// calling before on it (e.g. to scrape its metrics). It returns the stopped worker (nil when none
// ran) and the exit error of one that had to be killed.
func (p *Pool) StopNewest(grace time.Duration, before func(*PoolWorker)) (*PoolWorker, error) {
	p.mu.Lock()
	if len(p.running) == 0 {
		p.mu.Unlock()
		return nil, nil
	}
	w := p.running[len(p.running)-1]
	p.running = p.running[:len(p.running)-1]
	p.mu.Unlock()
	if before != nil {
		before(w)
	}
	err := w.Stop(grace)
	p.mu.Lock()
	w.Stopped = time.Now()
	p.stopped = append(p.stopped, w)
	p.mu.Unlock()
	return w, err
}

// Running lists the running workers, oldest first.
func (p *Pool) Running() []*PoolWorker {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*PoolWorker(nil), p.running...)
}

// Size is the number of running workers.
func (p *Pool) Size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.running)
}

// Exited returns a running worker that exited by itself, if any (a crash: the pool did not stop it).
func (p *Pool) Exited() *PoolWorker {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.running {
		select {
		case <-w.Done():
			return w
		default:
		}
	}
	return nil
}

// StopAll stops every running worker, newest first, calling before on each.
func (p *Pool) StopAll(grace time.Duration, before func(*PoolWorker)) []error {
	var errs []error
	for {
		w, err := p.StopNewest(grace, before)
		if w == nil {
			return errs
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", w.Name, err))
		}
	}
}

// OpenShards counts a stream's open shards.
func OpenShards(ctx context.Context, kin reshard.Lister, stream string) (int, error) {
	all, err := reshard.ListAll(ctx, kin, stream)
	if err != nil {
		return 0, err
	}
	return len(reshard.OpenRanges(all)), nil
}

// KinesisEndpoint replaces AWS_ENDPOINT_URL_KINESIS in env with url (every process started with
// the result talks to Kinesis through url, e.g. a fault proxy).
func KinesisEndpoint(env []string, url string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if strings.HasPrefix(kv, "AWS_ENDPOINT_URL_KINESIS=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "AWS_ENDPOINT_URL_KINESIS="+url)
}
