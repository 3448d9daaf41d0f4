//! `PushService`: the `alcor.push.v1.HostPush` server of one controller
//! node. Each agent stream gets a session task that owns a cursor into the
//! node's retained window ([`crate::window`]) and turns what it finds into
//! FullSync and DiffBatch messages; a reader task records the agent's acks.
//!
//! Policies:
//! - Hello without state, or with a revision the window no longer covers:
//!   FullSync of `goal_state(host)` at the state's revision. Otherwise a
//!   DiffBatch from the Hello's revision (a revision the node has not
//!   reached yet is fine: it waits until it has).
//! - Coalescing: a session sends whatever the window holds past its cursor
//!   (up to `BATCH_CHANGES_MAX`) in one DiffBatch; `to_revision` is the
//!   window's end even if the last events had nothing for the host.
//! - Revisions without changes for a host are not sent on their own: the
//!   agent learns them with its next change, or with an empty DiffBatch
//!   `idle_advance_ms` after the first unsent one.
//! - A slow agent: its queue holds `AGENT_QUEUE_MAX` messages; while it is
//!   full the session waits (only that session) and changes pile up in the
//!   window, to be coalesced into the next batch, or replaced by a FullSync
//!   if the window moved past the agent's cursor meanwhile.
//! - Acks: the reader records each host's last acked revision (observable
//!   through [`PushService::wait_acked`]) and hands the ack to the node's
//!   port-status proposer ([`crate::status`]) without waiting for it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use alcor_proto::identity::{Denial, Principal};
use alcor_proto::push::v1 as pb;
use alcor_proto::push::v1::host_push_server::{HostPush, HostPushServer};
use alcor_raft_core::{RaftNode, StateView};
use alcor_state_machine::{goal_digest, GoalChange, GoalObject, HostId};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert;
use crate::error::WaitAckedError;
use crate::limits;
use crate::message::{
    AgentMessage, ControllerMessage, ErrorCode, Hello, FULL_SYNC_PARTS_SINCE, PROTOCOL_VERSION,
    PROTOCOL_VERSION_MIN,
};
use crate::metrics::{self, Probe, PushMetrics, ResyncCause, Sessions};
use crate::status::{self, StatusCounters, StatusFeed};
use crate::window::{Retainer, Scan, WindowLimits};

/// Tunables of a [`PushService`]; [`PushConfig::default`] takes them from
/// [`crate::limits`]. Tests shrink the window.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Concurrent agent streams.
    pub agents_max: usize,
    /// Events with changes kept in the retained window.
    pub window_events_max: usize,
    /// Estimated bytes kept in the retained window.
    pub window_bytes_max: usize,
    /// Changes per DiffBatch (soft; whole events).
    pub batch_changes_max: usize,
    /// Delay before an empty DiffBatch advances an idle agent's revision.
    pub idle_advance_ms: u64,
    /// How long a host's first unsent change may wait for more to join
    /// its DiffBatch (0: send at once; batches then only form while the
    /// agent's queue is full).
    pub batch_window_ms: u64,
    /// FullSyncs built and queued at once (reconnect-storm pacing).
    pub full_syncs_max: usize,
    /// Whether acks drive port status (`SetPortStatus` proposals).
    pub propose_port_status: bool,
    /// Hosts whose last ack is remembered (see `limits::ACKED_HOSTS_MAX`).
    pub acked_hosts_max: usize,
}

impl Default for PushConfig {
    fn default() -> PushConfig {
        PushConfig {
            agents_max: limits::AGENTS_MAX,
            window_events_max: limits::WINDOW_EVENTS_MAX,
            window_bytes_max: limits::WINDOW_BYTES_MAX,
            batch_changes_max: limits::BATCH_CHANGES_MAX,
            idle_advance_ms: limits::IDLE_ADVANCE_MS,
            batch_window_ms: limits::BATCH_WINDOW_MS,
            full_syncs_max: limits::FULL_SYNCS_CONCURRENT_MAX,
            propose_port_status: true,
            acked_hosts_max: limits::ACKED_HOSTS_MAX,
        }
    }
}

/// A host agent's latest digest report (`DigestReport`) on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentReport {
    /// The revision of the agent's table.
    pub revision: u64,
    /// `goal_digest` of that table.
    pub digest: [u8; 32],
    /// The digest of what its data plane programmed from that table;
    /// `None` from a simulated or older agent.
    pub programmed: Option<[u8; 32]>,
}

/// Serves `alcor.push.v1.HostPush` for one node. Cheap to clone; all
/// clones share the window, the acks and the stop signal.
#[derive(Debug, Clone)]
pub struct PushService {
    inner: Arc<Inner>,
}

