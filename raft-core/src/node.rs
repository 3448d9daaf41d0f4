//! `RaftNode`: one cluster member, ready to serve. It owns the openraft
//! instance, its storage and the Raft gRPC server, and offers what the rest
//! of Alcor needs: writes (forwarded to the leader), linearizable and stale
//! reads, applied-entry events, membership changes and metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use alcor_state_machine::{Command, Proposal, State};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::{ClientWriteError, ForwardReason, LinearizableReadError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::{ChangeMembers, ReadPolicy, SnapshotPolicy};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{AdminError, ReadError, ShutdownError, StartError, WriteError};
use crate::faults::{LinkFaults, Mutation};
use crate::health::{health_server, NotReady, Readiness};
use crate::limits::{
    APPEND_ENTRIES_PER_RPC_MAX, PEER_PING_UNANSWERED_MS_MAX, RAFT_PENDING_RESET_STREAMS_MAX,
    RAFT_STREAMS_PER_CONNECTION_MAX, SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_BYTES_MAX,
    SNAPSHOT_LOG_BYTES_MAX, SNAPSHOT_SIZE_CHECK_MS, WRITE_ATTEMPTS_MAX, WRITE_LEASE_WAIT_MAX,
};
use crate::metrics::{Pending, RaftCollector, RaftMetrics};
use crate::network::{Method, NetworkFactory, PeerError, Peers};
use crate::read_rounds::{JoinError, RoundFuture, SharedRounds};
use crate::server::RaftGrpc;
use crate::storage::{
    self, AppliedEvent, ChangeEvent, Db, DbClosed, LogStore, StateMachineStore, StateView,
};
use crate::types::{
    EntryResponse, LogId, Node, NodeId, Raft, Request, Response, ServerState, TypeConfig,
};
use alcor_proto::raft::v1::raft_service_server::RaftServiceServer;
use alcor_tls::{server_config, ClientAuth, Protocol, ReloadingClientTls, TlsFiles, TlsIncoming};
use tonic::server::NamedService;

/// How long `shutdown` waits for the gRPC server to drain.
const SERVER_DRAIN_MS_MAX: u64 = 2_000;
/// How long `shutdown` waits for the database to be closed.
const DB_CLOSE_WAIT_MS_MAX: u64 = 5_000;
/// Timeout of one snapshot chunk RPC (openraft's 200 ms default is too
/// small for a loaded machine).
const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 5_000;
/// Pause between two attempts of a linearizable read's ReadIndex.
const READ_RETRY_BACKOFF: Duration = Duration::from_millis(25);
/// Pause before asking a leader again that refused a write because its
/// quorum lease had lapsed (it renews with its next acknowledged heartbeat).
const WRITE_RETRY_BACKOFF: Duration = Duration::from_millis(25);

/// Default leader heartbeat period (ms). With the lease campaigner
/// (`election.rs`) a killed leader is replaced about one
/// `ELECTION_TIMEOUT_MAX_MS_DEFAULT` after its last heartbeat; these three
/// were chosen by measurement (benches/README.md, "Failover").
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 50;
/// Default lower bound of openraft's randomized election timeout (ms).
pub const ELECTION_TIMEOUT_MIN_MS_DEFAULT: u64 = 250;
/// Default upper bound of openraft's randomized election timeout (ms); it
/// is also the leader lease: no member grants a vote sooner after
/// hearing from a leader.
pub const ELECTION_TIMEOUT_MAX_MS_DEFAULT: u64 = 400;
/// Default count of log entries after which a snapshot is built (etcd's
/// `--snapshot-count` is 100,000). Every snapshot encodes the whole state:
/// at 5,000 entries a 256-client write load built one every ~0.3 s and
/// lost ~10 % of its throughput to them (benches/README.md). The byte
/// trigger (`SNAPSHOT_LOG_BYTES_MAX`) still bounds the log tail a restart
/// replays.
pub const SNAPSHOT_LOGS_SINCE_LAST_DEFAULT: u64 = 50_000;
/// Default share of the last snapshot's size, in percent, that the log must
/// grow by before the size trigger builds the next snapshot (when that is
/// more than `snapshot_log_bytes_since_last`). Every snapshot encodes the
/// whole state, so a fixed byte trigger makes each logged byte pay for
/// encoding a share of the state that grows with it: at ~2,000,000 ports
/// the 64-MiB trigger spent 47 % of the members' CPU building snapshots
/// (benches/README.md). Scaling the trigger keeps that share constant,
/// and a restart still replays at most half the work of its restore.
pub const SNAPSHOT_LOG_STATE_PERCENT_DEFAULT: u64 = 50;

/// Where the Raft gRPC server listens.
#[derive(Debug)]
pub enum RaftListen {
    /// Bind this address at start.
    Addr(SocketAddr),
    /// Use an already bound listener (tests bind port 0).
    Listener(TcpListener),
}

