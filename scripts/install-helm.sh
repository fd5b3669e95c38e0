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
# Imported from / (never from inside a package folder: helm_python's logging.py shadows
# the standard library's).
ensure_venv "$VENV" 'import helm_python, yaml, pytest; print(helm_python.helm_sdk_version())' "${REQUIREMENTS[@]}"
echo "$VENV"
