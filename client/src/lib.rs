//! Rust client SDK of the Alcor-RS orchestrator API (`alcor.api.v1`).
//!
//! A [`Client`] knows every member's API address. Each call goes to one
//! member (the one that answered last), and moves on to the next on
//! failure: members forward writes to the leader, so any member serves any
//! call. Calls that are safe to repeat (reads; creates, which always carry a
//! request token; updates and deletes with an expected revision) are retried
//! with bounded exponential backoff within the call's deadline; any other
//! write whose outcome is unknown fails with [`Error::Indeterminate`] and is
//! never sent twice.
//!
//! Calls from many tasks share one HTTP/2 connection per member and run as
//! concurrent streams on it; the server coalesces concurrent writes into
//! one Raft entry (its write batcher), so 256 concurrent callers cost 256
//! multiplexed streams and a few log entries, not 256 connections or 256
//! sequential round trips.
//!
//! ```no_run
//! use alcor_client::types::{CreatePortRequest, CreateSubnetRequest, CreateVpcRequest};
//! use alcor_client::{Client, Error};
//!
//! # async fn example() -> Result<(), Error> {
//! let client = Client::builder()
//!     .endpoints(["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"])
//!     .connect()
//!     .await?;
//! let vpc = client
//!     .vpcs()
//!     .create(CreateVpcRequest { project_id: "demo".into(), cidr: "10.0.0.0/16".into(), ..Default::default() })
//!     .await?;
//! client
//!     .subnets()
//!     .create(CreateSubnetRequest {
//!         project_id: "demo".into(),
//!         network_id: vpc.id.clone(),
//!         cidr: "10.0.1.0/24".into(),
//!         ..Default::default()
//!     })
//!     .await?;
//! let port = client
//!     .ports()
//!     .create(CreatePortRequest { project_id: "demo".into(), network_id: vpc.id, ..Default::default() })
//!     .await?;
//! match client.ports().delete(&port.id, Some(port.revision)).await {
//!     Ok(revision) => println!("deleted at revision {revision}"),
//!     Err(Error::PreconditionFailed { .. }) => println!("someone changed it first"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: [`ClientBuilder`], [`TlsConfig`], limits and defaults.
//! - [`Client`] (`transport`): connections, failover, retry policy.
//! - `resources`: one sub-client per resource ([`Ports`], [`Vpcs`], ...).
//! - `cluster`: [`Cluster`] status, membership, barrier.
//! - `watch`: [`Client::watch`], changes as a `futures::Stream`, resumed on
//!   another member without gaps.
//! - [`Error`] (`error`): typed errors from the server's status and headers.
//! - [`types`]: the request and resource messages (the wire types of
//!   `alcor.api.v1`, re-exported: the SDK adds no second data model).
//!
//! This crate depends only on the generated protocol crate, never on the
//! server's crates.

mod cluster;
pub mod config;
mod error;
mod resources;
mod transport;
mod watch;

pub use cluster::{Cluster, SnapshotDownload};
pub use config::{ClientBuilder, TlsConfig};
pub use error::{
    Details, Error, BATCH_INDEX_HEADER, CURRENT_REVISION_HEADER, INDETERMINATE_HEADER,
    LEADER_API_HEADER, REASON_HEADER, RESOURCE_HEADER,
};
pub use resources::{
    FloatingIps, Hosts, Page, Ports, Quotas, Routers, SecurityGroupRules, SecurityGroups, Subnets,
    Vpcs,
};
pub use transport::Client;

/// The request and resource messages of `alcor.api.v1`.
pub use alcor_proto::api::v1 as types;
