#!/usr/bin/env bash
# The short Jepsen-style run (about 5 minutes, 3 nodes, every fault that
# applies): builds the `alcor` binary (main workspace) and the harness
# (jepsen workspace) under the shared cargo lock, then runs as root.
# Exit status is the harness's: 0 pass, 1 violation, 2 unknown/unrecovered/
# panic/unverified fault. Extra flags are passed to `alcor-jepsen run`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
if ! command -v iptables >/dev/null || ! command -v ip >/dev/null; then
  apt-get install -y iproute2 iptables
fi
# A mutation run (ALCOR_UNSAFE_MUTATION set) needs the switches, which only a
# build with the `unsafe-mutations` feature has; a default build refuses to
# start with the variable set.
features=()
if [ -n "${ALCOR_UNSAFE_MUTATION:-}" ]; then
  features=(--features unsafe-mutations)
fi
(cd "$root" && flock /tmp/cargo.lock cargo build -p alcor-node "${features[@]}")
(cd "$here" && flock /tmp/cargo.lock cargo build --release -p alcor-jepsen-harness)
cd "$here"
exec "${CARGO_TARGET_DIR:-$here/target}/release/alcor-jepsen" run \
  --alcor-bin "${CARGO_TARGET_DIR:-$root/target}/debug/alcor" \
  --nodes 3 --duration "${JEPSEN_DURATION:-200s}" --clients 2 --check-deadline 300s "$@"
