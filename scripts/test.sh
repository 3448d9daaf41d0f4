#!/usr/bin/env bash
# The test command: set-up, formatting and lint checks, every test of both
# workspaces in one (dev) profile, then the end-to-end runs: the dataplane demo's
# ping matrix, the REST API under
# a real openstacksdk and openstack CLI, the benchmark runner's smoke mode, and
# the short Jepsen-style fault run (about 5 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all -- --check
(cd jepsen && cargo fmt --all -- --check)
cargo clippy --workspace --all-targets -- -D warnings
(cd jepsen && cargo clippy --workspace --all-targets -- -D warnings)
cargo test --workspace --no-fail-fast
# The Linux dataplane demo (root) with the `alcor` just built: one round of its
# ping matrix must match its policy.
ALCOR_BIN="${CARGO_TARGET_DIR:-target}/debug/alcor" ./scripts/run.sh --dataplane --rounds 1
# The node test that needs a mutation switch in the binary (the workspace run
# above builds `alcor` without them and checks that it refuses them).
cargo test -p alcor-node --features unsafe-mutations --no-fail-fast --test it \
  kill_9_with_a_buffered_wal_loses_acknowledged_writes_when_fsync_is_skipped
(cd jepsen && cargo test --workspace --no-fail-fast)
# The REST API driven by a real openstacksdk and openstack CLI from PyPI against a
# 3-process cluster.
./rest-gateway/tests/openstacksdk_smoke.sh
# The benchmark runner end to end against Alcor-RS, etcd and OVN (figures not checked).
./benches/run.sh --smoke --debug
# Offline checks of deploy/ (Kubernetes schemas, the flags it passes against the
# `alcor` binary built above, the systemd unit, the Dockerfile, a boot of the
# StatefulSet's command lines).
./deploy/check.sh
# Black-box faults: real processes in network namespaces, nemeses, checker.
./jepsen/run-short.sh
