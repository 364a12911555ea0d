#!/usr/bin/env bash
# bench.sh is `make bench` (issues 7 and 15): the in-process benchmarks of the pipeline with their
# floor (processors, -cpu 1) and of the dedupe state's cost in write units (BenchmarkDedupeState,
# 10,000 and 1,000,000 customers), then the end-to-end scenarios of package bench on the local
# stack (kinesalite + dynalite) with the real worker, forwarder and loadgen binaries, one summary
# table with every target, the scale and cost models, and issue 15's six figures on lines of their
# own, then the hot customer's ladders (issue 13: its highest rate kept up with AGGREGATE_KEYS off
# and on). Figures are ratios or per-core rates measured side by side; nothing here fails on a time.
# Bounded: the end-to-end part stops at BENCH_TIMEOUT (default 12m; the hot ladders alone 6m) and
# reports what finished; builds and the in-process part take two to three minutes.
#
#   scripts/bench.sh                      everything, full sizes
#   BENCH_QUICK=1 scripts/bench.sh        CI sizes (about four minutes)
#   BENCH_UPDATE_DOC=1 scripts/bench.sh   also rewrite the generated section of BENCHMARKS.md
#   BENCH_DIR=/tmp/b scripts/bench.sh     keep the binaries, every log and report.json in /tmp/b
#   BENCH_PROFILE=1 scripts/bench.sh      the measured worker and forwarder processes write pprof CPU
#                                         and allocation profiles (in $BENCH_DIR/profiles); their top
#                                         entries are printed at the end. Profiling costs a little
#                                         CPU: take the report's figures from a run without it.
#   BENCH_ONLY=hot scripts/bench.sh       only these end-to-end scenarios (comma-separated, from
#                                         ingest,throughput,naive-dedupe,latency,backpressure,hot), no
#                                         in-process part
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
CGO_ENABLED=0 go build -trimpath -o "$out/bin/" ./cmd/worker ./cmd/forwarder ./cmd/loadgen ./bench/cmd/putloop ./bench/cmd/benchrun

if [[ -z "${BENCH_ONLY:-}" ]]; then
	echo "== in-process pipeline and floor (-cpu 1), ${BENCH_INPROCESS_RUNS:-5} runs"
	# Separate runs, each measuring the pipeline and then its floor, so that their ratio is taken run
	# by run on a machine whose speed drifts.
	go test -c -o "$out/processors.test" ./processors/
	: >"$out/inprocess.txt"
	for _ in $(seq "${BENCH_INPROCESS_RUNS:-5}"); do
		(cd processors && "$out/processors.test" -test.run '^$' -test.bench '^(BenchmarkPipeline|BenchmarkFloor)$' \
			-test.cpu 1 -test.benchtime 30000x -test.timeout 5m) | grep '^Benchmark' | tee -a "$out/inprocess.txt"
	done

	# The dedupe state's write units and round trips per event (issue 15): N events a few times the
	# customers, so that compactions are counted in.
	few=100000 many=2000000
	if [[ -n "${BENCH_QUICK:-}" ]]; then
		few=30000 many=1000000
	fi
	echo "== dedupe state: 10,000 customers ($few events), 1,000,000 customers ($many events)"
	(cd processors && "$out/processors.test" -test.run '^$' -test.bench '^BenchmarkDedupeState/customers=10000$' \
		-test.benchtime "${few}x" -test.timeout 5m) | grep '^Benchmark' | tee -a "$out/inprocess.txt"
	(cd processors && "$out/processors.test" -test.run '^$' -test.bench '^BenchmarkDedupeState/customers=1000000$' \
		-test.benchtime "${many}x" -test.timeout 8m) | grep '^Benchmark' | tee -a "$out/inprocess.txt"
else
	: >"$out/inprocess.txt"
fi

echo "== end to end on the local stack"
timeout="${BENCH_TIMEOUT:-12m}"
args=(-bin "$out/bin" -dir "$out/run" -in-process "$out/inprocess.txt" -commit "$commit"
	-json "$out/report.json" -timeout "$timeout")
if [[ -n "${BENCH_ONLY:-}" ]]; then
	args+=(-only "$BENCH_ONLY")
	if [[ -n "${BENCH_UPDATE_DOC:-}" ]]; then
		echo "BENCH_UPDATE_DOC with BENCH_ONLY would replace the whole generated section with some scenarios' figures" >&2
		exit 2
	fi
fi
if [[ -n "${BENCH_QUICK:-}" ]]; then
	args+=(-quick -command "BENCH_QUICK=1 make bench")
fi
if [[ -n "${BENCH_UPDATE_DOC:-}" ]]; then
	args+=(-update-doc BENCHMARKS.md)
fi
if [[ -n "${BENCH_PROFILE:-}" ]]; then
	args+=(-profile-dir "$out/profiles")
fi
status=0
"$out/bin/benchrun" "${args[@]}" || status=$?

if [[ -n "${BENCH_PROFILE:-}" ]]; then
	# The first worker of the throughput run, and the forwarder's first timed run (into events-raw).
	for p in worker-ingest-1 forwarder-events-raw; do
		for kind in cpu mem; do
			f="$out/profiles/$p.$kind.pprof"
			[[ -f "$f" ]] || continue
			echo "== profile $p ($kind): top entries"
			idx=()
			if [[ $kind == mem ]]; then idx=(-sample_index=alloc_space); fi
			go tool pprof -top -nodecount=25 "${idx[@]}" "$f" 2>/dev/null | sed -n '1,35p'
		done
	done
	echo "== profiles in $out/profiles (go tool pprof -http=: <file>); set BENCH_DIR to keep them"
fi
exit "$status"
