//! The `convergence` workload (issue #6, item 3): watch streams and host
//! agents under the same faults as the other workloads.
//!
//! - Watchers: `WATCHERS_MAX` streams of `Orchestrator.Watch` on ports
//!   (every port of the cluster, so the other workloads' creates feed them
//!   too), from a revision read linearizably after setup. A stream that
//!   breaks (kill, pause via HTTP/2 keepalive, `WATCH_LAGGED`, idle for
//!   `WATCH_IDLE_MAX`) is resumed on the next node from one below the last
//!   revision delivered, so the last revision, which one log entry may share
//!   between several ports, is read again whole; its events may repeat and
//!   are not duplicates. A `COMPACTED` answer (the node's watch history no
//!   longer reaches back that far) is counted, and the watcher re-lists
//!   (`ListPorts`, linearizable) and resumes from the list's revision: no
//!   stream of that watcher covers the range in between, so the gap check
//!   below never looks at it.
//! - Checks ([`check_watchers`]): within a watcher, revisions never go
//!   backwards and no (revision, port) arrives twice (except the re-read
//!   revision); a stream delivers nothing at or below its start. Across
//!   watchers, and the reference streams read after healing from the start
//!   revision on every node that still has it: the union of all events is
//!   the reference; each stream must hold every reference event strictly
//!   between its start and its last revision (the range it provably
//!   covered: the node streams in commit order, so everything before its
//!   last delivered revision was due); all streams agree on put/delete.
//! - Agents: one `alcor agent` child process per host (`HOSTS_MAX` hosts
//!   created here); a client creates, moves (re-binds) and deletes ports on
//!   those hosts through the API. The agents' status lines (revision,
//!   digest prefix, counters) are parsed; a reported revision must never go
//!   backwards, and a `gaps N` field, if the binary prints one, must be 0.
//! - After the final heal: a sentinel port is created; within
//!   `CONVERGENCE_DEADLINE` every watcher must deliver it and every agent
//!   must report a revision at or past the controller's `HostDigest`
//!   (linearizable) for its host with the same digest (the agent prints the
//!   first 6 bytes). An agent at or past that revision with another digest
//!   is a violation; one still behind at the deadline, or a watcher that
//!   never delivers the sentinel, leaves the verdict unknown.
//!
//! Everything is recorded in the history under workload `convergence`
//! (client ops, one op per watch stream with the revisions it delivered,
//! one `converge` op per agent); the checker crate skips that workload.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write as _;
use std::ops::Bound;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_client::ClusterClient;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::checks::Verdict;
use crate::cluster::{api_addr, channel};
use crate::history::{Event, History, OpType, Process};
use crate::pki::{self, Pki};
use crate::run::{fixed_id, on_any};
use crate::workloads::{
    bounded, classify_mutation, describe, reason, request, CALL_TIMEOUT, PROJECT,
};

/// Watch streams kept open during the run (one per node, up to this many).
pub const WATCHERS_MAX: usize = 3;
/// Hosts with a simulated agent.
pub const HOSTS_MAX: usize = 4;
/// Ports the client keeps alive at most (creates stop above this).
pub const LIVE_PORTS_MAX: usize = 24;
/// Events one watcher records at most (over all its streams); beyond this the
/// watcher stops and the verdict is unknown.
pub const WATCH_EVENTS_MAX: usize = 1_000_000;
/// Streams one watcher opens at most.
pub const SEGMENTS_MAX: usize = 10_000;
/// Problems listed at most.
const PROBLEMS_MAX: usize = 20;
/// After the sentinel, how long watchers and agents have to converge.
const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(60);
/// A stream with no event for this long is resumed elsewhere.
const WATCH_IDLE_MAX: Duration = Duration::from_secs(20);
/// How long one reference stream may take to reach the sentinel.
const REFERENCE_WAIT: Duration = Duration::from_secs(30);
/// HTTP/2 keepalive of watch streams (a paused node's stream breaks).
const KEEPALIVE: Duration = Duration::from_secs(1);
/// The history's key and workload name of client ops.
const KEY: &str = "convergence";
/// The history's `workload` field.
const WORKLOAD: &str = "convergence";

/// One event a stream delivered, as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    /// Its revision (log index).
    pub revision: u64,
    /// The port.
    pub id: String,
    /// A delete (else a put).
    pub delete: bool,
}

/// How one stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Stopped by the harness (after the sentinel or at the deadline).
    Done,
    /// FAILED_PRECONDITION / COMPACTED, with the node's history floor when
    /// its message states it.
    Compacted(Option<u64>),
    /// ABORTED / WATCH_LAGGED.
    Lagged,
    /// Any other error, an idle timeout, or the stream ending.
    Broken(String),
}

/// One `Watch` call and what it delivered.
#[derive(Debug, Clone)]
pub struct Segment {
    /// The node it ran on.
    pub node: usize,
    /// Its `from_revision`.
    pub from: u64,
    /// Events in delivery order.
    pub events: Vec<Seen>,
    /// How it ended.
    pub end: End,
}

/// What [`check_watchers`] found.
#[derive(Debug, Default)]
pub struct WatchCheck {
    /// Violations: gaps, duplicates, reorders, disagreements.
    pub problems: Vec<String>,
    /// Streams refused or ended with COMPACTED.
    pub compactions: u64,
    /// Streams ended with WATCH_LAGGED.
    pub lagged: u64,
    /// Distinct events over all streams.
    pub events: usize,
    /// Events a stream missed although another saw them in its range.
    pub gaps: u64,
    /// Events inside the covered range of at least two watchers (so
    /// compared).
    pub cross_checked: usize,
}

