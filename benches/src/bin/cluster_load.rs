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
//! [--duration-s 10] [--scenarios serial,concurrent,batch,reads,failover,restart,steady,push-kernel]
//! [--restart-ports 1000000]` (`push-kernel` needs root: see `push_kernel.rs`)
//!
//! Output: a table on stdout and `benches/results/cluster_load-<date>.json`.
//!
//! Ports are spread over projects of `PORTS_PER_PROJECT` ports each: the API
//! has no quota call and the default port quota is 500 per project.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alcor_benches::load::{
    failover_report, failover_writer, fsync_probe, machine, print_header, proc_rss_kib, round2,
    run_load, status_error, utc_now, wait_rejoin, write_json, FailoverProbe, Op, Row, Timing,
};
use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_client::ClusterClient;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use anyhow::{anyhow, bail, Context};
use clap::Parser;
use serde_json::{json, Value};
use tonic::transport::{Channel, Endpoint};

#[path = "cluster_load/push_kernel.rs"]
mod push_kernel;

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
/// Largest response accepted (a 1,000-port batch reply is well under it).
const MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Bound on the failover and restart tries.
const TRIES_MAX: usize = 100;
/// Bound on the ports built for the restart scenario.
const RESTART_PORTS_MAX: u64 = 10_000_000;
/// Concurrent loaders building the restart scenario's state.
const RESTART_LOADERS: usize = 2;
/// Failed (e.g. timed-out) batches retried while building that state.
const RESTART_RETRIES_MAX: u64 = 200;
/// Ports per create_ports request while building that state.
const RESTART_BATCH: u64 = 1_000;
/// Bound on a restarted member reaching "serving".
const RESTART_WAIT_MAX: Duration = Duration::from_secs(600);

#[derive(Debug, Parser)]
#[command(about = "Drive a local 3-node alcor cluster over gRPC and report throughput and latency")]
struct Args {
    /// The `alcor` binary.
    #[arg(long, default_value = "target/release/alcor")]
    alcor: PathBuf,
    /// Measured seconds per row (after a warm-up of 1 s).
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Comma-separated: serial, concurrent, batch, reads, failover, restart,
    /// steady, push-kernel (restart, steady and push-kernel are not in the
    /// default set: restart builds `--restart-ports` ports, steady loads a
    /// cluster for `--duration-s` and counts leader changes, push-kernel
    /// needs root and times changes from the API to a Linux agent's kernel).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "serial,concurrent,batch,reads,failover"
    )]
    scenarios: Vec<String>,
    /// Smoke run: 1 s rows, 1 failover try, small read set, 20,000 ports for restart.
    #[arg(long)]
    quick: bool,
    /// Failover tries.
    #[arg(long, default_value_t = 10)]
    tries: usize,
    /// Ports built before the restart scenario (20,000 with --quick).
    #[arg(long, default_value_t = 1_000_000)]
    restart_ports: u64,
    /// Restarts of a follower in the restart scenario.
    #[arg(long, default_value_t = 3)]
    restart_tries: usize,
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
    /// The members' `--log` filter (e.g. `warn,openraft=info` to see elections).
    #[arg(long, default_value = "warn")]
    member_log: String,
    /// Keep every cluster's member logs here when the cluster is torn down
    /// (`<cluster>-node-<id>.log`, and RocksDB's own as
    /// `<cluster>-node-<id>-rocksdb.log`); unset: they go with its temp dir.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
    /// Serve and dial TLS (the TLS-on row): a throwaway CA and member
    /// certificates in the temp dir, clients present an admin certificate;
    /// unset: the members run with --insecure.
    #[arg(long)]
    tls: bool,
    /// Ports on the push-kernel scenario's host before its agent starts.
    #[arg(long, default_value_t = 1_000)]
    push_kernel_ports: usize,
    /// Ports created and then deleted one at a time in the push-kernel
    /// scenario (with --push-kernel-ports at most 1,020: one VPC's bridge).
    #[arg(long, default_value_t = 20)]
    push_kernel_changes: usize,
    /// Rules added to the host's group in the push-kernel scenario.
    #[arg(long, default_value_t = 5)]
    push_kernel_rules: usize,
    /// Seconds the push-kernel scenario waits after the FullSync before
    /// the single-port changes: 1,000 port namespaces just brought up send
    /// IPv6 router solicitations, MLD reports and DAD probes for ~12 s, and
    /// the VPC's bridge floods each to every port (see benches/README).
    #[arg(long, default_value_t = 15)]
    push_kernel_settle_s: u64,
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
    /// Where the members' certificates are (`--tls`); `None`: --insecure.
    tls_dir: Option<PathBuf>,
    /// The members' `--log` filter.
    log_filter: String,
    /// Where the members' logs are copied on drop (`--keep-logs`).
    keep_logs: Option<PathBuf>,
    members: Vec<Member>,
    // Dropped after `Drop::drop` has killed the members.
    root: tempfile::TempDir,
}

