//! Generated protobuf/gRPC types for Alcor's wire protocols.
//!
//! Every `.proto` under `proto/` is compiled by `build.rs`; this file only
//! exposes the generated packages as modules mirroring the proto package
//! names (`alcor.raft.v1` → [`raft::v1`]).
//!
//! This crate holds no logic and no conversions: each consumer converts
//! between these types and its domain types in one `convert` module.
//! It must not depend on any other Alcor crate.

/// Raft peer-to-peer transport (`alcor.raft.v1`).
pub mod raft {
    /// Version 1 of the Raft transport.
    pub mod v1 {
        // Generated code: prost/tonic do not document every item nor scope
        // visibility; the lints cannot be satisfied without editing output.
        #![allow(missing_docs, unreachable_pub)]
        tonic::include_proto!("alcor.raft.v1");
    }
}
