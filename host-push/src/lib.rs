//! Host push: controller nodes stream each host's goal state to its agent
//! (`alcor.push.v1.HostPush`), and the simulated agent that consumes it.
//!
//! A revision is a Raft log index. A node keeps a bounded window of recent
//! applied diffs; an agent that connects (or reconnects, to any node) with
//! a revision inside the window resumes with diffs, any other gets a
//! FullSync. Diffs arriving together are coalesced per host.
//!
//! # Layout
//! - [`server`]: [`PushService`], the tonic service each node mounts.
//! - `window`: the per-node retained window of applied diffs.
//! - [`agent`]: [`SimAgent`], the in-memory agent.
//! - [`message`]: the protocol as domain types; [`convert`] is the only
//!   module that touches protobuf.
//! - [`limits`]: every bound, named `*_max`.
//! - [`metrics`]: the Prometheus metrics of a node's push service.
//! - `status`: port status from acks; one proposer task per node turns
//!   acks into `SetPortStatus` writes ([`StatusCounters`]).
//!
//! # Invariants
//! - A node only sends what it has applied: FullSyncs read its own state,
//!   diffs come from its own applied events.
//! - On one stream, each DiffBatch's `from_revision` is the previous
//!   message's revision: no gaps, no duplicates. Agents check it.
//! - Every queue is bounded; a slow agent delays only itself.
//!
//! # Must not depend on
//! RocksDB or openraft directly: raft-core's `RaftNode` is the only way in.

pub mod agent;
pub mod convert;
pub mod error;
pub mod limits;
pub mod message;
pub mod metrics;
pub mod server;
mod status;
mod window;

pub use agent::{
    AgentCounters, Dataplane, Programmed, ProgrammedDigest, SharedConnections, SimAgent,
    SimAgentConfig,
};
pub use error::{AgentError, ConvertError, WaitAckedError};
pub use message::PROTOCOL_VERSION;
pub use metrics::ResyncCause;
pub use server::{AgentReport, PushConfig, PushService};
pub use status::StatusCounters;
