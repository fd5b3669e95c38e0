#!/usr/bin/env bash
# The operator's main job, end to end on the local test ground: start a real
# kube-apiserver and the AWS emulator, install the CRD, run the operator, apply every
# backend of samples/, wait until all are Ready, print the published ConfigMap and a
# summary of the AWS resources (read back independently), and stop everything.
#
#   scripts/demo.sh            (KEEP_TESTGROUND=1 keeps the ground's directory and logs)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
source "$here/lib.sh"
cd "$root"

use_cargo
log "building the operator (release)"
cargo build --locked --release --bin tfstate-operator
operator="$CARGO_TARGET_DIR/release/tfstate-operator"

dir="$("$here/testground-up.sh")"
venv="$("$here/install-moto.sh" | tail -n1)"
op_pid=""
cleanup() {
  [ -n "$op_pid" ] && kill "$op_pid" 2>/dev/null && wait "$op_pid" 2>/dev/null
  "$here/testground-down.sh" "$dir"
}
trap cleanup EXIT
set -a
# shellcheck disable=SC1091
. "$dir/env"
set +a

"$venv/bin/python" "$here/demo/demo.py" "$dir/env" prepare
metrics_port=$(free_port)
log "starting the operator (log: $dir/logs/operator.log, metrics: http://127.0.0.1:$metrics_port/metrics)"
"$operator" run --default-region "$AWS_REGION" --resync-interval 30s \
  --metrics-addr "127.0.0.1:$metrics_port" --health-addr "127.0.0.1:$metrics_port" >"$dir/logs/operator.log" 2>&1 &
op_pid=$!
wait_until 30 operator curl -sf "http://127.0.0.1:$metrics_port/readyz" || die "the operator did not start: $(tail -n 20 "$dir/logs/operator.log")"

status=0
"$venv/bin/python" "$here/demo/demo.py" "$dir/env" apply || status=$?
echo
echo "--- the operator's AWS calls so far (tfstate_aws_calls_total) ---"
curl -sf "http://127.0.0.1:$metrics_port/metrics" | awk '/^tfstate_aws_calls_total/ { split($1, a, "operation=\""); split(a[2], b, "\""); op[b[1]] += $2; n += $2 }
  END { for (o in op) if (o ~ /^(Get|List|Describe|Head)/) r += op[o]; else w += op[o]; printf "%d calls: %d reads, %d writes\n", n, r, w }'
[ $status -eq 0 ] && log "demo finished: every sample backend is Ready" || log "demo failed (operator log: $dir/logs/operator.log)"
exit $status
