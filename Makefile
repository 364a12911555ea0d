# Run `make help` for the targets. Everything runs on loopback against local emulators; nothing here
# talks to AWS except `make deploy`.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
CMDS  := worker forwarder kclctl loadgen localrun
GOFLAGS_TEST ?= -race -count=1
# staticcheck, pinned; `go run` fetches it through the module proxy, so nothing is installed by hand.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Flags for `make run`, e.g. make run RUN_ARGS="--events 50000 --workers 3"
RUN_ARGS ?=
# Flags for `make spike`, e.g. make spike SPIKE_ARGS="--profile 100:30s,100-1000:30s,1000:2m,1000-100:30s,100:3m"
SPIKE_ARGS ?=

.PHONY: help deps build test test-short lint bench run spike chaos fuzz fuzz-smoke clean

help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.package-lock.json ## install the local emulators (npm) and Go modules
	$(GO) mod download

build: ## build every command into bin/ (static binaries)
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

run: deps build ## run the whole pipeline on the local stack with live progress (RUN_ARGS="--events N ...")
	$(BIN)/localrun --bin $(BIN) $(RUN_ARGS)

spike: deps build ## Black Friday on the local stack: x10 spike under Kinesis write limits, autoscaler and fleet follow (~10 min, bounded; SPIKE_ARGS)
	$(BIN)/localrun --spike --bin $(BIN) $(SPIKE_ARGS)

test: deps ## lint, then unit, integration, end-to-end (bounded chaos subset), fuzz smoke, benchmarks once, deploy tests
	$(MAKE) lint
	$(GO) test $(GOFLAGS_TEST) -timeout 25m ./...
	$(MAKE) fuzz-smoke
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 15m ./bench/ ./forwarder/ ./internal/loadgen/ ./processors/
	$(MAKE) deploy-test

chaos: deps ## every chaos scenario (docs/operations.md#chaos-and-testing) and the 1->3->2 balance run, bounded (E2E_KEEP_LOGS=dir keeps the worker logs)
	E2E_CHAOS=1 $(GO) test -count=1 -timeout 45m -run '^(TestChaos|TestOpsBalance)' -v ./e2e/

fuzz-smoke: ## run each fuzz target briefly (FUZZTIME=20000x inputs each; a count, not a duration: go.dev/issue/75804)
	scripts/fuzz-smoke.sh

fuzz: ## run each fuzz target for 10 minutes
	FUZZTIME=10m scripts/fuzz-smoke.sh

bench: deps ## issue 7 benchmarks: in-process pipeline vs floor, end to end on the local stack, summary table, the hot customer's ladders (about 15 min)
	scripts/bench.sh

test-short: deps ## the fast tests only (no binary-level end-to-end runs)
	$(GO) test $(GOFLAGS_TEST) -short ./...

lint: ## gofmt, go vet and staticcheck (pinned: $(STATICCHECK)) on the main module; 0 findings
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

clean: ## remove build output
	rm -rf $(BIN) .run

-include deploy/deploy.mk
