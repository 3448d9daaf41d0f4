//! `SimAgent`: a host agent that keeps its goal state in memory instead of
//! programming a data plane. It is the reference client of the push
//! protocol, the load generator's agent, and what `alcor agent` runs.
//!
//! Per stream: send Hello (with the table's revision if it has one), then
//! replace the table on FullSync, apply each DiffBatch that starts exactly
//! at its revision, and ack every revision reached. On any stream error it
//! moves on to the next endpoint and resumes from its revision; a DiffBatch
//! from another revision (a gap or a duplicate) makes it drop its trust in
//! the table and reconnect asking for a FullSync.
//!
//! Failure injection: ports listed in [`SimAgentConfig::fail_ports`] (or
//! later [`SimAgent::set_failing_ports`]) are kept in the table like any
//! object (the table is the goal state the agent received, and its digest
//! must match the controller's) but every ack lists those present in the
//! table as failed, with their reason. Every ack states the whole failure
//! set, since acks are cumulative; changing the set re-acks the current
//! revision at once. Ports set with [`SimAgent::fail_until_resync`] fail
//! the same way until the next FullSync, when the agent retries every
//! object and they succeed (a real agent retries failed objects on a
//! resync).
//!
//! Anti-entropy: every `digest_interval` the agent reports the digest of
//! its table; a node that finds a different one answers with a FullSync.
//! [`SimAgent::corrupt_table`] damages the table on purpose to exercise it.
//!
//! A real dataplane: with [`SimAgentConfig::dataplane`] set, the agent
//! awaits [`Dataplane::program`] of the new table after every change
//! before it acks, and acks the ports it could not program as failed with
//! the dataplane's reason (the node wires the Linux dataplane in; this
//! crate knows only the trait). Reconnects never call it: the dataplane
//! keeps what it programmed until the next table.
//!
//! Slow agents: `apply_delay` makes the agent sleep before applying each
//! message and `stream_window_bytes` shrinks its HTTP/2 receive window, so
//! a node's queue for it fills quickly. [`SimAgent::hold`] stops it
//! reading its stream until released, as a stalled host would, while its
//! connection still answers HTTP/2 pings: a node's queue for it fills
//! however fast or slow the cluster commits.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use alcor_proto::identity::{BearerToken, AUTHORIZATION_HEADER};
use alcor_proto::push::v1::host_push_client::HostPushClient;
use alcor_state_machine::{apply_changes, goal_digest, GoalKey, GoalObject, GoalState, HostId, Id};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::convert;
use crate::error::AgentError;
use crate::limits;
use crate::message::{
    Ack, AgentMessage, ControllerMessage, Hello, ResourceStatus, PROTOCOL_VERSION,
};

/// Programs goal tables into a data plane (the Linux one lives in the
/// `alcor-dataplane` crate; the node wires it in).
pub trait Dataplane: Send + Sync + std::fmt::Debug {
    /// Makes the data plane match `goal` (the host's whole table); resolves
    /// to what it then holds.
    fn program(&self, goal: GoalState) -> Pin<Box<dyn Future<Output = Programmed> + Send>>;
}

/// What a data plane holds after one [`Dataplane::program`] pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Programmed {
    /// The ports that could not be programmed, with the reason (acked as
    /// failed).
    pub failed: BTreeMap<Id, String>,
    /// The digest of what the data plane holds, in its own terms; sent
    /// with each digest report (`DigestReport.programmed_digest`).
    pub digest: ProgrammedDigest,
}

/// The digest of what a data plane holds, computed when first read: a
/// digest report reads it (every `DIGEST_INTERVAL_MS`), the ack of the
/// pass does not, so hashing the host's whole plan (~3 ms at 1,000 ports)
/// is off the path from a change to its ack.
#[derive(Clone)]
pub struct ProgrammedDigest {
    value: Arc<OnceLock<[u8; 32]>>,
    compute: Arc<dyn Fn() -> [u8; 32] + Send + Sync>,
}

