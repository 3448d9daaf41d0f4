//! Link fault injection for in-process fault tests (`chaos-tests`).
//!
//! A node started with [`RaftNodeConfig::link_faults`](crate::RaftNodeConfig)
//! asks its [`LinkFaults`] about every outgoing peer RPC (Raft replication,
//! votes, snapshots, forwarded writes and read-index requests) and about
//! every reply. Production nodes have none and pay one `Option` check per
//! RPC. The decisions are the test's business (seeded schedules,
//! partitions); this module only applies them to real gRPC calls.

use std::fmt::Debug;
use std::time::Duration;

use crate::types::NodeId;

/// What happens to one message on the link `from -> to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFate {
    /// Sent as usual.
    Deliver,
    /// Lost: the caller sees a timeout and the peer never sees the message.
    Drop,
    /// Held back for this long, then sent.
    Delay(Duration),
    /// Sent twice; the caller gets the first reply, the second is discarded.
    Duplicate,
}

/// Decides the fate of peer messages. Called on the request path
/// ([`LinkFaults::request`]) before sending and on the reply path
/// ([`LinkFaults::reply`]) after the peer answered; a dropped reply means the
/// peer acted on the request but the caller never learns it.
pub trait LinkFaults: Debug + Send + Sync + 'static {
    /// The fate of a request from `from` to `to`.
    fn request(&self, from: NodeId, to: NodeId) -> LinkFate;
    /// Whether the reply of `to` to `from` is lost.
    fn reply_lost(&self, from: NodeId, to: NodeId) -> bool;
}

// The mutation switches live in their own private module so that, without
// the `unsafe-mutations` feature, nothing outside raft-core can name them.
#[cfg(feature = "unsafe-mutations")]
pub use crate::mutation::Mutation;
#[cfg(not(feature = "unsafe-mutations"))]
pub(crate) use crate::mutation::Mutation;
