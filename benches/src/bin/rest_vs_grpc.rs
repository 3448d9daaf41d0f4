//! REST vs gRPC create-port throughput (issue #4: "REST create-port
//! throughput within 20% of the gRPC path at 256 concurrent clients").
//!
//! For each transport, starts a fresh 3-process cluster (`alcor server` with
//! `--rest-addr` and a token file, fresh temp data dirs, fsync on), creates
//! the fixture over gRPC (hosts, one /8 network and subnet, an unlimited port
//! quota), then runs `--clients` closed-loop clients creating one port per
//! request against the leader: over gRPC (`CreatePort` on `--connections`
//! shared HTTP/2 channels) or over REST (`POST /v2.0/ports` with
//! `X-Auth-Token`, HTTP/1.1 keep-alive, one connection per client in flight).
//! Only requests that start and finish inside the measured window count.
//! Prints median / p99 latency, creates/s, and the REST/gRPC throughput ratio.
//!
//! Usage (after `cargo build --release -p alcor-node`):
//! `cargo run --release -p alcor-benches --bin rest_vs_grpc -- [--duration-s 10] [--clients 256]`

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_client::ClusterClient;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use anyhow::{anyhow, bail, Context};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tonic::transport::{Channel, Endpoint};

/// Members of each cluster.
const MEMBERS: u16 = 3;
/// Bound on waiting for a leader.
const LEADER_WAIT_MAX: Duration = Duration::from_secs(30);
/// Bound on one request (overload shows as latency, not errors).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Clients of a run.
const CLIENTS_MAX: usize = 4_096;
/// Latency samples kept per client.
const SAMPLES_PER_CLIENT_MAX: usize = 1_000_000;
/// Error messages kept per run.
const ERROR_SAMPLES_MAX: usize = 5;
/// The bench's token (the file is written into the temp dir, mode 0600).
const TOKEN: &str = "rest-vs-grpc-bench-token";
/// The admin token the fixture registers hosts with (hosts are the admin's).
const ADMIN_TOKEN: &str = "rest-vs-grpc-bench-admin-token";
/// Project of every port.
const PROJECT: &str = "bench";

#[derive(Debug, Parser)]
#[command(about = "Create-port throughput and latency: REST gateway vs gRPC, 3-process cluster")]
struct Args {
    /// The `alcor` binary.
    #[arg(long, default_value = "target/release/alcor")]
    alcor: PathBuf,
    /// Concurrent closed-loop clients.
    #[arg(long, default_value_t = 256)]
    clients: usize,
    /// gRPC channels shared by the clients (REST uses one connection per client).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured seconds per transport.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Warm-up seconds before the window.
    #[arg(long, default_value_t = 2)]
    warmup_s: u64,
    /// Hosts registered; ports are bound round-robin to them.
    #[arg(long, default_value_t = 16)]
    hosts: usize,
    /// Member i listens on BASE+i (gRPC), BASE+10+i (REST), BASE+20+i (Raft).
    #[arg(long, default_value_t = 27_400)]
    base_port: u16,
    /// The token's role: admin (as for a service such as Nova; the bench
    /// binds ports to hosts, which only an admin may) or member (checks the
    /// network's project per create; binding is then refused).
    #[arg(long, default_value = "admin")]
    role: String,
    /// Order of the runs.
    #[arg(long, value_delimiter = ',', default_value = "grpc,rest")]
    transports: Vec<String>,
}

/// Three `alcor server` processes; killed and removed on drop.
struct Cluster {
    children: Vec<Child>,
    api: Vec<String>,
    rest: Vec<String>,
    root: tempfile::TempDir,
}