impl ProgrammedDigest {
    /// A digest known already.
    pub fn ready(digest: [u8; 32]) -> ProgrammedDigest {
        ProgrammedDigest {
            value: Arc::new(OnceLock::from(digest)),
            compute: Arc::new(move || digest),
        }
    }

    /// A digest `compute` gives when first read (it must be pure: it runs
    /// once, on whatever thread reads the digest first).
    pub fn deferred(compute: impl Fn() -> [u8; 32] + Send + Sync + 'static) -> ProgrammedDigest {
        ProgrammedDigest {
            value: Arc::new(OnceLock::new()),
            compute: Arc::new(compute),
        }
    }

    /// The digest (computed now if it was deferred and never read).
    pub fn get(&self) -> [u8; 32] {
        *self.value.get_or_init(|| (self.compute)())
    }
}

impl Default for ProgrammedDigest {
    fn default() -> ProgrammedDigest {
        ProgrammedDigest::ready([0; 32])
    }
}

impl PartialEq for ProgrammedDigest {
    fn eq(&self, other: &ProgrammedDigest) -> bool {
        self.get() == other.get()
    }
}

impl Eq for ProgrammedDigest {}

impl std::fmt::Debug for ProgrammedDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.value.get() {
            Some(digest) => f.debug_tuple("ProgrammedDigest").field(digest).finish(),
            None => f.write_str("ProgrammedDigest(deferred)"),
        }
    }
}

/// What a [`SimAgent`] needs.
#[derive(Debug, Clone)]
pub struct SimAgentConfig {
    /// The host this agent serves.
    pub host_id: HostId,
    /// Push API addresses of the controller nodes (`host:port` or a URI),
    /// tried in order, wrapping around.
    pub endpoints: Vec<String>,
    /// Wait before the first reconnect; doubles on every failure in a row.
    pub reconnect_backoff_min: Duration,
    /// Upper bound of that wait.
    pub reconnect_backoff_max: Duration,
    /// Ports this agent reports as failed (with the reason) instead of
    /// applied; empty by default.
    pub fail_ports: BTreeMap<Id, String>,
    /// Period of the digest reports; `None`: never report.
    pub digest_interval: Option<Duration>,
    /// Sleep before applying each message (a slow agent); zero by default.
    pub apply_delay: Duration,
    /// HTTP/2 receive window of the agent's stream and connection, in
    /// bytes; `None`: the transport's default.
    pub stream_window_bytes: Option<u32>,
    /// Connections shared with other agents (each agent still has its own
    /// stream); `None`: the agent dials its own connection per stream.
    /// Shared connections use the transport's default receive window:
    /// `stream_window_bytes` applies only to an agent's own connection.
    pub shared: Option<SharedConnections>,
    /// TLS to the members (the cluster CA and this agent's certificate,
    /// `alcor://agent/HOST`); `None`: plain text.
    pub tls: Option<ClientTlsConfig>,
    /// Sent as `authorization: Bearer TOKEN` when opening the stream (an
    /// agent token for this host, or an admin's); `None`: no credential.
    pub token: Option<BearerToken>,
    /// Programs every new table before it is acked; `None`: the table
    /// stays in memory only (the simulated agent).
    pub dataplane: Option<Arc<dyn Dataplane>>,
}

/// One HTTP/2 connection per endpoint that several simulated agents share,
/// each on its own stream: a process simulating thousands of agents then
/// needs a few sockets instead of one per agent. The connection is dialled
/// on first use and redialled after it fails (tonic's `Channel` does both);
/// every stream on it fails with it, and each agent resumes from its own
/// revision like after any stream error.
#[derive(Debug, Clone)]
pub struct SharedConnections {
    by_endpoint: Arc<BTreeMap<String, Channel>>,
}