fn push(problems: &mut Vec<String>, problem: String) {
    if problems.len() < PROBLEMS_MAX {
        problems.push(problem);
    }
}

/// The watch checks over named watchers (each a list of streams in order).
pub fn check_watchers(watchers: &[(String, Vec<Segment>)]) -> WatchCheck {
    let mut out = WatchCheck::default();
    // Order and duplicates within each watcher.
    for (name, segments) in watchers {
        let mut seen: BTreeSet<(u64, &str)> = BTreeSet::new();
        let mut last: Option<u64> = None;
        for (s, segment) in segments.iter().enumerate() {
            match segment.end {
                End::Compacted(_) => out.compactions += 1,
                End::Lagged => out.lagged += 1,
                _ => {}
            }
            // A resume from `last - 1` reads revision `last` again.
            let reread = last.filter(|&l| segment.from + 1 == l);
            let mut within: BTreeSet<(u64, &str)> = BTreeSet::new();
            let mut previous: Option<u64> = None;
            for event in &segment.events {
                let at = format!(
                    "{name} stream {s} (n{}, from {})",
                    segment.node, segment.from
                );
                if event.revision <= segment.from {
                    push(
                        &mut out.problems,
                        format!(
                            "{at}: revision {} delivered, not after its start",
                            event.revision
                        ),
                    );
                }
                if previous.is_some_and(|p| event.revision < p) {
                    push(
                        &mut out.problems,
                        format!(
                            "{at}: revision {} after {} (reordered)",
                            event.revision,
                            previous.unwrap_or_default()
                        ),
                    );
                }
                let key = (event.revision, event.id.as_str());
                let repeated =
                    !within.insert(key) || (Some(event.revision) != reread && seen.contains(&key));
                if repeated {
                    push(
                        &mut out.problems,
                        format!(
                            "{at}: port {} at revision {} delivered twice",
                            event.id, event.revision
                        ),
                    );
                }
                previous = Some(previous.map_or(event.revision, |p| p.max(event.revision)));
            }
            seen.extend(within);
            if let Some(p) = previous {
                last = Some(last.map_or(p, |l| l.max(p)));
            }
        }
    }
    // The reference: every event any stream delivered.
    let mut reference: BTreeMap<(u64, String), (bool, &str)> = BTreeMap::new();
    for (name, segments) in watchers {
        for event in segments.iter().flat_map(|s| &s.events) {
            let key = (event.revision, event.id.clone());
            match reference.get(&key) {
                Some(&(delete, other)) if delete != event.delete => push(
                    &mut out.problems,
                    format!(
                        "port {} at revision {}: {name} and {other} disagree on put/delete",
                        event.id, event.revision
                    ),
                ),
                Some(_) => {}
                None => {
                    reference.insert(key, (event.delete, name.as_str()));
                }
            }
        }
    }
    out.events = reference.len();
    // Gaps: each stream covered (from, last revision) strictly; the last
    // revision itself may have been cut short and is read again by the next.
    let mut coverage: BTreeMap<&(u64, String), usize> = BTreeMap::new();
    for (name, segments) in watchers {
        let mut covered: BTreeSet<&(u64, String)> = BTreeSet::new();
        for (s, segment) in segments.iter().enumerate() {
            let Some(top) = segment.events.iter().map(|e| e.revision).max() else {
                continue;
            };
            let mine: BTreeSet<(u64, &str)> = segment
                .events
                .iter()
                .map(|e| (e.revision, e.id.as_str()))
                .collect();
            let range = (
                Bound::Excluded((segment.from, String::from("\u{10FFFF}"))),
                Bound::Excluded((top, String::new())),
            );
            for (key, (_, by)) in reference.range(range) {
                covered.insert(key);
                let (revision, id) = key;
                if !mine.contains(&(*revision, id.as_str())) {
                    out.gaps += 1;
                    push(
                        &mut out.problems,
                        format!(
                            "{name} stream {s} (n{}, from {} to {top}) missed port {id} at \
                             revision {revision}, which {by} saw",
                            segment.node, segment.from
                        ),
                    );
                }
            }
        }
        for key in covered {
            *coverage.entry(key).or_default() += 1;
        }
    }
    out.cross_checked = coverage.values().filter(|&&n| n >= 2).count();
    out
}

/// One status line of `alcor agent`, as far as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentStatus {
    /// The revision its table is at.
    pub revision: u64,
    /// Hex of the first bytes of its table's digest.
    pub digest: String,
    /// Reconnects so far.
    pub reconnects: u64,
    /// Full syncs so far.
    pub full_syncs: u64,
    /// Gaps or duplicates the agent detected, if the binary reports them.
    pub gaps: Option<u64>,
}

/// Parses `host revision N ... digest HEX full-syncs N diff-batches N
/// reconnects N [gaps N]`.
pub fn parse_agent_line(line: &str) -> Option<AgentStatus> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |name: &str| {
        words
            .iter()
            .position(|w| *w == name)
            .and_then(|i| words.get(i + 1).copied())
    };
    let number = |name: &str| after(name).and_then(|w| w.parse::<u64>().ok());
    let digest = after("digest")?;
    if digest.is_empty() || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(AgentStatus {
        revision: number("revision")?,
        digest: digest.to_string(),
        reconnects: number("reconnects").unwrap_or(0),
        full_syncs: number("full-syncs").unwrap_or(0),
        gaps: number("gaps"),
    })
}

/// What one agent reported so far.
#[derive(Debug, Default)]
struct AgentLog {
    latest: Option<AgentStatus>,
    lines: u64,
    problems: Vec<String>,
}