/// Everything `RaftNode::start` needs.
#[derive(Debug)]
pub struct RaftNodeConfig {
    /// This node's id; must be a key of `initial_members`.
    pub node_id: NodeId,
    /// Directory of this node's RocksDB (created if missing).
    pub data_dir: PathBuf,
    /// Where to serve `alcor.raft.v1.RaftService`.
    pub raft_listen: RaftListen,
    /// The static initial cluster (etcd `--initial-cluster` style): every
    /// node gets the same map. Only the lowest id initializes, and only
    /// when its log is empty.
    pub initial_members: BTreeMap<NodeId, Node>,
    /// Leader heartbeat period.
    pub heartbeat_interval_ms: u64,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_logs_since_last: u64,
    /// Also build one once this many stored bytes of log were appended
    /// since the last one (checked every `SNAPSHOT_SIZE_CHECK_MS`).
    pub snapshot_log_bytes_since_last: u64,
    /// ... or, when larger, this percentage of the last snapshot's bytes.
    pub snapshot_log_state_percent: u64,
    /// Entries kept in the log behind the latest snapshot (lets slightly
    /// lagging followers catch up without a snapshot).
    pub snapshot_logs_to_keep: u64,
    /// Upper bound on one `client_write`/`read_linearizable`, forwarding
    /// and waiting for a leader included.
    pub request_timeout_ms: u64,
    /// Whether this node may initialize the cluster (when it is the lowest
    /// id of `initial_members` and its log is empty). `false` for a node
    /// joining a running cluster: it waits to be added by the leader.
    pub bootstrap: bool,
    /// Fault injection on outgoing peer messages; `None` in production.
    pub link_faults: Option<Arc<dyn LinkFaults>>,
    /// A deliberate bug for mutation testing; `None` in production.
    pub mutation: Option<Mutation>,
    /// Keep WAL writes in RocksDB's in-process buffer until the next fsync
    /// (`manual_wal_flush`), so that a `kill -9` loses exactly what was not
    /// fsynced, as a power cut would. A fault-testing aid (the Jepsen
    /// harness's "lost un-fsynced writes"); durability of acknowledged
    /// writes is unchanged because every append is fsynced before its ack.
    pub wal_buffered_until_sync: bool,
    /// The largest snapshot this node reassembles from a leader's
    /// `InstallSnapshot` pieces (`SNAPSHOT_BYTES_MAX`; tests lower it).
    pub snapshot_bytes_max: u64,
    /// Mutual TLS on the Raft port and to peers: this member's certificate
    /// (identity `alcor://peer/ID` plus server names for its Raft
    /// address) and the CA that signs members. Only current members may
    /// then call the Raft port, each only as itself. `None`: plain text,
    /// and anyone who can connect may call (`--insecure`).
    pub tls: Option<TlsFiles>,
}

impl RaftNodeConfig {
    /// A config with the defaults tuned for a loaded 2-core machine:
    /// heartbeat 50 ms, elections 250–400 ms, a snapshot every
    /// `SNAPSHOT_LOGS_SINCE_LAST_DEFAULT` entries or `SNAPSHOT_LOG_BYTES_MAX` bytes of log, keeping 1000
    /// entries behind it, 5 s request timeout.
    pub fn new(
        node_id: NodeId,
        data_dir: PathBuf,
        raft_listen: RaftListen,
        initial_members: BTreeMap<NodeId, Node>,
    ) -> RaftNodeConfig {
        RaftNodeConfig {
            node_id,
            data_dir,
            raft_listen,
            initial_members,
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS_DEFAULT,
            election_timeout_min_ms: ELECTION_TIMEOUT_MIN_MS_DEFAULT,
            election_timeout_max_ms: ELECTION_TIMEOUT_MAX_MS_DEFAULT,
            snapshot_logs_since_last: SNAPSHOT_LOGS_SINCE_LAST_DEFAULT,
            snapshot_log_bytes_since_last: SNAPSHOT_LOG_BYTES_MAX,
            snapshot_log_state_percent: SNAPSHOT_LOG_STATE_PERCENT_DEFAULT,
            snapshot_logs_to_keep: 1_000,
            request_timeout_ms: 5_000,
            bootstrap: true,
            link_faults: None,
            mutation: None,
            wal_buffered_until_sync: false,
            snapshot_bytes_max: SNAPSHOT_BYTES_MAX,
            tls: None,
        }
    }

    /// openraft 0.10's config. Beyond the timing and snapshot policy:
    /// - Pre-Vote on: a member that cannot win (partitioned, restarted,
    ///   behind) asks first and does not raise the term of a healthy leader.
    /// - Client writes are batched (`api_batch_capacity`, openraft's default
    ///   4096, no linger) and merged into one log append (`max_append_entries`,
    ///   default 4096); an AppendEntries carries at most
    ///   `APPEND_ENTRIES_PER_RPC_MAX` entries and `APPEND_ENTRIES_BYTES_MAX`
    ///   bytes (the log reader enforces the bytes).
    /// - `enable_leader_restore` off: a restarted leader must win an election
    ///   again. With it on, a leader restarted quickly resumes its old term
    ///   without a new blank entry, so its read index could sit below writes
    ///   it acknowledged before dying (the commit index is persisted unsynced).
    /// - No lease reads: linearizable reads use ReadIndex only.
    fn raft_config(&self) -> Result<openraft::Config, StartError> {
        let config = openraft::Config {
            cluster_name: "alcor".to_string(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_logs_since_last),
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES_MAX,
            max_in_snapshot_log_to_keep: self.snapshot_logs_to_keep,
            max_payload_entries: APPEND_ENTRIES_PER_RPC_MAX,
            enable_pre_vote: Some(true),
            enable_leader_restore: Some(false),
            allow_log_reversion: Some(false),
            ..Default::default()
        };
        config
            .validate()
            .map_err(|e| StartError::Config(e.to_string()))
    }
}

/// A point-in-time view of this node's Raft metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMetrics {
    /// This node.
    pub id: NodeId,
    /// Leader, follower, candidate, learner or shutdown.
    pub state: ServerState,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// Index of the last log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last entry known committed.
    pub committed_index: Option<u64>,
    /// Index of the last entry applied to the state machine.
    pub applied_index: Option<u64>,
    /// Last index covered by the latest snapshot.
    pub snapshot_index: Option<u64>,
    /// Last index purged from the log.
    pub purged_index: Option<u64>,
    /// Voting members (of the last config, joint configs flattened).
    pub voters: BTreeSet<NodeId>,
    /// Every member, learners included, with their addresses.
    pub nodes: BTreeMap<NodeId, Node>,
}