impl SharedConnections {
    /// Lazily connected channels to `endpoints`, with the agents' keepalive.
    pub fn new(
        endpoints: &[String],
        tls: Option<&ClientTlsConfig>,
    ) -> Result<SharedConnections, AgentError> {
        let mut by_endpoint = BTreeMap::new();
        for endpoint in endpoints {
            let channel = stream_endpoint(endpoint, None, tls)?.connect_lazy();
            by_endpoint.insert(endpoint.clone(), channel);
        }
        Ok(SharedConnections {
            by_endpoint: Arc::new(by_endpoint),
        })
    }

    fn channel(&self, endpoint: &str) -> Option<Channel> {
        self.by_endpoint.get(endpoint).cloned()
    }
}

impl SimAgentConfig {
    /// A config with a 50 ms initial backoff capped at
    /// `RECONNECT_BACKOFF_MS_MAX`.
    pub fn new(host_id: impl Into<HostId>, endpoints: Vec<String>) -> SimAgentConfig {
        SimAgentConfig {
            host_id: host_id.into(),
            endpoints,
            reconnect_backoff_min: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_millis(limits::RECONNECT_BACKOFF_MS_MAX),
            fail_ports: BTreeMap::new(),
            digest_interval: Some(Duration::from_millis(limits::DIGEST_INTERVAL_MS)),
            apply_delay: Duration::ZERO,
            stream_window_bytes: None,
            shared: None,
            tls: None,
            token: None,
            dataplane: None,
        }
    }
}

/// Counters of what an agent went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentCounters {
    /// FullSyncs applied.
    pub full_syncs: u64,
    /// DiffBatches applied (empty ones included).
    pub diff_batches: u64,
    /// Streams that ended or failed to open (each is followed by a
    /// reconnect attempt).
    pub reconnects: u64,
    /// DiffBatches refused because they did not start at the agent's
    /// revision (each forces a FullSync).
    pub gaps: u64,
    /// Digest reports sent.
    pub digest_reports: u64,
}

/// A simulated agent. Cheap to clone: clones observe the same agent.
#[derive(Debug, Clone)]
pub struct SimAgent {
    config: Arc<SimAgentConfig>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    table: Mutex<Table>,
    revision: watch::Sender<u64>,
    /// Ports reported as failed, with their reasons.
    failing: watch::Sender<BTreeMap<Id, String>>,
    /// Ports failing until the next FullSync.
    transient: Mutex<BTreeMap<Id, String>>,
    /// True while the agent leaves its stream unread.
    held: watch::Sender<bool>,
    /// What the dataplane holds after its last pass; `None` before the
    /// first one and without a dataplane.
    programmed: Mutex<Option<Programmed>>,
    full_syncs: AtomicU64,
    digest_reports: AtomicU64,
    diff_batches: AtomicU64,
    reconnects: AtomicU64,
    gaps: AtomicU64,
}

#[derive(Debug, Default)]
struct Table {
    goal: GoalState,
    /// `None` until the first FullSync, and after a gap.
    revision: Option<u64>,
}

impl SimAgent {
    /// Checks `config`; nothing connects until [`SimAgent::run`].
    pub fn new(config: SimAgentConfig) -> Result<SimAgent, AgentError> {
        if config.endpoints.is_empty() {
            return Err(AgentError::NoEndpoints);
        }
        if config.host_id.is_empty() {
            return Err(AgentError::EmptyHostId);
        }
        for endpoint in &config.endpoints {
            endpoint_of(endpoint, config.tls.is_some())?;
        }
        let failing = watch::Sender::new(config.fail_ports.clone());
        Ok(SimAgent {
            config: Arc::new(config),
            shared: Arc::new(Shared {
                table: Mutex::new(Table::default()),
                revision: watch::Sender::new(0),
                failing,
                transient: Mutex::new(BTreeMap::new()),
                held: watch::Sender::new(false),
                programmed: Mutex::new(None),
                full_syncs: AtomicU64::new(0),
                digest_reports: AtomicU64::new(0),
                diff_batches: AtomicU64::new(0),
                reconnects: AtomicU64::new(0),
                gaps: AtomicU64::new(0),
            }),
        })
    }

    /// The host this agent serves.
    pub fn host_id(&self) -> &str {
        &self.config.host_id
    }

