//! Integration tests of the REST gateway: a real `RaftNode` (RocksDB in a
//! temp dir) behind the real orchestrator service, driven over HTTP.

mod api;
mod bad_input;
mod external;
mod families;
mod fixtures;
mod floating_ips;
mod harness;
mod qos;
mod roles;
mod tags;