/// A running cluster member.
pub struct RaftNode {
    id: NodeId,
    raft: Raft,
    view: StateView,
    events: broadcast::Sender<AppliedEvent>,
    changes: broadcast::Sender<ChangeEvent>,
    committed: watch::Receiver<Option<LogId>>,
    peers: Arc<Peers>,
    /// Shared ReadIndex rounds of this node's linearizable reads (leader:
    /// a local leadership confirmation; follower: one `ReadIndex` RPC).
    reads: SharedRounds<Result<Option<u64>, ReadError>>,
    request_timeout: Duration,
    mutation: Option<Mutation>,
    raft_addr: SocketAddr,
    /// This member's Raft and storage metrics (see [`crate::metrics`]).
    metrics: RaftMetrics,
    /// The database, for its sizes at scrape time (weak: `shutdown` waits
    /// until every strong handle is gone).
    db: Weak<Db>,
    /// Whether this member is ready (`health::track` keeps it current).
    readiness: Arc<watch::Sender<Readiness>>,
    /// What `shutdown` stops; `None` once it has run.
    running: Mutex<Option<Running>>,
}

/// The parts of a node that `shutdown` stops and waits for.
struct Running {
    server_stop: oneshot::Sender<()>,
    server_task: JoinHandle<Result<(), tonic::transport::Error>>,
    /// Triggers snapshots by log growth; aborted at shutdown.
    snapshot_by_size: JoinHandle<()>,
    /// Starts a pre-vote when the leader's lease runs out; aborted at
    /// shutdown.
    campaigner: JoinHandle<()>,
    /// Counts leader changes; aborted at shutdown.
    leader_tracker: JoinHandle<()>,
    /// Keeps `readiness` current; aborted at shutdown.
    readiness_tracker: JoinHandle<()>,
    /// Lets `shutdown` wait until RocksDB is really closed.
    db_closed: DbClosed,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.id)
            .field("raft_addr", &self.raft_addr)
            .finish()
    }
}

impl RaftNode {
    /// Opens storage, starts Raft and its gRPC server, and bootstraps the
    /// cluster if `bootstrap` is set, this is the lowest id of
    /// `initial_members` and its log is empty (so a restart never
    /// re-initializes).
    pub async fn start(config: RaftNodeConfig) -> Result<RaftNode, StartError> {
        if !config.initial_members.contains_key(&config.node_id) {
            return Err(StartError::Config(format!(
                "node {} is not in initial_members",
                config.node_id
            )));
        }
        let raft_config = Arc::new(config.raft_config()?);
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| StartError::DataDir(format!("{}: {e}", config.data_dir.display())))?;
        let started = Instant::now();
        let (db, db_closed) = storage::open_db(&config.data_dir, config.wal_buffered_until_sync)
            .map_err(|e| StartError::DataDir(e.to_string()))?;
        let opened_ms = started.elapsed().as_millis();
        let metrics = RaftMetrics::default();
        let log_store = LogStore::with_metrics(
            Arc::clone(&db),
            config.mutation != Some(Mutation::SkipFsync),
            &metrics,
        )
        .map_err(|e| StartError::Storage(e.to_string()))?;
        let committed = log_store.committed();
        let start_committed = committed.borrow().map(|id| id.index);
        let appended_bytes = log_store.appended_bytes();
        let state_machine = StateMachineStore::with_metrics(Arc::clone(&db), metrics.clone())
            .map_err(|e| StartError::Storage(e.to_string()))?;
        let restored_ms = started.elapsed().as_millis();
        let state_machine_snapshot_bytes = state_machine.snapshot_bytes();
        let view = state_machine.view();
        let events = state_machine.events();
        let changes = state_machine.changes();

        let (server_tls, client_tls) = match &config.tls {
            Some(files) => {
                let tls_error = |e: alcor_tls::TlsError| StartError::Tls(e.to_string());
                let server = server_config(files, ClientAuth::Required, Protocol::Grpc)
                    .map_err(tls_error)?;
                let client = ReloadingClientTls::load(&files.ca, Some((&files.cert, &files.key)))
                    .map_err(tls_error)?;
                (Some(server), Some(client))
            }
            None => (None, None),
        };
        let peers = Arc::new(Peers::new(
            config.node_id,
            config.link_faults.clone(),
            client_tls,
        ));
        let network =
            NetworkFactory::with_metrics(config.node_id, Arc::clone(&peers), metrics.clone());
        let raft = Raft::new(
            config.node_id,
            raft_config,
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        tracing::info!(
            opened_ms,
            restored_ms,
            raft_started_ms = started.elapsed().as_millis(),
            applied = view.applied_index().ok().flatten(),
            committed = start_committed,
            "storage opened (times since start); entries up to `committed` replay next"
        );

        let snapshot_by_size = tokio::spawn(snapshot_by_size(
            raft.clone(),
            appended_bytes,
            SnapshotTrigger {
                snapshot_bytes: state_machine_snapshot_bytes,
                log_bytes_min: config.snapshot_log_bytes_since_last,
                state_percent: config.snapshot_log_state_percent,
            },
        ));

        let leader_tracker = tokio::spawn(crate::metrics::track_leader(
            raft.clone(),
            metrics.leader_changes.clone(),
        ));

        let campaigner = tokio::spawn(crate::election::campaign_when_lease_expires(
            raft.clone(),
            config.node_id,
            Duration::from_millis(config.election_timeout_max_ms),
            Duration::from_millis(config.heartbeat_interval_ms),
        ));

        let (readiness, readiness_rx) = watch::channel(Err(NotReady::Starting));
        let readiness = Arc::new(readiness);
        let readiness_tracker = tokio::spawn(crate::health::track(
            raft.clone(),
            config.node_id,
            Duration::from_millis(config.election_timeout_max_ms),
            Duration::from_millis(config.heartbeat_interval_ms),
            start_committed,
            Arc::clone(&readiness),
        ));

        let listener = match config.raft_listen {
            RaftListen::Addr(addr) => TcpListener::bind(addr).await?,
            RaftListen::Listener(listener) => listener,
        };
        let raft_addr = listener.local_addr()?;
        let (server_stop, stop_rx) = oneshot::channel();
        let request_timeout = Duration::from_millis(config.request_timeout_ms);
        let join_in_flight = config.mutation == Some(Mutation::ReadJoinsRoundInFlight);
        let leader_reads = Arc::new(leader_read_rounds(raft.clone(), join_in_flight));
        let reads = node_read_rounds(
            ReadIndexer {
                id: config.node_id,
                raft: raft.clone(),
                peers: Arc::clone(&peers),
                leader_reads: Arc::clone(&leader_reads),
                request_timeout,
            },
            join_in_flight,
        );
        let service = RaftGrpc::service(
            raft.clone(),
            leader_reads,
            config.snapshot_bytes_max,
            server_tls.is_some(),
            peers.newer.clone(),
        );
        // Health on the Raft port: anyone past its TLS handshake (a
        // certificate the cluster CA signed) may ask; the Raft RPCs
        // themselves also demand a current member.
        let health = health_server(
            readiness_rx,
            &[<RaftServiceServer<RaftGrpc> as NamedService>::NAME],
        )
        .await;
        let router = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .max_concurrent_streams(RAFT_STREAMS_PER_CONNECTION_MAX)
            .http2_max_pending_accept_reset_streams(Some(RAFT_PENDING_RESET_STREAMS_MAX))
            .http2_keepalive_interval(Some(Duration::from_millis(PEER_PING_UNANSWERED_MS_MAX)))
            .http2_keepalive_timeout(Some(Duration::from_millis(PEER_PING_UNANSWERED_MS_MAX)))
            .add_service(service)
            .add_service(health);
        let stopped = async {
            let _ = stop_rx.await;
        };
        let server_task = match server_tls {
            Some(tls) => {
                let incoming = TlsIncoming::new(listener, tls)?;
                tokio::spawn(router.serve_with_incoming_shutdown(incoming, stopped))
            }
            None => tokio::spawn(router.serve_with_incoming_shutdown(
                // `tcp_nodelay` above is ignored for a caller-supplied listener;
                // without this every Raft round trip waits for a delayed ACK.
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                stopped,
            )),
        };

        let node = RaftNode {
            id: config.node_id,
            raft,
            view,
            events,
            changes,
            committed,
            peers,
            reads,
            metrics,
            db: Arc::downgrade(&db),
            request_timeout,
            mutation: config.mutation,
            raft_addr,
            readiness,
            running: Mutex::new(Some(Running {
                server_stop,
                server_task,
                snapshot_by_size,
                campaigner,
                leader_tracker,
                readiness_tracker,
                db_closed,
            })),
        };
        if config.bootstrap {
            node.bootstrap(config.initial_members).await?;
        }
        Ok(node)
    }

