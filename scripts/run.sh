#!/usr/bin/env bash
# The main job: builds Alcor-RS and starts a local 3-node cluster with simulated
# host agents; data lives in ./.alcor-data (reused on the next run). Ctrl-C stops it.
# With --dataplane (root): the Linux dataplane demo of scripts/dataplane-demo.sh,
# a live ping matrix between ports in network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
for arg in "$@"; do
    [ "$arg" != "--dataplane" ] || exec ./scripts/dataplane-demo.sh "$@"
done
./scripts/setup.sh
exec cargo run -q -p alcor-node --bin alcor -- dev "$@"
