//! The push protocol's messages as domain types. [`crate::convert`] maps
//! them to and from `alcor.push.v1`; nothing else touches protobuf.

use alcor_state_machine::{GoalChange, GoalKey, GoalObject, HostId};

/// The protocol version this build speaks (`Hello.protocol_version`).
pub const PROTOCOL_VERSION: u32 = 1;

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
    /// Replace the table.
    FullSync {
        /// The revision the objects are the goal state of.
        revision: u64,
        /// The host's whole goal state, in key order.
        objects: Vec<GoalObject>,
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