struct Inner {
    /// The node's applied state: FullSyncs are read from it.
    view: StateView,
    /// Recent changes, for resuming and coalescing.
    retainer: Arc<Retainer>,
    /// Caps concurrent streams.
    agents: Arc<Semaphore>,
    /// The last revision each host acknowledged (to this node); `None`
    /// until its first ack (an entry may exist for a waiter).
    acked: Mutex<BTreeMap<HostId, watch::Sender<Option<u64>>>>,
    /// Hosts with a live stream on this node (and how many): their ack
    /// entries are never evicted.
    connected: Mutex<BTreeMap<HostId, usize>>,
    /// The latest digest report of each host in `connected` (taken and
    /// dropped under its lock, so never of another host).
    reports: Mutex<BTreeMap<HostId, AgentReport>>,
    /// Acks on their way to the port-status proposer.
    status: Arc<StatusFeed>,
    /// Set by `close`: every session and the feeder end.
    stop: watch::Sender<bool>,
    /// Caps FullSyncs in progress (`config.full_syncs_max`).
    full_syncs: Semaphore,
    /// The live sessions, for the scrape-time gauges.
    sessions: Arc<Sessions>,
    metrics: PushMetrics,
    config: PushConfig,
}

impl PushService {
    /// Starts serving `node`'s applied state: subscribes to its applied
    /// events, then reads its revision, and spawns the window feeder and
    /// (if `config.propose_port_status`) the port-status proposer, so it
    /// must run inside a tokio runtime.
    pub fn new(node: &Arc<RaftNode>, config: PushConfig) -> Result<PushService, Status> {
        let events = node.subscribe_applied();
        let view = node.state_view();
        let revision = view
            .read(|state| state.applied_index())
            .map_err(|e| Status::internal(e.to_string()))?;
        let limits = WindowLimits {
            events_max: config.window_events_max,
            bytes_max: config.window_bytes_max,
        };
        let retainer = Arc::new(Retainer::new(revision, limits));
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(Arc::clone(&retainer).feed(events, view.clone(), stop_rx.clone()));
        let (status, woken) = StatusFeed::new();
        if config.propose_port_status {
            tokio::spawn(status::run_proposer(
                Arc::clone(&status),
                Arc::clone(node),
                woken,
                stop_rx,
            ));
        }
        Ok(PushService {
            inner: Arc::new(Inner {
                view,
                retainer,
                agents: Arc::new(Semaphore::new(config.agents_max)),
                acked: Mutex::new(BTreeMap::new()),
                connected: Mutex::new(BTreeMap::new()),
                reports: Mutex::new(BTreeMap::new()),
                status,
                stop,
                full_syncs: Semaphore::new(config.full_syncs_max.max(1)),
                sessions: Arc::new(Sessions::default()),
                metrics: PushMetrics::default(),
                config,
            }),
        })
    }

    /// This service as a tonic service with raised message limits, ready
    /// for `Server::add_service`.
    pub fn into_server(self) -> HostPushServer<PushService> {
        HostPushServer::new(self)
            .max_decoding_message_size(limits::PUSH_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(limits::PUSH_MESSAGE_BYTES_MAX)
    }

    /// The last revision `host` acknowledged on this node, if any.
    pub fn acked_revision(&self, host: &str) -> Option<u64> {
        self.inner
            .acked()
            .get(host)
            .and_then(|revision| *revision.borrow())
    }

    /// The latest digest report of `host`'s agent on this node, while it
    /// streams here.
    pub fn agent_report(&self, host: &str) -> Option<AgentReport> {
        self.inner.reports().get(host).copied()
    }

    /// Every host's last acknowledged revision on this node.
    pub fn acked(&self) -> BTreeMap<HostId, u64> {
        self.inner
            .acked()
            .iter()
            .filter_map(|(host, revision)| Some((host.clone(), (*revision.borrow())?)))
            .collect()
    }

    /// Waits until `host`'s agent acknowledged `revision` or later on this
    /// node (acks to other nodes do not count); returns the acked
    /// revision. Gives up at `deadline`, or when the service is closed.
    pub async fn wait_acked(
        &self,
        host: &str,
        revision: u64,
        deadline: Instant,
    ) -> Result<u64, WaitAckedError> {
        let mut acked = self
            .inner
            .watch_acked(host)
            .ok_or(WaitAckedError::TableFull)?;
        let mut stop = self.inner.stop.subscribe();
        let reached = |acked: &Option<u64>| acked.is_some_and(|acked| acked >= revision);
        let waited = tokio::select! {
            biased;
            result = acked.wait_for(reached) => match result {
                Ok(acked) => Ok(acked.unwrap_or(revision)),
                // The sender lives in the table, which never drops it.
                Err(_) => Err(WaitAckedError::Closed),
            },
            _ = stop.wait_for(|stopped| *stopped) => Err(WaitAckedError::Closed),
            _ = tokio::time::sleep_until(deadline) => Err(WaitAckedError::Timeout { acked: None }),
        };
        match waited {
            Err(WaitAckedError::Timeout { .. }) => Err(WaitAckedError::Timeout {
                acked: *acked.borrow(),
            }),
            waited => waited,
        }
    }

    /// Registers this node's push metrics (counters, the commit-to-ack
    /// latency histogram, and scrape-time gauges of the sessions) in
    /// `registry`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        metrics::register(
            registry,
            &self.inner.metrics,
            Arc::clone(&self.inner.sessions),
            Arc::clone(&self.inner.retainer),
            Arc::clone(&self.inner.status),
        );
    }

    /// How many FullSyncs `cause` triggered on this node so far.
    pub fn resyncs(&self, cause: ResyncCause) -> u64 {
        self.inner.metrics.resyncs_of(cause)
    }

    /// Agent digests that differed from this node's so far.
    pub fn digest_mismatches(&self) -> u64 {
        self.inner.metrics.digest_mismatches.get()
    }

    /// What this node's port-status proposer did so far.
    pub fn status_counters(&self) -> StatusCounters {
        self.inner.status.counters()
    }

    /// The retained window as `(base, last)`: agents at a revision in
    /// `base..` resume with diffs, older ones get a FullSync.
    pub fn window_range(&self) -> (u64, u64) {
        self.inner.retainer.lock().range()
    }

    /// Ends every stream (agents get an UNAVAILABLE error and reconnect
    /// elsewhere) and refuses new ones. Call before shutting the node down:
    /// a tonic server waits for open streams when shutting down gracefully.
    pub fn close(&self) {
        self.inner.stop.send_replace(true);
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushService")
            .field("window", &self.retainer.lock().range())
            .field("config", &self.config)
            .finish()
    }
}

