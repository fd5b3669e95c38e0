#!/usr/bin/env bash
# Stops, starts or restarts one process of a running test ground, with the very command
# line (ports, data directory, certificates) that scripts/testground-up.sh recorded in
# DIR/cmd/NAME, so that clients configured from DIR/env reconnect to it.
#
#   scripts/testground-ctl.sh DIR stop|start|restart NAME
#
# NAME: etcd, kube-apiserver, faults (the fault proxy) or moto. moto keeps its state in
# memory: a restart comes back EMPTY, every bucket, key, table and role lost (the chaos test
# of an emulator restart wants exactly that: everything recreated, once). `start` waits until NAME
# answers again (as testground-up.sh did) and updates DIR/pids, so that
# scripts/testground-down.sh still stops everything. etcd keeps its data directory; the
# fault proxy comes back with no rules and zeroed statistics.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"

usage="usage: testground-ctl.sh DIR stop|start|restart etcd|kube-apiserver|faults|moto"
dir="${1:?$usage}"
action="${2:?$usage}"
name="${3:?$usage}"
case "$name" in
  etcd | kube-apiserver | faults | moto) ;;
  *) die "$usage" ;;
esac
[ -f "$dir/cmd/$name" ] || die "no recorded command for $name in $dir/cmd (started by an older testground-up.sh?)"

# The PID recorded for NAME in DIR/pids (empty when stopped).
pid_of() { awk -v n="$name" '$1 == n && $2 != "-" { print $2 }' "$dir/pids"; }

# Rewrites NAME's line of DIR/pids in place, keeping the start order that
# testground-down.sh stops in reverse; a stopped process keeps its line with PID "-"
# (which testground-down.sh skips: kill fails on it).
set_pid() {
  local tmp="$dir/pids.tmp"
  awk -v n="$name" -v p="$1" '$1 == n { print n, p; found = 1; next } { print } END { if (!found) print n, p }' \
    "$dir/pids" >"$tmp"
  mv "$tmp" "$dir/pids"
}

stop() {
  local pid
  pid=$(pid_of)
  [ -n "$pid" ] || { log "$name is not running"; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    log "killed $name ($pid)"
  fi
  set_pid -
  log "$name stopped"
}

start() {
  local pid logfile cmd ready ready_seconds
  pid=$(pid_of)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    log "$name is already running ($pid)"
    return 0
  fi
  # shellcheck disable=SC1090
  source "$dir/cmd/$name"
  # Appending: the log of the previous run stays readable above.
  setsid "${cmd[@]}" >>"$logfile" 2>&1 </dev/null &
  set_pid "$!"
  wait_until "$ready_seconds" "$name" "${ready[@]}" || die "$name did not answer within $ready_seconds s (see $logfile)"
}

case "$action" in
  stop) stop ;;
  start) start ;;
  restart) stop; start ;;
  *) die "$usage" ;;
esac
