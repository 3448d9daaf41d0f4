#!/usr/bin/env bash
# The test command: set-up, formatting and lint checks, then every test of the
# workspace in one (dev) profile.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast
# The REST API driven by a real openstacksdk from PyPI against a 3-process cluster.
./rest-gateway/tests/openstacksdk_smoke.sh
