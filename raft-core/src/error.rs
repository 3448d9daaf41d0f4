//! The errors `RaftNode` returns. Each says whether the request may have
//! taken effect, because that decides whether a caller may retry it.

use crate::types::{Node, NodeId};

/// `RaftNode::start` failed; the node is not running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is inconsistent (e.g. this node is not in the
    /// initial membership, or the timing is invalid).
    #[error("invalid config: {0}")]
    Config(String),
    /// The data directory could not be created or opened.
    #[error("data dir: {0}")]
    DataDir(String),
    /// Storage could not be opened or recovered.
    #[error("storage: {0}")]
    Storage(String),
    /// The TLS files could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// The Raft listen address could not be bound.
    #[error("bind raft listener: {0}")]
    Bind(#[from] std::io::Error),
    /// openraft refused to start or to initialize the cluster.
    #[error("raft: {0}")]
    Raft(String),
}

/// A write was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// No leader took the proposal: none was known for the whole request
    /// timeout, the leader had no quorum lease for `WRITE_LEASE_WAIT_MAX`,
    /// or leadership moved `WRITE_ATTEMPTS_MAX` times under it. The
    /// proposal was not appended; retrying is safe.
    #[error("no leader")]
    NoLeader,
    /// The proposal may or may not commit later (outcome unknown).
    #[error("timed out; the write may still commit")]
    Timeout,
    /// The leader could not be reached while forwarding. Outcome unknown.
    #[error("leader {leader_id} unreachable: {reason}")]
    LeaderUnreachable {
        /// The leader that was tried.
        leader_id: NodeId,
        /// The transport's reason.
        reason: String,
    },
    /// Raft on this node (or on the leader) has stopped; outcome unknown.
    #[error("raft stopped: {0}")]
    Fatal(String),
}

/// A linearizable read could not be served. Reads have no effect, so
/// every variant may be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// No leader known for the whole request timeout.
    #[error("no leader")]
    NoLeader,
    /// The leader could not confirm its leadership with a quorum.
    #[error("leader could not reach a quorum: {0}")]
    NoQuorum(String),
    /// The read index or the local apply did not arrive in time.
    #[error("timed out")]
    Timeout,
    /// `READS_WAITING_MAX` reads already wait for the next ReadIndex round;
    /// nothing was read, try again later.
    #[error("too many reads waiting for a read index")]
    Overloaded,
    /// The leader could not be reached.
    #[error("leader {leader_id} unreachable: {reason}")]
    LeaderUnreachable {
        /// The leader that was tried.
        leader_id: NodeId,
        /// The transport's reason.
        reason: String,
    },
    /// Raft has stopped or the state is poisoned.
    #[error("raft stopped: {0}")]
    Fatal(String),
}

/// A membership or maintenance operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// Membership changes must be sent to the leader.
    #[error("not the leader; leader is {leader_id:?}")]
    NotLeader {
        /// The leader, if known.
        leader_id: Option<NodeId>,
        /// How to reach it, if known.
        leader_node: Option<Node>,
    },
    /// openraft rejected the change (e.g. a change is already in progress,
    /// or a new voter is not a learner yet).
    #[error("membership change rejected: {0}")]
    Rejected(String),
    /// Raft has stopped.
    #[error("raft stopped: {0}")]
    Fatal(String),
}

/// `RaftNode::shutdown` could not close everything cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// openraft's core task failed while stopping.
    #[error("raft core: {0}")]
    Raft(String),
    /// The database was still open after the wait bound, so the data dir
    /// cannot be reopened in this process yet.
    #[error("database still open after {0} ms")]
    DbStillOpen(u64),
}