impl Inner {
    fn acked(&self) -> std::sync::MutexGuard<'_, BTreeMap<HostId, watch::Sender<Option<u64>>>> {
        // Plain map inserts cannot leave it inconsistent: ignore poisoning.
        self.acked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn connected(&self) -> std::sync::MutexGuard<'_, BTreeMap<HostId, usize>> {
        // Plain counter updates: ignore poisoning.
        self.connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Taken after `connected` when both are.
    fn reports(&self) -> std::sync::MutexGuard<'_, BTreeMap<HostId, AgentReport>> {
        // Plain inserts and removes: ignore poisoning.
        self.reports.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `report` as `host`'s latest, if the host still streams here.
    fn record_report(&self, host: &str, report: AgentReport) {
        let connected = self.connected();
        if connected.contains_key(host) {
            self.reports().insert(host.to_string(), report);
        }
    }

    /// Makes room in a full ack table: drops the entries of hosts with no
    /// live stream on this node and nobody waiting on them (hosts that
    /// left, or were deleted). Returns whether there is room now.
    fn room_for_ack(&self, acked: &mut BTreeMap<HostId, watch::Sender<Option<u64>>>) -> bool {
        make_room(acked, &self.connected(), self.config.acked_hosts_max)
    }

    /// `host`'s entry of the ack table, created if there is room.
    fn watch_acked(&self, host: &str) -> Option<watch::Receiver<Option<u64>>> {
        let mut acked = self.acked();
        if let Some(revision) = acked.get(host) {
            return Some(revision.subscribe());
        }
        if !self.room_for_ack(&mut acked) {
            return None;
        }
        let (revision, watching) = watch::channel(None);
        acked.insert(host.to_string(), revision);
        Some(watching)
    }

    fn record_ack(&self, host: &str, revision: u64) {
        let mut acked = self.acked();
        if let Some(last) = acked.get(host) {
            last.send_if_modified(|last| {
                let raised = last.is_none_or(|last| revision > last);
                if raised {
                    *last = Some(revision);
                }
                raised
            });
        } else if self.room_for_ack(&mut acked) {
            acked.insert(host.to_string(), watch::Sender::new(Some(revision)));
        } else {
            tracing::warn!(host, "ack table full: ack not recorded");
        }
    }
}

#[tonic::async_trait]
impl HostPush for PushService {
    type SyncStream = OutboundStream;

    async fn sync(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        if *self.inner.stop.borrow() {
            return Err(Status::unavailable("node is shutting down"));
        }
        let permit = Arc::clone(&self.inner.agents)
            .try_acquire_owned()
            .map_err(|_| {
                self.inner.metrics.agents_refused.inc();
                Status::resource_exhausted("too many agent streams")
            })?;
        let caller = request.extensions().get::<Principal>().cloned();
        let mut inbound = request.into_inner();
        let hello = read_hello(&mut inbound).await?;
        check_host(caller.as_ref(), &hello.host_id)?;
        tracing::debug!(host = hello.host_id, revision = ?hello.revision, "agent connected");
        let (tx, rx) = mpsc::channel(limits::AGENT_QUEUE_MAX);
        tokio::spawn(run_session(
            Arc::clone(&self.inner),
            hello,
            inbound,
            tx,
            permit,
        ));
        Ok(Response::new(OutboundStream(ReceiverStream::new(rx))))
    }
}

