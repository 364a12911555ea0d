#!/usr/bin/env bash
# fuzz-smoke.sh runs every fuzz target of the trust boundary briefly, one after the other, for CI:
# decoding (event.DecodeRaw, event.ParseDetail), canonicalisation (event.AppendCanonicalJSON) and
# the validation-only walk held to it (FuzzSkipValue), the forwarder's early check of a record from
# its detail held to event.CheckRaw (FuzzCheckDetail), signing and verification, the PII policy, the
# forwarder's forward/quarantine decision and its JSON validator (against encoding/json.Valid), and
# the worker's verify stage.
#
#   scripts/fuzz-smoke.sh                 each target for 20,000 inputs (FUZZTIME), one fuzzing process (FUZZPARALLEL)
#   FUZZTIME=10m scripts/fuzz-smoke.sh    a longer local run
#
# The smoke counts inputs, not seconds: with a duration, Go 1.26's fuzz coordinator can report a bare
# "context deadline exceeded" failure when the deadline passes while a starved worker is mid-input
# (go.dev/issue/75804, fixed in Go 1.27; it failed `make test` once here with FuzzPrepare on a
# loaded machine, no failing input written). A count has no deadline to race: a slow machine takes
# longer instead (20,000 inputs: 1-3 s a target on a quiet machine, under 20 s on a loaded one).
#
# A target that finds a failure stops the script with go test's exit status; the failing input is
# written under the package's testdata/fuzz/<Target>/ and, once committed, is replayed by every plain
# `go test` as a regression seed.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-20000x}"
parallel="${FUZZPARALLEL:-1}"
targets=(
	"./event FuzzDecodeRaw"
	"./event FuzzParseDetail"
	"./event FuzzCanonicalJSON"
	"./event FuzzSkipValue"
	"./event FuzzCheckDetail"
	"./event FuzzVerify"
	"./event FuzzPIIRedact"
	"./forwarder FuzzPrepare"
	"./forwarder FuzzValidJSON"
	"./forwarder FuzzDecodeEnvelope"
	"./internal/kinesiswire FuzzDecodeCBOR"
	"./processors FuzzDecodeRecord"
)
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "== $pkg $name ($fuzztime)"
	# A short minimisation budget: in a brief run, time spent shrinking new inputs is time not fuzzing.
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s -parallel "$parallel" "$pkg"
done
