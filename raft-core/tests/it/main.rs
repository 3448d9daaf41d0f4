//! raft-core's integration tests: one binary, one module per area. They use
//! real RocksDB in temp dirs and real gRPC over 127.0.0.1 (port 0).

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod backup;
mod catch_up;
mod cluster;
mod snapshot_guards;
mod storage_suite;
mod transport;