/// One message queued for an agent's stream, boxed: tokio allocates a
/// channel's slots 32 at a time when the channel is made, so a small slot
/// keeps every idle session's queue small (a bare message and status
/// would take about 1.5 KB per session).
pub(crate) type Outbound = Box<Result<pb::ControllerMessage, Status>>;

/// The stream tonic sends to an agent: the session's queue, unboxed.
#[derive(Debug)]
pub struct OutboundStream(ReceiverStream<Outbound>);

impl tokio_stream::Stream for OutboundStream {
    type Item = Result<pb::ControllerMessage, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.0)
            .poll_next(cx)
            .map(|message| message.map(|boxed| *boxed))
    }
}

/// What waiting for room in a session's outbound queue ended with.
enum Room<'a> {
    /// A slot for one message.
    Free(mpsc::Permit<'a, Outbound>),
    /// The node is stopping.
    Stopping,
    /// The agent went away (its reader ended or the stream was dropped).
    Gone,
}

/// Waits for room in `tx`, unless the node stops or the agent's `reader`
/// ends first.
async fn room<'a>(
    tx: &'a mpsc::Sender<Outbound>,
    stop: &mut watch::Receiver<bool>,
    reader: &mut JoinHandle<()>,
) -> Room<'a> {
    tokio::select! {
        biased;
        _ = stop.wait_for(|stopped| *stopped) => Room::Stopping,
        _ = reader => Room::Gone,
        permit = tx.reserve() => permit.map_or(Room::Gone, Room::Free),
    }
}

/// Reads and checks the first message of a stream.
async fn read_hello(inbound: &mut Streaming<pb::AgentMessage>) -> Result<Hello, Status> {
    let timeout = Duration::from_millis(limits::HELLO_TIMEOUT_MS_MAX);
    let first = tokio::time::timeout(timeout, inbound.message())
        .await
        .map_err(|_| Status::deadline_exceeded("no Hello in time"))?
        .map_err(|e| Status::invalid_argument(format!("unreadable first message: {e}")))?
        .ok_or_else(|| Status::invalid_argument("stream ended before Hello"))?;
    let AgentMessage::Hello(hello) = convert::agent_from_pb(&first)? else {
        return Err(Status::invalid_argument("first message must be Hello"));
    };
    if !(PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION).contains(&hello.protocol_version) {
        return Err(Status::invalid_argument(format!(
            "protocol version {} unsupported, want {PROTOCOL_VERSION_MIN} to {PROTOCOL_VERSION}",
            hello.protocol_version
        )));
    }
    let host = &hello.host_id;
    if host.is_empty()
        || host.len() > limits::HOST_ID_BYTES_MAX
        || host.chars().any(char::is_control)
    {
        return Err(Status::invalid_argument(format!(
            "host_id must have 1 to {} bytes and no control characters",
            limits::HOST_ID_BYTES_MAX
        )));
    }
    Ok(hello)
}

/// Refuses a stream for `host` unless the caller may open it: an agent
/// only its own host's, the admin any (tools and tests). A stream without
/// a caller did not come through an authentication layer (in-process
/// tests) and is served.
fn check_host(caller: Option<&Principal>, host: &str) -> Result<(), Status> {
    let denied = |denial: Denial, message: String| {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert(
            alcor_proto::REASON_HEADER,
            tonic::metadata::MetadataValue::from_static(denial.code()),
        );
        Err(Status::with_metadata(
            tonic::Code::PermissionDenied,
            message,
            metadata,
        ))
    };
    match caller {
        None | Some(Principal::Admin) => Ok(()),
        Some(Principal::Agent { host: own }) if own == host => Ok(()),
        Some(caller @ Principal::Agent { .. }) => denied(
            Denial::HostDenied,
            format!("{caller} may not open the stream of host {host:?}"),
        ),
        Some(caller) => denied(
            Denial::RoleDenied,
            format!("{caller} may not open push streams"),
        ),
    }
}

/// Aborts the wrapped task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where one agent stands.
#[derive(Debug)]
enum Cursor {
    /// The next message must be a FullSync, for this reason.
    Unsynced(ResyncCause),
    /// The agent is at `sent`; events in `(sent, scanned]` hold nothing
    /// for it.
    Synced {
        sent: u64,
        scanned: u64,
        sent_at: Instant,
    },
}

/// What a session does next.
enum Step {
    /// Send a DiffBatch; `latency` is `(to_revision, first change applied
    /// at)` when it carries changes.
    Send(ControllerMessage, Option<(u64, Instant)>),
    /// Send a FullSync (after taking a full-sync slot).
    FullSync(ResyncCause),
    /// Look again at once (a scan stopped at a cap).
    Again,
    /// Wait for the window, a timer (idle advance, batch window) or the end.
    Idle { advance_at: Option<Instant> },
}

