#!/usr/bin/env bash
# Installs the real Helm 4 engine for Python (helm-python-sdk: Helm's own Go SDK bundled as a
# native library, no `helm` binary needed) with pytest and PyYAML into a virtualenv cached
# under $TFSTATE_CACHE_DIR, keyed by the pinned versions. Prints the virtualenv path as the
# last line of stdout, so callers can write:  venv=$(scripts/install-helm.sh | tail -n1)
# The chart's tests (scripts/helm/test_chart.py) run with this venv's python.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# helm-python-sdk 0.2.2 bundles helm-c-sdk 0.2.1 over the Helm SDK v4.2.3.
HELM_PYTHON_VERSION="0.2.2"
VENV="$TFSTATE_CACHE_DIR/helm-venv-$HELM_PYTHON_VERSION"
REQUIREMENTS=("helm-python-sdk==$HELM_PYTHON_VERSION" "pytest==9.2.0" "PyYAML==6.0.3")
# The marker holds the requirements it was written for: a changed pin re-installs.
MARKER="$VENV/.tfstate-installed"
want=$(printf '%s\n' "${REQUIREMENTS[@]}")

ready() { [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$want" ] && [ -x "$VENV/bin/python" ]; }
ready && { echo "$VENV"; exit 0; }

# Two test runs starting on a cold machine must not build the same venv at once.
mkdir -p "$TFSTATE_CACHE_DIR"
exec 9>"$VENV.lock"
flock -w 1200 9 || die "timed out waiting for another install-helm.sh (lock $VENV.lock)"
ready && { echo "$VENV"; exit 0; }

command -v python3 >/dev/null || apt_install python3
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3 has no working venv/ensurepip module"

log "installing helm-python-sdk $HELM_PYTHON_VERSION into $VENV (once per machine)"
# A half-built venv from an interrupted run is not trusted: start over.
rm -rf "$VENV"
python3 -m venv "$VENV" >&2 || die "python3 -m venv $VENV failed"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input --timeout 60 --retries 2)
timeout 900 "${pip[@]}" install -q "${REQUIREMENTS[@]}" >&2 \
  || { rm -rf "$VENV"; die "pip install ${REQUIREMENTS[*]} failed (or took over 15 minutes)"; }
# Import from / (never from inside the package folder: its logging.py shadows the stdlib's).
(cd / && "$VENV/bin/python" -c 'import helm_python, yaml, pytest; print(helm_python.helm_sdk_version())') >&2 \
  || { rm -rf "$VENV"; die "helm-python-sdk $HELM_PYTHON_VERSION installed but its native library does not load"; }

printf '%s\n' "$want" >"$MARKER"
log "helm-python-sdk $HELM_PYTHON_VERSION ready"
echo "$VENV"
