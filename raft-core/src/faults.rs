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

/// Deliberate bugs for mutation testing: each breaks a guarantee on
/// purpose, and the fault suites (`chaos-tests`, `jepsen/`) must catch it.
/// Never set in production; `alcor server` only accepts them behind a flag
/// whose name says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// "Linearizable" reads are served from local state, without ReadIndex.
    StaleReads,
    /// The leader acknowledges a write as soon as it is appended locally,
    /// before a quorum has it (the reply carries no resource).
    AckBeforeCommit,
    /// Log appends are acknowledged without fsync.
    SkipFsync,
    /// Request tokens are dropped before proposing, so a retried create is
    /// applied again instead of returning the first result.
    DoubleApply,
}

impl std::str::FromStr for Mutation {
    type Err = String;

    fn from_str(s: &str) -> Result<Mutation, String> {
        match s {
            "stale-reads" => Ok(Mutation::StaleReads),
            "ack-before-commit" => Ok(Mutation::AckBeforeCommit),
            "skip-fsync" => Ok(Mutation::SkipFsync),
            "double-apply" => Ok(Mutation::DoubleApply),
            other => Err(format!(
                "unknown mutation {other:?} (stale-reads, ack-before-commit, skip-fsync, double-apply)"
            )),
        }
    }
}
