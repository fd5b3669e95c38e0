# Shared helpers for the test-ground scripts. Sourced, never executed.
# shellcheck shell=bash

# Heavy builds (kube-apiserver, the moto virtualenv) live here, outside the repository,
# keyed by version, so that a warm machine starts the test ground in seconds.
TFSTATE_CACHE_DIR="${TFSTATE_CACHE_DIR:-$HOME/.cache/tfstate-operator}"
KUBE_VERSION="v1.20.2"
KUBE_DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
KUBE_BIN_DIR="$TFSTATE_CACHE_DIR/kube-$KUBE_VERSION/bin"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run as root when we are root, through sudo otherwise (a developer's laptop).
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

_apt_updated=""
# apt_install PKG...: install the Debian packages that are not installed yet.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand"
  if [ -z "$_apt_updated" ]; then
    log "apt-get update"
    as_root apt-get update -qq >&2 || die "apt-get update failed"
    _apt_updated=1
  fi
  log "apt-get install ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || die "could not install Debian packages: ${missing[*]}"
}

# free_port: print a TCP port on 127.0.0.1 that nobody listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_until SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds, or fail clearly.
wait_until() {
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
  log "$what is up"
}

# ensure_venv VENV CHECK REQUIREMENT...: make VENV a virtualenv holding exactly the pinned
# REQUIREMENTS, unless it already does (a marker records what it was built for, so a changed
# pin re-installs). CHECK is Python code run from / that must succeed once installed (it
# proves the packages import). Safe when two runs start at once on a cold machine.
ensure_venv() {
  local venv=$1 check=$2
  shift 2
  local marker="$venv/.tfstate-installed" want
  want=$(printf '%s\n' "$@")
  _venv_ready() { [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ] && [ -x "$venv/bin/python" ]; }
  _venv_ready && return 0
  mkdir -p "$(dirname "$venv")"
  exec 9>"$venv.lock"
  flock -w 1200 9 || die "timed out waiting for another install of $venv (lock $venv.lock)"
  _venv_ready && return 0

  command -v python3 >/dev/null || apt_install python3
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3 has no working venv/ensurepip module"
  log "installing $* into $venv (once per machine)"
  # A half-built venv from an interrupted run is not trusted: start over.
  rm -rf "$venv"
  python3 -m venv "$venv" >&2 || die "python3 -m venv $venv failed"
  local pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input --timeout 60 --retries 2)
  timeout 900 "${pip[@]}" install -q "$@" >&2 \
    || { rm -rf "$venv"; die "pip install $* failed (or took over 15 minutes)"; }
  (cd / && "$venv/bin/python" -c "$check") >&2 \
    || { rm -rf "$venv"; die "$* installed into $venv but does not import"; }
  printf '%s\n' "$want" >"$marker"
  exec 9>&-
}

# use_cargo: fail clearly without cargo, and keep the heavy Rust build outside the
# repository (shared by test, demo and benchmark) so that fresh clones build warm.
use_cargo() {
  command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (rustup) first"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TFSTATE_CACHE_DIR/target}"
}
