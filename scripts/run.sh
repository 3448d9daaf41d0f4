#!/usr/bin/env bash
# The main job: builds Alcor-RS and starts a local 3-node cluster with simulated
# host agents; data lives in ./.alcor-data (reused on the next run). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec cargo run -q -p alcor-node --bin alcor -- dev "$@"
