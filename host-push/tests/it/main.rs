//! host-push's integration tests: one binary. Real 3-node Raft clusters
//! (RocksDB in temp dirs, gRPC over 127.0.0.1 port 0), a real push server
//! per node, and real agents.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod protocol;
mod status;
mod support;
mod sync;