    async fn bootstrap(&self, members: BTreeMap<NodeId, Node>) -> Result<(), StartError> {
        let lowest = members.keys().next().copied();
        if lowest != Some(self.id) {
            return Ok(());
        }
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        tracing::info!(node_id = self.id, ?members, "initializing cluster");
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            // Someone else initialized it already: that is the goal.
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(StartError::Raft(e.to_string())),
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address the Raft gRPC server is bound to.
    pub fn raft_addr(&self) -> SocketAddr {
        self.raft_addr
    }

    /// A cloneable, `'static` read handle on this node's applied state
    /// (stale reads; see `read_linearizable` for fresh ones).
    pub fn state_view(&self) -> StateView {
        self.view.clone()
    }

    /// The underlying openraft handle, for waiting on metrics in tests and
    /// tools. Writes and reads should go through `RaftNode`.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The leader this node currently knows of, with its addresses.
    pub fn leader(&self) -> Option<(NodeId, Node)> {
        leader_seen(&self.raft).map(|seen| (seen.id, seen.node))
    }

    /// Commits `proposal` and returns the state machine's verdict. On a
    /// follower the proposal is forwarded to the leader's Raft port.
    /// Rejections are in `Response::result`, not errors.
    pub async fn client_write(&self, mut proposal: Proposal) -> Result<Response, WriteError> {
        if self.mutation == Some(Mutation::DoubleApply) {
            proposal.command = without_request_tokens(proposal.command);
        }
        let request = Request::Apply(Arc::new(proposal));
        let deadline = Instant::now() + self.request_timeout;
        let _pending = Pending::start(&self.metrics);
        let written =
            tokio::time::timeout_at(deadline, self.write_with_retries(&request, deadline))
                .await
                .map_err(|_| WriteError::Timeout)
                .and_then(|written| written);
        if written.is_err() {
            self.metrics.proposals_failed.inc();
        }
        written
    }

    /// Registers this member's Raft and storage metrics in `registry`
    /// (names in [`crate::metrics`], after the registry's prefix).
    pub fn register_metrics(&self, registry: &mut Registry) {
        crate::metrics::register(
            registry,
            &self.metrics,
            RaftCollector {
                raft: self.raft.clone(),
                db: Weak::clone(&self.db),
                committed: self.committed.clone(),
            },
        );
    }

    /// [`Mutation::AckBeforeCommit`]: proposes in the background and
    /// answers once the log grew locally, committed or not.
    async fn ack_before_commit(
        &self,
        request: &Request,
        deadline: Instant,
    ) -> Result<Response, WriteError> {
        let last = self
            .raft
            .metrics()
            .borrow_watched()
            .last_log_index
            .unwrap_or(0);
        let (raft, request) = (self.raft.clone(), request.clone());
        tokio::spawn(async move {
            // The outcome is deliberately ignored: that is the bug.
            let _ = raft.client_write(request).await;
        });
        let timeout = deadline.saturating_duration_since(Instant::now());
        let metrics = self
            .raft
            .wait(Some(timeout))
            .log_index_at_least(Some(last + 1), "ack-before-commit append")
            .await
            .map_err(|_| WriteError::Timeout)?;
        Ok(Response {
            log_index: metrics.last_log_index.unwrap_or(last + 1),
            result: Ok(alcor_state_machine::Reply::Deleted),
        })
    }

    async fn write_with_retries(
        &self,
        request: &Request,
        deadline: Instant,
    ) -> Result<Response, WriteError> {
        // The leader that last answered "not the leader", with the term this
        // node believed it led: the next attempt waits for news past it.
        let mut refused: Option<(NodeId, u64)> = None;
        let mut moves = 0;
        // When a leader first refused this write for a lapsed lease.
        let mut lease_refused: Option<Instant> = None;
        loop {
            let asked = wait_for_leader_past(&self.raft, deadline, refused).await;
            let result = match asked {
                None => return Err(WriteError::NoLeader),
                Some(LeaderSeen { id: leader_id, .. }) if leader_id == self.id => {
                    if self.mutation == Some(Mutation::AckBeforeCommit) {
                        return self.ack_before_commit(request, deadline).await;
                    }
                    self.raft.client_write(request.clone()).await
                }
                Some(LeaderSeen {
                    id: leader_id,
                    ref node,
                    ..
                }) => {
                    let timeout = deadline.saturating_duration_since(Instant::now());
                    self.peers
                        .call(
                            leader_id,
                            &node.raft_addr,
                            Method::Forward,
                            request,
                            timeout,
                        )
                        .await
                        .map_err(|e| peer_write_error(leader_id, e))?
                }
            };
            match result {
                Ok(response) => return into_response(response),
                // Not appended: the leader has had no quorum acknowledge it
                // within its lease (a new leader before its first heartbeat
                // round, or a slow one under load). Ask it again shortly, for
                // up to WRITE_LEASE_WAIT_MAX: a leader cut off from its
                // quorum stays refused, and its callers should hear so
                // (retry-safe) before their own deadlines pass.
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))
                    if forward.reason == ForwardReason::LeaseExpired =>
                {
                    self.metrics.write_lease_refusals.inc();
                    let now = Instant::now();
                    let waited = lease_refused.get_or_insert(now);
                    let retry = now + WRITE_RETRY_BACKOFF;
                    if retry >= deadline || retry > *waited + WRITE_LEASE_WAIT_MAX {
                        return Err(WriteError::NoLeader);
                    }
                    tokio::time::sleep(WRITE_RETRY_BACKOFF).await;
                }
                // Not appended: leadership moved. Ask again once this node
                // has heard of a leader past the one that refused (its
                // metrics may still name it for a while).
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                    moves += 1;
                    if moves == WRITE_ATTEMPTS_MAX {
                        return Err(WriteError::NoLeader);
                    }
                    refused = asked.map(|seen| (seen.id, seen.term));
                }
                // Appended, then the leader changed: it may still commit.
                Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => {
                    return Err(WriteError::Timeout);
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                    return Err(WriteError::Fatal(format!(
                        "unexpected membership error: {e}"
                    )));
                }
                Err(RaftError::APIError(ClientWriteError::PreconditionFailed(e))) => {
                    return Err(WriteError::Fatal(format!(
                        "unexpected precondition failure: {e}"
                    )));
                }
                Err(RaftError::Fatal(e)) => return Err(WriteError::Fatal(e.to_string())),
            }
        }
    }

    /// Runs `read` on a state that reflects every write acknowledged before
    /// this call (ReadIndex). The leader confirms its leadership with a
    /// quorum and waits for its own apply; a follower asks the leader for
    /// the read index over the Raft port, waits for its local apply to
    /// reach it, then reads locally.
    pub async fn read_linearizable<R>(
        &self,
        read: impl FnOnce(&State) -> R,
    ) -> Result<R, ReadError> {
        self.wait_linearizable().await?;
        self.view
            .read(read)
            .map_err(|e| ReadError::Fatal(e.to_string()))
    }

    /// The backup file (`backup::encode`) of the whole state at a
    /// linearizable point: a ReadIndex, then the state's snapshot bytes at
    /// an applied index at or above it, with the log id they cover. It
    /// holds every write acknowledged before this call.
    pub async fn backup(&self) -> Result<Vec<u8>, ReadError> {
        self.wait_linearizable().await?;
        // Encoding a large state takes long: off the runtime's workers.
        let view = self.view.clone();
        tokio::task::spawn_blocking(move || {
            let (last_log_id, state) = view
                .snapshot_with_log_id()
                .map_err(|e| ReadError::Fatal(e.to_string()))?;
            Ok(crate::backup::encode(last_log_id, &state))
        })
        .await
        .map_err(|e| ReadError::Fatal(format!("backup task failed: {e}")))?
    }

    /// Waits until this node has applied every write acknowledged before
    /// the call (ReadIndex, then the local apply).
    async fn wait_linearizable(&self) -> Result<(), ReadError> {
        if self.mutation == Some(Mutation::StaleReads) {
            return Ok(());
        }
        let deadline = Instant::now() + self.request_timeout;
        let read_index = self.read_index_with_retries(deadline).await?;
        if let Some(index) = read_index {
            let timeout = deadline.saturating_duration_since(Instant::now());
            self.raft
                .wait(Some(timeout))
                .applied_index_at_least(Some(index), "read index")
                .await
                .map_err(|e| match e {
                    openraft::metrics::WaitError::Timeout(..) => ReadError::Timeout,
                    openraft::metrics::WaitError::ShuttingDown => {
                        ReadError::Fatal("shutting down".to_string())
                    }
                })?;
        }
        Ok(())
    }

    /// [`Self::read_index`], asked again while the answer is "no leader" or
    /// "no quorum" and time is left: a read changes nothing, so retrying
    /// is always safe, and an election or a slow heartbeat round under
    /// load should not surface as an error. Past the deadline the last
    /// such error is returned.
    async fn read_index_with_retries(&self, deadline: Instant) -> Result<Option<u64>, ReadError> {
        let mut last = ReadError::Timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.shared_read_index()).await {
                Err(_) => return Err(last),
                Ok(Err(
                    e @ (ReadError::NoLeader
                    | ReadError::NoQuorum(_)
                    | ReadError::LeaderUnreachable { .. }),
                )) => last = e,
                Ok(other) => return other,
            }
            if Instant::now() + READ_RETRY_BACKOFF >= deadline {
                return Err(last);
            }
            tokio::time::sleep(READ_RETRY_BACKOFF).await;
        }
    }

    /// The log index a linearizable read must wait for, from the first
    /// shared round that starts after this call (see `read_rounds`).
    async fn shared_read_index(&self) -> Result<Option<u64>, ReadError> {
        match self.reads.join().await {
            Ok(answer) => answer,
            Err(JoinError::Full) => Err(ReadError::Overloaded),
            Err(JoinError::Stopped) => Err(ReadError::Fatal("read rounds stopped".to_string())),
        }
    }

    /// Runs `read` on this node's state as applied so far, which may lag
    /// the leader (and, on a partitioned node, lag arbitrarily).
    pub fn read_stale<R>(&self, read: impl FnOnce(&State) -> R) -> Result<R, ReadError> {
        self.view
            .read(read)
            .map_err(|e| ReadError::Fatal(e.to_string()))
    }

    /// Subscribes to applied-entry events from now on. A receiver that
    /// falls `APPLIED_EVENTS_MAX` behind gets `RecvError::Lagged` and must
    /// resync from the state (`read_stale`/`read_linearizable`).
    pub fn subscribe_applied(&self) -> broadcast::Receiver<AppliedEvent> {
        self.events.subscribe()
    }

    /// Subscribes to resource-change events from now on (entries that
    /// changed no resource are not published). A receiver that falls
    /// `APPLIED_EVENTS_MAX` events behind gets `RecvError::Lagged`.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<ChangeEvent> {
        self.changes.subscribe()
    }

    /// Adds (or updates) a non-voting member and waits until it has caught
    /// up with the leader's log. Leader only.
    pub async fn add_learner(&self, id: NodeId, node: Node) -> Result<u64, AdminError> {
        let response = self
            .raft
            .add_learner(id, node, true)
            .await
            .map_err(admin_error)?;
        Ok(response.log_id.index)
    }

    /// Changes the voter set to exactly `voters` (each must already be a
    /// member). Removed voters stay learners if `retain`. Leader only.
    pub async fn change_membership(
        &self,
        voters: BTreeSet<NodeId>,
        retain: bool,
    ) -> Result<u64, AdminError> {
        let changes = ChangeMembers::ReplaceAllVoters(voters);
        let response = self
            .raft
            .change_membership(changes, retain)
            .await
            .map_err(admin_error)?;
        Ok(response.log_id.index)
    }

    /// Makes the member `id` (a learner) a voter too, keeping the other
    /// voters. Leader only.
    pub async fn promote(&self, id: NodeId) -> Result<u64, AdminError> {
        let response = self
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
            .await
            .map_err(admin_error)?;
        Ok(response.log_id.index)
    }

    /// Removes `id` from the cluster entirely (voter and node). Leader only.
    pub async fn remove_member(&self, id: NodeId) -> Result<u64, AdminError> {
        let ids = BTreeSet::from([id]);
        let is_voter = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow_watched();
            let is_voter = metrics
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == id);
            is_voter
        };
        if is_voter {
            self.raft
                .change_membership(ChangeMembers::RemoveVoters(ids.clone()), false)
                .await
                .map_err(admin_error)?;
        }
        let response = self
            .raft
            .change_membership(ChangeMembers::RemoveNodes(ids), false)
            .await
            .map_err(admin_error)?;
        Ok(response.log_id.index)
    }

    /// Asks openraft to build a snapshot now (it also purges the log behind
    /// it per `snapshot_logs_to_keep`). Returns once the request is queued.
    pub async fn trigger_snapshot(&self) -> Result<(), AdminError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| AdminError::Fatal(e.to_string()))
    }

    /// Starts an election on this node now (without Pre-Vote): the campaign
    /// raises the term, so the current leader steps down when it next hears
    /// from this node; the other members refuse their votes while their
    /// leader lease lasts or when their log is longer, so one campaign may
    /// only unseat the leader (the gateway's `Campaign` tries a few times).
    /// A no-op on the leader. Returns once the election is triggered, not
    /// won. (openraft 0.10 also has a leader-side `transfer_leader`; this
    /// call runs on the target, which cannot issue it.)
    pub async fn campaign(&self) -> Result<(), AdminError> {
        self.raft
            .trigger()
            .elect(false)
            .await
            .map_err(|e| AdminError::Fatal(e.to_string()))
    }

    /// Resolves with the reason once Raft has stopped on a fatal error
    /// (a failed fsync or another storage error, a panic in its core), so
    /// that the process can fail-stop and be restarted by its supervisor
    /// instead of lingering as a member that answers nothing.
    ///
    /// A Raft message of a newer wire version than this build speaks stops
    /// the member the same way: it cannot take part until it is upgraded.
    pub async fn fatal(&self) -> String {
        tokio::select! {
            reason = self.peers.newer.met() => reason,
            reason = self.raft_fatal() => reason,
        }
    }

    /// Resolves once openraft has stopped on a fatal error.
    async fn raft_fatal(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_and_update().running_state {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return "raft metrics closed".to_string();
            }
        }
    }

    /// Waits until `done` holds for this node's metrics, re-checking each
    /// time Raft publishes new ones (no polling); `None` once `until`
    /// passes first or Raft has stopped.
    pub async fn wait_metrics(
        &self,
        until: Instant,
        done: impl Fn(&NodeMetrics) -> bool,
    ) -> Option<NodeMetrics> {
        let mut published = self.raft.metrics();
        loop {
            published.borrow_and_update();
            let m = self.metrics();
            if done(&m) {
                return Some(m);
            }
            match tokio::time::timeout_at(until, published.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// Whether this member is ready to serve, kept current (see
    /// [`crate::health`]): what gRPC health and `/readyz` report.
    pub fn readiness(&self) -> watch::Receiver<Readiness> {
        self.readiness.subscribe()
    }

    /// A snapshot of this node's Raft metrics.
    pub fn metrics(&self) -> NodeMetrics {
        let committed_index = self.committed.borrow().map(|id| id.index);
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let membership = m.membership_config.membership();
        NodeMetrics {
            id: m.id,
            state: m.state,
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            committed_index,
            applied_index: m.last_applied.map(|id| id.index),
            snapshot_index: m.snapshot.map(|id| id.index),
            purged_index: m.purged.map(|id| id.index),
            voters: membership.voter_ids().collect(),
            nodes: membership
                .nodes()
                .map(|(id, node)| (*id, node.clone()))
                .collect(),
        }
    }

    /// Stops Raft and the gRPC server, then waits until the database is
    /// closed so the same data dir can be reopened (e.g. a restart test).
    /// Later calls do nothing; every other method fails once this ran.
    pub async fn shutdown(&self) -> Result<(), ShutdownError> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(running) = running else {
            return Ok(());
        };
        // Unready first, so health checks turn away callers while the
        // listeners drain.
        running.readiness_tracker.abort();
        let _ = self.readiness.send_replace(Err(NotReady::Stopped));
        running.snapshot_by_size.abort();
        running.campaigner.abort();
        running.leader_tracker.abort();
        let raft_result = self.raft.shutdown().await;
        let _ = running.server_stop.send(());
        let mut server_task = running.server_task;
        let drain = Duration::from_millis(SERVER_DRAIN_MS_MAX);
        if tokio::time::timeout(drain, &mut server_task).await.is_err() {
            server_task.abort();
        }
        raft_result.map_err(|e| ShutdownError::Raft(e.to_string()))?;
        let wait = Duration::from_millis(DB_CLOSE_WAIT_MS_MAX);
        tokio::time::timeout(wait, running.db_closed.wait())
            .await
            .map_err(|_| ShutdownError::DbStillOpen(DB_CLOSE_WAIT_MS_MAX))
    }
}

impl Drop for RaftNode {
    /// Without `shutdown`, at least stop serving peers; openraft's tasks
    /// stop once every handle is gone.
    fn drop(&mut self) {
        let running = self
            .running
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(running) = running {
            running.snapshot_by_size.abort();
            running.campaigner.abort();
            running.leader_tracker.abort();
            running.readiness_tracker.abort();
            let _ = running.server_stop.send(());
        }
    }
}

/// When the log has grown enough to build a snapshot.
struct SnapshotTrigger {
    /// The size of the snapshot the member holds.
    snapshot_bytes: Arc<AtomicU64>,
    /// Log bytes that always suffice.
    log_bytes_min: u64,
    /// Log bytes, as a percentage of `snapshot_bytes`, that suffice when
    /// that is more than `log_bytes_min`.
    state_percent: u64,
}

impl SnapshotTrigger {
    /// The log bytes since the last snapshot request that trigger the next.
    fn threshold(&self) -> u64 {
        let scaled = u128::from(self.snapshot_bytes.load(Ordering::Relaxed))
            * u128::from(self.state_percent)
            / 100;
        u64::try_from(scaled)
            .unwrap_or(u64::MAX)
            .max(self.log_bytes_min)
    }
}

/// Asks openraft for a snapshot whenever the stored bytes of log appended
/// since the previous request reach `trigger`'s threshold (openraft's own
/// policy counts entries only). Ends when Raft has stopped.
async fn snapshot_by_size(raft: Raft, appended_bytes: Arc<AtomicU64>, trigger: SnapshotTrigger) {
    let mut base = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(SNAPSHOT_SIZE_CHECK_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let appended = appended_bytes.load(Ordering::Relaxed);
        let threshold = trigger.threshold();
        if appended.saturating_sub(base) < threshold {
            continue;
        }
        tracing::info!(
            appended_bytes = appended - base,
            threshold,
            "log grew past the snapshot threshold: building a snapshot"
        );
        if raft.trigger().snapshot().await.is_err() {
            return;
        }
        base = appended;
    }
}

/// The leader `raft` currently knows of, with its addresses.
fn leader_seen(raft: &Raft) -> Option<LeaderSeen> {
    let metrics = raft.metrics();
    let metrics = metrics.borrow_watched();
    let id = metrics.current_leader?;
    let node = metrics
        .membership_config
        .membership()
        .get_node(&id)?
        .clone();
    Some(LeaderSeen {
        id,
        node,
        term: metrics.current_term,
    })
}

/// Waits until `raft` knows some leader or `deadline` passes.
async fn wait_for_leader(raft: &Raft, deadline: Instant) -> Option<(NodeId, Node)> {
    wait_for_leader_past(raft, deadline, None)
        .await
        .map(|seen| (seen.id, seen.node))
}

/// A leader as this node's metrics name it, with the term they are at.
struct LeaderSeen {
    id: NodeId,
    node: Node,
    term: u64,
}

/// Whether `seen` is news past `refused`, a leader that answered "not the
/// leader" while this node believed it led in that term: another member,
/// or the same one re-elected in a later term.
fn is_past(seen: &LeaderSeen, refused: Option<(NodeId, u64)>) -> bool {
    refused.is_none_or(|(id, term)| seen.id != id || seen.term > term)
}

/// Waits until `raft` knows a leader past `refused` (see [`is_past`]), or
/// `deadline` passes.
async fn wait_for_leader_past(
    raft: &Raft,
    deadline: Instant,
    refused: Option<(NodeId, u64)>,
) -> Option<LeaderSeen> {
    let mut metrics = raft.metrics();
    loop {
        if let Some(seen) = leader_seen(raft).filter(|seen| is_past(seen, refused)) {
            return Some(seen);
        }
        match tokio::time::timeout_at(deadline, metrics.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) | Err(_) => return None,
        }
    }
}

