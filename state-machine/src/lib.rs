//! The deterministic network state machine of Alcor-RS.
//!
//! Every controller node applies the same committed log through [`State::apply`]
//! and reaches byte-identical state ([`State::snapshot`] bytes are equal). Each
//! applied command also yields, per affected host, the goal-state changes that
//! host's agent must learn ([`HostDiff`]); [`State::goal_state`] gives a host's
//! whole goal state for first syncs and resyncs.
//!
//! # Invariants
//! - Pure: no async, no I/O, no clock, no randomness; time and IDs arrive inside
//!   the [`Proposal`] or derive from the log index. Only `BTreeMap`/`BTreeSet` are
//!   used, so every iteration that reaches an output is in key order.
//! - A rejected command ([`Rejection`]) changes nothing but the applied index;
//!   a batch is all or nothing.
//! - The diffs of all commands up to revision N, applied in order to an empty
//!   table, equal the host's goal state at N.
//!
//! # Must not depend on
//! tokio, tonic, prost, rocksdb, openraft, any clock or random-number crate. A test
//! (`tests/purity.rs`) checks the dependency tree.
//!
//! # Layout
//! - [`ids`], [`model`]: identifiers and resources.
//! - [`command`]: commands, replies, rejections.
//! - `apply`: handlers, one file per resource (validate, then commit).
//! - [`goal`]: per-host goal-state objects, diffs and digests.
//! - `state`: tables, indexes, goal evaluation, snapshots; `state/commit.rs` is
//!   the one write path per table (indexes, usage, change marks, diff candidates).
//! - [`decode`]: bounded decoding of bytes from outside (size and nesting).
//! - [`limits`]: every bound, named.

mod apply;
pub mod changes;
pub mod command;
pub mod decode;
pub mod goal;
pub mod ids;
pub mod limits;
pub mod model;
mod state;
mod tags;
mod validate;

pub use apply::{validate_qos_rule, Outcome};
pub use changes::{Resource, ResourceChange};
pub use command::{
    Command, FixedIpRequest, GatewayRequest, GatewaySpec, InterfaceRef, InterfaceTarget, Kind,
    Pool, PortSecurityNeed, PortSpec, PortSpecV5, PortUpdate, PortUpdateV5, Proposal,
    QosRuleUpdate, Rejection, Reply, SubnetUpdate,
};
pub use goal::{
    apply_changes, goal_digest, Diffs, GoalChange, GoalKey, GoalObject, GoalState, HostDiff, Scope,
    ScopedDiff,
};
pub use ids::{validate_client_id, HostId, Id, ProjectId};
pub use state::{Frozen, SnapshotError, State, SNAPSHOT_VERSION, SNAPSHOT_VERSIONS_READ};
pub use tags::{validate_tags, TagFilter, Tags};
