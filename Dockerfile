# The worker image: static `worker` and `kclctl` binaries on alpine (busybox
# wget serves the /healthz liveness check), CA certificates for TLS to AWS,
# running as a non-root user. Build for the fleet's architecture with
#   docker build --platform linux/arm64 -t kinesis-events-worker .
# (`cdk deploy` does exactly that for the image asset; it needs BuildKit, the
# default builder since Docker 23). `make image-binaries` runs the builder
# stage's two `go build` commands outside Docker, so they are checked on every
# machine even where no Docker engine runs.

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

# No RUN in this stage: nothing executes on the target architecture while
# building, so an arm64 image builds on an x86 machine without emulation.
FROM alpine:3.22
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/worker /out/kclctl /usr/local/bin/
# A numeric non-root user; the binaries never look themselves up in /etc/passwd.
USER 10001:10001
EXPOSE 9090
ENV METRICS_ADDR=:9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["wget", "-q", "-T", "3", "-O", "/dev/null", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/worker"]