/// The answer of a leader's own leadership confirmation, as it also
/// travels to followers in the `ReadIndex` reply.
pub(crate) type LeaderRead =
    Result<Option<LogId>, RaftError<TypeConfig, LinearizableReadError<TypeConfig>>>;

/// Rounds of leadership confirmation on this node as leader, shared by its
/// own linearizable reads and by the `ReadIndex` RPCs of followers.
///
/// openraft 0.10 batches ReadIndex itself (reads queue in its core and the
/// first quorum acknowledgement of a heartbeat sent after a read arrived
/// answers every read queued before it), so on the leader these rounds only
/// cap the reads in flight; the follower's rounds (one `ReadIndex` RPC per
/// round) still save RPCs.
fn leader_read_rounds(raft: Raft, join_in_flight: bool) -> SharedRounds<LeaderRead> {
    let round: crate::read_rounds::Round<LeaderRead> = Arc::new(move || {
        let raft = raft.clone();
        Box::pin(async move {
            raft.get_read_linearizer(ReadPolicy::ReadIndex)
                .await
                .map(|linearizer| Some(*linearizer.read_log_id().log_id()))
        }) as RoundFuture<LeaderRead>
    });
    SharedRounds::with_mutation(round, join_in_flight)
}

/// What a round of this node's read index needs.
#[derive(Clone)]
struct ReadIndexer {
    id: NodeId,
    raft: Raft,
    peers: Arc<Peers>,
    leader_reads: Arc<SharedRounds<LeaderRead>>,
    request_timeout: Duration,
}