impl AgentLog {
    /// Takes one status line: its revision must not be below the last one.
    fn observe(&mut self, host: &str, status: AgentStatus) {
        if let Some(previous) = &self.latest {
            if status.revision < previous.revision {
                push(
                    &mut self.problems,
                    format!(
                        "agent {host}: revision went back from {} to {}",
                        previous.revision, status.revision
                    ),
                );
            }
        }
        if let Some(gaps) = status.gaps.filter(|&g| g > 0) {
            if self.latest.as_ref().and_then(|s| s.gaps) != Some(gaps) {
                push(
                    &mut self.problems,
                    format!("agent {host}: {gaps} diff batch(es) with a gap or duplicate"),
                );
            }
        }
        self.lines += 1;
        self.latest = Some(status);
    }
}

/// The resources of the workload.
#[derive(Debug, Clone)]
pub struct Setup {
    vpc: String,
    subnet: String,
    hosts: Vec<String>,
    start_revision: u64,
}

/// A linearizable revision: that of a one-entry `ListPorts` on any node.
async fn current_revision(nodes: usize, vpc: &str) -> Result<u64> {
    let vpc = vpc.to_string();
    let list = on_any(nodes, |mut c| {
        let vpc = vpc.clone();
        async move {
            c.list_ports(request(pb::ListPortsRequest {
                network_id: vpc,
                limit: 1,
                ..Default::default()
            }))
            .await
        }
    })
    .await?;
    list.map(|l| l.revision)
        .ok_or_else(|| anyhow!("ListPorts answered ALREADY_EXISTS"))
}

/// Creates the VPC, subnet and hosts; reads the start revision.
pub async fn setup(nodes: usize) -> Result<Setup> {
    let vpc = fixed_id(4, 1);
    let subnet = fixed_id(5, 1);
    let request_vpc = pb::CreateVpcRequest {
        id: vpc.clone(),
        project_id: PROJECT.to_string(),
        name: KEY.to_string(),
        ..Default::default()
    };
    on_any(nodes, |mut c| {
        let r = request_vpc.clone();
        async move { c.create_vpc(r).await }
    })
    .await?;
    let request_subnet = pb::CreateSubnetRequest {
        id: subnet.clone(),
        project_id: PROJECT.to_string(),
        network_id: vpc.clone(),
        cidr: "10.200.0.0/16".to_string(),
        ..Default::default()
    };
    on_any(nodes, |mut c| {
        let r = request_subnet.clone();
        async move { c.create_subnet(r).await }
    })
    .await?;
    let mut hosts = Vec::new();
    for i in 0..HOSTS_MAX {
        let host = format!("jepsen-h{i}");
        let r = pb::CreateHostRequest {
            id: host.clone(),
            project_id: PROJECT.to_string(),
            underlay_ip: format!("192.0.2.{}", i + 1),
            request_token: String::new(),
        };
        on_any(nodes, |mut c| {
            let r = r.clone();
            async move { c.create_host(r).await }
        })
        .await?;
        hosts.push(host);
    }
    let start_revision = current_revision(nodes, &vpc).await?;
    Ok(Setup {
        vpc,
        subnet,
        hosts,
        start_revision,
    })
}

/// What the workload's tasks share.
struct Shared {
    history: Arc<History>,
    nodes: usize,
    setup: Setup,
    next_process: AtomicU64,
}

impl Shared {
    fn process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        process: u64,
        kind: OpType,
        f: &'static str,
        key: &str,
        value: Value,
        node: Option<usize>,
        error: Option<String>,
    ) {
        self.history.record(Event {
            process: Process::Client(process),
            kind,
            f,
            key: Some(key.to_string()),
            value,
            workload: Some(WORKLOAD),
            node: node.map(|n| format!("n{n}")),
            error,
        });
    }
}

/// One watcher's streams so far.
#[derive(Debug, Default)]
struct WatcherLog {
    segments: Vec<Segment>,
    events: usize,
    /// Highest revision delivered.
    last: u64,
    /// It stopped at `WATCH_EVENTS_MAX` or `SEGMENTS_MAX`.
    overflow: bool,
}

/// One running agent process.
struct Agent {
    host: String,
    child: tokio::process::Child,
    log: Arc<Mutex<AgentLog>>,
    reader: JoinHandle<()>,
}

/// The running workload.
pub struct Convergence {
    shared: Arc<Shared>,
    watchers: Vec<Arc<Mutex<WatcherLog>>>,
    watcher_tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    agents: Vec<Agent>,
    client: JoinHandle<()>,
}

/// Its result for the summary.
pub struct Outcome {
    /// Valid, invalid (a violation) or unknown (not converged in time).
    pub verdict: Verdict,
    /// Figures for the summary.
    pub notes: Vec<String>,
}

