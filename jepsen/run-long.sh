#!/usr/bin/env bash
# The long Jepsen-style run: 5 nodes, every fault alone and in network+process
# pairs (--combined), duration from the first
# argument (default 30m). Same exit status as run-short.sh; the servers are a
# release build, as an operator runs them (five debug-build members on two
# cores are slow enough to miss the harness's 10 s election windows).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
duration="${1:-30m}"
shift || true
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
(cd "$root" && flock /tmp/cargo.lock cargo build --release -p alcor-node "${features[@]}")
(cd "$here" && flock /tmp/cargo.lock cargo build --release -p alcor-jepsen-harness)
cd "$here"
exec "${CARGO_TARGET_DIR:-$here/target}/release/alcor-jepsen" run \
  --alcor-bin "${CARGO_TARGET_DIR:-$root/target}/release/alcor" \
  --nodes 5 --duration "$duration" --combined --check-deadline 600s "$@"
