//! Generated protobuf/gRPC types for Alcor's wire protocols.
//!
//! Every `.proto` under `proto/` is compiled by `build.rs`; this file only
//! exposes the generated packages as modules mirroring the proto package
//! names (`alcor.raft.v1` → [`raft::v1`], `alcor.api.v1` → [`api::v1`]).
//!
//! This crate holds no logic and no conversions: each consumer converts
//! between these types and its domain types in one `convert` module. The
//! one hand-written piece is [`codec`], the push stream's wire codec
//! (prost's, with small buffers); [`identity`] names who a caller is
//! (certificate URIs, bearer header). It must not depend on any other Alcor
//! crate.

pub mod codec;
pub mod identity;

/// Header carrying the machine-readable reason code of a failed call (on
/// every listener; [`identity::Denial`] lists the codes of refused
/// credentials).
pub const REASON_HEADER: &str = "x-alcor-reason";

/// Largest piece of a backup file in one `Cluster.SaveSnapshot` message
/// (well under every client's and server's message limit).
pub const BACKUP_CHUNK_BYTES_MAX: usize = 1024 * 1024;

/// Controller-to-host-agent goal-state push (`alcor.push.v1`).
pub mod push {
    /// Version 1 of the push protocol.
    pub mod v1 {
        // Generated code: prost/tonic do not document every item nor scope
        // visibility; the lints cannot be satisfied without editing output.
        #![allow(missing_docs, unreachable_pub)]
        tonic::include_proto!("alcor.push.v1");
    }
}

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

/// The client API: resources and cluster status (`alcor.api.v1`).
pub mod api {
    /// Version 1 of the client API.
    pub mod v1 {
        // Generated code: prost/tonic do not document every item nor scope
        // visibility; the lints cannot be satisfied without editing output.
        #![allow(missing_docs, unreachable_pub)]
        tonic::include_proto!("alcor.api.v1");
    }
}
