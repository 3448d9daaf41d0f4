//! Load generator for a real 3-node cluster: starts three `alcor server`
//! processes on loopback (fresh temp data dirs, fsync on, as shipped), creates a
//! fixture over gRPC and measures write, batch, read and failover figures.
//!
//! Every scenario runs on a freshly started cluster (rows of one scenario share
//! it, in increasing load order). Each row reports requests/s, items/s, latency
//! percentiles from the sorted per-request latencies, and the CPU used by the
//! servers, by this process and by the whole machine during the window.
//!
//! Usage (after `cargo build --release -p alcor-node`):
//! `cargo run --release -p alcor-benches --bin cluster_load -- [--quick]
//! [--duration-s 10] [--scenarios serial,concurrent,batch,reads,failover]`
//!
//! Output: a table on stdout and `benches/results/cluster_load-<date>.json`.
//!
//! Ports are spread over projects of `PORTS_PER_PROJECT` ports each: the API
//! has no quota call and the default port quota is 500 per project.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_client::ClusterClient;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use anyhow::{anyhow, bail, Context};
use clap::Parser;
use serde_json::{json, Value};
use tonic::transport::{Channel, Endpoint};

/// Ports per project: the default port quota.
const PORTS_PER_PROJECT: u64 = 500;
/// Members of the cluster.
const MEMBERS: u64 = 3;
/// Bound on waiting for a leader (start, failover, rejoin).
const LEADER_WAIT_MAX: Duration = Duration::from_secs(30);
/// Bound on one request of a load run (overload shows as latency, not errors).
const LOAD_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one setup request.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-request timeout of the failover writers.
const FAILOVER_REQUEST_TIMEOUT: Duration = Duration::from_millis(250);
/// Writers during the failover scenario.
const FAILOVER_WRITERS: usize = 8;
/// Bound on kill → acknowledged write before a try counts as failed.
const FAILOVER_WAIT_MAX: Duration = Duration::from_secs(20);
/// Latency samples kept per row (4 bytes each).
const SAMPLES_MAX: usize = 8_000_000;
/// Largest response accepted (a 1,000-port batch reply is well under it).
const MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Error messages kept per row.
const ERROR_SAMPLES_MAX: usize = 5;
/// Clients of one row.
const CLIENTS_MAX: usize = 4_096;
/// fsync probe: writes of 4 KiB, each followed by fdatasync.
const FSYNC_PROBE_WRITES: usize = 200;
/// Bound on the failover tries.
const TRIES_MAX: usize = 100;

#[derive(Debug, Parser)]
#[command(about = "Drive a local 3-node alcor cluster over gRPC and report throughput and latency")]
struct Args {
    /// The `alcor` binary.
    #[arg(long, default_value = "target/release/alcor")]
    alcor: PathBuf,
    /// Measured seconds per row (after a warm-up of 1 s).
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Comma-separated: serial, concurrent, batch, reads, failover.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "serial,concurrent,batch,reads,failover"
    )]
    scenarios: Vec<String>,
    /// Smoke run: 2 s rows, 2 failover tries, small read set.
    #[arg(long)]
    quick: bool,
    /// Failover tries.
    #[arg(long, default_value_t = 10)]
    tries: usize,
    /// Hosts registered in the fixture; ports are bound round-robin to them.
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    /// Member i listens on BASE+i (API) and BASE+100+i (Raft).
    #[arg(long, default_value_t = 27_100)]
    base_port: u16,
    /// Parent of the temp data dirs (also where the fsync probe runs).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Election timeout passed to the servers as MIN-MAX ms; unset: the server default.
    #[arg(long)]
    election_timeout_ms: Option<String>,
    /// Heartbeat interval passed to the servers (ms); unset: the server default.
    #[arg(long)]
    heartbeat_ms: Option<u64>,
    /// JSON output path; default benches/results/cluster_load-<date>.json.
    #[arg(long)]
    out: Option<PathBuf>,
}

// ------------------------------------------------------------- cluster --