impl Cluster {
    fn start(args: &Args) -> anyhow::Result<Cluster> {
        let root = tempfile::Builder::new()
            .prefix("alcor-rest-vs-grpc-")
            .tempdir()?;
        let tokens = root.path().join("tokens.toml");
        std::fs::write(
            &tokens,
            format!(
                "[\"{TOKEN}\"]\nproject_id = \"{PROJECT}\"\nrole = \"{}\"\n\n[\"{ADMIN_TOKEN}\"]\nproject_id = \"admin\"\nrole = \"admin\"\n",
                args.role
            ),
        )?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600))?;
        }
        let port = |offset: u16, id: u16| format!("127.0.0.1:{}", args.base_port + offset + id);
        let initial = (1..=MEMBERS)
            .map(|id| format!("{id}={}/{}", port(20, id), port(0, id)))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            children: Vec::new(),
            api: (1..=MEMBERS).map(|id| port(0, id)).collect(),
            rest: (1..=MEMBERS).map(|id| port(10, id)).collect(),
            root,
        };
        for id in 1..=MEMBERS {
            let log = std::fs::File::create(cluster.root.path().join(format!("node-{id}.log")))?;
            let child = Command::new(&args.alcor)
                .args(["server", "--insecure", "--id", &id.to_string()])
                .args(["--raft-addr", &port(20, id), "--api-addr", &port(0, id)])
                .args(["--rest-addr", &port(10, id)])
                .arg("--rest-token-file")
                .arg(&tokens)
                .arg("--data-dir")
                .arg(cluster.root.path().join(format!("node-{id}")))
                .args(["--initial-cluster", &initial, "--log", "warn"])
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log))
                .spawn()
                .with_context(|| format!("spawn {}", args.alcor.display()))?;
            cluster.children.push(child);
        }
        Ok(cluster)
    }

    fn log_tails(&self) -> String {
        (1..=MEMBERS)
            .map(|id| {
                let text = std::fs::read_to_string(self.root.path().join(format!("node-{id}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(10).collect();
                format!(
                    "node {id}:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
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

/// A gRPC request carrying the bench's token (the members have a token
/// file, so every gRPC call must authenticate).
fn req<T>(message: T) -> tonic::Request<T> {
    req_as(message, TOKEN)
}

/// A gRPC request carrying the admin token (the fixture's hosts and quota).
fn req_admin<T>(message: T) -> tonic::Request<T> {
    req_as(message, ADMIN_TOKEN)
}

/// A gRPC request carrying `token`.
fn req_as<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(REQUEST_TIMEOUT);
    if let Ok(value) = format!("{}{token}", alcor_proto::identity::BEARER_PREFIX).parse() {
        r.metadata_mut()
            .insert(alcor_proto::identity::AUTHORIZATION_HEADER, value);
    }
    r
}

/// Index of the member that reports itself leader.
async fn find_leader(cluster: &Cluster) -> anyhow::Result<usize> {
    let deadline = Instant::now() + LEADER_WAIT_MAX;
    loop {
        for (i, api) in cluster.api.iter().enumerate() {
            if let Ok(channel) = connect(api).await {
                if let Ok(s) = ClusterClient::new(channel)
                    .status(req(pb::StatusRequest {}))
                    .await
                {
                    let s = s.into_inner();
                    if s.state == "leader" && s.leader_id == Some(s.id) {
                        return Ok(i);
                    }
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

/// Hosts, a /8 network and subnet, an unlimited quota: (network ID, hosts).
async fn fixture(api: &str, n_hosts: usize) -> anyhow::Result<(String, Vec<String>)> {
    let mut c = OrchestratorClient::new(connect(api).await?);
    let mut hosts = Vec::new();
    for h in 0..n_hosts {
        let id = format!("host-{h}");
        c.create_host(req_admin(pb::CreateHostRequest {
            id: id.clone(),
            project_id: "admin".to_string(),
            underlay_ip: format!("192.168.{}.{}", h / 250, h % 250 + 1),
            ..Default::default()
        }))
        .await
        .with_context(|| format!("create {id}"))?;
        hosts.push(id);
    }
    c.set_quota(req_admin(pb::SetQuotaRequest {
        project_id: PROJECT.to_string(),
        network: Some(-1),
        subnet: Some(-1),
        port: Some(-1),
        ..Default::default()
    }))
    .await
    .context("set the quota")?;
    let vpc = c
        .create_vpc(req_admin(pb::CreateVpcRequest {
            project_id: PROJECT.to_string(),
            name: "bench".to_string(),
            cidr: "10.0.0.0/8".to_string(),
            ..Default::default()
        }))
        .await
        .context("create the network")?
        .into_inner();
    c.create_subnet(req_admin(pb::CreateSubnetRequest {
        project_id: PROJECT.to_string(),
        network_id: vpc.id.clone(),
        name: "bench".to_string(),
        cidr: "10.0.0.0/8".to_string(),
        ..Default::default()
    }))
    .await
    .context("create the subnet")?;
    Ok((vpc.id, hosts))
}

/// What one client sends.
#[derive(Clone)]
enum Transport {
    Grpc(Vec<Channel>),
    Rest(Box<Client<HttpConnector, Full<Bytes>>>, String),
}

struct Shared {
    next: AtomicU64,
    network_id: String,
    hosts: Vec<String>,
}

impl Shared {
    fn port(&self) -> (u64, String) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let host = self.hosts[(n % self.hosts.len() as u64) as usize].clone();
        (n, host)
    }
}

async fn create_one(t: &Transport, client: usize, shared: &Shared) -> Result<(), String> {
    let (n, host) = shared.port();
    match t {
        Transport::Grpc(channels) => {
            let channel = channels[client % channels.len()].clone();
            OrchestratorClient::new(channel)
                .create_port(req(pb::CreatePortRequest {
                    project_id: PROJECT.to_string(),
                    network_id: shared.network_id.clone(),
                    name: format!("vm-{n}-eth0"),
                    binding_host: host,
                    device_id: format!("vm-{n}"),
                    device_owner: "compute:nova".to_string(),
                    ..Default::default()
                }))
                .await
                .map(|_| ())
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
        }
        Transport::Rest(http, url) => {
            let body = json!({"port": {
                "network_id": shared.network_id,
                "name": format!("vm-{n}-eth0"),
                "binding:host_id": host,
                "device_id": format!("vm-{n}"),
                "device_owner": "compute:nova",
            }})
            .to_string();
            let request = hyper::Request::post(url.as_str())
                .header("x-auth-token", TOKEN)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let response = http.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if status == hyper::StatusCode::CREATED {
                Ok(())
            } else {
                Err(format!("{status}: {}", String::from_utf8_lossy(&bytes)))
            }
        }
    }
}

/// One transport's figures.
struct Run {
    name: String,
    ops: u64,
    secs: f64,
    lat_us: Vec<u32>,
    errors: u64,
    error_samples: Vec<String>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    fn pct_ms(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.lat_us.len() - 1) as f64 * p).round() as usize;
        f64::from(self.lat_us[i]) / 1000.0
    }
}

async fn run(args: &Args, name: &str) -> anyhow::Result<Run> {
    let cluster = Cluster::start(args)?;
    let leader = find_leader(&cluster).await?;
    let (network_id, hosts) = fixture(&cluster.api[leader], args.hosts).await?;
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        network_id,
        hosts,
    });
    let transport = match name {
        "grpc" => {
            let mut channels = Vec::new();
            for _ in 0..args.connections.max(1) {
                channels.push(connect(&cluster.api[leader]).await?);
            }
            Transport::Grpc(channels)
        }
        "rest" => {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            let http = Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(args.clients)
                .build(connector);
            Transport::Rest(
                Box::new(http),
                format!("http://{}/v2.0/ports", cluster.rest[leader]),
            )
        }
        other => bail!("unknown transport {other:?} (grpc, rest)"),
    };
    let start = Instant::now();
    let from = start + Duration::from_secs(args.warmup_s);
    let end = from + Duration::from_secs(args.duration_s);
    let mut tasks = Vec::new();
    for client in 0..args.clients {
        let transport = transport.clone();
        let shared = Arc::clone(&shared);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = Vec::new();
            let mut error_count = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let r =
                    tokio::time::timeout(REQUEST_TIMEOUT, create_one(&transport, client, &shared))
                        .await
                        .unwrap_or_else(|_| Err("client timeout".to_string()));
                let t1 = Instant::now();
                match r {
                    Ok(()) if t0 >= from && t1 <= end && lat.len() < SAMPLES_PER_CLIENT_MAX => {
                        let us = t1.duration_since(t0).as_micros();
                        lat.push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                    Ok(()) => {}
                    Err(e) => {
                        error_count += 1;
                        if errors.len() < ERROR_SAMPLES_MAX {
                            errors.push(e);
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (lat, error_count, errors)
        }));
    }
    let mut out = Run {
        name: name.to_string(),
        ops: 0,
        secs: args.duration_s as f64,
        lat_us: Vec::new(),
        errors: 0,
        error_samples: Vec::new(),
    };
    for t in tasks {
        let (lat, n, samples) = t.await.context("client task")?;
        out.lat_us.extend(lat);
        out.errors += n;
        for s in samples {
            if out.error_samples.len() < ERROR_SAMPLES_MAX {
                out.error_samples.push(s);
            }
        }
    }
    out.ops = out.lat_us.len() as u64;
    out.lat_us.sort_unstable();
    drop(cluster);
    Ok(out)
}

async fn main_inner(args: Args) -> anyhow::Result<()> {
    if args.clients == 0 || args.clients > CLIENTS_MAX {
        bail!("--clients: 1 to {CLIENTS_MAX}");
    }
    if !args.alcor.exists() {
        bail!(
            "{} not found: cargo build --release -p alcor-node",
            args.alcor.display()
        );
    }
    let mut runs = Vec::new();
    for name in &args.transports {
        let r = run(&args, name).await?;
        println!(
            "{:<5} clients {:>4}: {:>8.0} creates/s, median {:>7.2} ms, p99 {:>7.2} ms, errors {}",
            r.name,
            args.clients,
            r.rate(),
            r.pct_ms(0.5),
            r.pct_ms(0.99),
            r.errors
        );
        for e in &r.error_samples {
            println!("      error: {e}");
        }
        runs.push(r);
    }
    let by = |n: &str| runs.iter().find(|r| r.name == n);
    let summary = json!({
        "clients": args.clients,
        "grpc_connections": args.connections,
        "rest_role": args.role,
        "duration_s": args.duration_s,
        "runs": runs.iter().map(|r| json!({
            "transport": r.name,
            "creates_per_s": (r.rate() * 10.0).round() / 10.0,
            "median_ms": (r.pct_ms(0.5) * 100.0).round() / 100.0,
            "p99_ms": (r.pct_ms(0.99) * 100.0).round() / 100.0,
            "errors": r.errors,
        })).collect::<Vec<_>>(),
        "rest_over_grpc_throughput": match (by("rest"), by("grpc")) {
            (Some(r), Some(g)) if g.rate() > 0.0 => json!((r.rate() / g.rate() * 1000.0).round() / 1000.0),
            _ => serde_json::Value::Null,
        },
    });
    println!("{summary}");
    if runs.iter().any(|r| r.ops == 0) {
        return Err(anyhow!("a run completed no request"));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    main_inner(Args::parse()).await
}
