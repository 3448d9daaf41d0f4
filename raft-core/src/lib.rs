//! Raft replication for Alcor: openraft 0.10 wired to RocksDB storage, the
//! pure `alcor_state_machine::State`, and a tonic gRPC peer transport.
//!
//! # Layout
//! - [`types`]: the openraft type config (`Request`, `EntryResponse`, `Node`).
//! - [`storage`]: RocksDB log store (group-committed fsyncs) and the
//!   state-machine adapter (snapshots, applied-entry events).
//! - [`network`] / [`server`]: the `alcor.raft.v1.RaftService` client and
//!   server; [`convert`] is the only place protobuf types are touched;
//!   `append_stream`: pipelined replication over one gRPC stream.
//! - [`health`]: readiness (a leader in sight, caught up since start) and
//!   its `grpc.health.v1` service, served on the Raft port and the node's.
//! - [`node`]: [`RaftNode`], the facade the node binary, API gateway and
//!   host-push build on.
//! - `read_rounds`: concurrent linearizable reads share one ReadIndex round.
//! - [`codec`]: the versioned encoding of everything persisted or sent.
//! - [`backup`]: the backup file format (`alcor ctl snapshot save`).
//! - [`limits`]: every bound, named `*_max`.
//! - [`metrics`]: the member's Raft and storage metrics (etcd's names).
//!
//! # Invariants
//! - No business rules: openraft trait impls only delegate to
//!   `State::apply`/`snapshot`/`restore`.
//! - Durability: vote, truncate and purge are fsynced before returning; an
//!   append is acknowledged to openraft only after a WAL fsync.
//! - The applied state reaches disk only inside snapshots; restart loads
//!   the latest snapshot and replays committed entries after it.
//! - This is the only crate that depends on RocksDB or openraft.

mod append_stream;
pub mod backup;
pub mod codec;
pub mod convert;
mod election;
pub mod error;
pub mod faults;
#[cfg(test)]
mod fixtures;
pub mod health;
pub mod limits;
pub mod metrics;
mod mutation;
pub mod network;
pub mod node;
mod read_rounds;
pub mod server;
pub mod storage;
pub mod types;

pub use error::{AdminError, ReadError, ShutdownError, StartError, WriteError};
pub use faults::{LinkFate, LinkFaults};
pub use health::{NotReady, Readiness};
pub use metrics::RaftMetrics;
#[cfg(feature = "unsafe-mutations")]
pub use mutation::Mutation;
#[cfg(not(feature = "unsafe-mutations"))]
#[allow(
    unused_imports,
    reason = "the path `crate::Mutation` of intra-doc links"
)]
pub(crate) use mutation::Mutation;
pub use node::{NodeMetrics, RaftListen, RaftNode, RaftNodeConfig};
pub use storage::{AppliedEvent, ChangeEvent, StateView};
pub use types::{EntryResponse, Node, NodeId, Request, Response, ServerState, TypeConfig};
