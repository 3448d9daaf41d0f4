//! `alcor.api.v1.Cluster`: the answering node's view of Raft, from
//! `RaftNode::metrics`. Served locally, without quorum, so it works on a
//! node that is cut off (it is how operators find out).

use std::sync::Arc;

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_server::{Cluster, ClusterServer};
use alcor_raft_core::RaftNode;
use tonic::{Request, Response, Status};

/// Serves cluster status for one node.
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
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let m = self.node.metrics();
        let members = m
            .nodes
            .iter()
            .map(|(id, node)| pb::Member {
                id: *id,
                raft_addr: node.raft_addr.clone(),
                api_addr: node.api_addr.clone(),
                voter: m.voters.contains(id),
            })
            .collect();
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
            members,
        }))
    }
}
