#!/usr/bin/env bash
# Benchmark of the operator on a fresh local test ground:
#   scripts/bench.sh [N] [extra arguments of examples/bench.rs, e.g. --resync 30]
#
# Builds the operator and the benchmark in release mode, starts a fresh test ground
# (kube-apiserver + the moto AWS emulator), runs the benchmark with N backends (default
# 200) and always stops the ground again. It creates N TerraformStateBackend objects and
# prints the time until all are Ready, AWS calls per create and per resync, Kubernetes
# writes per resync, the operator's peak RSS, the emulator's floor for the same AWS calls
# and PASS/FAIL against each target; then issue 9's steady-state figures: peak and mean AWS
# request rate per service over the steady-state window, RSS per backend (pass
# --rss-baseline N:BYTES, printed by a run at another N, for the growth between the two),
# and with --faults RATE (e.g. 0.1) the creation of N more backends through the test
# ground's fault-injecting endpoint: requests per create and their amplification against the
# fault-free creation of the same run. KEEP_TESTGROUND=1 keeps the ground's directory (its
# logs) after stopping it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
source "$here/lib.sh"
cd "$root"

count="${1:-200}"
[ $# -gt 0 ] && shift
[[ "$count" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number of backends, got '$count' (usage: scripts/bench.sh [N] [bench args])"

use_cargo

log "cargo build --release (operator and benchmark)"
cargo build --locked --release --bin tfstate-operator --example bench || die "the release build failed"
operator_bin="$CARGO_TARGET_DIR/release/tfstate-operator"
bench_bin="$CARGO_TARGET_DIR/release/examples/bench"
[ -x "$operator_bin" ] || die "no operator binary at $operator_bin after the build"
[ -x "$bench_bin" ] || die "no benchmark binary at $bench_bin after the build"

dir="$("$here/testground-up.sh")" || die "the test ground did not start (see the messages above)"
# Always stop the ground, whatever happens to the benchmark.
trap '"$here/testground-down.sh" "$dir"' EXIT
set -a
# shellcheck disable=SC1091
. "$dir/env"
set +a

log "benchmark: $count backends"
"$bench_bin" --count "$count" --operator-bin "$operator_bin" "$@"
