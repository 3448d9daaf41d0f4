//! The client side of the Raft transport: lazily connected tonic channels,
//! one per peer and traffic class, so that a multi-MiB snapshot chunk or a
//! burst of forwarded writes never queues on the TCP connection in front of
//! the heartbeats and appends that keep a leader in place (HTTP/2 streams of
//! one connection share its TCP send buffer, which is first in, first out).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alcor_proto::raft::v1::raft_service_client::RaftServiceClient;
use alcor_proto::raft::v1::RaftMessage;
use alcor_tls::ReloadingClientTls;
use openraft::base::{BoxFuture, BoxStream};
use openraft::errors::{
    Fatal, NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Timeout,
    Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::append_stream::{self, AppendAnswer, Link};
use crate::convert;
use crate::faults::{LinkFate, LinkFaults};
use crate::limits::{
    APPEND_ENTRIES_BYTES_PER_MS_MIN, GRPC_MESSAGE_BYTES_MAX, PEER_PING_UNANSWERED_MS_MAX,
    SNAPSHOT_CHUNK_BYTES_MAX,
};
use crate::metrics::RaftMetrics;
use crate::types::{Node, NodeId, Snapshot, SnapshotData, SnapshotMeta, TypeConfig, Vote};

/// Why a peer RPC failed before the peer could answer it.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The address is not a valid URI.
    #[error("bad peer address {addr:?}: {reason}")]
    BadAddress {
        /// The address that was given.
        addr: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The request could not be encoded.
    #[error(transparent)]
    Encode(#[from] crate::codec::EncodeError),
    /// Transport failure or an error status from the peer.
    #[error("peer rpc failed: {0}")]
    Status(#[from] Status),
    /// No answer within the deadline.
    #[error("peer rpc timed out after {0:?}")]
    Timeout(Duration),
}

/// The channel cache: one lazily connected channel per peer and class.
#[derive(Debug)]
pub struct Peers {
    /// This node's id (the `from` of every link).
    id: NodeId,
    channels: Mutex<BTreeMap<(NodeId, Class), Cached>>,
    /// Test-only fault injection; `None` in production.
    pub(crate) faults: Option<Arc<dyn LinkFaults>>,
    /// Mutual TLS to peers (this member's certificate, the cluster CA),
    /// re-read when the files change; `None` speaks plain text
    /// (`--insecure`).
    tls: Option<ReloadingClientTls>,
    /// Records a reply of a newer wire version (the node then stops).
    pub(crate) newer: convert::NewerWire,
}

/// A cached channel: the address it dials and the TLS generation it was
/// built with.
#[derive(Debug)]
struct Cached {
    addr: String,
    generation: u64,
    channel: Channel,
}

/// Which RaftService method to call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Method {
    AppendEntries,
    Vote,
    PreVote,
    InstallSnapshot,
    TransferLeader,
    Forward,
    ReadIndex,
}

/// The traffic classes that get a connection of their own to each peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    /// AppendEntries (the `StreamAppend` stream, heartbeats included),
    /// votes and leader transfers: small and bounded
    /// (`APPEND_ENTRIES_BYTES_MAX`), and what leadership depends on.
    Replication,
    /// InstallSnapshot chunks (up to `SNAPSHOT_CHUNK_BYTES_MAX` each).
    Snapshot,
    /// Forwarded writes and ReadIndex requests of clients.
    Client,
}

impl Method {
    fn class(self) -> Class {
        match self {
            Method::AppendEntries | Method::Vote | Method::PreVote | Method::TransferLeader => {
                Class::Replication
            }
            Method::InstallSnapshot => Class::Snapshot,
            Method::Forward | Method::ReadIndex => Class::Client,
        }
    }

    /// openraft's own messages (not forwarding or reads).
    fn is_raft_protocol(self) -> bool {
        matches!(
            self,
            Method::AppendEntries
                | Method::Vote
                | Method::PreVote
                | Method::InstallSnapshot
                | Method::TransferLeader
        )
    }
}

/// One piece of a snapshot on the wire (`InstallSnapshot`): openraft 0.10
/// hands the transport a whole snapshot, which is sent in pieces of at most
/// `SNAPSHOT_CHUNK_BYTES_MAX` so that no message nears the gRPC limit. The
/// receiver appends the pieces in order and installs the snapshot with the
/// last one.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// The sending leader's vote.
    pub vote: Vote,
    /// What the whole snapshot covers.
    pub meta: SnapshotMeta,
    /// Where `data` starts in the snapshot.
    pub offset: u64,
    /// The bytes from `offset` on (one byte string, see `StoredSnapshot`).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Whether this is the last piece.
    pub done: bool,
}