/// Rounds of this node's read index: on the leader one shared local
/// confirmation, on a follower one `ReadIndex` RPC to the leader, each
/// answering every read that waited when it started.
fn node_read_rounds(
    indexer: ReadIndexer,
    join_in_flight: bool,
) -> SharedRounds<Result<Option<u64>, ReadError>> {
    let round: crate::read_rounds::Round<Result<Option<u64>, ReadError>> = Arc::new(move || {
        let indexer = indexer.clone();
        Box::pin(async move {
            let deadline = Instant::now() + indexer.request_timeout;
            indexer.read_index(deadline).await
        }) as RoundFuture<Result<Option<u64>, ReadError>>
    });
    SharedRounds::with_mutation(round, join_in_flight)
}

impl ReadIndexer {
    /// The log index a linearizable read must wait for, confirmed now.
    async fn read_index(&self, deadline: Instant) -> Result<Option<u64>, ReadError> {
        let Some((leader_id, leader)) = wait_for_leader(&self.raft, deadline).await else {
            return Err(ReadError::NoLeader);
        };
        let result: LeaderRead = if leader_id == self.id {
            match self.leader_reads.join().await {
                Ok(answer) => answer,
                Err(JoinError::Full) => return Err(ReadError::Overloaded),
                Err(JoinError::Stopped) => {
                    return Err(ReadError::Fatal("read rounds stopped".to_string()))
                }
            }
        } else {
            let timeout = deadline.saturating_duration_since(Instant::now());
            self.peers
                .call(
                    leader_id,
                    &leader.raft_addr,
                    Method::ReadIndex,
                    &(),
                    timeout,
                )
                .await
                .map_err(|e| match e {
                    PeerError::Timeout(_) => ReadError::Timeout,
                    e => ReadError::LeaderUnreachable {
                        leader_id,
                        reason: e.to_string(),
                    },
                })?
        };
        match result {
            Ok(read_log_id) => Ok(read_log_id.map(|id| id.index)),
            // Leadership moved between our lookup and the check.
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(_))) => {
                Err(ReadError::NoLeader)
            }
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(e))) => {
                Err(ReadError::NoQuorum(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => Err(ReadError::Fatal(e.to_string())),
        }
    }
}