    /// The revision of the table (0 before the first FullSync).
    pub fn revision(&self) -> u64 {
        *self.shared.revision.borrow()
    }

    /// The revision, observable: it changes after each applied message.
    pub fn watch_revision(&self) -> watch::Receiver<u64> {
        self.shared.revision.subscribe()
    }

    /// Waits until the revision is at least `revision`.
    pub async fn wait_for_revision(&self, revision: u64) {
        let mut watch = self.watch_revision();
        // The sender lives in `self`, so this cannot fail.
        let _ = watch.wait_for(|r| *r >= revision).await;
    }

    /// A copy of the goal table.
    pub fn table(&self) -> GoalState {
        self.shared.table().goal.clone()
    }

    /// `goal_digest` of the table.
    pub fn digest(&self) -> [u8; 32] {
        goal_digest(&self.shared.table().goal)
    }

    /// The revision and digest of the table, read together.
    pub fn revision_and_digest(&self) -> (u64, [u8; 32]) {
        let table = self.shared.table();
        (table.revision.unwrap_or(0), goal_digest(&table.goal))
    }

    /// Replaces the set of ports reported as failed (an empty map heals
    /// them all); a connected agent re-acks its revision with the new set
    /// at once.
    pub fn set_failing_ports(&self, fail_ports: BTreeMap<Id, String>) {
        self.shared.failing.send_replace(fail_ports);
    }

    /// The ports reported as failed, with their reasons.
    pub fn failing_ports(&self) -> BTreeMap<Id, String> {
        self.shared.failing.borrow().clone()
    }

    /// What happened so far.
    pub fn counters(&self) -> AgentCounters {
        AgentCounters {
            full_syncs: self.shared.full_syncs.load(Ordering::Relaxed),
            diff_batches: self.shared.diff_batches.load(Ordering::Relaxed),
            reconnects: self.shared.reconnects.load(Ordering::Relaxed),
            gaps: self.shared.gaps.load(Ordering::Relaxed),
            digest_reports: self.shared.digest_reports.load(Ordering::Relaxed),
        }
    }

    /// Makes `ports` fail (with their reasons) until the next FullSync,
    /// when the agent retries them and they succeed; a connected agent
    /// re-acks at once.
    pub fn fail_until_resync(&self, ports: BTreeMap<Id, String>) {
        *self.shared.transient() = ports;
        // Wake the stream so it re-acks with the new set.
        self.shared.failing.send_modify(|_| {});
    }

    /// Stops (`true`) or resumes (`false`) reading the stream. A held
    /// agent applies nothing and leaves the node's messages unread; its
    /// connection stays open and answers HTTP/2 pings.
    pub fn hold(&self, held: bool) {
        self.shared.held.send_replace(held);
    }

    /// Damages the table on purpose without changing its revision: removes
    /// its last object, or inserts nothing and returns false when empty.
    /// The next digest report exposes it and the node resyncs the agent.
    pub fn corrupt_table(&self) -> bool {
        let mut table = self.shared.table();
        let Some(key) = table.goal.keys().next_back().copied() else {
            return false;
        };
        table.goal.remove(&key);
        true
    }

