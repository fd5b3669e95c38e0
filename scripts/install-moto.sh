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
ensure_venv "$VENV" 'import moto.server, moto.iam.access_control, boto3, pytest' "${REQUIREMENTS[@]}"
echo "$VENV"