/// One `alcor server` process.
struct Member {
    id: u64,
    raft: String,
    api: String,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Three member processes in a temp dir; killed (SIGKILL) and removed on drop.
struct Cluster {
    alcor: PathBuf,
    initial: String,
    extra: Vec<String>,
    members: Vec<Member>,
    // Dropped after `Drop::drop` has killed the members.
    _root: tempfile::TempDir,
}

impl Cluster {
    fn start(args: &Args, work_dir: &Path) -> anyhow::Result<Cluster> {
        let root = tempfile::Builder::new()
            .prefix("alcor-cluster-load-")
            .tempdir_in(work_dir)
            .context("create the temp data dir")?;
        let mut members = Vec::new();
        for id in 1..=MEMBERS {
            let api = format!("127.0.0.1:{}", u64::from(args.base_port) + id);
            let raft = format!("127.0.0.1:{}", u64::from(args.base_port) + 100 + id);
            members.push(Member {
                id,
                raft,
                api,
                data: root.path().join(format!("node-{id}")),
                log: root.path().join(format!("node-{id}.log")),
                child: None,
            });
        }
        let initial = members
            .iter()
            .map(|m| format!("{}={}/{}", m.id, m.raft, m.api))
            .collect::<Vec<_>>()
            .join(",");
        let mut extra = Vec::new();
        if let Some(range) = &args.election_timeout_ms {
            let (lo, hi) = range
                .split_once('-')
                .ok_or_else(|| anyhow!("--election-timeout-ms: MIN-MAX"))?;
            extra.extend([
                "--election-timeout-min-ms".to_string(),
                lo.to_string(),
                "--election-timeout-max-ms".to_string(),
                hi.to_string(),
            ]);
        }
        if let Some(hb) = args.heartbeat_ms {
            extra.extend(["--heartbeat-interval-ms".to_string(), hb.to_string()]);
        }
        let mut cluster = Cluster {
            alcor: args.alcor.clone(),
            initial,
            extra,
            members,
            _root: root,
        };
        for i in 0..cluster.members.len() {
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)?;
        let child = Command::new(&self.alcor)
            .args(["server", "--id", &m.id.to_string()])
            .args(["--raft-addr", &m.raft, "--api-addr", &m.api])
            .arg("--data-dir")
            .arg(&m.data)
            .args(["--initial-cluster", &self.initial, "--log", "warn"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| {
                format!(
                    "start {} (build it: cargo build --release -p alcor-node)",
                    self.alcor.display()
                )
            })?;
        m.child = Some(child);
        Ok(())
    }

    /// SIGKILL member `i` and reap it.
    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.api.clone()).collect()
    }

    fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.child.as_ref().map(Child::id))
            .collect()
    }

    /// The last lines of every member's log, for error reports.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(10);
            out.push_str(&format!(
                "--- member {} log tail:\n{}\n",
                m.id,
                lines[from..].join("\n")
            ));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

// ------------------------------------------------------------- clients --

async fn connect(endpoint: &str) -> anyhow::Result<Channel> {
    let channel = Endpoint::from_shared(format!("http://{endpoint}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connect {endpoint}"))?;
    Ok(channel)
}

/// A channel that connects on first use and reconnects after failures.
fn connect_lazy(endpoint: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{endpoint}"))?
        .connect_timeout(Duration::from_millis(200))
        .tcp_nodelay(true)
        .connect_lazy())
}

fn orch(channel: Channel) -> OrchestratorClient<Channel> {
    OrchestratorClient::new(channel)
        .max_decoding_message_size(MESSAGE_BYTES_MAX)
        .max_encoding_message_size(MESSAGE_BYTES_MAX)
}

fn req<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(timeout);
    r
}

async fn status(endpoint: &str) -> anyhow::Result<pb::StatusResponse> {
    let channel = connect(endpoint).await?;
    let s = tokio::time::timeout(
        Duration::from_secs(2),
        ClusterClient::new(channel).status(req(pb::StatusRequest {}, Duration::from_secs(2))),
    )
    .await
    .map_err(|_| anyhow!("status {endpoint}: timeout"))??;
    Ok(s.into_inner())
}

