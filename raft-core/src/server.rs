//! The server side of the Raft transport: `alcor.raft.v1.RaftService`
//! handlers that decode the envelope, call the local openraft instance and
//! encode its `Result` back. Raft-level errors travel in the payload;
//! envelope problems become gRPC statuses.

use alcor_proto::raft::v1::raft_service_server::{RaftService, RaftServiceServer};
use alcor_proto::raft::v1::RaftMessage;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tonic::{Request, Response, Status};

use std::sync::Arc;

use crate::convert::{from_message, to_reply};
use crate::limits::GRPC_MESSAGE_BYTES_MAX;
use crate::node::LeaderRead;
use crate::read_rounds::SharedRounds;
use crate::types::{NodeId, Raft, TypeConfig};

/// Serves Raft RPCs for one node.
#[derive(Clone)]
pub struct RaftGrpc {
    raft: Raft,
    /// The node's shared leadership confirmations: a follower's
    /// `ReadIndex` joins the next round, with the leader's own reads.
    leader_reads: Arc<SharedRounds<LeaderRead>>,
}

impl RaftGrpc {
    /// Wraps `raft` in a tonic service with the raised message limits.
    pub(crate) fn service(
        raft: Raft,
        leader_reads: Arc<SharedRounds<LeaderRead>>,
    ) -> RaftServiceServer<RaftGrpc> {
        RaftServiceServer::new(RaftGrpc { raft, leader_reads })
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
    }
}

#[tonic::async_trait]
impl RaftService for RaftGrpc {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = from_message(request.get_ref())?;
        to_reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<NodeId> = from_message(request.get_ref())?;
        to_reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = from_message(request.get_ref())?;
        to_reply(&self.raft.install_snapshot(rpc).await)
    }

    async fn forward(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let app_data: crate::types::Request = from_message(request.get_ref())?;
        to_reply(&self.raft.client_write(app_data).await)
    }

    async fn read_index(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let () = from_message(request.get_ref())?;
        let read_log_id = self
            .leader_reads
            .join()
            .await
            .map_err(|e| Status::resource_exhausted(format!("read index rounds: {e:?}")))?;
        to_reply(&read_log_id)
    }
}