/// [`Mutation::DoubleApply`]: `command` with every request token removed,
/// so the state machine applies a retried create again.
fn without_request_tokens(command: Command) -> Command {
    match command {
        Command::Idempotent { command, .. } => without_request_tokens(*command),
        Command::Batch(commands) => {
            Command::Batch(commands.into_iter().map(without_request_tokens).collect())
        }
        other => other,
    }
}

fn into_response(response: ClientWriteResponse<TypeConfig>) -> Result<Response, WriteError> {
    match response.data {
        EntryResponse::Applied(result) => Ok(Response {
            log_index: response.log_id.index,
            result,
        }),
        other => Err(WriteError::Fatal(format!(
            "proposal at log index {} produced {other:?}",
            response.log_id.index
        ))),
    }
}

fn peer_write_error(leader_id: NodeId, error: PeerError) -> WriteError {
    match error {
        PeerError::Timeout(_) => WriteError::Timeout,
        e => WriteError::LeaderUnreachable {
            leader_id,
            reason: e.to_string(),
        },
    }
}

fn admin_error(error: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> AdminError {
    match error {
        RaftError::APIError(
            ClientWriteError::ForwardToLeader(f) | ClientWriteError::LogEntryDiscarded(f),
        ) => AdminError::NotLeader {
            leader_id: f.leader_id,
            leader_node: f.leader_node,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            AdminError::Rejected(e.to_string())
        }
        RaftError::APIError(ClientWriteError::PreconditionFailed(e)) => {
            AdminError::Rejected(e.to_string())
        }
        RaftError::Fatal(e) => AdminError::Fatal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(snapshot_bytes: u64, log_bytes_min: u64, state_percent: u64) -> SnapshotTrigger {
        SnapshotTrigger {
            snapshot_bytes: Arc::new(AtomicU64::new(snapshot_bytes)),
            log_bytes_min,
            state_percent,
        }
    }

    #[test]
    fn small_states_snapshot_at_the_fixed_byte_threshold() {
        assert_eq!(trigger(0, 64, 50).threshold(), 64);
        assert_eq!(trigger(100, 64, 50).threshold(), 64);
    }

    #[test]
    fn large_states_snapshot_after_a_share_of_their_size() {
        assert_eq!(trigger(1_000, 64, 50).threshold(), 500);
        assert_eq!(trigger(1_000, 64, 200).threshold(), 2_000);
    }

    #[test]
    fn the_threshold_follows_the_latest_snapshot() {
        let trigger = trigger(1_000, 64, 50);
        trigger.snapshot_bytes.store(4_000, Ordering::Relaxed);
        assert_eq!(trigger.threshold(), 2_000);
    }

    #[test]
    fn a_zero_percent_keeps_the_fixed_threshold_and_huge_sizes_saturate() {
        assert_eq!(trigger(u64::MAX, 64, 0).threshold(), 64);
        assert_eq!(trigger(u64::MAX, 64, 1_000).threshold(), u64::MAX);
    }
}