/// The member that reports itself leader; waits up to `LEADER_WAIT_MAX`.
async fn find_leader(cluster: &Cluster) -> anyhow::Result<(usize, pb::StatusResponse)> {
    let deadline = Instant::now() + LEADER_WAIT_MAX;
    loop {
        for (i, m) in cluster.members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            if let Ok(s) = status(&m.api).await {
                if s.state == "leader" && s.leader_id == Some(s.id) {
                    return Ok((i, s));
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

// ------------------------------------------------------------- fixture --

/// Hands out port specs with unique indexes; port n goes to project
/// `p{n / PORTS_PER_PROJECT}` and host `n % hosts`.
struct PortGen {
    next: AtomicU64,
    network_id: String,
    hosts: Vec<String>,
}

impl PortGen {
    fn spec(&self, n: u64) -> pb::CreatePortRequest {
        pb::CreatePortRequest {
            project_id: format!("p{}", n / PORTS_PER_PROJECT),
            network_id: self.network_id.clone(),
            name: format!("vm-{n}-eth0"),
            binding_host: self.hosts[(n % self.hosts.len() as u64) as usize].clone(),
            device_id: format!("vm-{n}"),
            device_owner: "compute:nova".to_string(),
            ..Default::default()
        }
    }

    fn one(&self) -> pb::CreatePortRequest {
        self.spec(self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn batch(&self, size: u64) -> pb::CreatePortsRequest {
        let first = self.next.fetch_add(size, Ordering::Relaxed);
        pb::CreatePortsRequest {
            ports: (first..first + size).map(|n| self.spec(n)).collect(),
            ..Default::default()
        }
    }
}

/// Hosts, one VPC (10.0.0.0/8) with one /8 subnet; returns the port generator.
async fn fixture(leader: &str, n_hosts: usize) -> anyhow::Result<Arc<PortGen>> {
    let channel = connect(leader).await?;
    let mut c = orch(channel);
    let mut hosts = Vec::new();
    for h in 0..n_hosts {
        let id = format!("host-{h}");
        c.create_host(req(
            pb::CreateHostRequest {
                id: id.clone(),
                project_id: "admin".to_string(),
                underlay_ip: format!("192.168.{}.{}", h / 250, h % 250 + 1),
                ..Default::default()
            },
            SETUP_TIMEOUT,
        ))
        .await
        .with_context(|| format!("create {id}"))?;
        hosts.push(id);
    }
    let vpc = c
        .create_vpc(req(
            pb::CreateVpcRequest {
                project_id: "bench".to_string(),
                name: "bench".to_string(),
                cidr: "10.0.0.0/8".to_string(),
                ..Default::default()
            },
            SETUP_TIMEOUT,
        ))
        .await
        .context("create the VPC")?
        .into_inner();
    c.create_subnet(req(
        pb::CreateSubnetRequest {
            project_id: "bench".to_string(),
            network_id: vpc.id.clone(),
            name: "bench".to_string(),
            cidr: "10.0.0.0/8".to_string(),
            ..Default::default()
        },
        SETUP_TIMEOUT,
    ))
    .await
    .context("create the subnet")?;
    Ok(Arc::new(PortGen {
        next: AtomicU64::new(0),
        network_id: vpc.id,
        hosts,
    }))
}

/// Starts a cluster, waits for its leader, creates the fixture.
async fn prepare(args: &Args, work_dir: &Path) -> anyhow::Result<(Cluster, String, Arc<PortGen>)> {
    let cluster = Cluster::start(args, work_dir)?;
    let (i, _) = find_leader(&cluster).await?;
    let leader = cluster.members[i].api.clone();
    let gen = fixture(&leader, args.hosts).await?;
    Ok((cluster, leader, gen))
}

// ------------------------------------------------------------ CPU usage --

/// utime + stime of a process, in clock ticks.
fn proc_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state is field 3, utime 14, stime 15.
    let get = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(14) + get(15)
}

/// (busy, total) jiffies of the whole machine.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

#[derive(Clone, Copy)]
struct CpuSample {
    at: Instant,
    servers: u64,
    me: u64,
    busy: u64,
    total: u64,
}

fn cpu_sample(pids: &[u32]) -> CpuSample {
    let (busy, total) = machine_ticks();
    CpuSample {
        at: Instant::now(),
        servers: pids.iter().map(|p| proc_ticks(*p)).sum(),
        me: proc_ticks(std::process::id()),
        busy,
        total,
    }
}

/// Cores used by the servers and by this process, and machine busy %, between two samples.
fn cpu_between(a: CpuSample, b: CpuSample) -> Value {
    // Linux reports these in USER_HZ, 100 on every mainstream build.
    let hz = 100.0;
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let total = (b.total - a.total).max(1) as f64;
    json!({
        "servers_cores": round2((b.servers.saturating_sub(a.servers)) as f64 / hz / secs),
        "loadgen_cores": round2((b.me.saturating_sub(a.me)) as f64 / hz / secs),
        "machine_busy_pct": round2(100.0 * (b.busy - a.busy) as f64 / total),
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ------------------------------------------------------------ load runs --

type OpFuture = Pin<Box<dyn Future<Output = Result<u64, tonic::Status>> + Send>>;
/// One request on a channel; resolves to the number of items it carried.
type Op = Arc<dyn Fn(Channel) -> OpFuture + Send + Sync>;

#[derive(Clone, Copy)]
struct Timing {
    warmup: Duration,
    measure: Duration,
}

#[derive(Default)]
struct TaskOut {
    lat_us: Vec<u32>,
    ops: u64,
    items: u64,
    errors: BTreeMap<String, u64>,
    error_samples: Vec<String>,
}

/// One measured row.
struct Row {
    scenario: String,
    label: String,
    clients: usize,
    connections: usize,
    ops: u64,
    items: u64,
    secs: f64,
    lat_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
    error_samples: Vec<String>,
    cpu: Value,
}

impl Row {
    fn pct(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.lat_us.len() as f64 * p).ceil() as usize).clamp(1, self.lat_us.len()) - 1;
        f64::from(self.lat_us[i]) / 1000.0
    }

    fn json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "label": self.label,
            "clients": self.clients,
            "connections": self.connections,
            "requests": self.ops,
            "items": self.items,
            "seconds": self.secs,
            "requests_per_s": round2(self.ops as f64 / self.secs),
            "items_per_s": round2(self.items as f64 / self.secs),
            "p50_ms": round3(self.pct(0.50)),
            "p99_ms": round3(self.pct(0.99)),
            "p999_ms": round3(self.pct(0.999)),
            "max_ms": round3(self.pct(1.0)),
            "errors": self.errors,
            "error_samples": self.error_samples,
            "cpu": self.cpu,
        })
    }

    fn print(&self) {
        let errors: u64 = self.errors.values().sum();
        println!(
            "{:<11} {:<28} {:>7.0} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>6} {:>5} {:>5} {:>4}",
            self.scenario,
            self.label,
            self.ops as f64 / self.secs,
            self.items as f64 / self.secs,
            self.pct(0.50),
            self.pct(0.99),
            self.pct(1.0),
            errors,
            self.cpu["servers_cores"].as_f64().unwrap_or(0.0),
            self.cpu["loadgen_cores"].as_f64().unwrap_or(0.0),
            self.cpu["machine_busy_pct"].as_f64().unwrap_or(0.0).round(),
        );
        for e in &self.error_samples {
            println!("            error: {e}");
        }
    }
}

fn print_header() {
    println!(
        "{:<11} {:<28} {:>7} {:>9} {:>8} {:>8} {:>8} {:>6} {:>5} {:>5} {:>4}",
        "scenario",
        "row",
        "req/s",
        "items/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "srvC",
        "genC",
        "cpu%"
    );
}

/// `clients` closed-loop tasks, task w on `channels[w % len]`, for warm-up +
/// measure; only requests that start and finish inside the window count.
async fn run_load(
    scenario: &str,
    label: String,
    channels: &[Channel],
    clients: usize,
    timing: Timing,
    pids: &[u32],
    op: Op,
) -> anyhow::Result<Row> {
    if clients == 0 || clients > CLIENTS_MAX || channels.is_empty() {
        bail!("{label}: 1 to {CLIENTS_MAX} clients and at least one channel");
    }
    let start = Instant::now();
    let from = start + timing.warmup;
    let end = from + timing.measure;
    let cap = SAMPLES_MAX / clients;
    let mut tasks = Vec::new();
    for w in 0..clients {
        let channel = channels[w % channels.len()].clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = TaskOut::default();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let r = tokio::time::timeout(LOAD_REQUEST_TIMEOUT, op(channel.clone())).await;
                let t1 = Instant::now();
                let counted = t0 >= from && t1 <= end;
                let failure = match r {
                    Ok(Ok(items)) => {
                        if counted {
                            out.ops += 1;
                            out.items += items;
                            if out.lat_us.len() < cap {
                                let us = t1.duration_since(t0).as_micros();
                                out.lat_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                            }
                        }
                        None
                    }
                    Ok(Err(s)) => Some((format!("{:?}", s.code()), s.message().to_string())),
                    Err(_) => Some(("ClientTimeout".to_string(), String::new())),
                };
                if let Some((code, message)) = failure {
                    *out.errors.entry(code.clone()).or_default() += 1;
                    if out.error_samples.len() < ERROR_SAMPLES_MAX {
                        out.error_samples.push(format!("{code}: {message}"));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            out
        }));
    }
    tokio::time::sleep_until(from.into()).await;
    let a = cpu_sample(pids);
    tokio::time::sleep_until(end.into()).await;
    let b = cpu_sample(pids);
    let mut row = Row {
        scenario: scenario.to_string(),
        label,
        clients,
        connections: channels.len(),
        ops: 0,
        items: 0,
        secs: timing.measure.as_secs_f64(),
        lat_us: Vec::new(),
        errors: BTreeMap::new(),
        error_samples: Vec::new(),
        cpu: cpu_between(a, b),
    };
    for t in tasks {
        let out = t.await.context("load task")?;
        row.ops += out.ops;
        row.items += out.items;
        row.lat_us.extend(out.lat_us);
        for (k, v) in out.errors {
            *row.errors.entry(k).or_default() += v;
        }
        for e in out.error_samples {
            if row.error_samples.len() < ERROR_SAMPLES_MAX {
                row.error_samples.push(e);
            }
        }
    }
    row.lat_us.sort_unstable();
    row.print();
    Ok(row)
}

fn create_one_op(gen: Arc<PortGen>) -> Op {
    Arc::new(move |channel| {
        let message = gen.one();
        Box::pin(async move {
            orch(channel)
                .create_port(req(message, LOAD_REQUEST_TIMEOUT))
                .await
                .map(|_| 1)
        })
    })
}

fn create_batch_op(gen: Arc<PortGen>, size: u64) -> Op {
    Arc::new(move |channel| {
        let message = gen.batch(size);
        Box::pin(async move {
            orch(channel)
                .create_ports(req(message, LOAD_REQUEST_TIMEOUT))
                .await
                .map(|r| r.into_inner().ports.len() as u64)
        })
    })
}

async fn channels_to(endpoint: &str, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(connect(endpoint).await?);
    }
    Ok(v)
}

// ------------------------------------------------------------ scenarios --

async fn serial(args: &Args, work: &Path, timing: Timing) -> anyhow::Result<Vec<Row>> {
    let (cluster, leader, gen) = prepare(args, work).await?;
    let channels = channels_to(&leader, 1).await?;
    let row = run_load(
        "serial",
        "create_port, 1 client".into(),
        &channels,
        1,
        timing,
        &cluster.pids(),
        create_one_op(gen),
    )
    .await?;
    Ok(vec![row])
}

async fn concurrent(args: &Args, work: &Path, timing: Timing) -> anyhow::Result<Vec<Row>> {
    let (cluster, leader, gen) = prepare(args, work).await?;
    let mut rows = Vec::new();
    for clients in [16usize, 64, 256] {
        let conns = (clients / 16).clamp(4, 16);
        let channels = channels_to(&leader, conns).await?;
        rows.push(
            run_load(
                "concurrent",
                format!("create_port, {clients} clients"),
                &channels,
                clients,
                timing,
                &cluster.pids(),
                create_one_op(gen.clone()),
            )
            .await?,
        );
    }
    Ok(rows)
}

async fn batch(args: &Args, work: &Path, timing: Timing) -> anyhow::Result<Vec<Row>> {
    let (cluster, leader, gen) = prepare(args, work).await?;
    let mut rows = Vec::new();
    for (size, clients) in [(100u64, 1usize), (100, 4), (1000, 1), (1000, 4)] {
        let channels = channels_to(&leader, clients).await?;
        rows.push(
            run_load(
                "batch",
                format!("create_ports x{size}, {clients} clients"),
                &channels,
                clients,
                timing,
                &cluster.pids(),
                create_batch_op(gen.clone(), size),
            )
            .await?,
        );
    }
    Ok(rows)
}

async fn reads(args: &Args, work: &Path, timing: Timing) -> anyhow::Result<Vec<Row>> {
    let (cluster, leader, gen) = prepare(args, work).await?;
    let n_ports: u64 = if args.quick { 2_000 } else { 10_000 };
    let mut c = orch(connect(&leader).await?);
    let mut ids = Vec::new();
    while (ids.len() as u64) < n_ports {
        let created = c
            .create_ports(req(gen.batch(1_000), SETUP_TIMEOUT))
            .await
            .context("preload ports")?
            .into_inner();
        ids.extend(created.ports.into_iter().map(|p| p.id));
    }
    let ids = Arc::new(ids);
    // 16 connections spread over the three members.
    let endpoints = cluster.endpoints();
    let mut channels = Vec::new();
    for i in 0..16 {
        channels.push(connect(&endpoints[i % endpoints.len()]).await?);
    }
    let mut rows = Vec::new();
    for stale in [false, true] {
        let ids = ids.clone();
        let counter = Arc::new(AtomicU64::new(0));
        let op: Op = Arc::new(move |channel| {
            // A cheap scramble of a counter picks the port.
            let k = counter
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let id = ids[((k >> 17) % ids.len() as u64) as usize].clone();
            Box::pin(async move {
                orch(channel)
                    .get_port(req(
                        pb::GetPortRequest {
                            id,
                            stale,
                            ..Default::default()
                        },
                        LOAD_REQUEST_TIMEOUT,
                    ))
                    .await
                    .map(|_| 1)
            })
        });
        let kind = if stale { "stale" } else { "linearizable" };
        rows.push(
            run_load(
                "reads",
                format!("get_port {kind}, 256 clients"),
                &channels,
                256,
                timing,
                &cluster.pids(),
                op,
            )
            .await?,
        );
    }
    Ok(rows)
}

/// Shared by the failover writers: the kill time and the first ack of a
/// write issued after it.
#[derive(Default)]
struct FailoverProbe {
    killed_at: Option<Instant>,
    first_ack: Option<Instant>,
}

async fn failover(args: &Args, work: &Path, tries: usize) -> anyhow::Result<Value> {
    let (mut cluster, _leader, gen) = prepare(args, work).await?;
    let endpoints = cluster.endpoints();
    let probe = Arc::new(Mutex::new(FailoverProbe::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));
    let fails = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..FAILOVER_WRITERS {
        let channels: Vec<Channel> = endpoints
            .iter()
            .map(|e| connect_lazy(e))
            .collect::<anyhow::Result<_>>()?;
        let (gen, probe, stop, acks, fails) = (
            gen.clone(),
            probe.clone(),
            stop.clone(),
            acks.clone(),
            fails.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut at = w % channels.len();
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let mut client = orch(channels[at].clone());
                let call = client.create_port(req(gen.one(), FAILOVER_REQUEST_TIMEOUT));
                let ok = matches!(
                    tokio::time::timeout(FAILOVER_REQUEST_TIMEOUT, call).await,
                    Ok(Ok(_))
                );
                if ok {
                    let now = Instant::now();
                    acks.fetch_add(1, Ordering::Relaxed);
                    let mut p = probe.lock().unwrap_or_else(|e| e.into_inner());
                    if p.killed_at.is_some_and(|k| sent >= k) && p.first_ack.is_none() {
                        p.first_ack = Some(now);
                    }
                } else {
                    fails.fetch_add(1, Ordering::Relaxed);
                    at = (at + 1) % channels.len();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    let result = failover_tries(&mut cluster, &probe, &acks, tries).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }
    let mut out = result?;
    out["write_failures_total"] = json!(fails.load(Ordering::Relaxed));
    out["write_acks_total"] = json!(acks.load(Ordering::Relaxed));
    Ok(out)
}

async fn failover_tries(
    cluster: &mut Cluster,
    probe: &Mutex<FailoverProbe>,
    acks: &AtomicU64,
    tries: usize,
) -> anyhow::Result<Value> {
    let mut results = Vec::new();
    let mut times_ms = Vec::new();
    for t in 0..tries {
        // Steady writes first.
        let before = acks.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let steady = acks.load(Ordering::Relaxed) - before;
        let (li, ls) = find_leader(cluster).await?;
        let old = cluster.members[li].id;
        {
            let mut p = probe.lock().unwrap_or_else(|e| e.into_inner());
            p.first_ack = None;
            p.killed_at = Some(Instant::now());
        }
        cluster.kill(li);
        let killed_at = Instant::now();
        let deadline = killed_at + FAILOVER_WAIT_MAX;
        let ack = loop {
            let a = probe.lock().unwrap_or_else(|e| e.into_inner()).first_ack;
            if let Some(a) = a {
                break Some(a);
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let (ni, ns) = find_leader(cluster).await?;
        let kill_to_ack =
            ack.map(|a| a.saturating_duration_since(killed_at).as_secs_f64() * 1000.0);
        // Restart the killed member and wait until it follows and has caught up.
        cluster.spawn(li)?;
        let rejoin_started = Instant::now();
        let target = ns.committed_index.unwrap_or(0);
        let api = cluster.members[li].api.clone();
        let rejoin = loop {
            if let Ok(s) = status(&api).await {
                if s.state == "follower"
                    && s.leader_id.is_some()
                    && s.applied_index.unwrap_or(0) >= target
                {
                    break Some(rejoin_started.elapsed());
                }
            }
            if rejoin_started.elapsed() > LEADER_WAIT_MAX {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let Some(rejoin) = rejoin else {
            bail!(
                "member {old} did not rejoin within {LEADER_WAIT_MAX:?}\n{}",
                cluster.log_tails()
            );
        };
        println!(
            "failover    try {:>2}: killed leader {old} (term {}), new leader {} (term {}), kill->ack {}, rejoin {:.0} ms, acks in the 2 s before {steady}",
            t + 1,
            ls.term,
            cluster.members[ni].id,
            ns.term,
            kill_to_ack.map_or("none".to_string(), |v| format!("{v:.1} ms")),
            rejoin.as_secs_f64() * 1000.0,
        );
        if let Some(v) = kill_to_ack {
            times_ms.push(v);
        }
        results.push(json!({
            "killed": old,
            "new_leader": cluster.members[ni].id,
            "term_before": ls.term,
            "term_after": ns.term,
            "kill_to_ack_ms": kill_to_ack.map(round2),
            "rejoin_ms": round2(rejoin.as_secs_f64() * 1000.0),
            "acks_in_2s_before": steady,
        }));
    }
    times_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| -> Option<f64> {
        if times_ms.is_empty() {
            return None;
        }
        let i = ((times_ms.len() as f64 * p).ceil() as usize).clamp(1, times_ms.len()) - 1;
        Some(round2(times_ms[i]))
    };
    let summary = json!({
        "tries": results,
        "acked_tries": times_ms.len(),
        "kill_to_ack_p50_ms": pct(0.5),
        "kill_to_ack_p99_ms": pct(0.99),
        "kill_to_ack_max_ms": pct(1.0),
        "writers": FAILOVER_WRITERS,
        "request_timeout_ms": FAILOVER_REQUEST_TIMEOUT.as_millis() as u64,
    });
    println!(
        "failover    kill->ack over {} tries: p50 {:?} ms, p99 {:?} ms, max {:?} ms",
        times_ms.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    Ok(summary)
}

// ------------------------------------------------------- machine & disk --

fn read_first(path: &str, key: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_string()))
        .unwrap_or_default()
}

/// UTC date and time from the system clock (civil-from-days).
fn utc_now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let date = format!("{y:04}-{m:02}-{d:02}");
    let time = format!(
        "{date}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    (date, time)
}

fn machine() -> Value {
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": read_first("/proc/cpuinfo", "model name"),
        "mem_total": read_first("/proc/meminfo", "MemTotal"),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "loadavg_at_start": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    })
}

/// `FSYNC_PROBE_WRITES` × (write 4 KiB + fdatasync) in `dir`.
fn fsync_probe(dir: &Path) -> anyhow::Result<Value> {
    let tmp = tempfile::tempdir_in(dir)?;
    let mut f = File::create(tmp.path().join("probe"))?;
    let block = [0x5au8; 4096];
    let mut us = Vec::with_capacity(FSYNC_PROBE_WRITES);
    for _ in 0..FSYNC_PROBE_WRITES {
        let t0 = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        us.push(t0.elapsed().as_micros() as u64);
    }
    us.sort_unstable();
    let p = |q: f64| us[((us.len() as f64 * q).ceil() as usize).clamp(1, us.len()) - 1];
    Ok(json!({
        "writes": FSYNC_PROBE_WRITES,
        "bytes": 4096,
        "p50_us": p(0.5),
        "p99_us": p(0.99),
        "max_us": p(1.0),
    }))
}

// ---------------------------------------------------------------- main --

async fn run(args: Args) -> anyhow::Result<()> {
    const KNOWN: [&str; 5] = ["serial", "concurrent", "batch", "reads", "failover"];
    for s in &args.scenarios {
        if !KNOWN.contains(&s.as_str()) {
            bail!("--scenarios: unknown {s:?}; known: {}", KNOWN.join(","));
        }
    }
    if !args.alcor.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p alcor-node` or pass --alcor",
            args.alcor.display()
        );
    }
    if args.hosts == 0 || args.hosts > 10_000 {
        bail!("--hosts: 1 to 10000");
    }
    let work = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let timing = if args.quick {
        Timing {
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(2),
        }
    } else {
        Timing {
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(args.duration_s.clamp(1, 3_600)),
        }
    };
    let tries = if args.quick {
        2
    } else {
        args.tries.clamp(1, TRIES_MAX)
    };
    let (date, now) = utc_now();
    let machine = machine();
    let fsync = fsync_probe(&work)?;
    println!("machine: {machine}");
    println!("fsync probe ({}): {fsync}", work.display());
    println!(
        "window {:?} after {:?} warm-up; fresh 3-node cluster per scenario; srvC/genC = cores used by the servers / this load generator, cpu% = whole machine\n",
        timing.measure, timing.warmup
    );
    print_header();
    let mut rows = Vec::new();
    let mut fail = Value::Null;
    for s in &args.scenarios {
        match s.as_str() {
            "serial" => rows.extend(serial(&args, &work, timing).await?),
            "concurrent" => rows.extend(concurrent(&args, &work, timing).await?),
            "batch" => rows.extend(batch(&args, &work, timing).await?),
            "reads" => rows.extend(reads(&args, &work, timing).await?),
            _ => fail = failover(&args, &work, tries).await?,
        }
    }
    let report = json!({
        "bench": "cluster_load",
        "date": now,
        "machine": machine,
        "fsync_probe": fsync,
        "config": {
            "members": MEMBERS,
            "hosts": args.hosts,
            "ports_per_project": PORTS_PER_PROJECT,
            "warmup_s": timing.warmup.as_secs_f64(),
            "measure_s": timing.measure.as_secs_f64(),
            "quick": args.quick,
            "election_timeout_ms": args.election_timeout_ms,
            "heartbeat_ms": args.heartbeat_ms,
            "alcor": args.alcor,
        },
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
        "failover": fail,
    });
    let out = args.out.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results")
            .join(format!("cluster_load-{date}.json"))
    });
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("write {}", out.display()))?;
    println!("\nwrote {}", out.display());
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