impl Peers {
    /// An empty cache for node `id`, with optional fault injection,
    /// connecting with `tls` when given (else plain text).
    pub fn new(
        id: NodeId,
        faults: Option<Arc<dyn LinkFaults>>,
        tls: Option<ReloadingClientTls>,
    ) -> Peers {
        Peers {
            id,
            channels: Mutex::new(BTreeMap::new()),
            faults,
            tls,
            newer: convert::NewerWire::default(),
        }
    }

    /// A client for `target` at `raft_addr` for `class`, reusing the
    /// cached channel unless the address or the TLS files changed (a
    /// renewed certificate is presented on new connections; the old
    /// channel closes once its RPCs finish). Connecting happens on first
    /// use.
    pub(crate) fn client(
        &self,
        target: NodeId,
        raft_addr: &str,
        class: Class,
    ) -> Result<RaftServiceClient<Channel>, PeerError> {
        // Only the generation on the hot path: the config is cloned only
        // when a channel is built.
        let generation = self.tls.as_ref().map_or(0, ReloadingClientTls::generation);
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let channel = match channels.get(&(target, class)) {
            Some(cached) if cached.addr == raft_addr && cached.generation == generation => {
                cached.channel.clone()
            }
            _ => {
                let tls = self.tls.as_ref().map(ReloadingClientTls::current);
                let generation = tls.as_ref().map_or(generation, |(_, now)| *now);
                let bad_address = |e: tonic::transport::Error| PeerError::BadAddress {
                    addr: raft_addr.to_string(),
                    reason: e.to_string(),
                };
                let scheme = if tls.is_some() { "https" } else { "http" };
                let mut endpoint = Endpoint::from_shared(format!("{scheme}://{raft_addr}"))
                    .map_err(bad_address)?
                    .tcp_nodelay(true)
                    .connect_timeout(Duration::from_secs(1))
                    .http2_keep_alive_interval(Duration::from_millis(PEER_PING_UNANSWERED_MS_MAX))
                    .keep_alive_timeout(Duration::from_millis(PEER_PING_UNANSWERED_MS_MAX))
                    .keep_alive_while_idle(true);
                if let Some((config, _)) = tls {
                    endpoint = endpoint.tls_config(config).map_err(bad_address)?;
                }
                let channel = endpoint.connect_lazy();
                let cached = Cached {
                    addr: raft_addr.to_string(),
                    generation,
                    channel: channel.clone(),
                };
                channels.insert((target, class), cached);
                channel
            }
        };
        Ok(RaftServiceClient::new(channel)
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX))
    }

    /// Sends `request` to `target` and decodes the reply's payload as `T`.
    pub(crate) async fn call<Req: Serialize, T: DeserializeOwned>(
        &self,
        target: NodeId,
        raft_addr: &str,
        method: Method,
        request: &Req,
        timeout: Duration,
    ) -> Result<T, PeerError> {
        let client = self.client(target, raft_addr, method.class())?;
        let message = convert::to_message(request)?;
        // A big message gets time to travel: its size at the slowest rate a
        // peer is assumed to take, on top of the caller's timeout.
        let size_ms = message.payload.len() / APPEND_ENTRIES_BYTES_PER_MS_MIN;
        let timeout = timeout + Duration::from_millis(size_ms as u64);
        let Some(faults) = &self.faults else {
            let reply = send(client, method, message, timeout).await?;
            return Ok(self.newer.decode(&reply, raft_addr)?);
        };
        match faults.request(self.id, target) {
            LinkFate::Deliver => {}
            LinkFate::Drop => {
                tokio::time::sleep(timeout).await;
                return Err(PeerError::Timeout(timeout));
            }
            LinkFate::Delay(delay) => tokio::time::sleep(delay.min(timeout)).await,
            // Only Raft's own messages may be duplicated: Raft tolerates
            // that by design, while a duplicated forwarded write would be a
            // second proposal, which no real transport produces (clients
            // retry through request tokens, not through the transport).
            LinkFate::Duplicate if !method.is_raft_protocol() => {}
            LinkFate::Duplicate => {
                let (client, message) = (client.clone(), message.clone());
                tokio::spawn(async move {
                    // The duplicate's outcome is irrelevant: only its effect
                    // on the peer matters.
                    let _ = send(client, method, message, timeout).await;
                });
            }
        }
        let reply = send(client, method, message, timeout).await?;
        if faults.reply_lost(self.id, target) {
            return Err(PeerError::Timeout(timeout));
        }
        Ok(self.newer.decode(&reply, raft_addr)?)
    }
}

