//! The client-facing gRPC API of an Alcor node (`alcor.api.v1`).
//!
//! [`OrchestratorService`] turns each write into one leader-stamped
//! `Proposal` (wall-clock time and new resource IDs are chosen here, never
//! in the state machine) and commits it with `RaftNode::client_write`, from
//! any node: followers forward to the leader. Reads are linearizable
//! (`read_linearizable`) unless the request sets `stale`.
//! A create carrying a `request_token` is proposed as
//! `Command::Idempotent` (a retry returns the original reply; a different
//! request under the same token is ALREADY_EXISTS / TOKEN_CONFLICT), with
//! its ID derived from the token when the client gave none.
//! [`ClusterService`] reports the answering node's Raft metrics.
//!
//! # Layout
//! - [`orchestrator`], [`cluster`]: the two tonic services.
//! - `request`: what the Get, List and Delete requests of every kind share,
//!   as traits the orchestrator's generic handlers take.
//! - `listing`: paging through the state for List (marker, page size,
//!   project and tag filters, field selection).
//! - [`convert`]: the only place protobuf messages meet domain types;
//!   input is parsed and validated there (INVALID_ARGUMENT) before any
//!   proposal. The state machine validates again when applying.
//! - [`error`]: [`ApiError`] and the one mapping to gRPC statuses, with
//!   the `x-alcor-reason` header.
//! - [`fields`]: field selection (`fields`) on Get and List.
//! - [`deadline`]: honours the client's `grpc-timeout`.
//! - [`watch`]: the Watch history and its watchers.
//! - [`limits`]: every bound, named `*_MAX`.
//! - [`metrics`]: the gRPC listeners' metrics layer (calls by method and
//!   code, in flight, refusals by reason).
//! - [`tokens`]: the token file shared with the REST gateway (hashed
//!   entries, constant-time comparison, reload on change or SIGHUP).
//! - [`auth`]: the authentication layer of the gRPC listeners and the
//!   role table (who may call which method); the services scope members
//!   and readers to their project and agents to their host.
//! - [`request_id`]: one id per request (kept from the caller's
//!   `x-request-id` or made), returned and on every log line of it.
//!
//! # Invariants
//! - A rejected request changes nothing: rejections come from the
//!   gateway's parsing (nothing proposed) or from `apply` (state unchanged).
//! - Every request holds one of `CONCURRENT_REQUESTS_MAX` permits; lists
//!   return at most `LIST_PAGE_MAX` items; batches at most
//!   `PORTS_BATCH_MAX` ports; messages at most `REQUEST_BYTES_MAX`.
//!
//! # Must not depend on
//! openraft or RocksDB (only `alcor-raft-core`'s facade), nor on
//! `host-push`.

pub mod auth;
mod batcher;
pub mod cluster;
pub mod convert;
pub mod deadline;
pub mod error;
pub mod fields;
mod ids;
pub mod limits;
mod listing;
pub mod metrics;
pub mod orchestrator;
mod request;
pub mod request_id;
mod scope;
pub mod tokens;
pub mod watch;

pub use auth::{AuthConfig, AuthLayer};
pub use cluster::{AckSource, ClusterService};
pub use error::{to_status, ApiError, BATCH_INDEX_HEADER, INDETERMINATE_HEADER, REASON_HEADER};
pub use metrics::{GrpcMetrics, GrpcMetricsLayer};
pub use orchestrator::OrchestratorService;
pub use request_id::RequestIdLayer;
pub use scope::readable;