/// What a session shares with its ack reader.
#[derive(Debug)]
struct SessionShared {
    /// DiffBatches with changes sent and not yet acked, as
    /// `(to_revision, first change applied at)`, oldest first; at most
    /// `UNACKED_BATCHES_MAX` (the oldest sample is dropped beyond).
    unacked: Mutex<VecDeque<(u64, Instant)>>,
    /// The agent's latest digest report, `(revision, digest)`.
    digest: watch::Sender<Option<(u64, [u8; 32])>>,
    /// The highest revision the agent may ack: what its Hello claimed (no
    /// further than the node's state then) or what was sent to it since.
    /// An ack beyond is a protocol error: it would mark ports and pass
    /// `Barrier` for revisions the agent never received.
    ackable: AtomicU64,
}

impl SessionShared {
    fn unacked(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Instant)>> {
        // Plain pushes and pops: ignore poisoning.
        self.unacked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts a session in `connected_agents` while it lives.
struct Connected<'a>(&'a PushMetrics);

impl<'a> Connected<'a> {
    fn new(metrics: &'a PushMetrics) -> Connected<'a> {
        metrics.connected.inc();
        Connected(metrics)
    }
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.connected.dec();
    }
}

/// Counts a stream of a host in `Inner::connected` while it lives.
struct ConnectedHost<'a> {
    inner: &'a Inner,
    host: HostId,
}

impl<'a> ConnectedHost<'a> {
    fn new(inner: &'a Inner, host: &str) -> ConnectedHost<'a> {
        *inner.connected().entry(host.to_string()).or_insert(0) += 1;
        ConnectedHost {
            inner,
            host: host.to_string(),
        }
    }
}

impl Drop for ConnectedHost<'_> {
    fn drop(&mut self) {
        let mut connected = self.inner.connected();
        if let Some(n) = connected.get_mut(&self.host) {
            *n -= 1;
            if *n == 0 {
                connected.remove(&self.host);
                self.inner.reports().remove(&self.host);
            }
        }
    }
}

