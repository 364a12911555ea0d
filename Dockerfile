# syntax=docker/dockerfile:1
# The worker image: static `worker` and `kclctl` binaries on alpine (CA
# certificates for TLS to AWS, busybox wget for the /readyz health check),
# running as a non-root user. Build for the fleet's architecture with
#   docker build --platform linux/arm64 -t kinesis-events-worker .
# (`cdk deploy` does exactly that for the image asset). The builder runs the
# same `go build` flags the Makefile uses, so `make build` checks them here.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH=arm64
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags='-s -w' -o /out/worker ./cmd/worker \
 && GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags='-s -w' -o /out/kclctl ./cmd/kclctl

FROM alpine:3.22
RUN apk add --no-cache ca-certificates \
 && addgroup -S -g 10001 pipeline \
 && adduser -S -D -H -u 10001 -G pipeline pipeline
COPY --from=build /out/worker /out/kclctl /usr/local/bin/
USER 10001:10001
EXPOSE 9090
ENV METRICS_ADDR=:9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["wget", "-q", "-T", "3", "-O", "/dev/null", "http://127.0.0.1:9090/readyz"]
ENTRYPOINT ["/usr/local/bin/worker"]
