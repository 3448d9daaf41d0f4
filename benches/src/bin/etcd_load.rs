//! Load generator for the etcd peer benchmark: starts three `etcd` members on
//! loopback (fresh temp data dirs, default durability and timing: WAL fdatasync
//! before every ack, heartbeat 100 ms, election timeout 1,000 ms) and drives them
//! with the `etcd-client` crate through the same closed-loop harness as
//! `cluster_load` (`alcor_benches::load`), so both systems face the same client
//! code: serial puts, puts at 16/64/256 clients, linearizable and serializable
//! gets at 256 clients, and leader failover (SIGKILL → first acknowledged put).
//!
//! Usage: `cargo run --release -p alcor-benches --bin etcd_load -- [--quick]
//! [--duration-s 10] [--scenarios serial,concurrent,reads,failover] [--etcd etcd]`
//!
//! Output: a table on stdout and `benches/results/etcd_load-<date>.json`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alcor_benches::load::{
    failover_report, failover_writer, fsync_probe, machine, print_header, round2, run_load,
    status_error, utc_now, wait_rejoin, write_json, FailoverProbe, Op, OpError, Row, Timing,
};
use anyhow::{anyhow, bail, Context};
use clap::Parser;
use etcd_client::{Client, ConnectOptions, GetOptions, KvClient};
use serde_json::{json, Value};

/// Members of the cluster.
const MEMBERS: usize = 3;
/// Keys written and read (8 bytes each, as etcd's own benchmark).
const KEYS: u64 = 10_000;
/// Value size of every put.
const VALUE_BYTES: usize = 256;
/// Bound on waiting for a leader (start, failover, rejoin).
const LEADER_WAIT_MAX: Duration = Duration::from_secs(30);
/// Bound on one request of a load run.
const LOAD_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-request timeout of the failover writers (as in `cluster_load`).
const FAILOVER_REQUEST_TIMEOUT: Duration = Duration::from_millis(250);
/// Writers during the failover scenario (as in `cluster_load`).
const FAILOVER_WRITERS: usize = 8;
/// Bound on kill → acknowledged write before a try counts as failed.
const FAILOVER_WAIT_MAX: Duration = Duration::from_secs(20);
/// Bound on the failover tries.
const TRIES_MAX: usize = 100;
/// Concurrent writers filling the key space before the read rows.
const FILL_WRITERS: u64 = 64;

#[derive(Debug, Parser)]
#[command(about = "Drive a local 3-member etcd cluster and report throughput and latency")]
struct Args {
    /// The `etcd` binary.
    #[arg(long, default_value = "etcd")]
    etcd: PathBuf,
    /// Measured seconds per row (after a warm-up of 1 s).
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Comma-separated: serial, concurrent, reads, failover.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "serial,concurrent,reads,failover"
    )]
    scenarios: Vec<String>,
    /// Smoke run: 1 s rows, 1 failover try.
    #[arg(long)]
    quick: bool,
    /// Failover tries.
    #[arg(long, default_value_t = 10)]
    tries: usize,
    /// Member i serves clients on BASE+i and peers on BASE+100+i.
    #[arg(long, default_value_t = 27_400)]
    base_port: u16,
    /// Parent of the temp data dirs (also where the fsync probe runs).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// JSON output path; default benches/results/etcd_load-<date>.json.
    #[arg(long)]
    out: Option<PathBuf>,
}

// ------------------------------------------------------------- cluster --

