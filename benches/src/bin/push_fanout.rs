//! Host-push fan-out benchmark against a real 3-node cluster: starts three
//! release `alcor server` processes on loopback, registers hosts with one
//! port each, `--hosts-per-vpc` hosts to a VPC (every port in one security
//! group), connects one simulated agent (`alcor_host_push::SimAgent`, in
//! this process) per host, spread round-robin over the three nodes (each on
//! its own connection, or `--agents-per-connection` of them sharing one),
//! and measures:
//!
//! 1. write → agent: `CreatePort` bound to host X, from sending the request
//!    to X's agent having applied a revision at or past the port's revision
//!    (serial writes on an otherwise idle cluster);
//! 2. fan-out: one security-group rule added to the group all ports use,
//!    from sending the request to each agent having applied that revision
//!    (per-agent latencies pooled over the rounds, and the time to the last
//!    agent per round), for each `--agents` stage;
//! 3. node memory: RSS growth of the three servers while a stage's agents
//!    connect, full-sync and sit idle, divided by the agents added;
//! 4. with `--churn-rate R`: R port creates per second offered in batches
//!    (100 a second, round robin over the VPCs) for `--churn-seconds`, once
//!    before the stage's agents connect (the first stage: the no-agent
//!    throughput) and once with them connected, where every agent of a
//!    batch's VPC (its ports' owners and neighbors) must reach the batch's
//!    revision; latencies are read from the agents' revision histories.
//!
//! Stages grow one cluster: stage N adds hosts and agents up to N.
//! Timestamps are taken by one watcher task per agent in this process, so
//! its scheduling delay is included in every figure.
//!
//! Usage (after `cargo build --release -p alcor-node -p alcor-benches`):
//! `target/release/push_fanout --agents 100,1000,10000 --out benches/results/push-<date>.json`

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alcor_benches::load::{machine, proc_rss_kib, round2, utc_now, write_json};
use alcor_host_push::{SharedConnections, SimAgent, SimAgentConfig};
use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_client::ClusterClient;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use anyhow::{anyhow, bail, Context};
use clap::Parser;
use serde_json::{json, Value};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

/// Members of the cluster.
const MEMBERS: usize = 3;
/// Most agents in one stage (the bench process needs one socket each).
const AGENTS_MAX: usize = 10_000;
/// Most rounds of one measurement.
const ROUNDS_MAX: usize = 10_000;
/// Bound on waiting for a leader.
const LEADER_WAIT_MAX: Duration = Duration::from_secs(30);
/// Bound on one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one change reaching its agents.
const DELIVERY_WAIT_MAX: Duration = Duration::from_secs(30);
/// Bound on a stage's agents connecting and full-syncing.
const SYNC_WAIT_MAX: Duration = Duration::from_secs(300);
/// Idle time before the RSS after a stage is read.
const SETTLE: Duration = Duration::from_secs(3);
/// Pause between measured writes.
const PAUSE: Duration = Duration::from_millis(20);
/// Revision changes remembered per agent.
const HISTORY_MAX: usize = 256;
/// Concurrent host registrations.
const SETUP_CONCURRENCY: usize = 32;
/// Ports per CreatePorts request during setup.
const PORT_BATCH: usize = 500;
/// VPCs, each a /16 of 10.0.0.0/8.
const VPCS_MAX: usize = 256;
/// Churn: batches sent per second (the rate is split across them).
const CHURN_TICKS_PER_S: u64 = 100;
/// Churn: CreatePorts requests in flight at once; a tick that finds them
/// all busy is skipped (the achieved rate then falls below the offered).
const CHURN_IN_FLIGHT_MAX: usize = 32;
/// Project of the VPC, the group and the ports.
const PROJECT: &str = "bench";

