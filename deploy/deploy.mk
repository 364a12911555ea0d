# Deploy targets, included by the top-level Makefile (`include deploy/deploy.mk`);
# every recipe runs from the repository root. See deploy/README.md.

DEPLOY_DIR        := deploy
FORWARDER_LAMBDA  := bin/forwarder-lambda/bootstrap
CDK_STAMP         := $(DEPLOY_DIR)/node_modules/.installed
CDK               := ./node_modules/.bin/cdk
# Arguments for `cdk deploy`; stage, piiPaths and alarmEmail (or alarmWebhookUrl) are required, e.g.
# CDK_ARGS='-c stage=prod -c piiPaths=customer_id,properties.email -c alarmEmail=ops@example.com'.
# `make synth` reads the same settings from CDK_CONTEXT_JSON='{"stage":"prod",...}'.
CDK_ARGS          ?=

.PHONY: synth deploy deploy-test image-binaries forwarder-lambda bin/forwarder-lambda/bootstrap

# Phony so it always runs: go's build cache makes an unchanged rebuild cheap,
# and a stale binary must never reach `cdk deploy`.
bin/forwarder-lambda/bootstrap: ## Build the forwarder Lambda binary (linux/arm64, static, provided.al2023) for the CDK asset
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w' -o bin/forwarder-lambda/bootstrap ./cmd/forwarder

forwarder-lambda: bin/forwarder-lambda/bootstrap ## Build bin/forwarder-lambda/bootstrap, the forwarder Lambda binary (linux/arm64)

synth: $(FORWARDER_LAMBDA) ## Synthesise the template into deploy/cdk.out with cdk-nag checks (offline; needs CDK_CONTEXT_JSON with stage, piiPaths, alarmEmail)
	rm -rf $(DEPLOY_DIR)/cdk.out
	cd $(DEPLOY_DIR) && CDK_OUTDIR=cdk.out go run .

deploy: $(FORWARDER_LAMBDA) $(CDK_STAMP) ## Deploy the stage's stack with the pinned cdk CLI (CDK_ARGS='-c stage=... -c piiPaths=... -c alarmEmail=...'; needs Docker and a one-time `cdk bootstrap`)
	cd $(DEPLOY_DIR) && $(CDK) deploy --all --require-approval broadening $(CDK_ARGS)

# No -race: the stack code is single-threaded jsii calls, and a race build of
# aws-cdk-go costs minutes for nothing.
deploy-test: ## Test the stack: synth in-process; encryption, IAM in sync with the code's SDK calls, alarms, snapshot (UPDATE_GOLDEN=1 rewrites it), zero cdk-nag findings
	cd $(DEPLOY_DIR) && go test ./...

image-binaries: ## Build worker and kclctl exactly as the Dockerfile's builder stage does (linux/arm64, static) into bin/image/
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/image/worker ./cmd/worker
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/image/kclctl ./cmd/kclctl

$(CDK_STAMP): $(DEPLOY_DIR)/package.json $(DEPLOY_DIR)/package-lock.json
	cd $(DEPLOY_DIR) && npm ci --no-audit --no-fund
	touch $(CDK_STAMP)