/// One agent's stream, until it or the node goes away.
async fn run_session(
    inner: Arc<Inner>,
    hello: Hello,
    inbound: Streaming<pb::AgentMessage>,
    tx: mpsc::Sender<Outbound>,
    _permit: OwnedSemaphorePermit,
) {
    let protocol_version = hello.protocol_version;
    let host = hello.host_id;
    let applied = inner.view.read(|state| state.applied_index()).unwrap_or(0);
    let shared = Arc::new(SessionShared {
        unacked: Mutex::new(VecDeque::new()),
        digest: watch::Sender::new(None),
        ackable: AtomicU64::new(hello.revision.unwrap_or(0).min(applied)),
    });
    let _connected_host = ConnectedHost::new(&inner, &host);
    let mut reader = AbortOnDrop(tokio::spawn(read_agent(
        Arc::clone(&inner),
        host.clone(),
        inbound,
        Arc::clone(&shared),
    )));
    let _connected = Connected::new(&inner.metrics);
    let sent_probe = Arc::new(AtomicU64::new(hello.revision.unwrap_or(0)));
    let _listed = inner.sessions.add(Probe {
        queue: tx.downgrade(),
        sent: Arc::clone(&sent_probe),
    });
    let mut changed = inner.retainer.subscribe();
    let waker = inner.retainer.waker(&host);
    let mut stop = inner.stop.subscribe();
    let mut digests = shared.digest.subscribe();
    let mut cursor = match hello.revision {
        Some(revision) if revision >= inner.retainer.lock().range().0 => Cursor::Synced {
            sent: revision,
            scanned: revision,
            sent_at: Instant::now(),
        },
        Some(_) => Cursor::Unsynced(ResyncCause::BehindWindow),
        None => Cursor::Unsynced(ResyncCause::NoState),
    };
    let mut report: Option<(u64, [u8; 32])> = None;
    loop {
        let permit = match room(&tx, &mut stop, &mut reader.0).await {
            Room::Free(permit) => permit,
            Room::Stopping => break,
            Room::Gone => return,
        };
        changed.borrow_and_update();
        match next_step(&inner, &host, &mut cursor) {
            Step::Send(message, latency) => match convert::controller_to_pb(&message) {
                Ok(message) => {
                    if let Some(sample) = latency {
                        let mut unacked = shared.unacked();
                        if unacked.len() >= limits::UNACKED_BATCHES_MAX {
                            unacked.pop_front();
                        }
                        unacked.push_back(sample);
                    }
                    inner.metrics.diff_batches.inc();
                    if let Some(pb::controller_message::Kind::DiffBatch(batch)) = &message.kind {
                        shared
                            .ackable
                            .fetch_max(batch.to_revision, Ordering::Relaxed);
                    }
                    permit.send(Box::new(Ok(message)));
                }
                Err(e) => {
                    tracing::error!(host, "cannot encode push message: {e}");
                    permit.send(Box::new(Err(Status::internal(e.to_string()))));
                    return;
                }
            },
            Step::FullSync(cause) => {
                inner.metrics.resync(cause);
                inner.metrics.full_syncs_waiting.inc();
                let slot = tokio::select! {
                    biased;
                    _ = stop.wait_for(|stopped| *stopped) => None,
                    _ = &mut reader.0 => None,
                    slot = inner.full_syncs.acquire() => slot.ok(),
                };
                inner.metrics.full_syncs_waiting.dec();
                let Some(slot) = slot else {
                    if *stop.borrow() {
                        break;
                    }
                    return;
                };
                let (revision, objects) = match full_sync(&inner, &host, &mut cursor) {
                    Ok(goal) => goal,
                    Err(message) => {
                        permit.send(Box::new(
                            convert::controller_to_pb(&message).map_err(Status::from),
                        ));
                        return;
                    }
                };
                let part_bytes_max = if protocol_version >= FULL_SYNC_PARTS_SINCE {
                    limits::FULL_SYNC_PART_BYTES_MAX
                } else {
                    usize::MAX
                };
                let parts = match convert::full_sync_parts_to_pb(revision, &objects, part_bytes_max)
                {
                    Ok(parts) => parts,
                    Err(e) => {
                        tracing::error!(host, "cannot encode push message: {e}");
                        permit.send(Box::new(Err(Status::internal(e.to_string()))));
                        return;
                    }
                };
                drop(objects);
                // The slot paces reading and encoding goal states; a slow
                // agent waiting for room for its parts must not hold it.
                drop(slot);
                inner.metrics.full_syncs.inc();
                shared.ackable.fetch_max(revision, Ordering::Relaxed);
                // Batches sent before the FullSync will not be acked one
                // by one any more.
                shared.unacked().clear();
                let mut parts = parts.into_iter();
                let mut permit = Some(permit);
                // The parts go out back to back, nothing in between.
                for part in parts.by_ref() {
                    let permit = match permit.take() {
                        Some(permit) => permit,
                        None => match room(&tx, &mut stop, &mut reader.0).await {
                            Room::Free(permit) => permit,
                            Room::Stopping => break,
                            Room::Gone => return,
                        },
                    };
                    inner.metrics.full_sync_parts.inc();
                    permit.send(Box::new(Ok(part)));
                }
                if !parts.as_slice().is_empty() {
                    // Stopping mid-way: the agent drops the parts it has.
                    break;
                }
            }
            Step::Again => {}
            Step::Idle { advance_at } => {
                drop(permit);
                if digests.has_changed().unwrap_or(false) {
                    report = *digests.borrow_and_update();
                }
                if let Some(reported) = report {
                    match check_digest(&inner, &host, &cursor, reported) {
                        DigestCheck::Later => {}
                        DigestCheck::Stale => report = None,
                        DigestCheck::Match => {
                            inner.metrics.digest_checks.inc();
                            report = None;
                        }
                        DigestCheck::Mismatch => {
                            inner.metrics.digest_checks.inc();
                            inner.metrics.digest_mismatches.inc();
                            tracing::warn!(
                                host,
                                revision = reported.0,
                                "agent digest differs from the controller's: resync"
                            );
                            cursor = Cursor::Unsynced(ResyncCause::DigestMismatch);
                            report = None;
                            continue;
                        }
                    }
                }
                // Wake-ups are targeted at hosts with changes: look once an
                // idle-advance period anyway, so an idle agent's revision
                // still moves forward.
                let look_at = Instant::now() + Duration::from_millis(inner.config.idle_advance_ms);
                let advance_at = advance_at.map_or(look_at, |at| at.min(look_at));
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stopped| *stopped) => break,
                    _ = &mut reader.0 => return,
                    _ = changed.changed() => {}
                    () = waker.woken() => {}
                    _ = digests.changed() => report = *digests.borrow_and_update(),
                    _ = tokio::time::sleep_until(advance_at) => {}
                }
            }
        }
        if let Cursor::Synced { sent, .. } = cursor {
            sent_probe.store(sent, Ordering::Relaxed);
        }
    }
    let bye = ControllerMessage::Error {
        code: ErrorCode::Unavailable,
        message: "node is shutting down".to_string(),
    };
    if let Ok(bye) = convert::controller_to_pb(&bye) {
        let _ = tx.try_send(Box::new(Ok(bye)));
    }
}

/// Keeps only the last change to each object (applying the batch in order
/// gives the same table); returns the batch and how many were dropped.
fn collapse(changes: Vec<GoalChange>) -> (Vec<GoalChange>, usize) {
    let n_changes = changes.len();
    let mut seen = BTreeSet::new();
    let mut kept: Vec<GoalChange> = changes
        .into_iter()
        .rev()
        .filter(|change| seen.insert(change.key()))
        .collect();
    kept.reverse();
    let dropped = n_changes - kept.len();
    (kept, dropped)
}

