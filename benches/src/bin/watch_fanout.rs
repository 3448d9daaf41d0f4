//! Watch fan-out: 1,000 watchers (default) on one 3-process cluster, spread
//! over its members; sequential VPC creates; reports the delay from sending
//! each create to each watcher receiving its event (so commit time is
//! included), p50/p99 over every (watcher, write) pair, and the creates' own
//! latency for comparison.
//!
//! Usage: `cargo build --release -p alcor-node && cargo run --release -p
//! alcor-benches --bin watch_fanout -- [watchers] [writes] [alcor binary]`

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use anyhow::{anyhow, Context};
use tokio::sync::Mutex;
use tonic::transport::{Channel, Endpoint};

/// Cluster size.
const MEMBERS: u64 = 3;
/// First port used (API ports base+1.., Raft ports base+101..).
const BASE_PORT: u64 = 27_400;
/// Watch streams per HTTP/2 connection (below the server's stream limit).
const STREAMS_PER_CHANNEL: usize = 50;

struct Members(Vec<Child>);

impl Drop for Members {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

async fn channel(api: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{api}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let watchers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let writes: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let alcor = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "target/release/alcor".into());
    let root = tempfile::tempdir()?;
    let apis: Vec<String> = (1..=MEMBERS)
        .map(|id| format!("127.0.0.1:{}", BASE_PORT + id))
        .collect();
    let initial = (1..=MEMBERS)
        .map(|id| {
            format!(
                "{id}=127.0.0.1:{}/127.0.0.1:{}",
                BASE_PORT + 100 + id,
                BASE_PORT + id
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Members(Vec::new());
    for id in 1..=MEMBERS {
        let child = Command::new(&alcor)
            .args(["server", "--insecure", "--id", &id.to_string()])
            .args(["--api-addr", &apis[(id - 1) as usize]])
            .args([
                "--raft-addr",
                &format!("127.0.0.1:{}", BASE_PORT + 100 + id),
            ])
            .arg("--data-dir")
            .arg(root.path().join(format!("node-{id}")))
            .args(["--initial-cluster", &initial, "--log", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {alcor}"))?;
        children.0.push(child);
    }
    // Writes go to member 1 (forwarded if it is not the leader); unlimited quota.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut writer = loop {
        if let Ok(ch) = channel(&apis[0]).await {
            let mut c = OrchestratorClient::new(ch);
            let quota = pb::SetQuotaRequest {
                project_id: "bench".into(),
                network: Some(-1),
                ..Default::default()
            };
            if c.set_quota(quota).await.is_ok() {
                break c;
            }
        }
        if Instant::now() > deadline {
            return Err(anyhow!("no leader within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let start = writer
        .list_vpcs(pb::ListVpcsRequest::default())
        .await?
        .into_inner()
        .revision;

    // Watchers, round-robin over the members, STREAMS_PER_CHANNEL per connection.
    let arrivals: Arc<Mutex<Vec<BTreeMap<u64, Instant>>>> =
        Arc::new(Mutex::new(vec![BTreeMap::new(); watchers]));
    let mut channels: Vec<Channel> = Vec::new();
    let mut tasks = Vec::new();
    for w in 0..watchers {
        if w % STREAMS_PER_CHANNEL == 0 {
            channels.push(channel(&apis[(w / STREAMS_PER_CHANNEL) % apis.len()]).await?);
        }
        let mut client = OrchestratorClient::new(channels[channels.len() - 1].clone());
        let request = pb::WatchRequest {
            kind: pb::ResourceKind::Vpc as i32,
            from_revision: Some(start),
        };
        let mut stream = client.watch(request).await?.into_inner();
        let arrivals = Arc::clone(&arrivals);
        tasks.push(tokio::spawn(async move {
            let mut seen = 0;
            while seen < writes {
                match stream.message().await {
                    Ok(Some(event)) => {
                        let now = Instant::now();
                        arrivals.lock().await[w].insert(event.revision, now);
                        seen += 1;
                    }
                    _ => return,
                }
            }
        }));
    }
    let mut sent = BTreeMap::new();
    let mut write_ms = Vec::with_capacity(writes);
    for n in 0..writes {
        let request = pb::CreateVpcRequest {
            project_id: "bench".into(),
            name: format!("fanout-{n}"),
            ..Default::default()
        };
        let t0 = Instant::now();
        let vpc = writer.create_vpc(request).await?.into_inner();
        write_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        sent.insert(vpc.revision, t0);
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .map_err(|_| anyhow!("a watcher did not receive every event within 60 s"))??;
    }
    let arrivals = arrivals.lock().await;
    let mut delays = Vec::with_capacity(watchers * writes);
    for per_watcher in arrivals.iter() {
        for (revision, t0) in &sent {
            let at = per_watcher
                .get(revision)
                .ok_or_else(|| anyhow!("revision {revision} missing at a watcher"))?;
            delays.push(at.duration_since(*t0).as_secs_f64() * 1e3);
        }
    }
    delays.sort_by(f64::total_cmp);
    write_ms.sort_by(f64::total_cmp);
    println!(
        "watchers: {watchers} over {MEMBERS} members, writes: {writes} sequential VPC creates"
    );
    println!(
        "send-to-delivery: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms ({} samples)",
        pct(&delays, 0.5),
        pct(&delays, 0.99),
        delays.last().copied().unwrap_or(f64::NAN),
        delays.len()
    );
    println!(
        "create latency: p50 {:.2} ms  p99 {:.2} ms",
        pct(&write_ms, 0.5),
        pct(&write_ms, 0.99)
    );
    Ok(())
}
