#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a warm one:
#   formatting and lints, unit tests, the emulator launcher's own tests, and the
#   integration tests against a real kube-apiserver and the AWS emulator, which this
#   script starts on free loopback ports and stops again (also on failure).
#
#   scripts/test.sh [extra cargo test arguments, e.g. a test name filter]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
source "$here/lib.sh"
cd "$root"

use_cargo

log "cargo fmt --check"
cargo fmt --all -- --check || die "code is not formatted: run cargo fmt"
log "cargo clippy -D warnings"
cargo clippy --locked --all-targets --features failpoints -- -D warnings

"$here/install-kube.sh"
"$here/install-terraform-inspect.sh"
venv="$("$here/install-moto.sh" | tail -n1)"
log "tests of the moto launcher, the fault proxy and the demo's output check"
PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -m pytest -p no:cacheprovider -q "$here/moto" "$here/faults" "$here/demo"
helm_venv="$("$here/install-helm.sh" | tail -n1)"
log "Helm chart: strict lint, rendering, values schema, chart CRDs = crds/"
PYTHONDONTWRITEBYTECODE=1 "$helm_venv/bin/python" -m pytest -p no:cacheprovider -q "$here/helm" -m "not ground"

# Build before starting the ground, so that it does not idle through a cold compile.
# `failpoints` compiles in the crash-test hooks (and the crash-safety test that uses them).
features=(--features failpoints)
cargo test --locked "${features[@]}" --no-run
dir="$("$here/testground-up.sh")"
trap '"$here/testground-down.sh" "$dir"' EXIT
set -a
# shellcheck disable=SC1091
. "$dir/env"
set +a
export TFSTATE_TESTGROUND_ENV="$dir/env"
log "Helm chart installed on the test ground; the operator runs with the chart's RBAC only"
PYTHONDONTWRITEBYTECODE=1 TFSTATE_OPERATOR_BIN="$CARGO_TARGET_DIR/debug/tfstate-operator" \
  "$helm_venv/bin/python" -m pytest -p no:cacheprovider -q "$here/helm" -m ground
log "cargo test (unit, CRD, and integration tests on the test ground)"
cargo test --locked "${features[@]}" "$@"
