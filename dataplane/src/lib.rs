//! The Linux dataplane of the host agent: what a host's goal state means
//! in the kernel, and the netlink calls that make the kernel match it.
//!
//! Layout:
//! - [`plan`] (pure): the kernel objects a host needs, from its goal state,
//!   its host ID and its underlay address. No I/O; unit- and
//!   property-tested.
//! - [`reconcile`] (kernel): reads the objects this agent owns (by name
//!   prefix `alc`), compares them with a plan and makes the smallest
//!   change: creates what is missing, updates what differs, deletes what
//!   is no longer planned. It never flushes: a restarted agent finds its
//!   objects and keeps those still wanted.
//! - [`delta`] (pure): the objects a change from the plan the kernel
//!   holds to the next touches, for the reconciler's incremental passes.
//! - [`firewall`] (pure): security groups and anti-spoofing as the
//!   content of the agent's nftables tables, and the smallest batch of
//!   `nft` commands from what exists to it; `nft` applies it (through the
//!   `nftables` crate, one atomic batch per pass).
//! - `netns`: port namespaces (entered by a thread of their own).
//! - [`limits`]: the bounds.
//!
//! Must not depend on: the push protocol or any transport (`host-push`
//! calls the dataplane through a callback the node wires), the Raft
//! crates, or shell commands (`ip`, `bridge`): the kernel is driven through
//! netlink, and nftables through `nft`'s JSON interface.

pub mod delta;
pub mod error;
pub mod firewall;
pub mod limits;
mod netns;
mod nft;
pub mod plan;
pub mod reconcile;

pub use error::DataplaneError;
pub use plan::{plan, programmed_digest, Plan, PortPlan, VpcPlan};
pub use reconcile::{Outcome, Reconciler};