    /// Streams from the endpoints in turn until `shutdown` completes.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut endpoint_idx = 0;
        let mut backoff = self.config.reconnect_backoff_min;
        loop {
            let address = &self.config.endpoints[endpoint_idx % self.config.endpoints.len()];
            let mut progressed = false;
            tokio::select! {
                _ = &mut shutdown => return,
                result = self.stream(address, &mut progressed) => {
                    tracing::info!(host = self.config.host_id, address, "push stream ended: {result:?}");
                }
            }
            self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
            endpoint_idx = (endpoint_idx + 1) % self.config.endpoints.len();
            if progressed {
                backoff = self.config.reconnect_backoff_min;
            }
            let pause = jittered(backoff, &self.config.host_id, self.counters().reconnects);
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(pause) => {}
            }
            backoff = (backoff * 2).min(self.config.reconnect_backoff_max);
        }
    }

    /// One stream; returns why it ended. Sets `progressed` once a message
    /// was applied.
    async fn stream(&self, address: &str, progressed: &mut bool) -> Result<(), AgentError> {
        let shared = self.config.shared.as_ref();
        let channel: Channel = match shared.and_then(|s| s.channel(address)) {
            Some(channel) => channel,
            None => {
                stream_endpoint(
                    address,
                    self.config.stream_window_bytes,
                    self.config.tls.as_ref(),
                )?
                .connect()
                .await?
            }
        };
        let mut client = HostPushClient::new(channel)
            .max_decoding_message_size(limits::PUSH_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(limits::PUSH_MESSAGE_BYTES_MAX);
        let (tx, rx) = mpsc::channel(limits::AGENT_OUTBOUND_MAX);
        let hello = AgentMessage::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            host_id: self.config.host_id.clone(),
            revision: self.shared.table().revision,
        });
        // The queue is empty: this cannot be full.
        tx.try_send(convert::agent_to_pb(&hello)?)
            .map_err(|_| AgentError::Protocol("outbound queue closed".to_string()))?;
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(token) = &self.config.token {
            let value = token
                .header_value()
                .parse()
                .map_err(|_| AgentError::Protocol("the token must be visible ASCII".to_string()))?;
            request.metadata_mut().insert(AUTHORIZATION_HEADER, value);
        }
        let mut inbound = client.sync(request).await?.into_inner();
        let mut failing = self.shared.failing.subscribe();
        failing.borrow_and_update();
        let digest_period = self
            .config
            .digest_interval
            .unwrap_or(Duration::from_secs(3_600));
        let first = first_digest_after(digest_period, &self.config.host_id);
        let mut digest_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + first, digest_period);
        let mut parts = FullSyncParts::default();
        digest_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let revision = tokio::select! {
                message = inbound.message() => {
                    let Some(message) = message? else {
                        return Err(AgentError::Ended);
                    };
                    let bytes = prost::Message::encoded_len(&message);
                    let message = convert::controller_from_pb(&message)?;
                    let Some(message) = parts.add(message, bytes)? else {
                        continue;
                    };
                    // The sender lives in `self`, so this cannot fail.
                    let _ = self.shared.held.subscribe().wait_for(|held| !*held).await;
                    if !self.config.apply_delay.is_zero() {
                        tokio::time::sleep(self.config.apply_delay).await;
                    }
                    let revision = self.apply(message)?;
                    if let Some(dataplane) = &self.config.dataplane {
                        let goal = self.table();
                        let programmed = dataplane.program(goal).await;
                        *self.shared.programmed() = Some(programmed);
                    }
                    *progressed = true;
                    revision
                }
                // The sender lives in `self`, so this cannot fail.
                _ = failing.changed() => match self.shared.table().revision {
                    Some(revision) => revision,
                    None => continue,
                },
                _ = digest_tick.tick(), if self.config.digest_interval.is_some() => {
                    let report = {
                        let table = self.shared.table();
                        // Programmed from this table (the pass runs right
                        // after the table changes, in this loop).
                        let programmed = self
                            .shared
                            .programmed()
                            .as_ref()
                            .map(|p| p.digest.clone());
                        let programmed = programmed.map(|d| d.get());
                        table.revision.map(|revision| AgentMessage::DigestReport {
                            revision,
                            digest: goal_digest(&table.goal),
                            programmed,
                        })
                    };
                    if let Some(report) = report {
                        if tx.try_send(convert::agent_to_pb(&report)?).is_ok() {
                            self.shared.digest_reports.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    continue;
                }
            };
            let ack = AgentMessage::Ack(self.ack(revision));
            // Acks are cumulative: when the queue is full, skip this one.
            let _ = tx.try_send(convert::agent_to_pb(&ack)?);
        }
    }

    /// The ack of `revision`: the failed ports present in the table.
    fn ack(&self, revision: u64) -> Ack {
        let mut failing = self.shared.failing.borrow().clone();
        for (id, reason) in self.shared.transient().iter() {
            failing.entry(*id).or_insert_with(|| reason.clone());
        }
        if let Some(programmed) = self.shared.programmed().as_ref() {
            for (id, reason) in &programmed.failed {
                failing.entry(*id).or_insert_with(|| reason.clone());
            }
        }
        let statuses = if failing.is_empty() {
            Vec::new()
        } else {
            let table = self.shared.table();
            failing
                .iter()
                .filter(|(id, _)| table.goal.contains_key(&GoalKey::Port(**id)))
                .map(|(id, reason)| ResourceStatus {
                    key: GoalKey::Port(*id),
                    result: Err(reason.clone()),
                })
                .collect()
        };
        Ack { revision, statuses }
    }

    /// Applies one message to the table; returns the new revision.
    fn apply(&self, message: ControllerMessage) -> Result<u64, AgentError> {
        let mut table = self.shared.table();
        let revision = match message {
            ControllerMessage::FullSync {
                revision, objects, ..
            } => {
                table.goal = objects.into_iter().map(|o| (o.key(), o)).collect();
                // A resync retries everything: transient failures heal.
                self.shared.transient().clear();
                self.shared.full_syncs.fetch_add(1, Ordering::Relaxed);
                revision
            }
            ControllerMessage::DiffBatch {
                from_revision,
                to_revision,
                changes,
            } => {
                if table.revision != Some(from_revision) || to_revision < from_revision {
                    let revision = table.revision.unwrap_or(0);
                    // Our table is fine, but the stream is not: resync.
                    table.revision = None;
                    self.shared.gaps.fetch_add(1, Ordering::Relaxed);
                    return Err(AgentError::Gap {
                        from_revision,
                        revision,
                    });
                }
                apply_changes(&mut table.goal, &changes);
                self.shared.diff_batches.fetch_add(1, Ordering::Relaxed);
                to_revision
            }
            ControllerMessage::Error { code, message } => {
                return Err(AgentError::Controller { code, message });
            }
        };
        table.revision = Some(revision);
        self.shared.revision.send_replace(revision);
        Ok(revision)
    }
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        // Every update of the table is a single assignment or
        // `apply_changes` on a plain map: ignore poisoning.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn programmed(&self) -> MutexGuard<'_, Option<Programmed>> {
        // Whole assignments: ignore poisoning.
        self.programmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn transient(&self) -> MutexGuard<'_, BTreeMap<Id, String>> {
        // Whole-map assignments and clears: ignore poisoning.
        self.transient
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The parts of a FullSync gathered so far on one stream (dropped with
/// the stream: a FullSync cut short leaves the table as it was).
#[derive(Debug, Default)]
struct FullSyncParts {
    /// The revision of the FullSync being gathered, if any.
    revision: Option<u64>,
    objects: Vec<GoalObject>,
    /// Encoded bytes of the parts so far (at most `PUSH_MESSAGE_BYTES_MAX`).
    bytes: usize,
}

impl FullSyncParts {
    /// Takes the next message of the stream, `bytes` long on the wire, and
    /// passes on what is whole: a DiffBatch, an Error, or the last part of
    /// a FullSync with the objects of the parts before it. `None`: a part
    /// was kept. Anything but the next part of the same revision while a
    /// FullSync is being gathered is a protocol error.
    fn add(
        &mut self,
        message: ControllerMessage,
        bytes: usize,
    ) -> Result<Option<ControllerMessage>, AgentError> {
        match (message, self.revision) {
            (message @ ControllerMessage::Error { .. }, _) => Ok(Some(message)),
            (
                ControllerMessage::FullSync {
                    revision,
                    objects,
                    more,
                },
                gathering,
            ) => {
                if let Some(gathering) = gathering.filter(|g| *g != revision) {
                    return Err(AgentError::Protocol(format!(
                        "FullSync part of revision {revision} while gathering revision {gathering}"
                    )));
                }
                self.bytes = self.bytes.saturating_add(bytes);
                if self.bytes > limits::PUSH_MESSAGE_BYTES_MAX {
                    return Err(AgentError::Protocol(format!(
                        "FullSync parts exceed {} bytes",
                        limits::PUSH_MESSAGE_BYTES_MAX
                    )));
                }
                self.objects.extend(objects);
                if more {
                    self.revision = Some(revision);
                    return Ok(None);
                }
                let whole = std::mem::take(self);
                Ok(Some(ControllerMessage::FullSync {
                    revision,
                    objects: whole.objects,
                    more: false,
                }))
            }
            (message, None) => Ok(Some(message)),
            (_, Some(gathering)) => Err(AgentError::Protocol(format!(
                "DiffBatch while gathering the FullSync of revision {gathering}"
            ))),
        }
    }
}

/// `backoff` scaled into `[backoff/2, backoff)` by a hash of the host and
/// the attempt, so the agents of a failed node do not all come back in
/// the same instant (FNV-1a: deterministic, no random source needed).
fn jittered(backoff: Duration, host: &str, attempt: u64) -> Duration {
    backoff.mul_f64(0.5 + host_fraction(host, attempt) / 2.0)
}

/// When a stream's first digest report is due: `period` scaled into
/// `[period/2, 3*period/2)` by a hash of the host, so agents that connected
/// together (after a node failure, or at start) do not all report, and
/// make their nodes recompute their goal states, in the same instant.
fn first_digest_after(period: Duration, host: &str) -> Duration {
    period.mul_f64(0.5 + host_fraction(host, u64::MAX))
}

/// A fraction in `[0, 1)` from `host` and `salt` (FNV-1a: deterministic,
/// no random source needed).
fn host_fraction(host: &str, salt: u64) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in host.bytes().chain(salt.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % 1_000) as f64 / 1_000.0
}

