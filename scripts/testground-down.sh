#!/usr/bin/env bash
# Stops every process that scripts/testground-up.sh started in DIR (by the PIDs it
# recorded, with their process groups), then removes DIR unless KEEP_TESTGROUND=1.
#
#   scripts/testground-down.sh DIR
set -uo pipefail
dir="${1:?usage: testground-down.sh DIR}"
[ -f "$dir/pids" ] || { echo "no test ground in $dir" >&2; exit 0; }

# Stop in reverse order of start (moto and the controller-manager before the apiserver
# before etcd), politely first.
tac "$dir/pids" | while read -r name pid; do
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || continue
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    echo "killed $name ($pid)" >&2
  fi
done
: >"$dir/pids"
if [ "${KEEP_TESTGROUND:-0}" != 1 ]; then rm -rf "$dir"; fi
