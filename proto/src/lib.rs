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
//! (certificate URIs, bearer header); [`reason`] holds the reason and
//! resource codes of failures; [`request_id`] names one call. Header names
//! are the constants below. It must not depend on any other Alcor crate.

pub mod codec;
pub mod identity;
pub mod reason;
pub mod request_id;

/// Header carrying the machine-readable reason code of a failed call (on
/// every listener; [`identity::Denial`] lists the codes of refused
/// credentials).
pub const REASON_HEADER: &str = "x-alcor-reason";
/// Header naming the kind of resource a failure is about
/// ([`reason::Resource`]): the missing one of NOT_FOUND, the used one of
/// IN_USE, the pool of POOL_EXHAUSTED.
pub const RESOURCE_HEADER: &str = "x-alcor-resource";
/// Header set to `true` when a failed write may still commit.
pub const INDETERMINATE_HEADER: &str = "x-alcor-indeterminate";
/// Header naming the rejected entry of a batch create.
pub const BATCH_INDEX_HEADER: &str = "x-alcor-batch-index";
/// Header with the leader's member ID, on NOT_LEADER answers.
pub const LEADER_ID_HEADER: &str = "x-alcor-leader-id";
/// Header with the leader's API address, on NOT_LEADER answers.
pub const LEADER_API_HEADER: &str = "x-alcor-leader-api";
/// Header with the revision a node's watch history starts after, on
/// COMPACTED answers: a watch from it or later can be served.
pub const COMPACT_REVISION_HEADER: &str = "x-alcor-compact-revision";
/// Header the SDK reads a resource's current revision from on a
/// STALE_REVISION answer. The server does not send it yet.
pub const CURRENT_REVISION_HEADER: &str = "x-alcor-current-revision";

// `GRPC_METHODS`: every method path the generated services route (see
// `build.rs`), the bounded set of a metric's method label.
include!(concat!(env!("OUT_DIR"), "/grpc_methods.rs"));

/// The encoded `FileDescriptorSet`s of every Alcor protocol (`alcor.api.v1`
/// and `alcor.raft.v1`; `alcor.push.v1`), for gRPC server reflection.
pub const FILE_DESCRIPTOR_SETS: [&[u8]; 2] = [
    include_bytes!(concat!(env!("OUT_DIR"), "/alcor_descriptor_set.bin")),
    include_bytes!(concat!(env!("OUT_DIR"), "/alcor_push_descriptor_set.bin")),
];

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
