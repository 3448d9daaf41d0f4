#!/usr/bin/env bash
# Installs what a fresh Debian machine with only Rust needs to build and test
# Alcor-RS: libclang (bindgen for librocksdb-sys) and Debian's RocksDB, which the
# build links instead of compiling the bundled C++ (see .cargo/config.toml).
# protoc is vendored for our own protos; the etcd-client crate (peer benchmark)
# runs the system protoc. iproute2/iptables run the Jepsen-style harness (and
# iproute2, ping, nsenter and nft the Linux dataplane test) and
# fiu-utils (libfiu) its fsync-error fault;
# etcd-server and ovn-central are the peers of the benchmark runner.
set -euo pipefail
need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
dpkg -s librocksdb-dev >/dev/null 2>&1 || need+=(librocksdb-dev)
for pkg in pkg-config protobuf-compiler iproute2 iputils-ping util-linux iptables nftables fiu-utils etcd-server etcd-client ovn-central \
    python3-venv; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
