//! The server side of the Raft transport: `alcor.raft.v1.RaftService`
//! handlers that decode the envelope, call the local openraft instance and
//! encode its `Result` back. Raft-level errors travel in the payload;
//! envelope problems become gRPC statuses.

use std::io::Cursor;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};

use alcor_proto::raft::v1::raft_service_server::{RaftService, RaftServiceServer};
use alcor_proto::raft::v1::RaftMessage;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::raft::{AppendEntriesRequest, SnapshotResponse, TransferLeaderRequest, VoteRequest};
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{from_message, to_reply};
use crate::limits::GRPC_MESSAGE_BYTES_MAX;
use crate::network::SnapshotChunk;
use crate::node::LeaderRead;
use crate::read_rounds::SharedRounds;
use crate::types::{Raft, Snapshot, SnapshotMeta, TypeConfig, Vote};

/// Serves Raft RPCs for one node.
#[derive(Clone)]
pub struct RaftGrpc {
    raft: Raft,
    /// The node's shared leadership confirmations: a follower's
    /// `ReadIndex` joins the next round, with the leader's own reads.
    leader_reads: Arc<SharedRounds<LeaderRead>>,
    /// The snapshot being received piece by piece, if any (one sender at a
    /// time: only a leader sends snapshots).
    receiving: Arc<Mutex<Option<Receiving>>>,
}

/// A snapshot partly received.
struct Receiving {
    vote: Vote,
    meta: SnapshotMeta,
    data: Vec<u8>,
}

impl RaftGrpc {
    /// Wraps `raft` in a tonic service with the raised message limits.
    pub(crate) fn service(
        raft: Raft,
        leader_reads: Arc<SharedRounds<LeaderRead>>,
    ) -> RaftServiceServer<RaftGrpc> {
        RaftServiceServer::new(RaftGrpc {
            raft,
            leader_reads,
            receiving: Arc::new(Mutex::new(None)),
        })
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
    }
}

/// The answers of one `StreamAppend` call.
type AppendAnswers = Pin<Box<dyn Stream<Item = Result<RaftMessage, Status>> + Send>>;

#[tonic::async_trait]
impl RaftService for RaftGrpc {
    type StreamAppendStream = AppendAnswers;

    /// Each request is handed to openraft as it arrives; each answer goes
    /// back once its entries are durable. A request that does not decode
    /// ends the input (openraft then answers what came before and stops).
    async fn stream_append(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<AppendAnswers>, Status> {
        let input = tokio_stream::StreamExt::map_while(request.into_inner(), |message| {
            let message = message.ok()?;
            from_message::<AppendEntriesRequest<TypeConfig>>(&message).ok()
        });
        let answers = self.raft.stream_append(input).map(|answer| {
            crate::convert::to_message(&answer).map_err(|e| Status::internal(e.to_string()))
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = from_message(request.get_ref())?;
        to_reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<TypeConfig> = from_message(request.get_ref())?;
        to_reply(&self.raft.vote(rpc).await)
    }

    async fn pre_vote(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<TypeConfig> = from_message(request.get_ref())?;
        to_reply(&self.raft.pre_vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let chunk: SnapshotChunk = from_message(request.get_ref())?;
        let Some(snapshot) = self.receive(chunk)? else {
            // Not complete yet: answer with this member's vote, so that a
            // leader that has been superseded stops sending.
            let vote = self.raft.metrics().borrow_watched().vote;
            return to_reply(&Ok::<_, ()>(SnapshotResponse::<TypeConfig>::new(vote)));
        };
        let (vote, snapshot) = snapshot;
        to_reply(&self.raft.install_full_snapshot(vote, snapshot).await)
    }

    async fn transfer_leader(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let req: TransferLeaderRequest<TypeConfig> = from_message(request.get_ref())?;
        to_reply(&self.raft.handle_transfer_leader(req).await)
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

impl RaftGrpc {
    /// Adds `chunk` to the snapshot being received; the whole snapshot once
    /// `chunk` is its last piece. A piece that does not continue the
    /// snapshot in progress (another leader, another snapshot, a gap) is
    /// refused unless it starts a new one, so the sender starts over.
    fn receive(&self, chunk: SnapshotChunk) -> Result<Option<(Vote, Snapshot)>, Status> {
        let mut receiving = self.receiving.lock().unwrap_or_else(|e| e.into_inner());
        if chunk.offset == 0 {
            *receiving = Some(Receiving {
                vote: chunk.vote,
                meta: chunk.meta,
                data: chunk.data,
            });
        } else {
            let continues = receiving.as_ref().is_some_and(|r| {
                r.vote == chunk.vote && r.meta == chunk.meta && r.data.len() as u64 == chunk.offset
            });
            if !continues {
                *receiving = None;
                return Err(Status::failed_precondition(format!(
                    "snapshot piece at offset {} does not continue the snapshot in progress",
                    chunk.offset
                )));
            }
            if let Some(r) = receiving.as_mut() {
                r.data.extend_from_slice(&chunk.data);
            }
        }
        if !chunk.done {
            return Ok(None);
        }
        Ok(receiving.take().map(|r| {
            let snapshot = Snapshot {
                meta: r.meta,
                snapshot: Cursor::new(r.data),
            };
            (r.vote, snapshot)
        }))
    }
}