impl Cluster {
    fn start(args: &Args, work_dir: &Path) -> anyhow::Result<Cluster> {
        Cluster::start_on(args, work_dir, "127.0.0.1")
    }

    /// [`Cluster::start`] with the members' APIs on `api_ip` (Raft stays on loopback).
    fn start_on(args: &Args, work_dir: &Path, api_ip: &str) -> anyhow::Result<Cluster> {
        let root = tempfile::Builder::new()
            .prefix("alcor-cluster-load-")
            .tempdir_in(work_dir)
            .context("create the temp data dir")?;
        let mut members = Vec::new();
        for id in 1..=MEMBERS {
            let api = format!("{api_ip}:{}", u64::from(args.base_port) + id);
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
        let tls_dir = if args.tls {
            Some(write_certs(&root.path().join("tls"))?)
        } else {
            None
        };
        let mut cluster = Cluster {
            alcor: args.alcor.clone(),
            initial,
            extra,
            tls_dir,
            log_filter: args.member_log.clone(),
            keep_logs: args.keep_logs.clone(),
            members,
            root,
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
        let mut command = Command::new(&self.alcor);
        command.arg("server");
        match &self.tls_dir {
            Some(dir) => {
                let file = |name: String| dir.join(name);
                command
                    .arg("--tls-cert")
                    .arg(file(format!("member-{}.pem", m.id)))
                    .arg("--tls-key")
                    .arg(file(format!("member-{}-key.pem", m.id)))
                    .arg("--tls-ca")
                    .arg(file("ca.pem".to_string()));
            }
            None => {
                command.arg("--insecure");
            }
        }
        let child = command
            .args(["--id", &m.id.to_string()])
            .args(["--raft-addr", &m.raft, "--api-addr", &m.api])
            .arg("--data-dir")
            .arg(&m.data)
            .args(["--initial-cluster", &self.initial])
            .args(["--log", &self.log_filter])
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
        if let Some(dir) = &self.keep_logs {
            let name = self
                .root
                .path()
                .file_name()
                .unwrap_or_default()
                .to_string_lossy();
            for m in &self.members {
                // The member's own log and RocksDB's (flushes, compactions, stalls).
                let kept = [
                    (m.log.clone(), format!("{name}-node-{}.log", m.id)),
                    (
                        m.data.join("LOG"),
                        format!("{name}-node-{}-rocksdb.log", m.id),
                    ),
                ];
                for (from, to) in kept {
                    let to = dir.join(to);
                    if let Err(e) =
                        std::fs::create_dir_all(dir).and_then(|()| std::fs::copy(&from, &to))
                    {
                        eprintln!("cannot keep {}: {e}", from.display());
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------- clients --

/// The clients' TLS settings once a `--tls` cluster has written its
/// certificates; unset: plain text.
static CLIENT_TLS: std::sync::OnceLock<tonic::transport::ClientTlsConfig> =
    std::sync::OnceLock::new();

/// The run's CA: every cluster of one run gets certificates from it, so the
/// clients' [`CLIENT_TLS`] fits them all.
static CA: std::sync::OnceLock<alcor_tls::dev::DevCa> = std::sync::OnceLock::new();

/// The CA's certificate and certificates for the members
/// (`alcor://peer/ID`, 127.0.0.1) and an admin client in `dir`; sets
/// [`CLIENT_TLS`] on first use. Returns `dir`.
fn write_certs(dir: &Path) -> anyhow::Result<PathBuf> {
    use alcor_proto::identity::Principal;
    std::fs::create_dir_all(dir)?;
    if CA.get().is_none() {
        let _ = CA.set(alcor_tls::dev::DevCa::new("cluster_load CA")?);
    }
    let ca = CA.get().context("the run's CA")?;
    ca.write_ca(dir)?;
    let loopback = [std::net::IpAddr::from([127, 0, 0, 1])];
    for id in 1..=MEMBERS {
        let peer = Principal::Peer { member: id };
        ca.write_issued(dir, &format!("member-{id}"), &peer, &[], &loopback)?;
    }
    let admin = ca.write_issued(dir, "admin", &Principal::Admin, &[], &[])?;
    let tls = alcor_tls::client_tls_config(&admin.ca, Some((&admin.cert, &admin.key)))?;
    let _ = CLIENT_TLS.set(tls);
    Ok(dir.to_path_buf())
}

/// `endpoint` as http:// or, after `--tls` set [`CLIENT_TLS`], https://.
fn endpoint_of(endpoint: &str) -> anyhow::Result<Endpoint> {
    Ok(match CLIENT_TLS.get() {
        Some(tls) => {
            Endpoint::from_shared(format!("https://{endpoint}"))?.tls_config(tls.clone())?
        }
        None => Endpoint::from_shared(format!("http://{endpoint}"))?,
    })
}

async fn connect(endpoint: &str) -> anyhow::Result<Channel> {
    let channel = endpoint_of(endpoint)?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connect {endpoint}"))?;
    Ok(channel)
}

/// A channel that connects on first use and reconnects after failures.
fn connect_lazy(endpoint: &str) -> anyhow::Result<Channel> {
    Ok(endpoint_of(endpoint)?
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
/// A write refused with reason NO_LEADER: never appended, safe to repeat.
fn is_no_leader(status: &tonic::Status) -> bool {
    status
        .metadata()
        .get(alcor_proto::REASON_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(alcor_proto::reason::Reason::from_code)
        == Some(alcor_proto::reason::Reason::NoLeader)
}

/// A VPC of `project` (named after it) with one subnet spanning `cidr`.
async fn vpc_with_subnet(
    c: &mut OrchestratorClient<Channel>,
    project: &str,
    cidr: &str,
) -> anyhow::Result<pb::Vpc> {
    let vpc = c
        .create_vpc(req(
            pb::CreateVpcRequest {
                project_id: project.to_string(),
                name: project.to_string(),
                cidr: cidr.to_string(),
                ..Default::default()
            },
            SETUP_TIMEOUT,
        ))
        .await
        .context("create the VPC")?
        .into_inner();
    c.create_subnet(req(
        pb::CreateSubnetRequest {
            project_id: project.to_string(),
            network_id: vpc.id.clone(),
            name: project.to_string(),
            cidr: cidr.to_string(),
            ..Default::default()
        },
        SETUP_TIMEOUT,
    ))
    .await
    .context("create the subnet")?;
    Ok(vpc)
}

async fn fixture(leader: &str, n_hosts: usize) -> anyhow::Result<Arc<PortGen>> {
    let channel = connect(leader).await?;
    let mut c = orch(channel);
    let mut hosts = Vec::new();
    for h in 0..n_hosts {
        let id = format!("host-{h}");
        let message = pb::CreateHostRequest {
            id: id.clone(),
            project_id: "admin".to_string(),
            underlay_ip: format!("192.168.{}.{}", h / 250, h % 250 + 1),
            ..Default::default()
        };
        // A member that has just won its election may still answer
        // NO_LEADER (a write that was never appended): ask again, bounded.
        // (Seen once on a heavily loaded box: a retry after NO_LEADER found
        // the host created, so a repeated attempt accepts ALREADY_EXISTS.)
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let mut retried = false;
        loop {
            match c.create_host(req(message.clone(), SETUP_TIMEOUT)).await {
                Ok(_) => break,
                Err(e) if retried && e.code() == tonic::Code::AlreadyExists => break,
                Err(e) if is_no_leader(&e) && Instant::now() < deadline => {
                    retried = true;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("create {id}")),
            }
        }
        hosts.push(id);
    }
    let vpc = vpc_with_subnet(&mut c, "bench", "10.0.0.0/8").await?;
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

fn create_one_op(gen: Arc<PortGen>) -> Op<Channel> {
    Arc::new(move |channel| {
        let message = gen.one();
        Box::pin(async move {
            orch(channel)
                .create_port(req(message, LOAD_REQUEST_TIMEOUT))
                .await
                .map(|_| 1)
                .map_err(status_error)
        })
    })
}

fn create_batch_op(gen: Arc<PortGen>, size: u64) -> Op<Channel> {
    Arc::new(move |channel| {
        let message = gen.batch(size);
        Box::pin(async move {
            orch(channel)
                .create_ports(req(message, LOAD_REQUEST_TIMEOUT))
                .await
                .map(|r| r.into_inner().ports.len() as u64)
                .map_err(status_error)
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
        let op: Op<Channel> = Arc::new(move |channel| {
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
                    .map_err(status_error)
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

/// Clients of the steady scenario's write load.
const STEADY_CLIENTS: usize = 256;
/// How often the steady scenario asks every member for its leader and term.
const STEADY_POLL: Duration = Duration::from_millis(250);

/// A loaded cluster without faults: 256 clients each create a port and
/// delete it again (the state stays small however long it runs) for the
/// row's duration, while every member's leader and term are polled.
/// Reports the leader changes seen (the target: none).
async fn steady(args: &Args, work: &Path, timing: Timing) -> anyhow::Result<(Row, Value)> {
    let (cluster, leader, gen) = prepare(args, work).await?;
    let (_, before) = find_leader(&cluster).await?;
    let channels = channels_to(&leader, 16).await?;
    let op: Op<Channel> = Arc::new(move |channel| {
        let message = gen.one();
        Box::pin(async move {
            let mut c = orch(channel);
            let port = c
                .create_port(req(message, LOAD_REQUEST_TIMEOUT))
                .await
                .map_err(status_error)?
                .into_inner();
            c.delete_port(req(
                pb::DeletePortRequest {
                    id: port.id,
                    ..Default::default()
                },
                LOAD_REQUEST_TIMEOUT,
            ))
            .await
            .map(|_| 2)
            .map_err(status_error)
        })
    });
    let endpoints = cluster.endpoints();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        tokio::spawn(async move {
            // (member, leader, term) triples as first seen, and polls that failed.
            let mut seen: Vec<(u64, u64, u64)> = Vec::new();
            let mut failed_polls = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for e in &endpoints {
                    match status(e).await {
                        Ok(s) => {
                            let key = (s.id, s.leader_id.unwrap_or(0), s.term);
                            if !seen.contains(&key) {
                                seen.push(key);
                            }
                        }
                        Err(_) => failed_polls += 1,
                    }
                }
                tokio::time::sleep(STEADY_POLL).await;
            }
            (seen, failed_polls)
        })
    };
    let row = run_load(
        "steady",
        format!("create+delete_port, {STEADY_CLIENTS} clients"),
        &channels,
        STEADY_CLIENTS,
        timing,
        &cluster.pids(),
        op,
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let (seen, failed_polls) = poller.await?;
    let (_, after) = find_leader(&cluster).await?;
    let terms: std::collections::BTreeSet<u64> = seen.iter().map(|s| s.2).collect();
    let leader_changes = after.term.saturating_sub(before.term);
    println!(
        "steady      leader {} term {} -> leader {} term {}: {leader_changes} leader changes in {:?} under load; terms seen {terms:?}; failed status polls {failed_polls}",
        before.id, before.term, after.id, after.term, timing.measure
    );
    Ok((
        row,
        json!({
            "measure_s": timing.measure.as_secs_f64(),
            "leader_before": before.id,
            "term_before": before.term,
            "leader_after": after.id,
            "term_after": after.term,
            "leader_changes": leader_changes,
            "terms_seen": terms,
            "failed_status_polls": failed_polls,
        }),
    ))
}

async fn failover(args: &Args, work: &Path, tries: usize) -> anyhow::Result<Value> {
    let (mut cluster, _leader, gen) = prepare(args, work).await?;
    let endpoints = cluster.endpoints();
    let probe = Arc::new(FailoverProbe::default());
    let mut writers = Vec::new();
    for w in 0..FAILOVER_WRITERS {
        let channels: Vec<Channel> = endpoints
            .iter()
            .map(|e| connect_lazy(e))
            .collect::<anyhow::Result<_>>()?;
        let gen = gen.clone();
        let count = channels.len();
        let write = move |at: usize| {
            let mut client = orch(channels[at].clone());
            let request = req(gen.one(), FAILOVER_REQUEST_TIMEOUT);
            async move { client.create_port(request).await.is_ok() }
        };
        writers.push(tokio::spawn(failover_writer(
            probe.clone(),
            count,
            w,
            FAILOVER_REQUEST_TIMEOUT,
            write,
        )));
    }
    let result = failover_tries(&mut cluster, &probe, tries).await;
    probe.stop();
    for w in writers {
        let _ = w.await;
    }
    let mut out = result?;
    probe.add_totals(&mut out);
    Ok(out)
}

async fn failover_tries(
    cluster: &mut Cluster,
    probe: &FailoverProbe,
    tries: usize,
) -> anyhow::Result<Value> {
    let mut results = Vec::new();
    let mut times_ms = Vec::new();
    for t in 0..tries {
        // Steady writes first.
        let steady = probe.acks_during(Duration::from_secs(2)).await;
        let (li, ls) = find_leader(cluster).await?;
        let old = cluster.members[li].id;
        probe.arm();
        cluster.kill(li);
        let killed_at = Instant::now();
        let kill_to_ack = probe
            .kill_to_ack_ms(killed_at, killed_at + FAILOVER_WAIT_MAX)
            .await;
        let (ni, ns) = find_leader(cluster).await?;
        // Restart the killed member and wait until it follows and has caught up.
        cluster.spawn(li)?;
        let target = ns.committed_index.unwrap_or(0);
        let api = cluster.members[li].api.clone();
        let rejoin = wait_rejoin(LEADER_WAIT_MAX, || async {
            matches!(
                status(&api).await,
                Ok(s) if s.state == "follower"
                    && s.leader_id.is_some()
                    && s.applied_index.unwrap_or(0) >= target
            )
        })
        .await;
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
    Ok(failover_report(
        &mut times_ms,
        results,
        FAILOVER_WRITERS,
        FAILOVER_REQUEST_TIMEOUT,
    ))
}

/// Size in bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Waits until every member has applied `index`.
async fn wait_applied(cluster: &Cluster, index: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + RESTART_WAIT_MAX;
    for m in &cluster.members {
        loop {
            if let Ok(s) = status(&m.api).await {
                if s.applied_index.unwrap_or(0) >= index {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("member {} did not apply index {index}", m.id);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Builds `--restart-ports` ports (1,000 per request, `RESTART_LOADERS`
/// loaders), reports resident memory per port on every member, then SIGKILLs a
/// follower and times its restart until it serves: its API answers, it follows
/// a known leader and has applied the commit index seen before the kill.
async fn restart_big(args: &Args, work: &Path) -> anyhow::Result<Value> {
    let (mut cluster, leader, gen) = prepare(args, work).await?;
    let n_ports = if args.quick {
        20_000
    } else {
        args.restart_ports.clamp(RESTART_BATCH, RESTART_PORTS_MAX)
    };
    let pids = cluster.pids();
    let rss_before: Vec<u64> = pids.iter().map(|p| proc_rss_kib(*p)).collect();
    let batches = n_ports.div_ceil(RESTART_BATCH);
    let next = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut loaders = Vec::new();
    for _ in 0..RESTART_LOADERS {
        let mut c = orch(connect(&leader).await?);
        let (gen, next, retries) = (gen.clone(), next.clone(), retries.clone());
        loaders.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < batches {
                // A batch that fails (an overloaded server times out) is
                // retried with fresh ports; a timed-out one may still commit.
                while let Err(e) = c
                    .create_ports(req(gen.batch(RESTART_BATCH), LOAD_REQUEST_TIMEOUT))
                    .await
                {
                    if retries.fetch_add(1, Ordering::Relaxed) >= RESTART_RETRIES_MAX {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Ok::<(), tonic::Status>(())
        }));
    }
    for l in loaders {
        l.await.context("loader task")?.context("build the ports")?;
    }
    let retried = retries.load(Ordering::Relaxed);
    let load_s = started.elapsed().as_secs_f64();
    let (li, ls) = find_leader(&cluster).await?;
    wait_applied(&cluster, ls.committed_index.unwrap_or(0)).await?;
    let built = batches * RESTART_BATCH;
    let members: Vec<Value> = cluster
        .members
        .iter()
        .zip(pids.iter().zip(&rss_before))
        .map(|(m, (pid, before))| {
            let after = proc_rss_kib(*pid);
            json!({
                "id": m.id,
                "rss_before_kib": before,
                "rss_after_kib": after,
                "rss_bytes_per_port": round2(after.saturating_sub(*before) as f64 * 1024.0 / built as f64),
                "data_dir_bytes": dir_bytes(&m.data),
            })
        })
        .collect();
    println!(
        "restart     built {built} ports in {load_s:.1} s ({:.0} ports/s, {retried} batches retried); members: {}",
        built as f64 / load_s,
        Value::from(members.clone())
    );
    let mut tries = Vec::new();
    let mut serving_ms = Vec::new();
    let restart_tries = if args.quick {
        1
    } else {
        args.restart_tries.clamp(1, TRIES_MAX)
    };
    for t in 0..restart_tries {
        let (li_now, ls_now) = find_leader(&cluster).await?;
        let target = ls_now.committed_index.unwrap_or(0);
        let f = (li_now + 1 + t % 2) % cluster.members.len();
        cluster.kill(f);
        let killed = Instant::now();
        cluster.spawn(f)?;
        let api = cluster.members[f].api.clone();
        let mut api_up = None;
        let serving = loop {
            if let Ok(s) = status(&api).await {
                api_up.get_or_insert_with(|| killed.elapsed());
                if s.state == "follower"
                    && s.leader_id.is_some()
                    && s.applied_index.unwrap_or(0) >= target
                {
                    break killed.elapsed();
                }
            }
            if killed.elapsed() > RESTART_WAIT_MAX {
                bail!(
                    "member {} not serving within {RESTART_WAIT_MAX:?}\n{}",
                    cluster.members[f].id,
                    cluster.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let rss = cluster.members[f]
            .child
            .as_ref()
            .map(|c| proc_rss_kib(c.id()))
            .unwrap_or(0);
        println!(
            "restart     try {}: member {} killed and restarted, API up after {:.0} ms, serving after {:.0} ms, RSS {rss} KiB",
            t + 1,
            cluster.members[f].id,
            api_up.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
            serving.as_secs_f64() * 1000.0
        );
        serving_ms.push(serving.as_secs_f64() * 1000.0);
        tries.push(json!({
            "member": cluster.members[f].id,
            "api_up_ms": api_up.map(|d| round2(d.as_secs_f64() * 1000.0)),
            "serving_ms": round2(serving.as_secs_f64() * 1000.0),
            "rss_after_restart_kib": rss,
        }));
    }
    serving_ms.sort_by(f64::total_cmp);
    Ok(json!({
        "ports": built,
        "build_seconds": round2(load_s),
        "build_ports_per_s": round2(built as f64 / load_s),
        "build_batches_retried": retried,
        "leader_at_build": cluster.members[li].id,
        "members": members,
        "tries": tries,
        "serving_median_ms": serving_ms.get(serving_ms.len() / 2).copied().map(round2),
    }))
}

// ---------------------------------------------------------------- main --

async fn run(args: Args) -> anyhow::Result<()> {
    const KNOWN: [&str; 8] = [
        "serial",
        "concurrent",
        "batch",
        "reads",
        "failover",
        "restart",
        "steady",
        "push-kernel",
    ];
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
            warmup: Duration::from_millis(200),
            measure: Duration::from_secs(1),
            request_timeout: LOAD_REQUEST_TIMEOUT,
        }
    } else {
        Timing {
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(args.duration_s.clamp(1, 3_600)),
            request_timeout: LOAD_REQUEST_TIMEOUT,
        }
    };
    let tries = if args.quick {
        1
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
    let mut restart = Value::Null;
    let mut steady_run = Value::Null;
    let mut push_kernel_run = Value::Null;
    for s in &args.scenarios {
        match s.as_str() {
            "serial" => rows.extend(serial(&args, &work, timing).await?),
            "concurrent" => rows.extend(concurrent(&args, &work, timing).await?),
            "batch" => rows.extend(batch(&args, &work, timing).await?),
            "reads" => rows.extend(reads(&args, &work, timing).await?),
            "restart" => restart = restart_big(&args, &work).await?,
            "push-kernel" => push_kernel_run = push_kernel::push_kernel(&args, &work).await?,
            "steady" => {
                let (row, report) = steady(&args, &work, timing).await?;
                rows.push(row);
                steady_run = report;
            }
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
            "tls": args.tls,
            "election_timeout_ms": args.election_timeout_ms,
            "heartbeat_ms": args.heartbeat_ms,
            "alcor": args.alcor,
        },
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
        "failover": fail,
        "restart": restart,
        "steady": steady_run,
        "push_kernel": push_kernel_run,
    });
    let out = args.out.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results")
            .join(format!("cluster_load-{date}.json"))
    });
    write_json(&out, &report)?;
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
