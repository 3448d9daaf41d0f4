//! One test process simulates 1,000 host agents, each on its own gRPC
//! stream, spread over a real 3-member cluster; after a random mix of port
//! creates, updates, moves and deletes every agent holds exactly the
//! controller's goal state for its host (equal digests) and none saw a gap.
//! `alcor agent-sim` runs such agents as a separate process, alone on their
//! connections or sharing them.

use std::time::Duration;

use alcor_proto::api::v1 as pb;
use tokio::task::JoinSet;

use crate::cluster::ProcessCluster;
use crate::push::{agent_config, host_digest, RunningAgent};
use crate::workload::{self, req, uuid, PROJECT};

const AGENTS: usize = 1_000;
/// Random operations after the initial ports.
const OPERATIONS: u64 = 300;
/// Ports created before the random mix (the subnet is a /24).
const INITIAL_PORTS: u64 = 120;
/// Port ids the random creates may use (stays below the /24's room).
const PORT_IDS: u64 = 200;
/// Concurrent writers while registering hosts.
const HOST_WRITERS: usize = 16;

fn host(n: usize) -> String {
    format!("sim-{n:04}")
}

/// A tiny deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

async fn register_hosts(cluster: &ProcessCluster, targets: &[u64]) {
    let mut writers = JoinSet::new();
    for w in 0..HOST_WRITERS {
        let mut client = cluster
            .client(targets[w % targets.len()])
            .await
            .expect("client");
        writers.spawn(async move {
            for n in (w..AGENTS).step_by(HOST_WRITERS) {
                let message = pb::CreateHostRequest {
                    id: host(n),
                    project_id: PROJECT.into(),
                    underlay_ip: format!("172.16.{}.{}", n / 250, 1 + n % 250),
                    ..Default::default()
                };
                let mut done = false;
                for _ in 0..50 {
                    match client.create_host(req(message.clone())).await {
                        Ok(_) => done = true,
                        Err(s) if s.code() == tonic::Code::AlreadyExists => done = true,
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                    if done {
                        break;
                    }
                }
                assert!(done, "host {} not created", host(n));
            }
        });
    }
    while let Some(result) = writers.join_next().await {
        result.expect("host writer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_simulated_agents_converge_to_the_controller_digests_after_random_churn() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    cluster.leader(&all).await;
    let (vpc, subnet) = (uuid(0xf0), uuid(0xf1));
    register_hosts(&cluster, &all).await;
    workload::create_network(&cluster, &all, &vpc, &subnet).await;

    let agents: Vec<RunningAgent> = (0..AGENTS)
        .map(|n| {
            let endpoints = (0..all.len())
                .map(|k| cluster.api_addr(all[(n + k) % all.len()]))
                .collect();
            let mut config = agent_config(&host(n), endpoints);
            config.digest_interval = None;
            RunningAgent::start(config)
        })
        .collect();

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut live: Vec<bool> = vec![false; PORT_IDS as usize];
    for id in 0..INITIAL_PORTS {
        let on = host(rng.below(AGENTS as u64) as usize);
        workload::create_port(&cluster, &all, &vpc, &subnet, &uuid(id), &on).await;
        live[id as usize] = true;
    }
    let (mut creates, mut updates, mut moves, mut deletes) = (0, 0, 0, 0);
    for _ in 0..OPERATIONS {
        let id = rng.below(PORT_IDS);
        let port = uuid(id);
        let on = host(rng.below(AGENTS as u64) as usize);
        if !live[id as usize] {
            workload::create_port(&cluster, &all, &vpc, &subnet, &port, &on).await;
            live[id as usize] = true;
            creates += 1;
            continue;
        }
        match rng.below(3) {
            0 => {
                let message = pb::UpdatePortRequest {
                    id: port.clone(),
                    device_id: Some(format!("vm-{}", rng.below(1_000))),
                    ..Default::default()
                };
                workload::write(&cluster, &all, "update port", &[], |mut c| {
                    let message = message.clone();
                    async move { c.update_port(req(message)).await }
                })
                .await;
                updates += 1;
            }
            1 => {
                workload::bind_port(&cluster, &all, &port, &on).await;
                moves += 1;
            }
            _ => {
                workload::delete_port(&cluster, &all, &port).await;
                live[id as usize] = false;
                deletes += 1;
            }
        }
    }
    assert!(creates > 0 && updates > 0 && moves > 0 && deletes > 0);

    // Every agent converges to the controller's digest for its host.
    for running in &agents {
        let agent = &running.agent;
        let name = agent.host_id().to_string();
        cluster
            .eventually(&format!("{name} to match the controller"), || async {
                let expected = host_digest(&cluster, &all, &name).await?;
                let (revision, digest) = agent.revision_and_digest();
                (revision >= expected.revision && digest.as_slice() == expected.digest.as_slice())
                    .then_some(())
            })
            .await;
        let counters = agent.counters();
        assert_eq!(counters.gaps, 0, "{name}: {counters:?}");
    }
    let with_ports = agents
        .iter()
        .filter(|a| {
            a.agent
                .table()
                .keys()
                .any(|k| matches!(k, alcor_state_machine::GoalKey::Port(_)))
        })
        .count();
    assert!(with_ports > 0, "no agent holds a port");
}

/// A 3-member cluster with hosts `sim-00000..` (one per simulated agent) and
/// one port per host in one VPC (`vpc_seed` and the next id name the VPC and
/// its subnet; port n is bound to host `n * stride mod agents`); returns the
/// cluster and its API endpoints.
async fn sim_cluster(agents: u8, vpc_seed: u64, stride: u64) -> (ProcessCluster, Vec<String>) {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    cluster.leader(&all).await;
    let (vpc, subnet) = (uuid(vpc_seed), uuid(vpc_seed + 1));
    for n in 0..agents {
        workload::create_host(&cluster, &all, &format!("sim-{n:05}"), n + 1).await;
    }
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    for n in 0..u64::from(agents) {
        let on = format!("sim-{:05}", (n * stride) % u64::from(agents));
        workload::create_port(&cluster, &all, &vpc, &subnet, &uuid(n), &on).await;
    }
    let endpoints = all.iter().map(|id| cluster.api_addr(*id)).collect();
    (cluster, endpoints)
}

/// `alcor agent-sim` exited 0 and its last summary has every agent matching
/// the controller and no gap.
fn assert_every_agent_matched(output: &std::process::Output, agents: u8) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("agents {agents} matching {agents} ")),
        "{stdout}"
    );
    assert!(last.contains(" gaps 0"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_sim_command_runs_many_agents_until_they_match_the_controller() {
    const SIM_AGENTS: u8 = 20;
    let (_cluster, endpoints) = sim_cluster(SIM_AGENTS, 0xf8, 7).await;
    let output = tokio::process::Command::new(crate::cluster::BIN)
        .arg("agent-sim")
        .args(["--agents", &SIM_AGENTS.to_string()])
        .args(["--endpoints", &endpoints.join(",")])
        .args(["--report-interval-s", "1", "--exit-when-converged-s", "30"])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("agent-sim exits by itself")
        .expect("run agent-sim");
    assert_every_agent_matched(&output, SIM_AGENTS);
}

/// Established TCP connections held by process `pid` (its socket fds
/// matched by inode against `/proc/<pid>/net/tcp{,6}`).
fn tcp_connections_of(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    let inodes: std::collections::BTreeSet<String> = entries
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            let inode = target.strip_prefix("socket:[")?.strip_suffix(']')?;
            Some(inode.to_string())
        })
        .collect();
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .map(|line| {
                    line.split_whitespace()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        })
        // Column 3 is the state (01: established), column 9 the inode.
        .filter(|cols| cols.get(3).map(String::as_str) == Some("01"))
        .filter(|cols| cols.get(9).is_some_and(|inode| inodes.contains(inode)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_sim_agents_sharing_connections_each_stream_and_match_the_controller() {
    const SIM_AGENTS: u8 = 40;
    const PER_CONNECTION: u8 = 20;
    let (_cluster, endpoints) = sim_cluster(SIM_AGENTS, 0xe8, 3).await;
    let child = tokio::process::Command::new(crate::cluster::BIN)
        .arg("agent-sim")
        .args(["--agents", &SIM_AGENTS.to_string()])
        .args(["--agents-per-connection", &PER_CONNECTION.to_string()])
        .args(["--endpoints", &endpoints.join(",")])
        .args(["--report-interval-s", "4", "--exit-when-converged-s", "40"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run agent-sim");
    let pid = child.id().expect("agent-sim runs");
    // Between the first summary (at start) and the second (4 s later) the
    // agents connect and stream; the process must hold a few shared
    // connections (2 groups x 3 nodes at most, plus the summary's client),
    // not one per agent.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let connections = tcp_connections_of(pid);
    assert!(
        (1..=7).contains(&connections),
        "{connections} TCP connections for {SIM_AGENTS} agents sharing connections"
    );
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("agent-sim exits by itself")
        .expect("agent-sim output");
    assert_every_agent_matched(&output, SIM_AGENTS);
}
