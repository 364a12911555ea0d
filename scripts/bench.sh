#!/usr/bin/env bash
# bench.sh is `make bench` (issue 7): the in-process benchmarks of the pipeline with their floor
# (processors, -cpu 1, one `go test -bench` run), then the end-to-end scenarios of package bench on
# the local stack (kinesalite + dynalite) with the real worker, forwarder and loadgen binaries, and
# one summary table with every target. Figures are ratios or per-core rates measured side by side;
# nothing here fails on a time. Bounded: the end-to-end part stops at BENCH_TIMEOUT (default 7m30s)
# and reports what finished; builds and the in-process part take one to two minutes.
#
#   scripts/bench.sh                      everything, full sizes
#   BENCH_QUICK=1 scripts/bench.sh        CI sizes (about two minutes)
#   BENCH_UPDATE_DOC=1 scripts/bench.sh   also rewrite the generated section of BENCHMARKS.md
#   BENCH_DIR=/tmp/b scripts/bench.sh     keep the binaries, every log and report.json in /tmp/b
#
# Needs the emulators (`make deps`). Exit status: non-zero when a scenario failed (a process died,
# an event was lost), not when a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${BENCH_DIR:-}"
if [[ -z "$out" ]]; then
	out="$(mktemp -d)"
	trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out/bin"

commit="$(git rev-parse --short HEAD)"
if ! git diff --quiet HEAD -- . ':(exclude)BENCHMARKS.md'; then
	commit="$commit+uncommitted"
fi

echo "== building the commands"
CGO_ENABLED=0 go build -trimpath -o "$out/bin/" ./cmd/worker ./cmd/forwarder ./cmd/loadgen ./bench/cmd/benchrun

echo "== in-process pipeline and floor (-cpu 1), ${BENCH_INPROCESS_RUNS:-5} runs"
# Separate runs, each measuring the pipeline and then its floor, so that their ratio is taken run by
# run on a machine whose speed drifts.
go test -c -o "$out/processors.test" ./processors/
: >"$out/inprocess.txt"
for _ in $(seq "${BENCH_INPROCESS_RUNS:-5}"); do
	(cd processors && "$out/processors.test" -test.run '^$' -test.bench '^(BenchmarkPipeline|BenchmarkFloor)$' \
		-test.cpu 1 -test.benchtime 30000x -test.timeout 5m) | grep '^Benchmark' | tee -a "$out/inprocess.txt"
done

echo "== end to end on the local stack"
args=(-bin "$out/bin" -dir "$out/run" -in-process "$out/inprocess.txt" -commit "$commit"
	-json "$out/report.json" -timeout "${BENCH_TIMEOUT:-7m30s}")
if [[ -n "${BENCH_QUICK:-}" ]]; then
	args+=(-quick -command "BENCH_QUICK=1 make bench")
fi
if [[ -n "${BENCH_UPDATE_DOC:-}" ]]; then
	args+=(-update-doc BENCHMARKS.md)
fi
"$out/bin/benchrun" "${args[@]}"
