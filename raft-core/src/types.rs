//! The openraft type configuration: what a log entry carries, what applying
//! it returns, and how a cluster member is addressed.

use std::fmt;
use std::io::Cursor;
use std::sync::Arc;

use alcor_state_machine::{Proposal, Rejection, Reply};
use serde::{Deserialize, Serialize};

/// A cluster member's id. Never reuse an id for a different machine.
pub type NodeId = u64;

/// How to reach a cluster member. Both addresses are gRPC endpoints
/// (`host:port`, no scheme).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Where `alcor.raft.v1.RaftService` listens (peer traffic only).
    pub raft_addr: String,
    /// Where clients and host agents connect (the API gateway).
    pub api_addr: String,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft={} api={}", self.raft_addr, self.api_addr)
    }
}

/// The application payload of a Raft log entry.
///
/// Stored in the log and sent over the wire with bincode, where an enum is
/// encoded by variant index: new variants must only ever be appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Apply one leader-stamped proposal to the state machine. Shared, so
    /// that the log cache and replication copy a pointer, not the command;
    /// serde encodes an `Arc` as what it holds, so the bytes are unchanged.
    Apply(Arc<Proposal>),
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Apply(p) => write!(f, "apply(time_ms={})", p.time_ms),
        }
    }
}

/// What applying one log entry produced, as returned by openraft.
// Nearly every entry is `Applied`, so boxing it would add an allocation per
// entry without saving any memory.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum EntryResponse {
    /// A `Request::Apply` entry: the state machine's verdict.
    Applied(Result<Reply, Rejection>),
    /// A blank entry (a new leader's first entry): nothing to apply.
    Blank,
    /// A membership entry: handled by openraft, nothing to apply.
    Membership,
}

/// The result of a committed and applied proposal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// The log index the proposal was applied at. Ids the state machine
    /// derives from the log index are derived from this one.
    pub log_index: u64,
    /// The state machine's verdict: rejections are values, not errors.
    pub result: Result<Reply, Rejection>,
}

openraft::declare_raft_types!(
    /// Alcor's openraft type configuration (advanced leader ids, tokio).
    pub TypeConfig:
        D = Request,
        R = EntryResponse,
        NodeId = NodeId,
        Node = Node,
);

/// The openraft handle for this configuration and state machine.
pub type Raft = openraft::Raft<TypeConfig, crate::storage::StateMachineStore>;
/// The leader id a log id is committed under (term + node id).
pub type CommittedLeaderId = openraft::type_config::alias::CommittedLeaderIdOf<TypeConfig>;
/// A log id (term + leader + index).
pub type LogId = openraft::LogId<CommittedLeaderId>;
/// A log entry.
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// A vote.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// The membership config together with the log id that introduced it.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// Metadata of a snapshot.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot as openraft hands it around: metadata plus the state bytes.
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;
/// The bytes of a snapshot (`State::snapshot()`), read and written whole.
pub type SnapshotData = Cursor<Vec<u8>>;
/// A storage failure as openraft reports it (the storage traits themselves
/// return `std::io::Error`).
pub type StorageError = openraft::StorageError<TypeConfig>;
/// The server state (leader, follower, candidate, learner, shutdown).
pub use openraft::ServerState;
