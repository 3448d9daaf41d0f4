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

use crate::convert::{to_reply, NewerWire};
use crate::limits::{GRPC_MESSAGE_BYTES_MAX, SNAPSHOT_CHUNK_BYTES_MAX};
use crate::network::SnapshotChunk;
use crate::node::LeaderRead;
use crate::read_rounds::SharedRounds;
use crate::types::{NodeId, Raft, Snapshot, SnapshotMeta, TypeConfig, Vote};
use alcor_proto::identity::Principal;
use alcor_tls::identity::cert_identity_of_request;
use openraft::vote::RaftLeaderId;

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
    /// The largest snapshot reassembled (`SNAPSHOT_BYTES_MAX` unless a
    /// test lowers it).
    snapshot_bytes_max: u64,
    /// Whether callers must be current members, proven by a client
    /// certificate (the port serves TLS); `false` serves anyone
    /// (`--insecure`).
    members_only: bool,
    /// Records a request of a newer wire version (the node then stops).
    newer: NewerWire,
}

/// Where a request came from, for error messages.
fn peer_name<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map_or_else(|| "a peer".to_string(), |addr| addr.to_string())
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
        snapshot_bytes_max: u64,
        members_only: bool,
        newer: NewerWire,
    ) -> RaftServiceServer<RaftGrpc> {
        RaftServiceServer::new(RaftGrpc {
            raft,
            leader_reads,
            receiving: Arc::new(Mutex::new(None)),
            snapshot_bytes_max,
            members_only,
            newer,
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
        let caller = self.caller(&request)?;
        let newer = self.newer.clone();
        let input = tokio_stream::StreamExt::map_while(request.into_inner(), move |message| {
            let message = message.ok()?;
            let rpc = newer
                .decode::<AppendEntriesRequest<TypeConfig>>(&message, "a StreamAppend peer")
                .ok()?;
            // A request in another member's name ends the stream.
            check_sender(caller, &rpc.vote).ok()?;
            Some(rpc)
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
        let caller = self.caller(&request)?;
        let rpc: AppendEntriesRequest<TypeConfig> =
            self.newer.decode(request.get_ref(), &peer_name(&request))?;
        check_sender(caller, &rpc.vote)?;
        to_reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let caller = self.caller(&request)?;
        let rpc: VoteRequest<TypeConfig> =
            self.newer.decode(request.get_ref(), &peer_name(&request))?;
        check_sender(caller, &rpc.vote)?;
        to_reply(&self.raft.vote(rpc).await)
    }

    async fn pre_vote(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let caller = self.caller(&request)?;
        let rpc: VoteRequest<TypeConfig> =
            self.newer.decode(request.get_ref(), &peer_name(&request))?;
        check_sender(caller, &rpc.vote)?;
        to_reply(&self.raft.pre_vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let caller = self.caller(&request)?;
        let chunk: SnapshotChunk = self.newer.decode(request.get_ref(), &peer_name(&request))?;
        check_sender(caller, &chunk.vote)?;
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
        let caller = self.caller(&request)?;
        let req: TransferLeaderRequest<TypeConfig> =
            self.newer.decode(request.get_ref(), &peer_name(&request))?;
        check_sender(caller, req.from_leader())?;
        to_reply(&self.raft.handle_transfer_leader(req).await)
    }

    async fn forward(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.caller(&request)?;
        let app_data: crate::types::Request =
            self.newer.decode(request.get_ref(), &peer_name(&request))?;
        to_reply(&self.raft.client_write(app_data).await)
    }

    async fn read_index(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.caller(&request)?;
        let () = self.newer.decode(request.get_ref(), &peer_name(&request))?;
        let read_log_id = self
            .leader_reads
            .join()
            .await
            .map_err(|e| Status::resource_exhausted(format!("read index rounds: {e:?}")))?;
        to_reply(&read_log_id)
    }
}

impl RaftGrpc {
    /// The member calling, from its client certificate: `None` when the
    /// port serves everyone (`--insecure`). UNAUTHENTICATED without a
    /// certificate; PERMISSION_DENIED for a certificate that names no peer
    /// or a peer that is not a current member or learner. A node that has
    /// no membership yet (waiting to be initialized or added) holds no state
    /// and accepts any peer the CA signed.
    fn caller<T>(&self, request: &Request<T>) -> Result<Option<NodeId>, Status> {
        if !self.members_only {
            return Ok(None);
        }
        let member = match cert_identity_of_request(request) {
            None => {
                return Err(Status::unauthenticated(
                    "the Raft port needs a member's client certificate",
                ))
            }
            Some(Err(e)) => {
                return Err(Status::permission_denied(format!(
                    "client certificate: {e}"
                )))
            }
            Some(Ok(Principal::Peer { member })) => member,
            Some(Ok(other)) => {
                return Err(Status::permission_denied(format!(
                    "{other} is not a cluster member"
                )))
            }
        };
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let membership = &metrics.membership_config;
        if membership.log_id().is_some() && membership.get_node(&member).is_none() {
            return Err(Status::permission_denied(format!(
                "member {member} is not in this node's membership"
            )));
        }
        Ok(Some(member))
    }
}

/// Refuses a message in the name of another member than the `caller`
/// (PERMISSION_DENIED): a vote's candidate, an append's or snapshot's
/// leader must be the member whose certificate sent it.
fn check_sender(caller: Option<NodeId>, vote: &Vote) -> Result<(), Status> {
    let named = *vote.leader_id().node_id();
    match caller {
        Some(member) if member != named => Err(Status::permission_denied(format!(
            "member {member} sent a message in member {named}'s name"
        ))),
        _ => Ok(()),
    }
}

/// Why an `InstallSnapshot` piece was refused. Every refusal drops the
/// partial snapshot it would have joined (except [`ReceiveError::Stale`],
/// which leaves a newer leader's transfer alone), so the sender starts over.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// One piece is larger than a sender ever makes one.
    #[error("snapshot piece of {0} bytes exceeds SNAPSHOT_CHUNK_BYTES_MAX")]
    PieceTooLarge(usize),
    /// The pieces so far would exceed the largest snapshot a member takes
    /// (`SNAPSHOT_BYTES_MAX`).
    #[error("snapshot would exceed the snapshot size limit ({0} bytes or more)")]
    SnapshotTooLarge(u64),
    /// The piece does not continue the snapshot in progress (another
    /// leader, another snapshot, a gap or an overlap).
    #[error("snapshot piece at offset {0} does not continue the snapshot in progress")]
    Discontinuous(u64),
    /// A new snapshot from a leader older than the one whose snapshot is
    /// being received.
    #[error("snapshot from a vote older than the snapshot in progress")]
    Stale,
}

impl From<ReceiveError> for Status {
    fn from(e: ReceiveError) -> Status {
        match e {
            ReceiveError::PieceTooLarge(_) | ReceiveError::SnapshotTooLarge(_) => {
                Status::resource_exhausted(e.to_string())
            }
            ReceiveError::Discontinuous(_) | ReceiveError::Stale => {
                Status::failed_precondition(e.to_string())
            }
        }
    }
}

impl RaftGrpc {
    /// Adds `chunk` to the snapshot being received; the whole snapshot once
    /// `chunk` is its last piece. There is at most one snapshot in progress,
    /// of at most `snapshot_bytes_max` bytes: a piece at offset 0 starts a
    /// new one (replacing the one in progress unless that one comes from a
    /// newer vote); any other piece must continue the one in progress
    /// exactly. A refused piece drops the partial snapshot (see
    /// [`ReceiveError`]).
    fn receive(&self, chunk: SnapshotChunk) -> Result<Option<(Vote, Snapshot)>, ReceiveError> {
        let mut receiving = self.receiving.lock().unwrap_or_else(|e| e.into_inner());
        let piece_bytes = chunk.data.len();
        if piece_bytes as u64 > SNAPSHOT_CHUNK_BYTES_MAX {
            *receiving = None;
            return Err(ReceiveError::PieceTooLarge(piece_bytes));
        }
        if chunk.offset == 0 {
            let newer_in_progress = receiving.as_ref().is_some_and(|r| {
                r.vote.partial_cmp(&chunk.vote) == Some(std::cmp::Ordering::Greater)
            });
            if newer_in_progress {
                return Err(ReceiveError::Stale);
            }
            *receiving = Some(Receiving {
                vote: chunk.vote,
                meta: chunk.meta,
                data: chunk.data,
            });
        } else {
            let Some(r) = receiving.as_mut().filter(|r| {
                r.vote == chunk.vote && r.meta == chunk.meta && r.data.len() as u64 == chunk.offset
            }) else {
                *receiving = None;
                return Err(ReceiveError::Discontinuous(chunk.offset));
            };
            let total_bytes = chunk.offset.saturating_add(piece_bytes as u64);
            if total_bytes > self.snapshot_bytes_max {
                *receiving = None;
                return Err(ReceiveError::SnapshotTooLarge(total_bytes));
            }
            r.data.extend_from_slice(&chunk.data);
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