/// Decides the next message for `host`.
fn next_step(inner: &Inner, host: &str, cursor: &mut Cursor) -> Step {
    let now = Instant::now();
    let Cursor::Synced {
        sent,
        scanned,
        sent_at,
    } = cursor
    else {
        let Cursor::Unsynced(cause) = cursor else {
            unreachable!("matched above")
        };
        return Step::FullSync(*cause);
    };
    let scan = inner.retainer.lock().scan(
        host,
        *scanned,
        inner.config.batch_changes_max,
        limits::SCAN_EVENTS_MAX,
    );
    let (to, changes, more, events, oldest) = match scan {
        Scan::Evicted => {
            tracing::debug!(host, sent, "cursor left the window: full sync");
            return Step::FullSync(ResyncCause::Overflow);
        }
        Scan::Found {
            to,
            changes,
            more,
            events,
            oldest,
        } => (to, changes, more, events, oldest),
    };
    // Batching window: a young batch with room left waits for more.
    let batch_window = Duration::from_millis(inner.config.batch_window_ms);
    if let Some(oldest) = oldest {
        let send_at = oldest + batch_window;
        if !more && changes.len() < inner.config.batch_changes_max && now < send_at {
            return Step::Idle {
                advance_at: Some(send_at),
            };
        }
    }
    *scanned = to;
    let idle_advance = Duration::from_millis(inner.config.idle_advance_ms);
    if !changes.is_empty() || (*scanned > *sent && now >= *sent_at + idle_advance) {
        let (changes, collapsed) = collapse(changes);
        inner.metrics.changes_collapsed.inc_by(collapsed as u64);
        inner
            .metrics
            .events_coalesced
            .inc_by(events.saturating_sub(1) as u64);
        let latency = oldest.map(|oldest| (*scanned, oldest));
        let message = ControllerMessage::DiffBatch {
            from_revision: *sent,
            to_revision: *scanned,
            changes,
        };
        *sent = *scanned;
        *sent_at = now;
        return Step::Send(message, latency);
    }
    if more {
        return Step::Again;
    }
    let advance_at = (*scanned > *sent).then_some(*sent_at + idle_advance);
    Step::Idle { advance_at }
}

/// Reads `host`'s whole goal state and moves the cursor to its revision.
fn full_sync(
    inner: &Inner,
    host: &str,
    cursor: &mut Cursor,
) -> Result<(u64, Vec<GoalObject>), ControllerMessage> {
    // Read the window's end before the state: every event up to it was
    // applied before the read, and entries after the state's last command
    // change nothing, so the state is also the goal state at that end.
    let window_last = inner.retainer.lock().range().1;
    let (state_revision, goal) = inner
        .view
        .read(|state| (state.applied_index(), state.goal_state(host)))
        .map_err(|e| ControllerMessage::Error {
            code: ErrorCode::Internal,
            message: e.to_string(),
        })?;
    let revision = state_revision.max(window_last);
    *cursor = Cursor::Synced {
        sent: revision,
        scanned: revision,
        sent_at: Instant::now(),
    };
    Ok((revision, goal.into_values().collect()))
}

/// The outcome of comparing an agent's digest with this node's.
#[derive(Debug, PartialEq, Eq)]
enum DigestCheck {
    /// Equal.
    Match,
    /// Different: the agent's table is wrong.
    Mismatch,
    /// Not comparable yet (the node's state is not at a revision whose
    /// goal state for the host is known to equal the report's); try again
    /// at the next idle moment.
    Later,
    /// The report is older than what was sent since: drop it.
    Stale,
}

/// Compares `reported` (the agent's `(revision, digest)`) with the node's
/// digest of the host's goal state. Comparable when the report is at the
/// session's last sent revision and the window shows no change for the
/// host between it and the state's revision (so the goal state now is the
/// goal state at the report's revision).
fn check_digest(
    inner: &Inner,
    host: &str,
    cursor: &Cursor,
    reported: (u64, [u8; 32]),
) -> DigestCheck {
    let Cursor::Synced { sent, .. } = cursor else {
        return DigestCheck::Stale;
    };
    let (revision, agent_digest) = reported;
    if revision != *sent {
        return DigestCheck::Stale;
    }
    // The cheap part first: no change for the host after the report in
    // the window, up to its end.
    let last = {
        let window = inner.retainer.lock();
        match window.scan(host, revision, 1, limits::SCAN_EVENTS_MAX) {
            Scan::Found {
                changes,
                more: false,
                to,
                ..
            } if changes.is_empty() => to,
            Scan::Evicted => return DigestCheck::Stale,
            Scan::Found { .. } => return DigestCheck::Later,
        }
    };
    let Ok((state_revision, digest)) = inner
        .view
        .read(|state| (state.applied_index(), goal_digest(&state.goal_state(host))))
    else {
        return DigestCheck::Later;
    };
    // The state must be at or after the report and not past what the
    // scan covered.
    if state_revision < revision || state_revision > last {
        return DigestCheck::Later;
    }
    if digest == agent_digest {
        DigestCheck::Match
    } else {
        DigestCheck::Mismatch
    }
}

