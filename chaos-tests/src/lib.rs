//! Seeded, in-process fault runs of the real node code: several raft-core
//! nodes (real openraft, RocksDB on disk, gRPC over loopback) in one process,
//! a seed-derived schedule of partitions, one-way cuts, lossy links (drop,
//! duplicate, delay) and crash-restarts from the same data directory, client
//! tasks adding unique hosts and reading linearizably meanwhile, then a heal,
//! a liveness deadline and safety checks ([`check`]).
//!
//! A failing seed is printed with the command that replays its schedule:
//! `CHAOS_SEED=<seed> cargo test -p alcor-chaos-tests --test seeds`.
//! The seed fixes the faults and their offsets; thread interleavings still
//! vary, so a replay reproduces the conditions, not the exact execution.
//! The black-box counterpart with real processes and iptables is `jepsen/`.

pub mod check;
mod cluster;
pub mod faults;
pub mod schedule;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alcor_raft_core::{Mutation, NodeId, RaftNode, WriteError};
use alcor_state_machine::{Command, Proposal, State};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::check::{Op, Outcome, Violation};
use crate::cluster::Cluster;
use crate::faults::Net;
use crate::schedule::{schedule, Fault};

/// Values added by one client process are `process * VALUES_PER_PROCESS_MAX + n`.
const VALUES_PER_PROCESS_MAX: u64 = 100_000;
/// Client processes of one run at most.
pub const CLIENTS_MAX: u64 = 16;
/// After healing, a write must be acknowledged within this.
const RECOVERY_MAX: Duration = Duration::from_secs(15);
/// After the last write, every node must apply it within this.
const CONVERGE_MAX: Duration = Duration::from_secs(15);

/// What one run does.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Cluster size (3 or 5).
    pub nodes: u64,
    /// How long faults are injected.
    pub duration: Duration,
    /// Concurrent client tasks (at most [`CLIENTS_MAX`]).
    pub clients: u64,
    /// A deliberate bug in every node (mutation testing); `None` normally.
    pub mutation: Option<Mutation>,
}

/// What a passing run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Acknowledged adds.
    pub adds_ok: usize,
    /// Adds proven not applied.
    pub adds_fail: usize,
    /// Adds with unknown outcome.
    pub adds_info: usize,
    /// Linearizable reads that returned.
    pub reads_ok: usize,
    /// Faults applied from the schedule.
    pub faults: usize,
    /// Crash-restarts among them.
    pub crashes: usize,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A safety property broke.
    #[error("safety violation: {0}")]
    Violation(#[from] Violation),
    /// The cluster did not recover after healing.
    #[error("no recovery: {0}")]
    Liveness(String),
    /// A node could not start or stop.
    #[error("node: {0}")]
    Node(String),
    /// Local I/O (temp dirs, sockets).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

fn add_proposal(value: u64) -> Proposal {
    let octets = value.to_be_bytes();
    Proposal {
        time_ms: 1_700_000_000_000 + value,
        command: Command::CreateHost {
            id: format!("h{value}"),
            project_id: "chaos".to_string(),
            underlay_ip: IpAddr::V4(Ipv4Addr::new(10, octets[5], octets[6], octets[7])),
        },
    }
}

fn values(state: &State) -> BTreeSet<u64> {
    state
        .hosts()
        .filter_map(|h| h.id.strip_prefix('h').and_then(|v| v.parse().ok()))
        .collect()
}

fn pick_node(live: &cluster::Live, rng: &mut ChaCha8Rng) -> Option<Arc<RaftNode>> {
    let live = live.read().unwrap_or_else(|e| e.into_inner());
    let nodes: Vec<_> = live.values().cloned().collect();
    if nodes.is_empty() {
        return None;
    }
    Some(Arc::clone(&nodes[rng.random_range(0..nodes.len())]))
}

async fn add(node: &RaftNode, value: u64, start: Instant) -> Op {
    add_at(node, value, start).await.0
}

/// [`add`], and the log index the add was applied at when it was acked.
async fn add_at(node: &RaftNode, value: u64, start: Instant) -> (Op, Option<u64>) {
    let invoke = start.elapsed();
    let (outcome, index) = match node.client_write(add_proposal(value)).await {
        Ok(response) if response.result.is_ok() => (Outcome::Ok(None), Some(response.log_index)),
        // A rejection is a committed, deterministic "no".
        Ok(_) => (Outcome::Fail, None),
        // Documented as "not appended": proven non-application.
        Err(WriteError::NoLeader) => (Outcome::Fail, None),
        Err(_) => (Outcome::Info, None),
    };
    let op = Op {
        add: Some(value),
        invoke,
        complete: start.elapsed(),
        outcome,
    };
    (op, index)
}

async fn client(
    process: u64,
    seed: u64,
    live: cluster::Live,
    stop: Arc<AtomicBool>,
    start: Instant,
) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (process + 1).wrapping_mul(0x9E37_79B9));
    let mut ops = Vec::new();
    let mut next = process * VALUES_PER_PROCESS_MAX + 1;
    while !stop.load(Ordering::Relaxed) {
        let Some(node) = pick_node(&live, &mut rng) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if rng.random_range(0..3) == 0 {
            let invoke = start.elapsed();
            if let Ok(seen) = node.read_linearizable(values).await {
                ops.push(Op {
                    add: None,
                    invoke,
                    complete: start.elapsed(),
                    outcome: Outcome::Ok(Some(seen)),
                });
            }
        } else {
            ops.push(add(&node, next, start).await);
            next += 1;
        }
    }
    ops
}