/// The endpoint an agent streams from: connect timeout, no Nagle, HTTP/2
/// keepalive (a dead node is noticed), the receive window if set, and TLS
/// if given.
fn stream_endpoint(
    address: &str,
    window_bytes: Option<u32>,
    tls: Option<&ClientTlsConfig>,
) -> Result<Endpoint, AgentError> {
    let keepalive = Duration::from_millis(limits::HTTP2_KEEPALIVE_MS);
    let mut endpoint = endpoint_of(address, tls.is_some())?;
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls.clone())
            .map_err(|e| AgentError::InvalidEndpoint {
                endpoint: address.to_string(),
                reason: e.to_string(),
            })?;
    }
    Ok(endpoint
        .connect_timeout(Duration::from_millis(limits::CONNECT_TIMEOUT_MS_MAX))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(keepalive)
        .keep_alive_timeout(keepalive)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(window_bytes)
        .initial_connection_window_size(window_bytes))
}

/// Parses an endpoint, defaulting to HTTP/2 over TLS when `tls`, else
/// plain HTTP/2.
fn endpoint_of(address: &str, tls: bool) -> Result<Endpoint, AgentError> {
    let uri = if address.contains("://") {
        address.to_string()
    } else if tls {
        format!("https://{address}")
    } else {
        format!("http://{address}")
    };
    Endpoint::from_shared(uri).map_err(|e| AgentError::InvalidEndpoint {
        endpoint: address.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deferred_digest_is_computed_once_when_first_read() {
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let digest = ProgrammedDigest::deferred(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            [7; 32]
        });
        let copy = digest.clone();
        assert_eq!(
            calls.load(Ordering::Relaxed),
            0,
            "hashed before it was read"
        );
        assert_eq!(copy.get(), [7; 32]);
        assert_eq!(digest.get(), [7; 32]);
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "hashed again on the second read"
        );
        assert_eq!(digest, ProgrammedDigest::ready([7; 32]));
        assert_ne!(digest, ProgrammedDigest::ready([8; 32]));
    }

    fn member(n: u128) -> GoalObject {
        GoalObject::SgMember(alcor_state_machine::goal::SgMember {
            group_id: Id(1),
            port_id: Id(n),
            ips: Vec::new(),
        })
    }

    fn part(revision: u64, ports: &[u128], more: bool) -> ControllerMessage {
        ControllerMessage::FullSync {
            revision,
            objects: ports.iter().map(|n| member(*n)).collect(),
            more,
        }
    }

    #[test]
    fn full_sync_parts_are_passed_on_whole_only_at_the_last_part() {
        let mut parts = FullSyncParts::default();
        assert_eq!(parts.add(part(9, &[1, 2], true), 10).unwrap(), None);
        assert_eq!(parts.add(part(9, &[3], true), 10).unwrap(), None);
        let whole = parts.add(part(9, &[4], false), 10).unwrap();
        assert_eq!(whole, Some(part(9, &[1, 2, 3, 4], false)));
        // Gathering starts afresh, and a one-part FullSync passes at once.
        assert_eq!(parts.bytes, 0);
        assert_eq!(
            parts.add(part(12, &[5], false), 10).unwrap(),
            Some(part(12, &[5], false))
        );
        let batch = ControllerMessage::DiffBatch {
            from_revision: 12,
            to_revision: 13,
            changes: Vec::new(),
        };
        assert_eq!(parts.add(batch.clone(), 10).unwrap(), Some(batch));
    }

    #[test]
    fn anything_but_the_next_part_of_the_same_revision_mid_full_sync_is_a_protocol_error() {
        let batch = ControllerMessage::DiffBatch {
            from_revision: 9,
            to_revision: 10,
            changes: Vec::new(),
        };
        let mut parts = FullSyncParts::default();
        parts.add(part(9, &[1], true), 10).unwrap();
        assert!(matches!(
            parts.add(batch, 10),
            Err(AgentError::Protocol(m)) if m.contains("revision 9")
        ));
        let mut parts = FullSyncParts::default();
        parts.add(part(9, &[1], true), 10).unwrap();
        assert!(matches!(
            parts.add(part(10, &[2], false), 10),
            Err(AgentError::Protocol(m)) if m.contains("revision 10")
        ));
        let mut parts = FullSyncParts::default();
        parts.add(part(9, &[1], true), 10).unwrap();
        assert!(matches!(
            parts.add(part(9, &[2], true), limits::PUSH_MESSAGE_BYTES_MAX),
            Err(AgentError::Protocol(m)) if m.contains("exceed")
        ));
        // An Error from the node passes even mid-way (the stream ends).
        let error = ControllerMessage::Error {
            code: crate::message::ErrorCode::Unavailable,
            message: "stopping".to_string(),
        };
        let mut parts = FullSyncParts::default();
        parts.add(part(9, &[1], true), 10).unwrap();
        assert_eq!(parts.add(error.clone(), 10).unwrap(), Some(error));
    }

    #[test]
    fn first_digest_reports_of_agents_started_together_spread_over_the_period() {
        let period = Duration::from_secs(10);
        let firsts: Vec<Duration> = (0..1_000)
            .map(|i| first_digest_after(period, &format!("host-{i:05}")))
            .collect();
        assert!(firsts
            .iter()
            .all(|d| *d >= period / 2 && *d < period * 3 / 2));
        // Every tenth of the spread is used: no burst at one instant.
        let mut tenths = [0usize; 10];
        for d in &firsts {
            let tenth = ((d.as_secs_f64() - 5.0) / 1.0) as usize;
            tenths[tenth.min(9)] += 1;
        }
        assert!(tenths.iter().all(|n| (50..=150).contains(n)), "{tenths:?}");
        // The same host always gets the same phase.
        assert_eq!(
            first_digest_after(period, "host-00001"),
            first_digest_after(period, "host-00001")
        );
    }

    #[test]
    fn reconnect_backoff_stays_within_half_and_whole_of_its_base() {
        let base = Duration::from_millis(400);
        for attempt in 0..100 {
            let pause = jittered(base, "host-a", attempt);
            assert!(pause >= base / 2 && pause < base, "{pause:?}");
        }
    }
}