/// One RPC of `method` carrying `message`, bounded by `timeout`.
async fn send(
    mut client: RaftServiceClient<Channel>,
    method: Method,
    message: RaftMessage,
    timeout: Duration,
) -> Result<RaftMessage, PeerError> {
    let mut grpc_request = tonic::Request::new(message);
    grpc_request.set_timeout(timeout);
    let call = async {
        match method {
            Method::AppendEntries => client.append_entries(grpc_request).await,
            Method::Vote => client.vote(grpc_request).await,
            Method::PreVote => client.pre_vote(grpc_request).await,
            Method::InstallSnapshot => client.install_snapshot(grpc_request).await,
            Method::TransferLeader => client.transfer_leader(grpc_request).await,
            Method::Forward => client.forward(grpc_request).await,
            Method::ReadIndex => client.read_index(grpc_request).await,
        }
    };
    Ok(tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| PeerError::Timeout(timeout))??
        .into_inner())
}

/// openraft's network factory: hands out connections backed by [`Peers`].
#[derive(Debug, Clone)]
pub struct NetworkFactory {
    id: NodeId,
    peers: Arc<Peers>,
    metrics: RaftMetrics,
}

impl NetworkFactory {
    /// A factory for node `id` sharing `peers`' channels.
    pub fn new(id: NodeId, peers: Arc<Peers>) -> NetworkFactory {
        NetworkFactory::with_metrics(id, peers, RaftMetrics::default())
    }

    /// [`NetworkFactory::new`] recording snapshot sends into `metrics`.
    pub fn with_metrics(id: NodeId, peers: Arc<Peers>, metrics: RaftMetrics) -> NetworkFactory {
        NetworkFactory { id, peers, metrics }
    }
}

/// A connection to one peer, as openraft sees it.
#[derive(Debug)]
pub struct Connection {
    id: NodeId,
    target: NodeId,
    raft_addr: String,
    peers: Arc<Peers>,
    /// Snapshot send times, outcomes and bytes.
    metrics: RaftMetrics,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Connection {
        Connection {
            id: self.id,
            target,
            raft_addr: node.raft_addr.clone(),
            peers: Arc::clone(&self.peers),
            metrics: self.metrics.clone(),
        }
    }
}

impl Connection {
    /// One Raft RPC whose reply payload is `Result<T, RaftError>`; the
    /// only Raft-level error of these calls is the peer's Raft having
    /// stopped, which is as good as unreachable.
    async fn raft_call<Req, T>(
        &self,
        method: Method,
        action: RPCTypes,
        request: &Req,
        option: &RPCOption,
    ) -> Result<T, RPCError<TypeConfig>>
    where
        Req: Serialize,
        T: DeserializeOwned,
    {
        let timeout = option.hard_ttl();
        let reply: Result<T, RaftError<TypeConfig>> = self
            .peers
            .call(self.target, &self.raft_addr, method, request, timeout)
            .await
            .map_err(|e| self.to_rpc_error(e, action, timeout))?;
        reply.map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }

