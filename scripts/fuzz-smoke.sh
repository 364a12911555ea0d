#!/usr/bin/env bash
# fuzz-smoke.sh runs every fuzz target of the trust boundary briefly, one after the other, for CI:
# decoding (event.DecodeRaw, event.ParseDetail), canonicalisation (event.AppendCanonicalJSON),
# signing and verification, the PII policy, the forwarder's forward/quarantine decision and its JSON
# validator (against encoding/json.Valid), and the worker's verify stage.
#
#   scripts/fuzz-smoke.sh                 each target for 10s (FUZZTIME), one fuzzing process (FUZZPARALLEL)
#   FUZZTIME=10m scripts/fuzz-smoke.sh    a longer local run
#
# A target that finds a failure stops the script with go test's exit status; the failing input is
# written under the package's testdata/fuzz/<Target>/ and, once committed, is replayed by every plain
# `go test` as a regression seed.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-10s}"
parallel="${FUZZPARALLEL:-1}"
targets=(
	"./event FuzzDecodeRaw"
	"./event FuzzParseDetail"
	"./event FuzzCanonicalJSON"
	"./event FuzzVerify"
	"./event FuzzPIIRedact"
	"./forwarder FuzzPrepare"
	"./forwarder FuzzValidJSON"
	"./processors FuzzDecodeRecord"
)
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "== $pkg $name ($fuzztime)"
	# A short minimisation budget: in a brief run, time spent shrinking new inputs is time not fuzzing.
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s -parallel "$parallel" "$pkg"
done
