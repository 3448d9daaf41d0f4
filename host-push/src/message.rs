//! The push protocol's messages as domain types. [`crate::convert`] maps
//! them to and from `alcor.push.v1`; nothing else touches protobuf.

use alcor_state_machine::{GoalChange, GoalKey, GoalObject, HostId};

/// The protocol version this build speaks (`Hello.protocol_version`):
/// 2 added FullSync parts.
pub const PROTOCOL_VERSION: u32 = 2;

/// The oldest protocol version a controller still serves. A version 1
/// agent gets every FullSync whole, as one message.
pub const PROTOCOL_VERSION_MIN: u32 = 1;

/// The first protocol version whose agents gather FullSync parts.
pub const FULL_SYNC_PARTS_SINCE: u32 = 2;

/// What an agent sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentMessage {
    /// The first message of every stream.
    Hello(Hello),
    /// Everything up to a revision was applied.
    Ack(Ack),
    /// The digest of the agent's table at a revision.
    DigestReport {
        /// The revision the digest is of.
        revision: u64,
        /// `goal_digest` of the table.
        digest: [u8; 32],
        /// The digest of what the agent's data plane programmed from the
        /// table ([`crate::Programmed::digest`]); `None` without a data
        /// plane or from an older agent.
        programmed: Option<[u8; 32]>,
    },
}

/// An agent introduces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The agent's protocol version.
    pub protocol_version: u32,
    /// The host the agent serves.
    pub host_id: HostId,
    /// The revision of the agent's table, `None` if it has none.
    pub revision: Option<u64>,
}

/// An agent's cumulative acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Everything up to here was applied.
    pub revision: u64,
    /// Per-object outcomes (possibly only failures).
    pub statuses: Vec<ResourceStatus>,
}

/// The outcome of applying one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStatus {
    /// The object.
    pub key: GoalKey,
    /// `Err(reason)` if the agent failed to apply it.
    pub result: Result<(), String>,
}

/// What a controller node sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerMessage {
    /// Replace the table, or (with `more`) one part of a FullSync sent in
    /// parts.
    FullSync {
        /// The revision the objects are the goal state of.
        revision: u64,
        /// The host's whole goal state, or this part's share of it, in key
        /// order.
        objects: Vec<GoalObject>,
        /// More parts follow; the table is replaced at the last one.
        more: bool,
    },
    /// Move the table from one revision to another.
    DiffBatch {
        /// Exclusive start: the revision the agent must be at.
        from_revision: u64,
        /// The revision the agent is at afterwards.
        to_revision: u64,
        /// Applied in order; several may touch one key.
        changes: Vec<GoalChange>,
    },
    /// The stream ends.
    Error {
        /// Why.
        code: ErrorCode,
        /// Details for humans.
        message: String,
    },
}

/// Why a controller ends a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The node is shutting down.
    Unavailable,
    /// The node cannot read its state.
    Internal,
}
