//! Agents against a live cluster: first sync, diffs, coalescing and
//! failover.

use alcor_host_push::PushConfig;
use tokio::task::JoinSet;

use crate::support::{
    assert_converged, host, populate, port, wait_acked, write_to, RunningAgent, TestCluster,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_full_syncs_then_follows_diffs_to_the_controller_digest() {
    let cluster = TestCluster::start(3, PushConfig::default()).await;
    let populated = populate(&cluster).await;
    // A follower serves what it has applied.
    let follower = cluster.follower().await;
    cluster.wait_applied(follower, populated).await;
    let agent = RunningAgent::start("h1", cluster.endpoints(&[follower]));
    agent.reach(populated).await;
    assert_eq!(agent.agent.counters().full_syncs, 1);
    assert_converged(&cluster, follower, &agent.agent).await;
    assert!(
        !agent.agent.table().is_empty(),
        "h1 has a port, a VPC, a subnet"
    );

    // A neighbor on h2, another own port, then a command h1 does not see.
    cluster.write(port(101, 1, "h2")).await;
    let own = cluster.write(port(102, 1, "h1")).await;
    agent.reach(own).await;
    let unrelated = cluster.write(host("h9", 9)).await;
    // Advanced by an empty DiffBatch after the idle delay.
    agent.reach(unrelated).await;
    cluster.wait_applied(follower, unrelated).await;
    assert_converged(&cluster, follower, &agent.agent).await;

    let counters = agent.agent.counters();
    assert_eq!(counters.full_syncs, 1, "{counters:?}");
    assert!(counters.diff_batches >= 2, "{counters:?}");
    assert_eq!(counters.gaps, 0, "{counters:?}");

    // Acks reach the node.
    wait_acked(&cluster.node(follower).push, "h1", unrelated).await;
    agent.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_for_one_host_are_coalesced_into_fewer_batches() {
    const N_COMMITS: u128 = 30;
    let cluster = TestCluster::start(3, PushConfig::default()).await;
    let populated = populate(&cluster).await;
    let leader = cluster.wait_leader().await;
    let agent = RunningAgent::start("h1", cluster.endpoints(&[leader]));
    agent.reach(populated).await;
    let before = agent.agent.counters();

    let mut writes = JoinSet::new();
    for n in 0..N_COMMITS {
        let raft = std::sync::Arc::clone(&cluster.node(leader).raft);
        writes.spawn(async move { write_to(&raft, port(200 + n, 1, "h1")).await });
    }
    let mut last = 0;
    while let Some(index) = writes.join_next().await {
        last = last.max(index.unwrap());
    }
    agent.reach(last).await;
    assert_converged(&cluster, leader, &agent.agent).await;

    let after = agent.agent.counters();
    let n_batches = after.diff_batches - before.diff_batches;
    assert!(
        n_batches < N_COMMITS as u64,
        "{N_COMMITS} commits for h1 arrived in {n_batches} batches"
    );
    assert_eq!(after.full_syncs, 1);
    agent.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_resumes_on_the_next_node_when_its_node_stops() {
    let mut cluster = TestCluster::start(3, PushConfig::default()).await;
    let populated = populate(&cluster).await;
    let leader = cluster.wait_leader().await;
    let follower = cluster.follower().await;
    let other = (1..=3).find(|id| *id != leader && *id != follower).unwrap();
    let agent = RunningAgent::start("h1", cluster.endpoints(&[follower, other, leader]));
    agent.reach(populated).await;
    cluster.write(port(101, 1, "h2")).await;
    let before_stop = cluster.write(port(102, 1, "h1")).await;
    agent.reach(before_stop).await;

    cluster.stop(follower).await;
    cluster.write(port(103, 1, "h1")).await;
    cluster.write(port(104, 1, "h3")).await;
    let last = cluster.write(port(105, 1, "h1")).await;
    agent.reach(last).await;
    cluster.wait_applied(other, last).await;
    assert_converged(&cluster, other, &agent.agent).await;

    let counters = agent.agent.counters();
    assert!(counters.reconnects >= 1, "{counters:?}");
    // Resumed from its revision: no second FullSync, no gap, no duplicate.
    assert_eq!(counters.full_syncs, 1, "{counters:?}");
    assert_eq!(counters.gaps, 0, "{counters:?}");
    wait_acked(&cluster.node(other).push, "h1", last).await;
    agent.stop().await;
    cluster.shutdown().await;
}