#[derive(Debug, Parser)]
#[command(about = "Measure host-push latency and fan-out on a local 3-node alcor cluster")]
struct Args {
    /// The `alcor` binary.
    #[arg(long, default_value = "target/release/alcor")]
    alcor: PathBuf,
    /// Comma-separated agent counts, increasing (one cluster grows through them).
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    agents: Vec<usize>,
    /// Serial port writes for the write → agent figure (at the first stage).
    #[arg(long, default_value_t = 200)]
    writes: usize,
    /// Hosts (one port each) per VPC; every host learns the ports of its
    /// VPC, so this sets the neighbor tables' size.
    #[arg(long, default_value_t = 100)]
    hosts_per_vpc: usize,
    /// Agents sharing one HTTP/2 connection per node (each on its own
    /// stream); 1: one connection per agent, as real agents.
    #[arg(long, default_value_t = 1)]
    agents_per_connection: usize,
    /// Port creates per second offered during a churn phase (0: none). Each
    /// stage runs one phase before its new agents connect (with none
    /// connected at the first stage: the no-agent baseline) and one after.
    #[arg(long, default_value_t = 0)]
    churn_rate: u64,
    /// Length of each churn phase, in seconds.
    #[arg(long, default_value_t = 5)]
    churn_seconds: u64,
    /// Security-group rule changes per stage.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Member i listens on BASE+i (API and push) and BASE+100+i (Raft).
    #[arg(long, default_value_t = 27_400)]
    base_port: u16,
    /// Parent of the temp data dirs.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// JSON output path.
    #[arg(long)]
    out: PathBuf,
}

// ------------------------------------------------------------- cluster --

/// Three `alcor server` processes in a temp dir; killed on drop.
struct Cluster {
    apis: Vec<String>,
    logs: Vec<PathBuf>,
    children: Vec<Child>,
    _root: tempfile::TempDir,
}

