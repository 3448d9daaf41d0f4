//! Integration tests of the API gateway: real `RaftNode`s (RocksDB in temp
//! dirs) serving the real tonic services on 127.0.0.1, driven by the
//! generated gRPC client.

mod api;
mod harness;
mod resources;