/// A channel for long-lived watch streams: no call deadline, keepalive on.
fn watch_channel(slot: usize) -> Result<Channel> {
    Ok(pki::endpoint(&api_addr(slot))?
        .connect_timeout(Duration::from_millis(500))
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE * 2)
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// The floor in a COMPACTED message: "... (which starts after 1234) ...".
/// The revision the node's watch history starts after, from a COMPACTED
/// answer's header.
fn floor_of(status: &Status) -> Option<u64> {
    status
        .metadata()
        .get(alcor_proto::COMPACT_REVISION_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn end_of(status: &Status) -> End {
    use alcor_proto::reason::Reason;
    match (status.code(), reason(status).and_then(Reason::from_code)) {
        (Code::FailedPrecondition, Some(Reason::Compacted)) => End::Compacted(floor_of(status)),
        (Code::Aborted, Some(Reason::WatchLagged)) => End::Lagged,
        _ => End::Broken(describe(status)),
    }
}

/// One `Watch` call on `slot` from `from`, until it breaks, `stop` fires,
/// or (with `until`) an event at or past `until` arrives (then `Done`).
async fn one_stream(
    slot: usize,
    from: u64,
    until: Option<u64>,
    stop: &mut watch::Receiver<bool>,
    log: Option<&Mutex<WatcherLog>>,
) -> (Vec<Seen>, End) {
    let mut events = Vec::new();
    let channel = match watch_channel(slot) {
        Ok(channel) => channel,
        Err(error) => return (events, End::Broken(format!("{error:#}"))),
    };
    let mut client = OrchestratorClient::new(channel);
    let call = client.watch(pb::WatchRequest {
        kind: pb::ResourceKind::Port as i32,
        from_revision: Some(from),
    });
    let mut stream = match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(response)) => response.into_inner(),
        Ok(Err(status)) => return (events, end_of(&status)),
        Err(_) => return (events, End::Broken("watch call timed out".to_string())),
    };
    loop {
        if *stop.borrow() {
            return (events, End::Done);
        }
        tokio::select! {
            _ = stop.changed() => return (events, End::Done),
            next = tokio::time::timeout(WATCH_IDLE_MAX, stream.message()) => match next {
                Err(_) => return (events, End::Broken("idle".to_string())),
                Ok(Ok(Some(event))) => {
                    let seen = Seen {
                        revision: event.revision,
                        id: event.id,
                        delete: event.r#type == pb::WatchEventType::Delete as i32,
                    };
                    let revision = seen.revision;
                    events.push(seen);
                    if let Some(log) = log {
                        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                        log.events += 1;
                        log.last = log.last.max(revision);
                        if log.events >= WATCH_EVENTS_MAX {
                            log.overflow = true;
                            return (events, End::Done);
                        }
                    }
                    if until.is_some_and(|u| revision >= u) {
                        return (events, End::Done);
                    }
                }
                Ok(Ok(None)) => return (events, End::Broken("stream ended".to_string())),
                Ok(Err(status)) => return (events, end_of(&status)),
            }
        }
    }
}

/// Records one stream as an op: ok when stopped by the harness, fail on
/// COMPACTED, info otherwise; the value lists the delivered revisions.
fn record_stream(shared: &Shared, key: &str, segment: &Segment) {
    let process = shared.process();
    shared.record(
        process,
        OpType::Invoke,
        "watch",
        key,
        json!({"from": segment.from}),
        Some(segment.node),
        None,
    );
    let revisions: Vec<u64> = segment.events.iter().map(|e| e.revision).collect();
    let (kind, error) = match &segment.end {
        End::Done => (OpType::Ok, None),
        End::Compacted(_) => (OpType::Fail, Some("COMPACTED".to_string())),
        End::Lagged => (
            OpType::Info,
            Some(alcor_proto::reason::Reason::WatchLagged.code().to_string()),
        ),
        End::Broken(why) => (OpType::Info, Some(why.clone())),
    };
    shared.record(
        process,
        kind,
        "watch",
        key,
        json!({"from": segment.from, "revisions": revisions}),
        Some(segment.node),
        error,
    );
}

/// Watcher `w`: streams from the start revision, resuming across faults.
async fn watcher(
    shared: Arc<Shared>,
    w: usize,
    log: Arc<Mutex<WatcherLog>>,
    mut stop: watch::Receiver<bool>,
) {
    let key = format!("watch-{w}");
    let mut slot = w % shared.nodes + 1;
    let mut from = shared.setup.start_revision;
    let mut last: Option<u64> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let (events, end) = one_stream(slot, from, None, &mut stop, Some(&log)).await;
        let segment = Segment {
            node: slot,
            from,
            events,
            end,
        };
        record_stream(&shared, &key, &segment);
        if let Some(top) = segment.events.iter().map(|e| e.revision).max() {
            last = Some(last.map_or(top, |l| l.max(top)));
        }
        let end = segment.end.clone();
        // A stream that delivered nothing (node down) is retried less often.
        let pause = if segment.events.is_empty() {
            1_000
        } else {
            200
        };
        {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            log.segments.push(segment);
            if log.segments.len() >= SEGMENTS_MAX {
                log.overflow = true;
            }
            if log.overflow {
                return;
            }
        }
        match end {
            End::Done => return,
            End::Compacted(_) => {
                // Re-list: resume from a linearizable revision. No stream of
                // this watcher covers (last, from], so the gap check skips it.
                let relisted = tokio::select! {
                    r = current_revision(shared.nodes, &shared.setup.vpc) => r.ok(),
                    _ = stop.changed() => return,
                };
                from = relisted.unwrap_or(from).max(last.unwrap_or(0));
            }
            End::Lagged | End::Broken(_) => {
                // Read the last revision again: it may have been cut short.
                if let Some(l) = last {
                    from = from.max(l.saturating_sub(1));
                }
            }
        }
        slot = slot % shared.nodes + 1;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(pause)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Starts an `alcor agent` for `host` and a task parsing its status lines.
/// With `pki`, the agent dials over TLS and presents its host's certificate.
fn spawn_agent(
    bin: &Path,
    host: &str,
    nodes: usize,
    i: usize,
    run_dir: &Path,
    pki: Option<&Pki>,
) -> Result<Agent> {
    let endpoints: Vec<String> = (0..nodes).map(|k| api_addr((i + k) % nodes + 1)).collect();
    let path = run_dir.join(format!("agent-{host}.log"));
    let mut file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let stderr = file.try_clone()?;
    let mut command = tokio::process::Command::new(bin);
    if let Some(pki) = pki {
        let issued = pki.issue(&format!("agent/{host}"), &[])?;
        command
            .env("ALCOR_CA_FILE", pki.ca())
            .env("ALCOR_CERT_FILE", &issued.cert)
            .env("ALCOR_KEY_FILE", &issued.key);
    }
    let mut child = command
        .arg("agent")
        .args(["--host-id", host])
        .args(["--endpoints", &endpoints.join(",")])
        .args(["--report-interval-s", "1"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .context("spawn alcor agent")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("agent stdout"))?;
    let log = Arc::new(Mutex::new(AgentLog::default()));
    let reader = tokio::spawn({
        let log = log.clone();
        let host = host.to_string();
        async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = writeln!(file, "{line}");
                if let Some(status) = parse_agent_line(&line) {
                    log.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .observe(&host, status);
                }
            }
        }
    });
    Ok(Agent {
        host: host.to_string(),
        child,
        log,
        reader,
    })
}

impl Convergence {
    /// Starts the agents, the watchers and the client (which stops at
    /// `deadline`). Process numbers start at `process_base`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        history: Arc<History>,
        nodes: usize,
        setup: Setup,
        bin: &Path,
        run_dir: &Path,
        process_base: u64,
        deadline: Instant,
        think: Duration,
        seed: u64,
        pki: Option<&Pki>,
    ) -> Result<Convergence> {
        let shared = Arc::new(Shared {
            history,
            nodes,
            setup,
            next_process: AtomicU64::new(process_base),
        });
        let mut agents = Vec::new();
        for (i, host) in shared.setup.hosts.iter().enumerate() {
            agents.push(spawn_agent(bin, host, nodes, i, run_dir, pki)?);
        }
        let (stop, stopped) = watch::channel(false);
        let mut watchers = Vec::new();
        let mut watcher_tasks = Vec::new();
        for w in 0..nodes.min(WATCHERS_MAX) {
            let log = Arc::new(Mutex::new(WatcherLog::default()));
            watcher_tasks.push(tokio::spawn(watcher(
                shared.clone(),
                w,
                log.clone(),
                stopped.clone(),
            )));
            watchers.push(log);
        }
        let client = tokio::spawn(client(shared.clone(), deadline, think, seed));
        Ok(Convergence {
            shared,
            watchers,
            watcher_tasks,
            stop,
            agents,
            client,
        })
    }

    /// After the final heal: the sentinel, convergence, reference streams,
    /// checks.
    pub async fn finish(mut self) -> Outcome {
        let _ = (&mut self.client).await;
        let shared = self.shared.clone();
        let mut unknown: Vec<String> = Vec::new();
        let mut notes = Vec::new();
        let sentinel = match sentinel(&shared).await {
            Ok(revision) => Some(revision),
            Err(error) => {
                unknown.push(format!("sentinel port: {error:#}"));
                None
            }
        };
        let started = Instant::now();
        let deadline = started + CONVERGENCE_DEADLINE;
        let mut converged: BTreeMap<String, (Duration, u64)> = BTreeMap::new();
        let mut last_seen: BTreeMap<String, String> = BTreeMap::new();
        let mut problems: Vec<String> = Vec::new();
        let converge_process: BTreeMap<String, u64> = self
            .agents
            .iter()
            .map(|a| {
                let process = shared.process();
                shared.record(
                    process,
                    OpType::Invoke,
                    "converge",
                    &format!("agent-{}", a.host),
                    Value::Null,
                    None,
                    None,
                );
                (a.host.clone(), process)
            })
            .collect();
        if let Some(sentinel) = sentinel {
            loop {
                let watchers_done = self.watchers.iter().all(|log| {
                    let log = log.lock().unwrap_or_else(|e| e.into_inner());
                    log.last >= sentinel || log.overflow
                });
                for agent in &self.agents {
                    if converged.contains_key(&agent.host) {
                        continue;
                    }
                    let Ok((revision, digest)) = host_digest(shared.nodes, &agent.host).await
                    else {
                        continue;
                    };
                    let status = agent
                        .log
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .latest
                        .clone();
                    let Some(status) = status else { continue };
                    last_seen.insert(
                        agent.host.clone(),
                        format!(
                            "agent at {} digest {}, controller at {revision} digest {}",
                            status.revision,
                            status.digest,
                            &digest[..status.digest.len().min(digest.len())]
                        ),
                    );
                    if status.revision >= revision && digest.starts_with(&status.digest) {
                        converged.insert(agent.host.clone(), (started.elapsed(), revision));
                        if let Some(&p) = converge_process.get(&agent.host) {
                            shared.record(
                                p,
                                OpType::Ok,
                                "converge",
                                &format!("agent-{}", agent.host),
                                json!({"revision": status.revision, "digest": status.digest}),
                                None,
                                None,
                            );
                        }
                    }
                }
                if watchers_done && converged.len() == self.agents.len() {
                    break;
                }
                if Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        let _ = self.stop.send(true);
        for task in self.watcher_tasks.drain(..) {
            let _ = task.await;
        }
        for agent in &mut self.agents {
            let _ = agent.child.start_kill();
            let _ = agent.child.wait().await;
        }
        // Agents: not converged at the deadline; a mismatch at or past the
        // controller's revision is a divergence.
        for agent in &self.agents {
            agent.reader.abort();
            let log = agent.log.lock().unwrap_or_else(|e| e.into_inner());
            problems.extend(log.problems.iter().cloned());
            if converged.contains_key(&agent.host) {
                continue;
            }
            let detail = last_seen
                .get(&agent.host)
                .cloned()
                .unwrap_or_else(|| format!("{} status lines, none compared", log.lines));
            if let Some(&p) = converge_process.get(&agent.host) {
                shared.record(
                    p,
                    OpType::Info,
                    "converge",
                    &format!("agent-{}", agent.host),
                    Value::Null,
                    None,
                    Some(detail.clone()),
                );
            }
            unknown.push(format!(
                "agent {} not converged within {CONVERGENCE_DEADLINE:?}: {detail}",
                agent.host
            ));
        }
        if let Some(slowest) = converged.values().map(|(t, _)| *t).max() {
            let reconnects: u64 = self
                .agents
                .iter()
                .filter_map(|a| {
                    a.log
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .latest
                        .as_ref()
                        .map(|s| s.reconnects)
                })
                .sum();
            notes.push(format!(
                "convergence: {}/{} agents matched the controller's digest {:.1}s after the \
                 sentinel ({reconnects} agent reconnects)",
                converged.len(),
                self.agents.len(),
                slowest.as_secs_f64()
            ));
        }
        // Watchers, plus a reference stream per node from the start.
        let mut named: Vec<(String, Vec<Segment>)> = Vec::new();
        for (w, log) in self.watchers.iter().enumerate() {
            let log = log.lock().unwrap_or_else(|e| e.into_inner());
            if log.overflow {
                unknown.push(format!("watch-{w}: stopped at its event/stream limit"));
            }
            if let Some(s) = sentinel.filter(|&s| log.last < s) {
                unknown.push(format!(
                    "watch-{w}: did not deliver the sentinel (revision {s}) within \
                     {CONVERGENCE_DEADLINE:?}; last {}",
                    log.last
                ));
            }
            named.push((format!("watch-{w}"), log.segments.clone()));
        }
        let mut references = Vec::new();
        if let Some(sentinel) = sentinel {
            let start = shared.setup.start_revision;
            let (_keep, stopped) = watch::channel(false);
            // From the start revision; a node whose history begins later
            // (it restarted or installed a snapshot) is read from its floor.
            for slot in 1..=shared.nodes {
                let mut from = start;
                for _ in 0..2 {
                    let mut stopped = stopped.clone();
                    let read = tokio::time::timeout(
                        REFERENCE_WAIT,
                        one_stream(slot, from, Some(sentinel), &mut stopped, None),
                    )
                    .await;
                    let (events, end) = read.unwrap_or_else(|_| {
                        (Vec::new(), End::Broken("no sentinel in time".to_string()))
                    });
                    let segment = Segment {
                        node: slot,
                        from,
                        events,
                        end,
                    };
                    record_stream(&shared, &format!("watch-ref-n{slot}"), &segment);
                    let what = match &segment.end {
                        End::Done => "full",
                        End::Compacted(_) => "COMPACTED",
                        End::Lagged => "lagged",
                        End::Broken(_) => "partial",
                    };
                    references.push(format!("n{slot} from {from} {what}"));
                    match segment.end {
                        End::Compacted(Some(floor)) if floor > from && floor < sentinel => {
                            from = floor;
                        }
                        End::Compacted(_) => break,
                        _ => {
                            named.push((format!("ref-n{slot}"), vec![segment]));
                            break;
                        }
                    }
                }
            }
        }
        let check = check_watchers(&named);
        let streams: usize = named.iter().map(|(_, s)| s.len()).sum();
        let ends = named.iter().flat_map(|(_, s)| s).map(|s| &s.end);
        let (mut broken, mut idle) = (0, 0);
        for end in ends {
            match end {
                End::Broken(why) if why == "idle" => idle += 1,
                End::Broken(_) => broken += 1,
                _ => {}
            }
        }
        notes.push(format!(
            "convergence: {streams} watch streams ({broken} broke, {idle} idle for \
             {WATCH_IDLE_MAX:?}, {} COMPACTED: range excluded, {} lagged), {} distinct events, \
             {} of them inside two or more streams' ranges, {} gaps; reference streams: {}",
            check.compactions,
            check.lagged,
            check.events,
            check.cross_checked,
            check.gaps,
            references.join(", ")
        ));
        problems.extend(check.problems);
        let verdict = if !problems.is_empty() {
            problems.truncate(PROBLEMS_MAX);
            Verdict::Invalid(problems)
        } else if !unknown.is_empty() {
            Verdict::Unknown(unknown.join("; "))
        } else {
            Verdict::Valid
        };
        Outcome { verdict, notes }
    }
}

/// The controller's goal-state digest of `host` (linearizable): revision and
/// hex digest.
async fn host_digest(nodes: usize, host: &str) -> Result<(u64, String)> {
    let mut last = anyhow!("no node answered");
    for slot in 1..=nodes {
        let mut client = ClusterClient::new(channel(slot, CALL_TIMEOUT)?);
        let call = client.host_digest(request(pb::HostDigestRequest {
            host: host.to_string(),
            stale: false,
        }));
        match bounded(call).await {
            Ok(answer) => {
                let hex: String = answer.digest.iter().map(|b| format!("{b:02x}")).collect();
                return Ok((answer.revision, hex));
            }
            Err(status) => last = anyhow!("n{slot}: {}", describe(&status)),
        }
    }
    Err(last)
}

/// Creates the sentinel port (bound to the first host) after healing and
/// returns its revision.
async fn sentinel(shared: &Shared) -> Result<u64> {
    let id = fixed_id(6, 0xFFFF_FFFF);
    let process = shared.process();
    let host = shared.setup.hosts.first().cloned().unwrap_or_default();
    let value = json!({"port": id, "host": host, "sentinel": true});
    shared.record(
        process,
        OpType::Invoke,
        "create",
        KEY,
        value.clone(),
        None,
        None,
    );
    let r = port_create(&shared.setup, id.clone(), host, "sentinel".to_string());
    let created = on_any(shared.nodes, |mut c| {
        let r = r.clone();
        async move { c.create_port(r).await }
    })
    .await;
    let revision = match created {
        Ok(Some(port)) => Ok(port.revision),
        Ok(None) => {
            let got = on_any(shared.nodes, |mut c| {
                let id = id.clone();
                async move {
                    c.get_port(request(pb::GetPortRequest {
                        id,
                        ..Default::default()
                    }))
                    .await
                }
            })
            .await;
            match got {
                Ok(Some(port)) => Ok(port.revision),
                Ok(None) => Err(anyhow!("GetPort answered ALREADY_EXISTS")),
                Err(error) => Err(error),
            }
        }
        Err(error) => Err(error),
    };
    match &revision {
        Ok(r) => shared.record(
            process,
            OpType::Ok,
            "create",
            KEY,
            json!({"port": id, "revision": r, "sentinel": true}),
            None,
            None,
        ),
        Err(error) => shared.record(
            process,
            OpType::Info,
            "create",
            KEY,
            value,
            None,
            Some(format!("{error:#}")),
        ),
    }
    revision
}

fn port_create(setup: &Setup, id: String, host: String, token: String) -> pb::CreatePortRequest {
    pb::CreatePortRequest {
        id,
        project_id: PROJECT.to_string(),
        network_id: setup.vpc.clone(),
        fixed_ips: vec![pb::FixedIpRequest {
            subnet_id: setup.subnet.clone(),
            ip_address: String::new(),
        }],
        binding_host: host,
        security_groups: Some(pb::IdList { ids: Vec::new() }),
        request_token: token,
        ..Default::default()
    }
}

/// The client: creates, moves and deletes ports on the agents' hosts until
/// `deadline`, rotating over the nodes.
async fn client(shared: Arc<Shared>, deadline: Instant, think: Duration, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xC0_4E_46_E4);
    let mut apis = Vec::new();
    for slot in 1..=shared.nodes {
        match channel(slot, CALL_TIMEOUT) {
            Ok(c) => apis.push(OrchestratorClient::new(c)),
            Err(_) => return,
        }
    }
    let hosts = shared.setup.hosts.clone();
    let mut live: Vec<String> = Vec::new();
    let mut process = shared.process();
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        n += 1;
        let slot = (n as usize % shared.nodes) + 1;
        let api = &mut apis[slot - 1];
        let host = hosts[rng.usize(0..hosts.len())].clone();
        let roll = rng.u8(0..10);
        let (f, value, result) = if live.is_empty() || (live.len() < LIVE_PORTS_MAX && roll < 4) {
            let id = fixed_id(6, n);
            let value = json!({"port": id, "host": host});
            shared.record(
                process,
                OpType::Invoke,
                "create",
                KEY,
                value.clone(),
                Some(slot),
                None,
            );
            let r = port_create(&shared.setup, id.clone(), host, format!("conv-{seed}-{n}"));
            let result = bounded(api.create_port(request(r))).await.map(|_| ());
            // An indeterminate create may exist: later ops on it are fine
            // either way (NOT_FOUND is a proven failure).
            let maybe = match &result {
                Ok(()) => true,
                Err(status) => classify_mutation(status) == OpType::Info,
            };
            if maybe {
                live.push(id);
            }
            ("create", value, result)
        } else if roll < 8 {
            let id = live[rng.usize(0..live.len())].clone();
            let value = json!({"port": id, "host": host});
            shared.record(
                process,
                OpType::Invoke,
                "move",
                KEY,
                value.clone(),
                Some(slot),
                None,
            );
            let r = pb::UpdatePortRequest {
                id,
                binding_host: Some(host),
                ..Default::default()
            };
            let result = bounded(api.update_port(request(r))).await.map(|_| ());
            ("move", value, result)
        } else {
            let at = rng.usize(0..live.len());
            let id = live.swap_remove(at);
            let value = json!({"port": id});
            shared.record(
                process,
                OpType::Invoke,
                "delete",
                KEY,
                value.clone(),
                Some(slot),
                None,
            );
            let r = pb::DeletePortRequest {
                id,
                expected_revision: None,
            };
            let result = bounded(api.delete_port(request(r))).await.map(|_| ());
            ("delete", value, result)
        };
        match result {
            Ok(()) => shared.record(process, OpType::Ok, f, KEY, value, Some(slot), None),
            Err(status) => {
                let kind = classify_mutation(&status);
                shared.record(
                    process,
                    kind,
                    f,
                    KEY,
                    value,
                    Some(slot),
                    Some(describe(&status)),
                );
                if kind == OpType::Info {
                    process = shared.process();
                }
            }
        }
        let ms = think.as_millis() as u64;
        tokio::time::sleep(Duration::from_millis(ms / 2 + rng.u64(0..=ms.max(1)))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(revision: u64, id: &str) -> Seen {
        Seen {
            revision,
            id: id.to_string(),
            delete: false,
        }
    }

    fn segment(from: u64, revisions: &[u64], end: End) -> Segment {
        Segment {
            node: 1,
            from,
            events: revisions
                .iter()
                .map(|&r| seen(r, &format!("p{r}")))
                .collect(),
            end,
        }
    }

    fn watchers(list: Vec<(&str, Vec<Segment>)>) -> Vec<(String, Vec<Segment>)> {
        list.into_iter().map(|(n, s)| (n.to_string(), s)).collect()
    }

    #[test]
    fn identical_gap_free_streams_resumed_across_a_break_are_valid() {
        let check = check_watchers(&watchers(vec![
            (
                "a",
                vec![
                    segment(10, &[11, 13], End::Broken("killed".into())),
                    // Resumed from 12: revision 13 is read again.
                    segment(12, &[13, 15, 20], End::Done),
                ],
            ),
            ("b", vec![segment(10, &[11, 13, 15, 20], End::Done)]),
        ]));
        assert!(check.problems.is_empty(), "{:?}", check.problems);
        assert_eq!(check.events, 4);
        assert_eq!(check.gaps, 0);
        // 20 ends both watchers' last ranges (exclusive); 11, 13, 15 are
        // inside a range of each.
        assert_eq!(check.cross_checked, 3);
    }

    #[test]
    fn a_revision_one_watcher_missed_inside_its_range_is_a_gap() {
        let check = check_watchers(&watchers(vec![
            ("a", vec![segment(10, &[11, 15, 20], End::Done)]),
            ("b", vec![segment(10, &[11, 13, 15, 20], End::Done)]),
        ]));
        assert_eq!(check.gaps, 1);
        assert!(
            check.problems[0].contains("missed port p13"),
            "{:?}",
            check.problems
        );
    }

    #[test]
    fn a_duplicate_delivery_is_a_violation() {
        let mut twice = segment(10, &[11, 13], End::Done);
        twice.events.push(seen(13, "p13"));
        let check = check_watchers(&watchers(vec![("a", vec![twice])]));
        assert!(
            check.problems.iter().any(|p| p.contains("twice")),
            "{:?}",
            check.problems
        );
        // Across streams too, unless it is the re-read last revision.
        let check = check_watchers(&watchers(vec![(
            "a",
            vec![
                segment(10, &[11, 13], End::Broken("x".into())),
                segment(10, &[11, 13], End::Done),
            ],
        )]));
        assert!(
            check.problems.iter().any(|p| p.contains("twice")),
            "{:?}",
            check.problems
        );
    }

    #[test]
    fn a_revision_going_backwards_is_a_reorder() {
        let check = check_watchers(&watchers(vec![(
            "a",
            vec![segment(10, &[11, 14, 13], End::Done)],
        )]));
        assert!(
            check.problems.iter().any(|p| p.contains("reordered")),
            "{:?}",
            check.problems
        );
    }

    #[test]
    fn a_delivery_at_or_below_the_start_revision_is_a_violation() {
        let check = check_watchers(&watchers(vec![(
            "a",
            vec![segment(10, &[10, 11], End::Done)],
        )]));
        assert!(check
            .problems
            .iter()
            .any(|p| p.contains("not after its start")));
    }

    #[test]
    fn a_compacted_resume_is_counted_and_its_skipped_range_is_not_a_gap() {
        let check = check_watchers(&watchers(vec![
            (
                "a",
                vec![
                    segment(10, &[11], End::Broken("killed".into())),
                    segment(10, &[], End::Compacted(None)),
                    // Re-listed at 16: (11, 16] is covered by no stream of "a".
                    segment(16, &[17, 20], End::Done),
                ],
            ),
            ("b", vec![segment(10, &[11, 13, 15, 17, 20], End::Done)]),
        ]));
        assert_eq!(check.compactions, 1);
        assert_eq!(check.gaps, 0);
        assert!(check.problems.is_empty(), "{:?}", check.problems);
    }

    #[test]
    fn the_floor_is_read_from_the_compact_revision_header_not_the_words() {
        let mut status = Status::failed_precondition("COMPACTED: starts after 9");
        assert_eq!(floor_of(&status), None);
        status.metadata_mut().insert(
            alcor_proto::COMPACT_REVISION_HEADER,
            tonic::metadata::MetadataValue::from(5123u64),
        );
        assert_eq!(floor_of(&status), Some(5123));
    }

    #[test]
    fn watchers_disagreeing_on_put_or_delete_are_flagged() {
        let mut deleted = segment(10, &[11], End::Done);
        deleted.events[0].delete = true;
        let check = check_watchers(&watchers(vec![
            ("a", vec![segment(10, &[11], End::Done)]),
            ("b", vec![deleted]),
        ]));
        assert!(check.problems.iter().any(|p| p.contains("disagree")));
    }

    #[test]
    fn agent_status_lines_parse_and_a_revision_going_back_is_flagged() {
        let line = "jepsen-h0  revision    812  ports   3 neighbors   5 vpcs 1 subnets 1 rules 0 \
                    sg-members   0  digest 0a1b2c3d4e5f  full-syncs 2 diff-batches 40 reconnects 3";
        let status = parse_agent_line(line).expect("parses");
        assert_eq!(status.revision, 812);
        assert_eq!(status.digest, "0a1b2c3d4e5f");
        assert_eq!(status.reconnects, 3);
        assert_eq!(status.full_syncs, 2);
        assert_eq!(status.gaps, None);
        assert_eq!(parse_agent_line("error: connect"), None);
        let mut log = AgentLog::default();
        log.observe("h", status.clone());
        log.observe(
            "h",
            AgentStatus {
                revision: 900,
                ..status.clone()
            },
        );
        assert!(log.problems.is_empty());
        log.observe(
            "h",
            AgentStatus {
                revision: 850,
                ..status.clone()
            },
        );
        assert_eq!(log.problems.len(), 1);
        log.observe(
            "h",
            AgentStatus {
                revision: 900,
                gaps: Some(1),
                ..status
            },
        );
        assert_eq!(log.problems.len(), 2);
    }
}