/// One `etcd` process.
struct Member {
    name: String,
    client: String,
    peer: String,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// Three etcd processes in a temp dir; killed (SIGKILL) and removed on drop.
struct Cluster {
    etcd: PathBuf,
    initial: String,
    members: Vec<Member>,
    // Dropped after `Drop::drop` has killed the members.
    _root: tempfile::TempDir,
}

impl Cluster {
    fn start(args: &Args, work_dir: &Path) -> anyhow::Result<Cluster> {
        let root = tempfile::Builder::new()
            .prefix("etcd-load-")
            .tempdir_in(work_dir)
            .context("create the temp data dir")?;
        let members: Vec<Member> = (1..=MEMBERS)
            .map(|i| Member {
                name: format!("m{i}"),
                client: format!("http://127.0.0.1:{}", usize::from(args.base_port) + i),
                peer: format!("http://127.0.0.1:{}", usize::from(args.base_port) + 100 + i),
                data: root.path().join(format!("m{i}.etcd")),
                log: root.path().join(format!("m{i}.log")),
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            etcd: args.etcd.clone(),
            initial,
            members,
            _root: root,
        };
        for i in 0..MEMBERS {
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    /// Starts member `i`; the `--initial-*` flags are ignored by etcd for an
    /// existing data dir, so the same command restarts a killed member.
    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)?;
        let child = Command::new(&self.etcd)
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data)
            .args(["--listen-client-urls", &m.client])
            .args(["--advertise-client-urls", &m.client])
            .args(["--listen-peer-urls", &m.peer])
            .args(["--initial-advertise-peer-urls", &m.peer])
            .args(["--initial-cluster", &self.initial])
            .args(["--initial-cluster-token", "alcor-bench"])
            .args(["--initial-cluster-state", "new"])
            // The defaults, made explicit.
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| {
                format!(
                    "start {} (install it: apt-get install etcd-server)",
                    self.etcd.display()
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

    fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.child.as_ref().map(Child::id))
            .collect()
    }

    fn log_tails(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(5);
            out.push_str(&format!(
                "--- {} log tail:\n{}\n",
                m.name,
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

/// One client (one HTTP/2 connection) to one member.
async fn connect(endpoint: &str, require_leader: bool) -> anyhow::Result<Client> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_require_leader(require_leader);
    Client::connect([endpoint], Some(options))
        .await
        .with_context(|| format!("connect {endpoint}"))
}

async fn kv_clients(endpoint: &str, n: usize) -> anyhow::Result<Vec<KvClient>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(connect(endpoint, false).await?.kv_client());
    }
    Ok(v)
}

fn etcd_error(e: etcd_client::Error) -> OpError {
    match e {
        etcd_client::Error::GRpcStatus(s) => status_error(s),
        other => ("Client".to_string(), other.to_string()),
    }
}

/// (leader index, its raft index) once a member reports itself leader.
async fn find_leader(cluster: &Cluster) -> anyhow::Result<(usize, u64)> {
    let deadline = Instant::now() + LEADER_WAIT_MAX;
    loop {
        for (i, m) in cluster.members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            let status = async {
                let mut c = connect(&m.client, false).await?;
                anyhow::Ok(c.status().await?)
            };
            if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(2), status).await {
                let me = s.header().map(|h| h.member_id()).unwrap_or(0);
                if s.leader() != 0 && s.leader() == me {
                    return Ok((i, s.raft_index()));
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

/// Key `k` as 8 bytes (`k0000042`).
fn key(k: u64) -> String {
    format!("k{:07}", k % KEYS)
}

/// A cheap scramble of a counter picks the key.
fn pick(counter: &AtomicU64) -> u64 {
    let k = counter
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (k >> 17) % KEYS
}

fn put_op() -> Op<KvClient> {
    let counter = Arc::new(AtomicU64::new(0));
    let value = vec![b'v'; VALUE_BYTES];
    Arc::new(move |mut kv: KvClient| {
        let k = key(pick(&counter));
        let value = value.clone();
        Box::pin(async move { kv.put(k, value, None).await.map(|_| 1).map_err(etcd_error) })
    })
}

fn get_op(serializable: bool) -> Op<KvClient> {
    let counter = Arc::new(AtomicU64::new(0));
    Arc::new(move |mut kv: KvClient| {
        let k = key(pick(&counter));
        let options = serializable.then(|| GetOptions::new().with_serializable());
        Box::pin(async move { kv.get(k, options).await.map(|_| 1).map_err(etcd_error) })
    })
}

/// Starts a cluster and waits for its leader; returns it and the leader's URL.
async fn prepare(args: &Args, work: &Path) -> anyhow::Result<(Cluster, String)> {
    let cluster = Cluster::start(args, work)?;
    let (i, _) = find_leader(&cluster).await?;
    let leader = cluster.members[i].client.clone();
    Ok((cluster, leader))
}

// ------------------------------------------------------------ scenarios --

async fn serial(args: &Args, work: &Path, timing: Timing) -> anyhow::Result<Vec<Row>> {
    let (cluster, leader) = prepare(args, work).await?;
    let conns = kv_clients(&leader, 1).await?;
    let row = run_load(
        "serial",
        "put, 1 client".into(),
        &conns,
        1,
        timing,
        &cluster.pids(),
        put_op(),
    )
    .await?;
    Ok(vec![row])
}

async fn concurrent(args: &Args, work: &Path, timing: Timing) -> anyhow::Result<Vec<Row>> {
    let (cluster, leader) = prepare(args, work).await?;
    let mut rows = Vec::new();
    for clients in [16usize, 64, 256] {
        // The same connection counts as `cluster_load`: 4, 4, 16.
        let n = (clients / 16).clamp(4, 16);
        let conns = kv_clients(&leader, n).await?;
        rows.push(
            run_load(
                "concurrent",
                format!("put, {clients} clients"),
                &conns,
                clients,
                timing,
                &cluster.pids(),
                put_op(),
            )
            .await?,
        );
    }
    Ok(rows)
}

async fn reads(args: &Args, work: &Path, timing: Timing) -> anyhow::Result<Vec<Row>> {
    let (cluster, leader) = prepare(args, work).await?;
    // Fill every key once.
    let mut fill = Vec::new();
    for w in 0..FILL_WRITERS {
        let mut kv = connect(&leader, false).await?.kv_client();
        fill.push(tokio::spawn(async move {
            let value = vec![b'v'; VALUE_BYTES];
            let mut k = w;
            while k < KEYS {
                kv.put(key(k), value.clone(), None).await?;
                k += FILL_WRITERS;
            }
            Ok::<(), etcd_client::Error>(())
        }));
    }
    for f in fill {
        f.await.context("fill task")?.context("fill the keys")?;
    }
    // 16 connections spread over the three members.
    let mut conns = Vec::new();
    for i in 0..16 {
        let m = &cluster.members[i % MEMBERS];
        conns.push(connect(&m.client, false).await?.kv_client());
    }
    let mut rows = Vec::new();
    for serializable in [false, true] {
        let kind = if serializable {
            "serializable"
        } else {
            "linearizable"
        };
        rows.push(
            run_load(
                "reads",
                format!("get {kind}, 256 clients"),
                &conns,
                256,
                timing,
                &cluster.pids(),
                get_op(serializable),
            )
            .await?,
        );
    }
    Ok(rows)
}

async fn failover(args: &Args, work: &Path, tries: usize) -> anyhow::Result<Value> {
    let (mut cluster, _leader) = prepare(args, work).await?;
    let probe = Arc::new(FailoverProbe::default());
    let mut writers = Vec::new();
    for w in 0..FAILOVER_WRITERS {
        let mut kvs = Vec::new();
        for m in &cluster.members {
            kvs.push(connect(&m.client, true).await?.kv_client());
        }
        let counter = AtomicU64::new(w as u64 * 7_919);
        let value = vec![b'v'; VALUE_BYTES];
        let endpoints = kvs.len();
        let write = move |at: usize| {
            let mut kv = kvs[at].clone();
            let (k, v) = (key(pick(&counter)), value.clone());
            async move { kv.put(k, v, None).await.is_ok() }
        };
        writers.push(tokio::spawn(failover_writer(
            probe.clone(),
            endpoints,
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
        let steady = probe.acks_during(Duration::from_secs(2)).await;
        let (li, _) = find_leader(cluster).await?;
        probe.arm();
        cluster.kill(li);
        let killed_at = Instant::now();
        let kill_to_ack = probe
            .kill_to_ack_ms(killed_at, killed_at + FAILOVER_WAIT_MAX)
            .await;
        let (ni, target) = find_leader(cluster).await?;
        // Restart the killed member and wait until it follows and has caught up.
        cluster.spawn(li)?;
        let endpoint = cluster.members[li].client.clone();
        let rejoin = wait_rejoin(LEADER_WAIT_MAX, || async {
            let status = async {
                let mut c = connect(&endpoint, false).await?;
                anyhow::Ok(c.status().await?)
            };
            matches!(
                tokio::time::timeout(Duration::from_secs(2), status).await,
                Ok(Ok(s)) if s.leader() != 0 && s.raft_applied_index() >= target
            )
        })
        .await;
        let Some(rejoin) = rejoin else {
            bail!(
                "{} did not rejoin within {LEADER_WAIT_MAX:?}\n{}",
                cluster.members[li].name,
                cluster.log_tails()
            );
        };
        println!(
            "failover    try {:>2}: killed leader {}, new leader {}, kill->ack {}, rejoin {:.0} ms, acks in the 2 s before {steady}",
            t + 1,
            cluster.members[li].name,
            cluster.members[ni].name,
            kill_to_ack.map_or("none".to_string(), |v| format!("{v:.1} ms")),
            rejoin.as_secs_f64() * 1000.0,
        );
        if let Some(v) = kill_to_ack {
            times_ms.push(v);
        }
        results.push(json!({
            "killed": cluster.members[li].name,
            "new_leader": cluster.members[ni].name,
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

// ---------------------------------------------------------------- main --

fn etcd_version(etcd: &Path) -> String {
    Command::new(etcd)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

async fn run(args: Args) -> anyhow::Result<()> {
    const KNOWN: [&str; 4] = ["serial", "concurrent", "reads", "failover"];
    for s in &args.scenarios {
        if !KNOWN.contains(&s.as_str()) {
            bail!("--scenarios: unknown {s:?}; known: {}", KNOWN.join(","));
        }
    }
    let version = etcd_version(&args.etcd);
    if version.is_empty() {
        bail!(
            "{} does not run: apt-get install etcd-server, or pass --etcd",
            args.etcd.display()
        );
    }
    let work = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let timing = Timing {
        warmup: if args.quick {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        },
        measure: if args.quick {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(args.duration_s.clamp(1, 3_600))
        },
        request_timeout: LOAD_REQUEST_TIMEOUT,
    };
    let tries = if args.quick {
        1
    } else {
        args.tries.clamp(1, TRIES_MAX)
    };
    let (date, now) = utc_now();
    let machine = machine();
    let fsync = fsync_probe(&work)?;
    println!("etcd: {version}");
    println!("machine: {machine}");
    println!("fsync probe ({}): {fsync}", work.display());
    print_header();
    let mut rows = Vec::new();
    let mut fail = Value::Null;
    for s in &args.scenarios {
        match s.as_str() {
            "serial" => rows.extend(serial(&args, &work, timing).await?),
            "concurrent" => rows.extend(concurrent(&args, &work, timing).await?),
            "reads" => rows.extend(reads(&args, &work, timing).await?),
            _ => fail = failover(&args, &work, tries).await?,
        }
    }
    let report = json!({
        "bench": "etcd_load",
        "date": now,
        "machine": machine,
        "fsync_probe": fsync,
        "config": {
            "members": MEMBERS,
            "etcd_version": version,
            "keys": KEYS,
            "value_bytes": VALUE_BYTES,
            "heartbeat_ms": 100,
            "election_timeout_ms": 1000,
            "warmup_s": timing.warmup.as_secs_f64(),
            "measure_s": timing.measure.as_secs_f64(),
            "quick": args.quick,
        },
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
        "failover": fail,
    });
    let out = args.out.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results")
            .join(format!("etcd_load-{date}.json"))
    });
    write_json(&out, &report)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::select! {
        r = run(args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted; members killed")),
    }
}
