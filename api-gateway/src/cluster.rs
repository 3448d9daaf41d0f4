//! `alcor.api.v1.Cluster`: the answering node's view of Raft and the
//! operator's levers on it.
//!
//! - `Status` is served locally from `RaftNode::metrics`, without quorum, so
//!   it works on a node that is cut off (it is how operators find out).
//! - Membership changes (`AddLearner`, `PromoteMember`, `ChangeMembership`,
//!   `RemoveMember`) run on the leader only. Any other node does not forward
//!   them: it answers FAILED_PRECONDITION with reason `NOT_LEADER` and the
//!   leader it knows of in the `x-alcor-leader-id` / `x-alcor-leader-api`
//!   headers, so an operator always knows which node made the change.
//! - `TriggerSnapshot` acts on the answering node (snapshots are local).
//! - `HostDigest` is a read like any other: linearizable unless `stale`,
//!   served by any node.
//!
//! Every call is bounded by the client's deadline (`grpc-timeout`), or by
//! `REQUEST_TIMEOUT_MS_MAX` without one. A membership change that runs out
//! of time may still commit: DEADLINE_EXCEEDED, flagged indeterminate.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_server::{Cluster, ClusterServer};
use alcor_raft_core::{AdminError, Node, NodeMetrics, RaftNode, ReadError};
use alcor_state_machine::goal_digest;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status};

use crate::deadline;
use crate::error::{to_status, ApiError, INDETERMINATE_HEADER, REASON_HEADER};
use crate::limits::REQUEST_TIMEOUT_MS_MAX;

/// Header naming the leader a non-leader knows of (a node id).
pub const LEADER_ID_HEADER: &str = "x-alcor-leader-id";
/// Header with the API address of that leader.
pub const LEADER_API_HEADER: &str = "x-alcor-leader-api";

/// How often `TriggerSnapshot` looks at the metrics while it waits.
const SNAPSHOT_POLL_MS: u64 = 20;

/// Serves cluster status and administration for one node.
#[derive(Debug, Clone)]
pub struct ClusterService {
    node: Arc<RaftNode>,
}

impl ClusterService {
    /// A service reporting on `node`.
    pub fn new(node: Arc<RaftNode>) -> ClusterService {
        ClusterService { node }
    }

    /// The tonic server for this service.
    pub fn server(node: Arc<RaftNode>) -> ClusterServer<ClusterService> {
        ClusterServer::new(ClusterService::new(node))
    }

    /// Runs one membership change within the request's budget and answers
    /// with the membership the leader sees afterwards.
    async fn change<F>(
        &self,
        metadata: &MetadataMap,
        change: F,
    ) -> Result<Response<pb::MembershipResponse>, Status>
    where
        F: Future<Output = Result<u64, AdminError>>,
    {
        let budget = budget_or_max(metadata);
        let log_index = match tokio::time::timeout(budget, change).await {
            Ok(result) => result.map_err(|e| admin_status(&e))?,
            Err(_) => return Err(timeout_status("the membership change")),
        };
        Ok(Response::new(pb::MembershipResponse {
            log_index,
            members: members(&self.node.metrics()),
        }))
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let m = self.node.metrics();
        Ok(Response::new(pb::StatusResponse {
            id: m.id,
            state: format!("{:?}", m.state).to_lowercase(),
            leader_id: m.leader,
            term: m.term,
            last_log_index: m.last_log_index,
            committed_index: m.committed_index,
            applied_index: m.applied_index,
            snapshot_index: m.snapshot_index,
            purged_index: m.purged_index,
            members: members(&m),
        }))
    }

    async fn add_learner(
        &self,
        request: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        check_id(req.id)?;
        check_addr("raft_addr", &req.raft_addr)?;
        check_addr("api_addr", &req.api_addr)?;
        let node = Node {
            raft_addr: req.raft_addr,
            api_addr: req.api_addr,
        };
        self.change(&metadata, self.node.add_learner(req.id, node))
            .await
    }

    async fn promote_member(
        &self,
        request: Request<pb::PromoteMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        check_id(req.id)?;
        self.change(&metadata, self.node.promote(req.id)).await
    }

    async fn change_membership(
        &self,
        request: Request<pb::ChangeMembershipRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        let voters: BTreeSet<u64> = req.voters.iter().copied().collect();
        if voters.is_empty() {
            return Err(invalid("voters: at least one voter is needed"));
        }
        for id in &voters {
            check_id(*id)?;
        }
        self.change(&metadata, self.node.change_membership(voters, true))
            .await
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        check_id(req.id)?;
        self.change(&metadata, self.node.remove_member(req.id))
            .await
    }

    async fn trigger_snapshot(
        &self,
        request: Request<pb::TriggerSnapshotRequest>,
    ) -> Result<Response<pb::TriggerSnapshotResponse>, Status> {
        let budget = budget_or_max(request.metadata());
        let applied = self.node.metrics().applied_index;
        let build = async {
            self.node
                .trigger_snapshot()
                .await
                .map_err(|e| admin_status(&e))?;
            loop {
                let m = self.node.metrics();
                if m.snapshot_index >= applied {
                    return Ok(pb::TriggerSnapshotResponse {
                        snapshot_index: m.snapshot_index,
                        purged_index: m.purged_index,
                    });
                }
                tokio::time::sleep(Duration::from_millis(SNAPSHOT_POLL_MS)).await;
            }
        };
        match tokio::time::timeout(budget, build).await {
            Ok(result) => result.map(Response::new),
            Err(_) => Err(timeout_status("the snapshot")),
        }
    }