impl Cluster {
    fn start(args: &Args, work_dir: &Path) -> anyhow::Result<Cluster> {
        let root = tempfile::Builder::new()
            .prefix("alcor-push-fanout-")
            .tempdir_in(work_dir)
            .context("create the temp data dir")?;
        let ids: Vec<usize> = (1..=MEMBERS).collect();
        let api = |id: usize| format!("127.0.0.1:{}", usize::from(args.base_port) + id);
        let raft = |id: usize| format!("127.0.0.1:{}", usize::from(args.base_port) + 100 + id);
        let initial = ids
            .iter()
            .map(|id| format!("{id}={}/{}", raft(*id), api(*id)))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            apis: ids.iter().map(|id| api(*id)).collect(),
            logs: Vec::new(),
            children: Vec::new(),
            _root: root,
        };
        for id in ids {
            let log_path = cluster._root.path().join(format!("node-{id}.log"));
            let log = std::fs::File::create(&log_path)?;
            let child = Command::new(&args.alcor)
                .args(["server", "--insecure", "--id", &id.to_string()])
                .args(["--raft-addr", &raft(id), "--api-addr", &api(id)])
                .arg("--data-dir")
                .arg(cluster._root.path().join(format!("node-{id}")))
                .args(["--initial-cluster", &initial, "--log", "warn"])
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log))
                .spawn()
                .with_context(|| format!("start {}", args.alcor.display()))?;
            cluster.children.push(child);
            cluster.logs.push(log_path);
        }
        Ok(cluster)
    }

    fn rss_kib(&self) -> Vec<u64> {
        self.children.iter().map(|c| proc_rss_kib(c.id())).collect()
    }

    fn log_tails(&self) -> String {
        let mut out = String::new();
        for (i, path) in self.logs.iter().enumerate() {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(10);
            out.push_str(&format!(
                "--- member {} log tail:\n{}\n",
                i + 1,
                lines[from..].join("\n")
            ));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn connect(endpoint: &str) -> anyhow::Result<Channel> {
    Endpoint::from_shared(format!("http://{endpoint}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connect {endpoint}"))
}

fn req<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(REQUEST_TIMEOUT);
    r
}

/// The API address of the member that reports itself leader.
async fn find_leader(cluster: &Cluster) -> anyhow::Result<String> {
    let deadline = Instant::now() + LEADER_WAIT_MAX;
    loop {
        for api in &cluster.apis {
            let Ok(channel) = connect(api).await else {
                continue;
            };
            if let Ok(s) = ClusterClient::new(channel)
                .status(req(pb::StatusRequest {}))
                .await
            {
                let s = s.into_inner();
                if s.state == "leader" && s.leader_id == Some(s.id) {
                    return Ok(api.clone());
                }
            }
        }
        if Instant::now() > deadline {
            bail!(
                "no leader within {LEADER_WAIT_MAX:?}\n{}",
                cluster.log_tails()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// -------------------------------------------------------------- agents --

/// A running agent and the times its revision changed.
struct Watched {
    agent: SimAgent,
    history: Arc<Mutex<VecDeque<(u64, Instant)>>>,
}

impl Watched {
    /// Starts `host`'s agent on `endpoints` (tried in order) and its watcher.
    fn start(
        host: String,
        endpoints: Vec<String>,
        shared: Option<SharedConnections>,
        stop: &watch::Receiver<bool>,
    ) -> anyhow::Result<Watched> {
        let mut config = SimAgentConfig::new(host, endpoints);
        config.shared = shared;
        let agent = SimAgent::new(config)?;
        let history = Arc::new(Mutex::new(VecDeque::with_capacity(HISTORY_MAX)));
        let mut stopped = stop.clone();
        let runner = agent.clone();
        tokio::spawn(async move {
            runner
                .run(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
        let mut revisions = agent.watch_revision();
        let mut stopped = stop.clone();
        let log = history.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = revisions.changed() => if changed.is_err() { return },
                    _ = stopped.wait_for(|s| *s) => return,
                }
                let at = Instant::now();
                let revision = *revisions.borrow_and_update();
                let mut h = log.lock().unwrap_or_else(|e| e.into_inner());
                if h.len() == HISTORY_MAX {
                    h.pop_front();
                }
                h.push_back((revision, at));
            }
        });
        Ok(Watched { agent, history })
    }

    /// When the agent first reached `revision`, if it has.
    fn reached(&self, revision: u64) -> Option<Instant> {
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        h.iter().find(|(r, _)| *r >= revision).map(|(_, at)| *at)
    }

    /// Like [`Watched::reached`], but `None` also when the history was
    /// trimmed past the revision before it (the time would be too late).
    fn reached_exactly(&self, revision: u64) -> Option<Instant> {
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let i = h.iter().position(|(r, _)| *r >= revision)?;
        (i > 0 || h.len() < HISTORY_MAX).then(|| h[i].1)
    }
}

/// Waits until every agent in `agents` reached `revision`; the latency of
/// each from `sent`, in ms. The times come from the agents' histories
/// (stamped by their watcher tasks when the revision changed), so how often
/// this polls does not change them; it polls every `POLL` and looks only at
/// the agents still pending, first through their revision (cheap), so the
/// measuring does not eat the CPU the agents and servers need.
async fn delivered(agents: &[&Watched], revision: u64, sent: Instant) -> anyhow::Result<Vec<f64>> {
    const POLL: Duration = Duration::from_millis(5);
    let deadline = Instant::now() + DELIVERY_WAIT_MAX;
    let mut times: Vec<Option<Instant>> = vec![None; agents.len()];
    let mut pending: Vec<usize> = (0..agents.len()).collect();
    loop {
        pending.retain(|&i| {
            let agent = agents[i];
            if agent.agent.revision() < revision {
                return true;
            }
            times[i] = agent.reached(revision);
            times[i].is_none()
        });
        if pending.is_empty() {
            return Ok(times
                .into_iter()
                .flatten()
                .map(|at| at.saturating_duration_since(sent).as_secs_f64() * 1000.0)
                .collect());
        }
        if Instant::now() > deadline {
            bail!(
                "{} agents did not reach revision {revision} within {DELIVERY_WAIT_MAX:?}",
                pending.len()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

// ------------------------------------------------------------- fixture --

struct Fixture {
    client: OrchestratorClient<Channel>,
    /// One VPC per `hosts_per_vpc` hosts, created as hosts are added.
    network_ids: Vec<String>,
    hosts_per_vpc: usize,
    group_id: String,
    /// Hosts registered (host-00000 ..).
    hosts: usize,
    ports: usize,
}

fn host_name(i: usize) -> String {
    format!("host-{i:05}")
}

impl Fixture {
    async fn new(leader: &str, hosts_per_vpc: usize) -> anyhow::Result<Fixture> {
        let mut client = OrchestratorClient::new(connect(leader).await?);
        client
            .set_quota(req(pb::SetQuotaRequest {
                project_id: PROJECT.to_string(),
                port: Some(-1),
                security_group_rule: Some(-1),
                ..Default::default()
            }))
            .await
            .context("set the quota")?;
        let group = client
            .create_security_group(req(pb::CreateSecurityGroupRequest {
                project_id: PROJECT.to_string(),
                name: "all".to_string(),
                ..Default::default()
            }))
            .await
            .context("create the security group")?
            .into_inner();
        Ok(Fixture {
            client,
            network_ids: Vec::new(),
            hosts_per_vpc,
            group_id: group.id,
            hosts: 0,
            ports: 0,
        })
    }

    /// Creates VPCs (each with one subnet) until host `host` has one.
    async fn vpcs_for(&mut self, host: usize) -> anyhow::Result<()> {
        while self.network_ids.len() <= host / self.hosts_per_vpc {
            let v = self.network_ids.len();
            // A /16 each, side by side in 10.0.0.0/8.
            let base = std::net::Ipv4Addr::from(0x0A00_0000u32 + (v as u32) * 65_536);
            let cidr = format!("{base}/16");
            let vpc = self
                .client
                .create_vpc(req(pb::CreateVpcRequest {
                    project_id: PROJECT.to_string(),
                    name: format!("bench-{v}"),
                    cidr: cidr.clone(),
                    ..Default::default()
                }))
                .await
                .context("create a VPC")?
                .into_inner();
            self.client
                .create_subnet(req(pb::CreateSubnetRequest {
                    project_id: PROJECT.to_string(),
                    network_id: vpc.id.clone(),
                    name: format!("bench-{v}"),
                    cidr,
                    ..Default::default()
                }))
                .await
                .context("create a subnet")?;
            self.network_ids.push(vpc.id);
        }
        Ok(())
    }

    /// A port on `host`, in its VPC (which must exist: [`Fixture::vpcs_for`]).
    fn port(&mut self, host: usize) -> pb::CreatePortRequest {
        let n = self.ports;
        self.ports += 1;
        pb::CreatePortRequest {
            project_id: PROJECT.to_string(),
            network_id: self.network_ids[host / self.hosts_per_vpc].clone(),
            name: format!("vm-{n}-eth0"),
            binding_host: host_name(host),
            device_id: format!("vm-{n}"),
            device_owner: "compute:nova".to_string(),
            security_groups: Some(pb::IdList {
                ids: vec![self.group_id.clone()],
            }),
            ..Default::default()
        }
    }

    /// Registers hosts up to `n`, one port each; the last revision written.
    async fn grow(&mut self, n: usize) -> anyhow::Result<u64> {
        let from = self.hosts;
        for chunk in (from..n).collect::<Vec<_>>().chunks(SETUP_CONCURRENCY) {
            let mut calls = Vec::new();
            for h in chunk {
                let mut c = self.client.clone();
                let request = pb::CreateHostRequest {
                    id: host_name(*h),
                    project_id: "admin".to_string(),
                    underlay_ip: format!("192.168.{}.{}", h / 250, h % 250 + 1),
                    ..Default::default()
                };
                calls.push(tokio::spawn(
                    async move { c.create_host(req(request)).await },
                ));
            }
            for call in calls {
                call.await?.context("create a host")?;
            }
        }
        self.hosts = n;
        if n > 0 {
            self.vpcs_for(n - 1).await?;
        }
        let mut last = 0;
        // One batch never spans two VPCs.
        let hosts: Vec<usize> = (from..n).collect();
        let per_vpc = self.hosts_per_vpc;
        let batches = hosts.chunk_by(|a, b| a / per_vpc == b / per_vpc);
        for chunk in batches.flat_map(|vpc| vpc.chunks(PORT_BATCH)) {
            let ports = chunk.iter().map(|h| self.port(*h)).collect();
            let reply = self
                .client
                .create_ports(req(pb::CreatePortsRequest {
                    ports,
                    ..Default::default()
                }))
                .await
                .context("create ports")?
                .into_inner();
            last = reply.ports.iter().map(|p| p.revision).max().unwrap_or(last);
        }
        Ok(last)
    }
}

// --------------------------------------------------------------- churn --

/// One churn batch: its VPC, the revision it was written at, when it was sent.
struct ChurnBatch {
    vpc: usize,
    revision: u64,
    sent: Instant,
}

/// What a churn phase achieved.
struct ChurnOutcome {
    offered_per_s: u64,
    ports_acked: usize,
    elapsed_s: f64,
    skipped_ticks: u64,
    batches: Vec<ChurnBatch>,
}

impl ChurnOutcome {
    fn achieved_per_s(&self) -> f64 {
        self.ports_acked as f64 / self.elapsed_s.max(f64::EPSILON)
    }
}

/// Offers `rate` port creates per second for `seconds`: every tick one
/// CreatePorts batch in the next VPC (round robin), ports bound to hosts of
/// that VPC in turn, at most `CHURN_IN_FLIGHT_MAX` requests in flight.
async fn churn(fixture: &mut Fixture, rate: u64, seconds: u64) -> anyhow::Result<ChurnOutcome> {
    let per_tick = usize::try_from(rate.div_ceil(CHURN_TICKS_PER_S).max(1))?;
    let ticks = seconds * CHURN_TICKS_PER_S;
    let vpcs = fixture.network_ids.len().max(1);
    let hosts = fixture.hosts.max(1);
    let slots = Arc::new(tokio::sync::Semaphore::new(CHURN_IN_FLIGHT_MAX));
    let batches = Arc::new(Mutex::new(Vec::new()));
    let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut interval = tokio::time::interval(Duration::from_micros(1_000_000 / CHURN_TICKS_PER_S));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut skipped = 0u64;
    let mut tasks = Vec::new();
    let mut cursor = 0usize;
    let started = Instant::now();
    for tick in 0..ticks {
        interval.tick().await;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let vpc = usize::try_from(tick)? % vpcs;
        let first_host = vpc * fixture.hosts_per_vpc;
        let in_vpc = fixture
            .hosts_per_vpc
            .min(hosts - first_host.min(hosts))
            .max(1);
        let ports = (0..per_tick)
            .map(|k| {
                let host = (first_host + (cursor + k) % in_vpc).min(hosts - 1);
                fixture.port(host)
            })
            .collect();
        cursor = cursor.wrapping_add(per_tick);
        let mut client = fixture.client.clone();
        let (batches, acked) = (batches.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = slot;
            let sent = Instant::now();
            let reply = client
                .create_ports(req(pb::CreatePortsRequest {
                    ports,
                    ..Default::default()
                }))
                .await?
                .into_inner();
            let revision = reply.ports.iter().map(|p| p.revision).max().unwrap_or(0);
            acked.fetch_add(reply.ports.len(), std::sync::atomic::Ordering::Relaxed);
            batches
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(ChurnBatch {
                    vpc,
                    revision,
                    sent,
                });
            Ok::<(), tonic::Status>(())
        }));
    }
    for task in tasks {
        task.await?.context("a churn batch")?;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let batches = std::mem::take(&mut *batches.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(ChurnOutcome {
        offered_per_s: rate,
        ports_acked: acked.load(std::sync::atomic::Ordering::Relaxed),
        elapsed_s,
        skipped_ticks: skipped,
        batches,
    })
}

/// Latencies (ms) from each churn batch's send to each agent of its VPC
/// reaching its revision, read from the agents' histories once everything
/// arrived; fails if an agent never got there or its history no longer
/// reaches back that far.
async fn churn_deliveries(
    outcome: &ChurnOutcome,
    agents: &[Watched],
    hosts_per_vpc: usize,
) -> anyhow::Result<Vec<f64>> {
    let top = outcome
        .batches
        .iter()
        .map(|b| b.revision)
        .max()
        .unwrap_or(0);
    let all: Vec<&Watched> = agents.iter().collect();
    delivered(&all, top, Instant::now()).await?;
    let mut lat = Vec::new();
    for batch in &outcome.batches {
        let from = batch.vpc * hosts_per_vpc;
        let to = (from + hosts_per_vpc).min(agents.len());
        for agent in agents.get(from..to).unwrap_or_default() {
            let at = agent.reached_exactly(batch.revision).ok_or_else(|| {
                anyhow!(
                    "{}: revision {} is older than its history",
                    agent.agent.host_id(),
                    batch.revision
                )
            })?;
            lat.push(at.saturating_duration_since(batch.sent).as_secs_f64() * 1000.0);
        }
    }
    Ok(lat)
}

/// The JSON row of a churn phase.
fn churn_row(outcome: &ChurnOutcome, agents: usize, deliveries: Option<Vec<f64>>) -> Value {
    let mut row = json!({
        "agents_connected": agents,
        "offered_ports_per_s": outcome.offered_per_s,
        "achieved_ports_per_s": round2(outcome.achieved_per_s()),
        "ports_acked": outcome.ports_acked,
        "batches": outcome.batches.len(),
        "skipped_ticks": outcome.skipped_ticks,
        "elapsed_s": round2(outcome.elapsed_s),
    });
    if let Some(lat) = deliveries {
        row["delivery"] = summary(lat);
    }
    row
}

// ---------------------------------------------------------- statistics --

/// Nearest-rank percentile of sorted `v`.
fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    json!({
        "n": v.len(),
        "p50_ms": round2(pct(&v, 0.5)),
        "p99_ms": round2(pct(&v, 0.99)),
        "max_ms": round2(pct(&v, 1.0)),
    })
}

// ---------------------------------------------------------------- main --

async fn run(args: Args) -> anyhow::Result<()> {
    if !args.alcor.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p alcor-node` or pass --alcor",
            args.alcor.display()
        );
    }
    if args.agents.is_empty()
        || args.agents.windows(2).any(|w| w[0] >= w[1])
        || args.agents.iter().any(|n| *n == 0 || *n > AGENTS_MAX)
    {
        bail!("--agents: increasing counts from 1 to {AGENTS_MAX}");
    }
    if args.hosts_per_vpc == 0 || args.agents_per_connection == 0 {
        bail!("--hosts-per-vpc and --agents-per-connection: at least 1");
    }
    let largest = args.agents.last().copied().unwrap_or(0);
    if largest.div_ceil(args.hosts_per_vpc) > VPCS_MAX {
        bail!("--hosts-per-vpc: {largest} hosts need more than {VPCS_MAX} VPCs");
    }
    let writes = args.writes.clamp(1, ROUNDS_MAX);
    let rounds = args.rounds.clamp(1, ROUNDS_MAX);
    let work = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let (_, now) = utc_now();
    let machine = machine();
    println!("machine: {machine}");
    let cluster = Cluster::start(&args, &work)?;
    let leader = find_leader(&cluster).await?;
    let mut fixture = Fixture::new(&leader, args.hosts_per_vpc).await?;
    let mut shared = None;
    let (stop, stopped) = watch::channel(false);
    let mut agents: Vec<Watched> = Vec::new();
    let mut rows = Vec::new();
    let mut write_to_agent = Value::Null;
    let mut rule_port = 1u32;
    for &n in &args.agents {
        let started = Instant::now();
        let revision = fixture.grow(n).await?;
        let setup_s = started.elapsed().as_secs_f64();
        let churn_before = if args.churn_rate > 0 {
            let outcome = churn(&mut fixture, args.churn_rate, args.churn_seconds).await?;
            let row = churn_row(&outcome, agents.len(), None);
            println!(
                "{n:>6} hosts, {} agents connected: churn {row}",
                agents.len()
            );
            row
        } else {
            Value::Null
        };
        // Let the writes settle before the baseline RSS.
        tokio::time::sleep(SETTLE).await;
        let rss_before = cluster.rss_kib();
        let connect_started = Instant::now();
        let added = n - agents.len();
        for i in agents.len()..n {
            let endpoints = (0..MEMBERS)
                .map(|k| cluster.apis[(i + k) % MEMBERS].clone())
                .collect();
            if args.agents_per_connection > 1 {
                if i % args.agents_per_connection == 0 {
                    shared = Some(SharedConnections::new(&cluster.apis, None)?);
                }
            } else {
                shared = None;
            }
            agents.push(Watched::start(
                host_name(i),
                endpoints,
                shared.clone(),
                &stopped,
            )?);
        }
        let deadline = Instant::now() + SYNC_WAIT_MAX;
        while agents.iter().any(|a| a.agent.revision() < revision) {
            if Instant::now() > deadline {
                let behind = agents
                    .iter()
                    .filter(|a| a.agent.revision() < revision)
                    .count();
                bail!(
                    "{behind} of {n} agents not synced within {SYNC_WAIT_MAX:?}\n{}",
                    cluster.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sync_s = connect_started.elapsed().as_secs_f64();
        tokio::time::sleep(SETTLE).await;
        let rss_after = cluster.rss_kib();
        let grown: u64 = rss_after
            .iter()
            .zip(&rss_before)
            .map(|(a, b)| a.saturating_sub(*b))
            .sum();
        let bytes_per_agent = grown as f64 * 1024.0 / added as f64;
        println!(
            "{n:>6} agents: setup {setup_s:.1} s, connect+sync {sync_s:.1} s, node RSS {rss_before:?} -> {rss_after:?} KiB, {:.0} B per idle agent",
            bytes_per_agent
        );

        // (1) write -> owning agent, at the first stage.
        if write_to_agent.is_null() {
            let mut lat = Vec::with_capacity(writes);
            for w in 0..writes {
                let host = (w * 7919) % n;
                let request = fixture.port(host);
                let sent = Instant::now();
                let port = fixture
                    .client
                    .create_port(req(request))
                    .await
                    .context("create a port")?
                    .into_inner();
                let owner = [&agents[host]];
                lat.extend(delivered(&owner, port.revision, sent).await?);
                tokio::time::sleep(PAUSE).await;
            }
            write_to_agent = summary(lat);
            write_to_agent["agents_connected"] = json!(n);
            println!("{n:>6} agents: write -> owning agent {write_to_agent}");
        }

        // (2) one security-group rule -> every agent.
        let mut per_agent = Vec::with_capacity(rounds * n);
        let mut last = Vec::with_capacity(rounds);
        let all: Vec<&Watched> = agents.iter().collect();
        for _ in 0..rounds {
            let request = pb::CreateSecurityGroupRuleRequest {
                project_id: PROJECT.to_string(),
                security_group_id: fixture.group_id.clone(),
                direction: pb::Direction::Ingress as i32,
                protocol: "tcp".to_string(),
                port_range_min: Some(rule_port),
                port_range_max: Some(rule_port),
                ..Default::default()
            };
            rule_port = rule_port % 65_535 + 1;
            let sent = Instant::now();
            let rule = fixture
                .client
                .create_security_group_rule(req(request))
                .await
                .context("create a rule")?
                .into_inner();
            let lat = delivered(&all, rule.revision, sent).await?;
            last.push(lat.iter().copied().fold(0.0, f64::max));
            per_agent.extend(lat);
            tokio::time::sleep(PAUSE * 5).await;
        }
        let churn_after = if args.churn_rate > 0 {
            let outcome = churn(&mut fixture, args.churn_rate, args.churn_seconds).await?;
            let lat = churn_deliveries(&outcome, &agents, args.hosts_per_vpc).await?;
            let row = churn_row(&outcome, agents.len(), Some(lat));
            println!("{n:>6} agents: churn {row}");
            row
        } else {
            Value::Null
        };
        let per = summary(per_agent);
        let to_last = summary(last);
        println!("{n:>6} agents: rule -> each agent {per}; -> last agent {to_last}");
        rows.push(json!({
            "agents": n,
            "p50_ms": per["p50_ms"],
            "p99_ms": per["p99_ms"],
            "max_ms": per["max_ms"],
            "deliveries": per["n"],
            "last_agent_p50_ms": to_last["p50_ms"],
            "last_agent_p99_ms": to_last["p99_ms"],
            "last_agent_max_ms": to_last["max_ms"],
            "rounds": rounds,
            "agents_added": added,
            "node_rss_before_kib": rss_before,
            "node_rss_after_kib": rss_after,
            "node_bytes_per_idle_agent": round2(bytes_per_agent),
            "setup_s": round2(setup_s),
            "connect_sync_s": round2(sync_s),
            "churn_before_connect": churn_before,
            "churn_connected": churn_after,
        }));
    }
    let _ = stop.send(true);
    let report = json!({
        "bench": "push_fanout",
        "date": now,
        "machine": machine,
        "config": {
            "members": MEMBERS,
            "hosts_per_vpc": args.hosts_per_vpc,
            "agents_per_connection": args.agents_per_connection,
            "churn_rate": args.churn_rate,
            "churn_seconds": args.churn_seconds,
            "writes": writes,
            "rounds": rounds,
            "alcor": args.alcor,
        },
        "write_to_agent": write_to_agent,
        "rows": rows,
    });
    write_json(&args.out, &report)?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::select! {
        r = run(args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted; members killed")),
    }
}
