//! Port status driven by acks: DOWN until the agent of the port's binding
//! host applied it, ACTIVE afterwards, ERROR with the agent's reason while
//! it fails, and no proposals at all when acks change nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use alcor_host_push::{PushConfig, StatusCounters, WaitAckedError};
use alcor_raft_core::NodeId;
use alcor_state_machine::limits::NAME_BYTES_MAX;
use alcor_state_machine::model::PortStatus;
use alcor_state_machine::{Command, Id, PortUpdate};
use tokio::time::Instant;

use crate::support::{host, populate, port, wait_acked, RunningAgent, TestCluster, WAIT_MAX};

/// Idle agents learn new revisions quickly, so that acks past a status
/// write (which changes no goal object) come soon.
fn config() -> PushConfig {
    PushConfig {
        idle_advance_ms: 50,
        ..PushConfig::default()
    }
}

/// Port `n`'s status read linearizably through node `id`.
async fn status(cluster: &TestCluster, id: NodeId, n: u128) -> PortStatus {
    cluster
        .node(id)
        .raft
        .read_linearizable(|state| state.port(&Id(n)).map(|p| p.status.clone()))
        .await
        .unwrap()
        .unwrap()
}

/// Waits until port `n` reads as `want` through node `id`.
async fn wait_status(cluster: &TestCluster, id: NodeId, n: u128, want: PortStatus) {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let now = status(cluster, id, n).await;
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "port {n} is {now:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status counters of every node, summed.
fn proposals(cluster: &TestCluster) -> u64 {
    (1..=3)
        .map(|id| cluster.node(id).push.status_counters().proposals)
        .sum()
}

fn move_port(n: u128, to: &str) -> Command {
    Command::UpdatePort {
        id: Id(n),
        update: PortUpdate {
            binding_host: Some(Some(to.to_string())),
            ..PortUpdate::default()
        },
        expected_revision: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_goes_from_down_to_active_once_its_hosts_agent_applied_it() {
    let cluster = TestCluster::start(3, config()).await;
    let populated = populate(&cluster).await;
    cluster.write(port(101, 1, "h2")).await;
    let leader = cluster.wait_leader().await;
    let follower = cluster.follower().await;
    assert_eq!(status(&cluster, leader, 100).await, PortStatus::Down);

    // The agent talks to a follower; the follower's proposal is forwarded.
    let agent = RunningAgent::start("h1", cluster.endpoints(&[follower]));
    agent.reach(populated).await;
    wait_status(&cluster, leader, 100, PortStatus::Active).await;
    assert_eq!(status(&cluster, follower, 100).await, PortStatus::Active);
    // h2 has no agent: its port stays down.
    assert_eq!(status(&cluster, leader, 101).await, PortStatus::Down);
    let counters = cluster.node(follower).push.status_counters();
    assert!(counters.proposals >= 1, "{counters:?}");

    agent.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_port_goes_error_with_the_agents_reason_and_active_once_healed() {
    let cluster = TestCluster::start(3, config()).await;
    let leader = cluster.wait_leader().await;
    let fail = BTreeMap::from([(Id(100), "no vif for vm-100".to_string())]);
    let agent = RunningAgent::start_failing("h1", cluster.endpoints(&[leader]), fail);
    populate(&cluster).await;
    cluster.write(port(102, 1, "h1")).await;

    let error = PortStatus::Error(Box::new("no vif for vm-100".to_string()));
    wait_status(&cluster, leader, 100, error).await;
    // The agent's other port is fine.
    wait_status(&cluster, leader, 102, PortStatus::Active).await;

    // A reason longer than the state machine allows, with a newline: cut
    // to NAME_BYTES_MAX, control characters replaced.
    let long = format!("line one\n{}", "x".repeat(400));
    agent
        .agent
        .set_failing_ports(BTreeMap::from([(Id(102), long)]));
    let mut want = format!("line one {}", "x".repeat(400));
    want.truncate(NAME_BYTES_MAX);
    wait_status(&cluster, leader, 102, PortStatus::Error(Box::new(want))).await;
    // 100 is no longer reported: healed.
    wait_status(&cluster, leader, 100, PortStatus::Active).await;

    agent.agent.set_failing_ports(BTreeMap::new());
    wait_status(&cluster, leader, 102, PortStatus::Active).await;

    agent.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_port_is_down_until_the_new_hosts_agent_applied_it() {
    let cluster = TestCluster::start(3, config()).await;
    let leader = cluster.wait_leader().await;
    let h1 = RunningAgent::start("h1", cluster.endpoints(&[leader]));
    populate(&cluster).await;
    wait_status(&cluster, leader, 100, PortStatus::Active).await;

    let moved = cluster.write(move_port(100, "h2")).await;
    assert_eq!(status(&cluster, leader, 100).await, PortStatus::Down);
    // h1's agent drops the port and acks past the move: that does not
    // make it active again.
    h1.reach(moved).await;
    wait_acked(&cluster.node(leader).push, "h1", moved).await;
    let push = &cluster.node(leader).push;
    let rounds = push.status_counters().rounds;
    let unrelated = cluster.write(host("h9", 9)).await;
    wait_acked(push, "h1", unrelated).await;
    wait_rounds(push, rounds).await;
    assert_eq!(status(&cluster, leader, 100).await, PortStatus::Down);

    let h2 = RunningAgent::start("h2", cluster.endpoints(&[leader]));
    h2.reach(moved).await;
    wait_status(&cluster, leader, 100, PortStatus::Active).await;

    h1.stop().await;
    h2.stop().await;
    cluster.shutdown().await;
}

/// Waits until `push`'s proposer completed a round after `rounds`.
async fn wait_rounds(push: &alcor_host_push::PushService, rounds: u64) {
    let deadline = Instant::now() + WAIT_MAX;
    while push.status_counters().rounds <= rounds {
        assert!(Instant::now() < deadline, "{:?}", push.status_counters());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_that_change_no_status_propose_nothing() {
    let cluster = TestCluster::start(3, config()).await;
    let leader = cluster.wait_leader().await;
    let agent = RunningAgent::start("h1", cluster.endpoints(&[leader]));
    populate(&cluster).await;
    wait_status(&cluster, leader, 100, PortStatus::Active).await;
    // Let the acks past the status write itself be planned too.
    let push = &cluster.node(leader).push;
    let rounds = push.status_counters().rounds;
    let settled = cluster.write(host("h8", 8)).await;
    agent.reach(settled).await;
    wait_acked(push, "h1", settled).await;
    wait_rounds(push, rounds).await;
    let before = proposals(&cluster);
    let acks_before = push.status_counters().acks;

    // Commands h1 does not see: idle advances, each acked.
    for n in 0..5u8 {
        let revision = cluster.write(host(&format!("idle-{n}"), 20 + n)).await;
        agent.reach(revision).await;
        wait_acked(push, "h1", revision).await;
    }
    // A change h1 does see, to a port that stays active.
    let neighbor = cluster.write(port(101, 1, "h3")).await;
    agent.reach(neighbor).await;
    // One more ack, offered after this read of the rounds: waiting for a
    // later round waits until the proposer planned it.
    let rounds = push.status_counters().rounds;
    let last = cluster.write(host("h7", 7)).await;
    wait_acked(push, "h1", last).await;
    wait_rounds(push, rounds).await;

    let after: StatusCounters = push.status_counters();
    assert!(after.acks >= acks_before + 6, "{after:?}");
    assert_eq!(proposals(&cluster), before, "{after:?}");
    assert_eq!(after.failures, 0, "{after:?}");
    assert_eq!(status(&cluster, leader, 100).await, PortStatus::Active);

    agent.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_acked_resolves_on_the_hosts_ack_to_this_node_only() {
    let cluster = TestCluster::start(3, config()).await;
    let populated = populate(&cluster).await;
    let leader = cluster.wait_leader().await;
    let follower = cluster.follower().await;
    let on_follower = cluster.node(follower).push.clone();
    let on_leader = cluster.node(leader).push.clone();

    let soon = Instant::now() + Duration::from_millis(100);
    assert_eq!(
        on_follower.wait_acked("h1", populated, soon).await,
        Err(WaitAckedError::Timeout { acked: None })
    );

    let waiter = tokio::spawn(async move {
        on_follower
            .wait_acked("h1", populated, Instant::now() + WAIT_MAX)
            .await
    });
    let agent = RunningAgent::start("h1", cluster.endpoints(&[follower]));
    let acked = waiter.await.unwrap().unwrap();
    assert!(acked >= populated, "acked {acked} < {populated}");

    // Acks to the follower do not count on the leader.
    let soon = Instant::now() + Duration::from_millis(200);
    assert!(matches!(
        on_leader.wait_acked("h1", populated, soon).await,
        Err(WaitAckedError::Timeout { acked: None })
    ));
    // Already acked: resolves at once.
    let at_once = Instant::now() + Duration::from_millis(1);
    let push = &cluster.node(follower).push;
    assert!(push.wait_acked("h1", populated, at_once).await.unwrap() >= populated);

    agent.stop().await;
    cluster.shutdown().await;
}
