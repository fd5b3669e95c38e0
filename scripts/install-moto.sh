#!/usr/bin/env bash
# Installs the moto AWS emulator (server flavour) into a virtualenv cached under
# $TFSTATE_CACHE_DIR, keyed by the pinned moto version. Prints the virtualenv path as the
# last line of stdout, so callers can write:  venv=$(scripts/install-moto.sh)
# Start moto through scripts/moto/launcher.py (see scripts/moto/README.md), not moto_server:
# stock moto evaluates S3 bucket policies wrongly (shared/docs/test-ground.md).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# launcher.py patches moto internals and checks them at start-up: bump the pin and the
# launcher together (the behaviour was verified on 5.2.5).
MOTO_VERSION="5.2.5"
VENV="$TFSTATE_CACHE_DIR/moto-venv-$MOTO_VERSION"
# pytest runs scripts/moto/test_launcher.py; boto3 and cryptography come with moto[server].
REQUIREMENTS=("moto[server]==$MOTO_VERSION" "pytest==9.2.0")
# The marker holds the requirements it was written for: a changed pin re-installs.
MARKER="$VENV/.tfstate-installed"
want=$(printf '%s\n' "${REQUIREMENTS[@]}")

ready() { [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$want" ] && [ -x "$VENV/bin/python" ]; }
ready && { echo "$VENV"; exit 0; }

# Two test runs starting on a cold machine must not build the same venv at once.
mkdir -p "$TFSTATE_CACHE_DIR"
exec 9>"$VENV.lock"
flock -w 1200 9 || die "timed out waiting for another install-moto.sh (lock $VENV.lock)"
ready && { echo "$VENV"; exit 0; }

command -v python3 >/dev/null || apt_install python3
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3 has no working venv/ensurepip module"

log "installing moto $MOTO_VERSION into $VENV (once per machine)"
# A half-built venv from an interrupted run is not trusted: start over.
rm -rf "$VENV"
python3 -m venv "$VENV" >&2 || die "python3 -m venv $VENV failed"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input --timeout 60 --retries 2)
timeout 900 "${pip[@]}" install -q "${REQUIREMENTS[@]}" >&2 \
  || { rm -rf "$VENV"; die "pip install ${REQUIREMENTS[*]} failed (or took over 15 minutes)"; }
"$VENV/bin/python" -c 'import moto.server, moto.iam.access_control, boto3, pytest' \
  || { rm -rf "$VENV"; die "moto $MOTO_VERSION installed but does not import"; }

printf '%s\n' "$want" >"$MARKER"
log "moto $MOTO_VERSION ready"
echo "$VENV"
