//! Host agents survive the loss of the leader: agents streaming from the
//! killed node reconnect to another one, resume from their revision, and end
//! with exactly the goal state the controller holds for their host.

use std::time::Duration;

use alcor_host_push::{SimAgent, SimAgentConfig};
use alcor_proto::api::v1 as pb;
use tokio::task::JoinHandle;

use crate::cluster::{ProcessCluster, WAIT_MS_MAX};
use crate::workload::{self, req, uuid};

const HOSTS: [&str; 3] = ["host-a", "host-b", "host-c"];
/// Ports created before the leader is killed.
const INITIAL_PORTS: u64 = 6;
/// Writes after the kill.
const WRITES_AFTER_KILL: u64 = 30;

/// Runs an agent until dropped.
struct RunningAgent {
    agent: SimAgent,
    task: JoinHandle<()>,
}

impl RunningAgent {
    fn start(host: &str, endpoints: Vec<String>) -> RunningAgent {
        let mut config = SimAgentConfig::new(host, endpoints);
        config.reconnect_backoff_max = Duration::from_millis(500);
        let agent = SimAgent::new(config).expect("agent config");
        let task = tokio::spawn({
            let agent = agent.clone();
            async move { agent.run(std::future::pending()).await }
        });
        RunningAgent { agent, task }
    }

    /// Waits (bounded) until the agent's revision is at least `revision`.
    async fn reaches(&self, revision: u64) -> bool {
        let wait = Duration::from_millis(WAIT_MS_MAX);
        tokio::time::timeout(wait, self.agent.wait_for_revision(revision))
            .await
            .is_ok()
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `HostDigest` of `host` through the first of `targets` that answers.
async fn host_digest(
    cluster: &ProcessCluster,
    targets: &[u64],
    host: &str,
) -> Option<pb::HostDigestResponse> {
    for id in targets {
        let Some(mut client) = cluster.cluster_client(*id).await else {
            continue;
        };
        let message = pb::HostDigestRequest {
            host: host.into(),
            stale: false,
        };
        if let Ok(response) = client.host_digest(req(message)).await {
            return Some(response.into_inner());
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_on_a_killed_leader_reconnect_resume_and_match_the_controller_digest() {
    let mut cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    let leader = cluster.leader(&all).await;
    let vpc = uuid(0xa0);
    let subnet = uuid(0xa1);
    for (n, host) in (1..).zip(HOSTS) {
        workload::create_host(&cluster, &all, host, n).await;
    }
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    for n in 0..INITIAL_PORTS {
        let host = HOSTS[(n % 3) as usize];
        workload::create_port(&cluster, &all, &vpc, &subnet, &uuid(n), host).await;
    }

    // Agent i starts on member all[i] and moves on through the others, so
    // exactly one agent starts on the leader.
    let agents: Vec<RunningAgent> = HOSTS
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let endpoints = (0..all.len())
                .map(|k| cluster.api_addr(all[(i + k) % all.len()]))
                .collect();
            RunningAgent::start(host, endpoints)
        })
        .collect();
    let on_leader = all.iter().position(|id| *id == leader).expect("leader");
    let applied = cluster.quiescent(&all, 1).await;
    for a in &agents {
        assert!(
            a.reaches(applied).await,
            "agent {} stuck at {} < {applied}\n{}",
            a.agent.host_id(),
            a.agent.revision(),
            cluster.logs()
        );
    }
    assert_eq!(
        agents[on_leader].agent.counters().reconnects,
        0,
        "the leader's agent must still be on its first stream (the leader)"
    );
    let before_kill = agents[on_leader].agent.revision();

    // SIGKILL the leader and keep writing through the survivors: creates,
    // binding moves between hosts, deletes.
    cluster.kill(leader);
    let survivors: Vec<u64> = all.iter().copied().filter(|id| *id != leader).collect();
    for n in 0..WRITES_AFTER_KILL {
        let port = uuid(100 + n / 3);
        match n % 3 {
            0 => {
                let host = HOSTS[(n % 3) as usize];
                workload::create_port(&cluster, &survivors, &vpc, &subnet, &port, host).await
            }
            1 => {
                let host = HOSTS[((n / 3) % 3) as usize];
                workload::bind_port(&cluster, &survivors, &port, host).await
            }
            _ => {
                let initial = uuid((n / 3) % INITIAL_PORTS);
                if n / 3 < INITIAL_PORTS {
                    workload::delete_port(&cluster, &survivors, &initial).await
                } else {
                    let host = HOSTS[((n / 3 + 1) % 3) as usize];
                    workload::bind_port(&cluster, &survivors, &port, host).await
                }
            }
        }
    }

    // The killed member comes back and catches up.
    cluster.spawn(leader);
    cluster.quiescent(&all, applied).await;

    for a in &agents {
        let host = a.agent.host_id().to_string();
        let matched = cluster
            .eventually("an agent's digest to equal the controller's", || async {
                let expected = host_digest(&cluster, &all, &host).await?;
                let wait = Duration::from_millis(2_000);
                tokio::time::timeout(wait, a.agent.wait_for_revision(expected.revision))
                    .await
                    .ok()?;
                (a.agent.digest().as_slice() == expected.digest.as_slice())
                    .then_some(expected.revision)
            })
            .await;
        assert!(matched > before_kill, "{host}: digest read at {matched}");
        let counters = a.agent.counters();
        assert_eq!(counters.gaps, 0, "{host}: {counters:?}");
    }
    let moved = agents[on_leader].agent.counters();
    assert!(
        moved.reconnects >= 1,
        "the agent on the killed leader must have reconnected: {moved:?}"
    );
    assert!(agents[on_leader].agent.revision() > before_kill);
    // It resumed from its revision: one FullSync at its first connect, diffs
    // after the reconnect (the survivors' windows still hold its revision).
    assert_eq!(moved.full_syncs, 1, "{moved:?}");
}