/// Runs seed `seed`: faults per [`schedule`], clients meanwhile, then heal,
/// a write within the recovery deadline, convergence of every node and the
/// checks of [`check::check`].
pub async fn run_seed(seed: u64, config: &RunConfig) -> Result<RunReport, RunError> {
    let net = Arc::new(Net::new(seed));
    let cluster = Cluster::start(config.nodes, Arc::clone(&net), config.mutation).await?;
    let result = drive(seed, config, &cluster, &net).await;
    cluster.shutdown().await;
    result
}

async fn drive(
    seed: u64,
    config: &RunConfig,
    cluster: &Cluster,
    net: &Net,
) -> Result<RunReport, RunError> {
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for process in 0..config.clients.min(CLIENTS_MAX) {
        let (live, stop) = (Arc::clone(&cluster.live), Arc::clone(&stop));
        clients.spawn(client(process, seed, live, stop, start));
    }
    let mut report = RunReport {
        seed,
        ..RunReport::default()
    };
    for step in schedule(seed, config.nodes, config.duration) {
        tokio::time::sleep_until((start + step.at).into()).await;
        match step.fault {
            Fault::Heal => net.heal(),
            Fault::Isolate(id) => {
                let rest: BTreeSet<NodeId> = (1..=config.nodes).filter(|n| *n != id).collect();
                net.partition(&[BTreeSet::from([id]), rest]);
            }
            Fault::Halves(minority) => {
                let rest = (1..=config.nodes)
                    .filter(|n| !minority.contains(n))
                    .collect();
                net.partition(&[minority, rest]);
            }
            Fault::OneWay { from, to } => net.cut_one_way(from, to),
            Fault::Lossy(lossy) => net.set_lossy(lossy),
            Fault::Crash(id) => {
                cluster.crash(id).await?;
                report.crashes += 1;
            }
            Fault::Restart(id) => cluster.restart(id).await?,
        }
        report.faults += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let mut ops = Vec::new();
    while let Some(done) = clients.join_next().await {
        ops.extend(done.map_err(|e| RunError::Node(format!("client task: {e}")))?);
    }

    // Liveness: healed, every node up, one write must go through.
    // Each attempt adds a fresh value: a timed-out attempt may have been
    // applied, and retrying the same host id would then be refused forever.
    let recovery_deadline = Instant::now() + RECOVERY_MAX;
    let mut final_value = (CLIENTS_MAX + 1) * VALUES_PER_PROCESS_MAX;
    let final_index = loop {
        final_value += 1;
        let nodes = cluster.nodes();
        let node = &nodes[(final_value as usize) % nodes.len()].1;
        let (op, index) = add_at(node, final_value, start).await;
        ops.push(op);
        // The acked write's own index: committed, so every node reaches it.
        // (A node's last log index may hold an entry that never commits, a
        // deposed leader's; applied-index metrics may lag the ack.)
        if let Some(index) = index {
            break index;
        }
        if Instant::now() > recovery_deadline {
            return Err(RunError::Liveness(format!(
                "no write acknowledged {RECOVERY_MAX:?} after healing"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let finals = converge(cluster, final_index).await?;
    check::check(&ops, &finals)?;
    for op in &ops {
        match (&op.add, &op.outcome) {
            (Some(_), Outcome::Ok(_)) => report.adds_ok += 1,
            (Some(_), Outcome::Fail) => report.adds_fail += 1,
            (Some(_), Outcome::Info) => report.adds_info += 1,
            (None, Outcome::Ok(_)) => report.reads_ok += 1,
            _ => {}
        }
    }
    Ok(report)
}

type Finals = BTreeMap<u64, (BTreeSet<u64>, Vec<u8>)>;

/// Waits until every node applied the same index (at least `index`) and
/// returns each node's values and snapshot bytes.
async fn converge(cluster: &Cluster, index: u64) -> Result<Finals, RunError> {
    let deadline = Instant::now() + CONVERGE_MAX;
    loop {
        let nodes = cluster.nodes();
        let applied: BTreeSet<Option<u64>> = nodes
            .iter()
            .map(|(_, n)| n.metrics().applied_index)
            .collect();
        if applied.len() == 1 && applied.first().copied().flatten() >= Some(index) {
            let mut finals = BTreeMap::new();
            for (id, node) in &nodes {
                let read = node.read_stale(|s| (values(s), s.snapshot()));
                let read = read.map_err(|e| RunError::Node(format!("read node {id}: {e}")))?;
                finals.insert(*id, read);
            }
            // Re-check: nothing was applied while we read.
            let after: BTreeSet<Option<u64>> = nodes
                .iter()
                .map(|(_, n)| n.metrics().applied_index)
                .collect();
            if after == applied {
                return Ok(finals);
            }
        }
        if Instant::now() > deadline {
            return Err(RunError::Liveness(format!(
                "nodes did not converge on index {index}: applied {applied:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