    async fn host_digest(
        &self,
        request: Request<pb::HostDigestRequest>,
    ) -> Result<Response<pb::HostDigestResponse>, Status> {
        let budget = deadline::budget(request.metadata());
        let req = request.into_inner();
        if req.host.is_empty() {
            return Err(invalid("host: must not be empty"));
        }
        let host = req.host;
        let read = move |s: &alcor_state_machine::State| {
            (s.applied_index(), goal_digest(&s.goal_state(&host)))
        };
        let result = if req.stale {
            self.node.read_stale(read)
        } else {
            let linearizable = self.node.read_linearizable(read);
            match budget {
                Some(budget) => tokio::time::timeout(budget, linearizable)
                    .await
                    .unwrap_or(Err(ReadError::Timeout)),
                None => linearizable.await,
            }
        };
        let (revision, digest) = result.map_err(|e| to_status(&ApiError::Read(e)))?;
        Ok(Response::new(pb::HostDigestResponse {
            revision,
            digest: digest.to_vec(),
        }))
    }
}

/// Every member with its role, from `m`.
fn members(m: &NodeMetrics) -> Vec<pb::Member> {
    m.nodes
        .iter()
        .map(|(id, node)| pb::Member {
            id: *id,
            raft_addr: node.raft_addr.clone(),
            api_addr: node.api_addr.clone(),
            voter: m.voters.contains(id),
        })
        .collect()
}

/// The client's budget, or the gateway's maximum when it set none.
fn budget_or_max(metadata: &MetadataMap) -> Duration {
    deadline::budget(metadata).unwrap_or(Duration::from_millis(REQUEST_TIMEOUT_MS_MAX))
}

fn check_id(id: u64) -> Result<(), Status> {
    if id == 0 {
        return Err(invalid("id: node id 0 is reserved"));
    }
    Ok(())
}

/// `host:port`, the form peers and clients dial. A name is allowed (it is
/// resolved by whoever dials); only the port is checked strictly.
fn check_addr(field: &str, addr: &str) -> Result<(), Status> {
    if addr.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let valid = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if valid {
        Ok(())
    } else {
        Err(invalid(&format!("{field}: {addr:?} is not HOST:PORT")))
    }
}

/// A status with the reason both in the header and at the message start.
fn status_with(code: Code, reason: &'static str, message: &str, metadata: MetadataMap) -> Status {
    let mut metadata = metadata;
    metadata.insert(REASON_HEADER, MetadataValue::from_static(reason));
    Status::with_metadata(code, format!("{reason}: {message}"), metadata)
}

fn invalid(message: &str) -> Status {
    status_with(
        Code::InvalidArgument,
        "INVALID_FIELD",
        message,
        MetadataMap::new(),
    )
}

fn timeout_status(what: &str) -> Status {
    let mut metadata = MetadataMap::new();
    metadata.insert(INDETERMINATE_HEADER, MetadataValue::from_static("true"));
    status_with(
        Code::DeadlineExceeded,
        "TIMEOUT",
        &format!("{what} did not finish within the deadline; it may still take effect"),
        metadata,
    )
}

/// Maps a failed membership or snapshot call to a status.
pub fn admin_status(error: &AdminError) -> Status {
    let mut metadata = MetadataMap::new();
    match error {
        AdminError::NotLeader {
            leader_id,
            leader_node,
        } => {
            if let Some(id) = leader_id {
                metadata.insert(LEADER_ID_HEADER, MetadataValue::from(*id));
            }
            if let Some(value) = leader_node
                .as_ref()
                .and_then(|n| MetadataValue::try_from(n.api_addr.as_str()).ok())
            {
                metadata.insert(LEADER_API_HEADER, value);
            }
            status_with(
                Code::FailedPrecondition,
                "NOT_LEADER",
                &error.to_string(),
                metadata,
            )
        }
        AdminError::Rejected(_) => status_with(
            Code::FailedPrecondition,
            "MEMBERSHIP_REJECTED",
            &error.to_string(),
            metadata,
        ),
        AdminError::Fatal(_) => status_with(
            Code::Unavailable,
            "RAFT_STOPPED",
            &error.to_string(),
            metadata,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(status: &Status) -> Option<&str> {
        status.metadata().get(REASON_HEADER)?.to_str().ok()
    }

    #[test]
    fn not_leader_names_the_leader_in_headers() {
        let status = admin_status(&AdminError::NotLeader {
            leader_id: Some(2),
            leader_node: Some(Node {
                raft_addr: "127.0.0.1:7002".into(),
                api_addr: "127.0.0.1:8002".into(),
            }),
        });
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(reason(&status), Some("NOT_LEADER"));
        let header = |name| status.metadata().get(name).and_then(|v| v.to_str().ok());
        assert_eq!(header(LEADER_ID_HEADER), Some("2"));
        assert_eq!(header(LEADER_API_HEADER), Some("127.0.0.1:8002"));
    }

    #[test]
    fn timed_out_change_is_flagged_indeterminate() {
        let status = timeout_status("x");
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert!(status.metadata().get(INDETERMINATE_HEADER).is_some());
    }

    #[test]
    fn member_addresses_must_be_host_and_port() {
        assert!(check_addr("a", "127.0.0.1:7001").is_ok());
        assert!(check_addr("a", "node-4.example:7001").is_ok());
        for bad in ["", "127.0.0.1", ":7001", "h:99999", "h:x"] {
            assert!(check_addr("a", bad).is_err(), "{bad}");
        }
        assert!(check_id(0).is_err());
    }
}