    fn timeout(&self, action: RPCTypes, timeout: Duration) -> Timeout<TypeConfig> {
        Timeout {
            action,
            id: self.id,
            target: self.target,
            timeout,
        }
    }

    /// Maps a transport failure to what openraft should do about it.
    fn to_rpc_error(
        &self,
        error: PeerError,
        action: RPCTypes,
        timeout: Duration,
    ) -> RPCError<TypeConfig> {
        match error {
            PeerError::Timeout(_) => RPCError::Timeout(self.timeout(action, timeout)),
            PeerError::Status(status) if status.code() == Code::DeadlineExceeded => {
                RPCError::Timeout(self.timeout(action, timeout))
            }
            // Everything else, refused connections and peers that reject
            // the envelope (e.g. a version mismatch during an upgrade)
            // included, is Unreachable so openraft backs off instead of
            // retrying immediately.
            e => RPCError::Unreachable(Unreachable::new(&e)),
        }
    }

    /// Sends `snapshot` piece by piece; see [`SnapshotChunk`].
    async fn send_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
        option: &RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let timeout = option.hard_ttl();
        let data = snapshot.snapshot.into_inner();
        let chunk_bytes_max = SNAPSHOT_CHUNK_BYTES_MAX as usize;
        let mut offset = 0;
        loop {
            let end = data.len().min(offset + chunk_bytes_max);
            let chunk = SnapshotChunk {
                vote,
                meta: snapshot.meta.clone(),
                offset: offset as u64,
                data: data[offset..end].to_vec(),
                done: end == data.len(),
            };
            let reply: Result<SnapshotResponse<TypeConfig>, Fatal<TypeConfig>> = self
                .peers
                .call(
                    self.target,
                    &self.raft_addr,
                    Method::InstallSnapshot,
                    &chunk,
                    timeout,
                )
                .await
                .map_err(|e| match e {
                    PeerError::Timeout(_) => {
                        StreamingError::Timeout(self.timeout(RPCTypes::InstallSnapshot, timeout))
                    }
                    PeerError::Status(s) if s.code() == Code::DeadlineExceeded => {
                        StreamingError::Timeout(self.timeout(RPCTypes::InstallSnapshot, timeout))
                    }
                    e => StreamingError::Unreachable(Unreachable::new(&e)),
                })?;
            let response = reply.map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
            // A higher vote ends the transfer: openraft steps down.
            if chunk.done || response.vote > vote {
                return Ok(response);
            }
            offset = end;
        }
    }
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = SnapshotData;

    /// Pipelined: one `StreamAppend` call per replication session (see
    /// [`append_stream`]).
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<'s, Result<BoxStream<'s, AppendAnswer>, RPCError<TypeConfig>>>
    where
        S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        let link = Link {
            id: self.id,
            target: self.target,
            faults: self.peers.faults.clone(),
        };
        Box::pin(async move {
            let answers =
                append_stream::open(&self.peers, link, &self.raft_addr, input, option).await?;
            Ok(answers as BoxStream<'s, AppendAnswer>)
        })
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.raft_call(
            Method::AppendEntries,
            RPCTypes::AppendEntries,
            &rpc,
            &option,
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.raft_call(Method::Vote, RPCTypes::Vote, &rpc, &option)
            .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.raft_call(Method::PreVote, RPCTypes::Vote, &rpc, &option)
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let started = std::time::Instant::now();
        let bytes = snapshot.snapshot.get_ref().len() as u64;
        let sent = tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            sent = self.send_snapshot(vote, snapshot, &option) => sent,
        };
        self.metrics
            .snapshot_send
            .observe(started.elapsed().as_secs_f64());
        match &sent {
            Ok(_) => {
                self.metrics.snapshot_send_success.inc();
                self.metrics.snapshot_send_bytes.inc_by(bytes);
            }
            Err(_) => {
                self.metrics.snapshot_send_failures.inc();
            }
        }
        sent
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.raft_call(
            Method::TransferLeader,
            RPCTypes::TransferLeader,
            &req,
            &option,
        )
        .await
    }
}