/// Records `host`'s acks until its stream ends.
async fn read_agent(
    inner: Arc<Inner>,
    host: HostId,
    mut inbound: Streaming<pb::AgentMessage>,
    shared: Arc<SessionShared>,
) {
    loop {
        let message = match inbound.message().await {
            Ok(Some(message)) => message,
            Ok(None) => return,
            Err(status) => {
                tracing::debug!(host, "agent stream failed: {status}");
                return;
            }
        };
        match convert::agent_from_pb(&message) {
            Ok(AgentMessage::Ack(ack)) => {
                let ackable = shared.ackable.load(Ordering::Relaxed);
                if ack.revision > ackable {
                    tracing::warn!(
                        host,
                        revision = ack.revision,
                        ackable,
                        "ack beyond what was sent: closing the stream"
                    );
                    return;
                }
                {
                    let now = Instant::now();
                    let mut unacked = shared.unacked();
                    while let Some((revision, applied_at)) = unacked.front() {
                        if *revision > ack.revision {
                            break;
                        }
                        let seconds = now.saturating_duration_since(*applied_at).as_secs_f64();
                        inner.metrics.latency.observe(seconds);
                        unacked.pop_front();
                    }
                }
                inner.record_ack(&host, ack.revision);
                inner.status.offer(&host, &ack);
                for status in &ack.statuses {
                    if let Err(reason) = &status.result {
                        tracing::debug!(host, key = ?status.key, reason, "agent failed to apply");
                    }
                }
            }
            Ok(AgentMessage::DigestReport {
                revision,
                digest,
                programmed,
            }) => {
                inner.metrics.digest_reports.inc();
                inner.record_report(
                    &host,
                    AgentReport {
                        revision,
                        digest,
                        programmed,
                    },
                );
                shared.digest.send_replace(Some((revision, digest)));
            }
            Ok(AgentMessage::Hello(_)) => {
                tracing::warn!(host, "second Hello on one stream: closing it");
                return;
            }
            Err(e) => {
                tracing::warn!(host, "bad agent message, closing its stream: {e}");
                return;
            }
        }
    }
}

/// Whether `acked` has room for one more host, after dropping, when it
/// holds `max` entries or more, those of hosts with no live stream
/// (`connected`) and nobody waiting on them.
fn make_room(
    acked: &mut BTreeMap<HostId, watch::Sender<Option<u64>>>,
    connected: &BTreeMap<HostId, usize>,
    max: usize,
) -> bool {
    if acked.len() < max {
        return true;
    }
    acked.retain(|host, revision| revision.receiver_count() > 0 || connected.contains_key(host));
    tracing::info!(
        kept = acked.len(),
        "ack table full: evicted disconnected hosts"
    );
    acked.len() < max
}

#[cfg(test)]
mod tests {
    use super::*;
    use alcor_state_machine::{GoalKey, Id};

    #[test]
    fn a_full_ack_table_evicts_only_hosts_nobody_streams_or_waits_on() {
        let entry = |revision| watch::channel(Some(revision));
        let (waited, waiter) = entry(1);
        let (streaming, _) = entry(2);
        let (gone, _) = entry(3);
        let mut acked: BTreeMap<HostId, _> = BTreeMap::from([
            ("waited".to_string(), waited),
            ("streaming".to_string(), streaming),
            ("gone".to_string(), gone),
        ]);
        let connected = BTreeMap::from([("streaming".to_string(), 1)]);

        assert!(
            make_room(&mut acked, &connected, 4),
            "not full: no eviction"
        );
        assert_eq!(acked.len(), 3);
        assert!(
            make_room(&mut acked, &connected, 3),
            "the departed host made room"
        );
        assert_eq!(
            acked.keys().collect::<Vec<_>>(),
            ["streaming", "waited"],
            "live streams and waiters keep their entries"
        );
        assert!(
            !make_room(&mut acked, &connected, 2),
            "no room: all are held"
        );
        assert_eq!(acked.len(), 2);
        drop(waiter);
        assert!(make_room(&mut acked, &connected, 2), "the waiter left");
        assert_eq!(acked.keys().collect::<Vec<_>>(), ["streaming"]);
    }

    #[test]
    fn collapse_keeps_the_last_change_of_each_object_in_order() {
        let changes = vec![
            GoalChange::Remove(GoalKey::Port(Id(1))),
            GoalChange::Remove(GoalKey::Port(Id(2))),
            GoalChange::Remove(GoalKey::Vpc(Id(1))),
            GoalChange::Remove(GoalKey::Port(Id(1))),
        ];
        let (kept, dropped) = collapse(changes);
        assert_eq!(dropped, 1);
        assert_eq!(
            kept,
            vec![
                GoalChange::Remove(GoalKey::Port(Id(2))),
                GoalChange::Remove(GoalKey::Vpc(Id(1))),
                GoalChange::Remove(GoalKey::Port(Id(1))),
            ]
        );
    }
}
