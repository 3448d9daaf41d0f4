//! In-process clusters over real loopback gRPC: bootstrap from the static
//! member list, forwarding, linearizable reads, restarts and catch-up by
//! snapshot.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use alcor_raft_core::{
    AppliedEvent, Node, NodeId, RaftListen, RaftNode, RaftNodeConfig, WriteError,
};
use alcor_state_machine::{Command, Proposal};
use tempfile::TempDir;
use tokio::net::TcpListener;

/// Upper bound for any wait in these tests.
const WAIT_MAX: Duration = Duration::from_secs(20);

/// A proposal registering host `h{n}`.
pub(crate) fn create_host(n: u64) -> Proposal {
    Proposal {
        time_ms: 1_700_000_000_000 + n,
        command: Command::CreateHost {
            id: format!("h{n}"),
            project_id: "p".to_string(),
            underlay_ip: std::net::IpAddr::V4(Ipv4Addr::new(
                10,
                0,
                (n / 256) as u8,
                (n % 256) as u8,
            )),
        },
    }
}

fn host_exists(n: u64) -> impl FnOnce(&alcor_state_machine::State) -> bool {
    move |state| state.host(&format!("h{n}")).is_some()
}

pub(crate) struct TestCluster {
    nodes: BTreeMap<NodeId, RaftNode>,
    dirs: BTreeMap<NodeId, TempDir>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    members: BTreeMap<NodeId, Node>,
    tune: fn(&mut RaftNodeConfig),
}

impl TestCluster {
    /// Starts nodes `1..=n`, all given the same static member list.
    pub(crate) async fn start(n: u64, tune: fn(&mut RaftNodeConfig)) -> TestCluster {
        let mut listeners = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        let mut members = BTreeMap::new();
        for id in 1..=n {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let node = Node {
                raft_addr: addr.to_string(),
                api_addr: format!("api-{id}:0"),
            };
            members.insert(id, node);
            addrs.insert(id, addr);
            listeners.insert(id, listener);
        }
        let mut cluster = TestCluster {
            nodes: BTreeMap::new(),
            dirs: BTreeMap::new(),
            addrs,
            members,
            tune,
        };
        // Start the higher ids first: they must wait for the lowest one.
        for (id, listener) in listeners.into_iter().rev() {
            cluster.dirs.insert(id, TempDir::new().unwrap());
            cluster.launch(id, RaftListen::Listener(listener)).await;
        }
        cluster
    }

    async fn launch(&mut self, id: NodeId, listen: RaftListen) {
        let dir = self.dirs[&id].path().to_path_buf();
        let mut config = RaftNodeConfig::new(id, dir, listen, self.members.clone());
        (self.tune)(&mut config);
        let node = RaftNode::start(config).await.unwrap();
        self.nodes.insert(id, node);
    }

    pub(crate) fn node(&self, id: NodeId) -> &RaftNode {
        &self.nodes[&id]
    }

    /// Stops node `id`, keeping its data dir.
    pub(crate) async fn stop(&mut self, id: NodeId) {
        let node = self.nodes.remove(&id).unwrap();
        node.shutdown().await.unwrap();
    }

    /// Restarts node `id` from its data dir on its old address.
    pub(crate) async fn restart(&mut self, id: NodeId) {
        let addr = self.addrs[&id];
        self.launch(id, RaftListen::Addr(addr)).await;
    }

    /// Starts a new, empty node `id` that is not a member yet. Its static
    /// member list is the cluster's plus itself; it does not bootstrap
    /// because it is not the lowest id.
    pub(crate) async fn add_node(&mut self, id: NodeId) -> Node {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let node = Node {
            raft_addr: addr.to_string(),
            api_addr: format!("api-{id}:0"),
        };
        self.members.insert(id, node.clone());
        self.addrs.insert(id, addr);
        self.dirs.insert(id, TempDir::new().unwrap());
        self.launch(id, RaftListen::Listener(listener)).await;
        node
    }

    /// Waits until every running node agrees on one leader; returns it.
    pub(crate) async fn wait_leader(&self) -> NodeId {
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        loop {
            let leaders: Vec<_> = self.nodes.values().map(|n| n.metrics().leader).collect();
            if let Some(Some(leader)) = leaders.first() {
                if leaders.iter().all(|l| *l == Some(*leader)) && self.nodes.contains_key(leader) {
                    return *leader;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no agreed leader: {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Some running node other than the leader.
    pub(crate) async fn follower(&self) -> NodeId {
        let leader = self.wait_leader().await;
        *self.nodes.keys().find(|id| **id != leader).unwrap()
    }

    pub(crate) async fn shutdown(mut self) {
        let ids: Vec<_> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_follower_commits_and_reads_linearizably_on_every_node() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let follower = cluster.follower().await;
    let mut applied = cluster.node(1).subscribe_applied();

    let response = cluster
        .node(follower)
        .client_write(create_host(1))
        .await
        .unwrap();
    assert!(response.result.is_ok(), "{response:?}");

    for id in 1..=3 {
        let found = cluster
            .node(id)
            .read_linearizable(host_exists(1))
            .await
            .unwrap();
        assert!(found, "node {id} does not see h1 after a linearizable read");
    }
    // Every applied entry is published, the proposal's included.
    let seen = tokio::time::timeout(WAIT_MAX, async {
        loop {
            if let AppliedEvent::Entry { log_index, .. } = applied.recv().await.unwrap() {
                if log_index == response.log_index {
                    return;
                }
            }
        }
    })
    .await;
    assert!(
        seen.is_ok(),
        "no applied event for index {}",
        response.log_index
    );

    let metrics = cluster.node(follower).metrics();
    assert_eq!(metrics.voters.len(), 3);
    assert!(metrics.committed_index >= Some(response.log_index));
    cluster.shutdown().await;
}

/// Writes on every member while followers campaign, term after term. A
/// write that reaches a leader which just stepped down is refused ("forward
/// to leader") while the asking member's metrics may still name that leader
/// (a follower keeps it until it hears of the new term); the write must
/// wait for news of a new leader instead of spending its attempts at once
/// and failing `NoLeader`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_while_leadership_moves_wait_for_the_new_leader_instead_of_failing_no_leader() {
    const CHANGES: usize = 4;
    let cluster = TestCluster::start(3, |_| {}).await;
    let done = AtomicBool::new(false);

    let changes = async {
        for _ in 0..CHANGES {
            let leader = cluster.wait_leader().await;
            let term = cluster.node(leader).metrics().term;
            let candidate = cluster.follower().await;
            // A campaign may only unseat the leader (the others refuse
            // their votes while their lease lasts): campaign until the
            // cluster agrees on a leader of a later term.
            let moved = tokio::time::timeout(WAIT_MAX, async {
                loop {
                    cluster.node(candidate).campaign().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let now = cluster.wait_leader().await;
                    if cluster.node(now).metrics().term > term {
                        return;
                    }
                }
            })
            .await;
            assert!(moved.is_ok(), "leadership did not move from {leader}");
            // Let writes flow under the new leader before the next change.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        done.store(true, Ordering::Relaxed);
    };
    let writes = |id: NodeId| {
        let (cluster, done) = (&cluster, &done);
        async move {
            let (mut committed, mut no_leader) = (0u64, 0u64);
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                n += 1;
                match cluster
                    .node(id)
                    .client_write(create_host(id * 100_000 + n))
                    .await
                {
                    Ok(_) => committed += 1,
                    Err(WriteError::NoLeader) => no_leader += 1,
                    // The outcome-unknown answers are allowed here.
                    Err(_) => {}
                }
            }
            (id, committed, no_leader)
        }
    };
    let ((), w1, w2, w3) = tokio::join!(changes, writes(1), writes(2), writes(3));
    for (id, committed, no_leader) in [w1, w2, w3] {
        assert!(committed > 0, "node {id} committed no write");
        assert_eq!(
            no_leader, 0,
            "node {id}: {no_leader} writes failed NoLeader ({committed} committed)"
        );
    }
    cluster.shutdown().await;
}

/// A leader cut off from its quorum refuses writes for a lapsed lease; a
/// write through it fails `NoLeader` (not appended, retry-safe) after
/// `WRITE_LEASE_WAIT_MAX`, not at the end of a long request timeout, and
/// the member's metrics count the refusals it waited out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_leader_without_its_quorum_fails_no_leader_before_the_request_timeout() {
    let mut cluster = TestCluster::start(3, |config| config.request_timeout_ms = 60_000).await;
    let leader = cluster.wait_leader().await;
    cluster
        .node(leader)
        .client_write(create_host(1))
        .await
        .unwrap();
    let followers: Vec<NodeId> = (1..=3).filter(|id| *id != leader).collect();
    for id in followers {
        cluster.stop(id).await;
    }
    // Past the leader's lease (the election timeout's maximum).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let write = cluster.node(leader).client_write(create_host(2));
    let answer = tokio::time::timeout(WAIT_MAX, write).await;
    assert!(
        matches!(answer, Ok(Err(WriteError::NoLeader))),
        "{answer:?}"
    );
    let mut registry = prometheus_client::registry::Registry::with_prefix("alcor");
    cluster.node(leader).register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    let refusals = text
        .lines()
        .find_map(|line| line.strip_prefix("alcor_server_write_lease_refusals_total "))
        .and_then(|value| value.parse::<f64>().ok());
    // One refusal per retry, every WRITE_RETRY_BACKOFF over the wait.
    assert!(refusals.is_some_and(|n| n >= 2.0), "{text}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_proposal_is_a_value_not_an_error() {
    let cluster = TestCluster::start(1, |_| {}).await;
    cluster.wait_leader().await;
    let first = cluster.node(1).client_write(create_host(1)).await.unwrap();
    assert!(first.result.is_ok());
    let again = cluster.node(1).client_write(create_host(1)).await.unwrap();
    assert!(
        again.result.is_err(),
        "creating h1 twice must be rejected: {again:?}"
    );
    assert!(again.log_index > first.log_index);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_metrics_resolves_when_raft_publishes_the_awaited_state_and_gives_up_at_the_deadline()
{
    let cluster = TestCluster::start(1, |_| {}).await;
    cluster.wait_leader().await;
    let node = cluster.node(1);
    let applied = node.metrics().applied_index.unwrap_or(0);
    let waiting = node.wait_metrics(tokio::time::Instant::now() + WAIT_MAX, |m| {
        m.applied_index > Some(applied)
    });
    let write = node.client_write(create_host(1));
    let (seen, written) = tokio::join!(waiting, write);
    let written = written.unwrap();
    let seen = seen.expect("the write's apply is published before the deadline");
    assert!(seen.applied_index >= Some(written.log_index), "{seen:?}");

    let never = node
        .wait_metrics(
            tokio::time::Instant::now() + Duration::from_millis(200),
            |m| m.term == u64::MAX,
        )
        .await;
    assert!(never.is_none(), "{never:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cluster_restart_keeps_committed_data_and_does_not_reinitialize() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    cluster.wait_leader().await;
    let mut last = 0;
    for n in 1..=5 {
        last = cluster
            .node(1)
            .client_write(create_host(n))
            .await
            .unwrap()
            .log_index;
    }
    for id in 1..=3 {
        cluster.stop(id).await;
    }
    for id in 1..=3 {
        cluster.restart(id).await;
    }
    cluster.wait_leader().await;
    for id in 1..=3 {
        let node = cluster.node(id);
        node.raft()
            .wait(Some(WAIT_MAX))
            .applied_index_at_least(Some(last), "replay after restart")
            .await
            .unwrap();
        for n in 1..=5 {
            assert!(
                node.read_stale(host_exists(n)).unwrap(),
                "node {id} lost h{n}"
            );
        }
        assert_eq!(node.metrics().voters.len(), 3);
    }
    let response = cluster.node(2).client_write(create_host(6)).await.unwrap();
    assert!(response.result.is_ok());
    assert!(cluster
        .node(3)
        .read_linearizable(host_exists(6))
        .await
        .unwrap());
    cluster.shutdown().await;
}

fn snapshot_often(config: &mut RaftNodeConfig) {
    config.snapshot_logs_since_last = 5;
    config.snapshot_logs_to_keep = 0;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_behind_purged_log_catches_up_by_snapshot() {
    let mut cluster = TestCluster::start(3, snapshot_often).await;
    let lagging = cluster.follower().await;
    cluster.stop(lagging).await;

    let leader = cluster.wait_leader().await;
    let mut last = 0;
    for n in 1..=20 {
        last = cluster
            .node(leader)
            .client_write(create_host(n))
            .await
            .unwrap()
            .log_index;
    }
    cluster.node(leader).trigger_snapshot().await.unwrap();
    cluster
        .node(leader)
        .raft()
        .wait(Some(WAIT_MAX))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index >= 10),
            "leader purged its log",
        )
        .await
        .unwrap();

    cluster.restart(lagging).await;
    let node = cluster.node(lagging);
    node.raft()
        .wait(Some(WAIT_MAX))
        .applied_index_at_least(Some(last), "catch up")
        .await
        .unwrap();
    assert!(
        node.metrics().snapshot_index.is_some(),
        "caught up without a snapshot"
    );
    for n in 1..=20 {
        assert!(
            node.read_stale(host_exists(n)).unwrap(),
            "h{n} missing after snapshot install"
        );
    }
    // And it restarts from that snapshot too.
    cluster.stop(lagging).await;
    cluster.restart(lagging).await;
    let node = cluster.node(lagging);
    assert!(node.read_linearizable(host_exists(20)).await.unwrap());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lowest_id_bootstraps() {
    let cluster = TestCluster::start(2, |_| {}).await;
    // Node 1 initialized; a leader needs both votes of the 2-node cluster.
    let leader = cluster.wait_leader().await;
    assert!(cluster.node(2).raft().is_initialized().await.unwrap());
    let metrics = cluster.node(leader).metrics();
    assert_eq!(metrics.voters.into_iter().collect::<Vec<_>>(), vec![1, 2]);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learner_is_promoted_to_voter_and_removed_again() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_leader().await;
    cluster
        .node(leader)
        .client_write(create_host(1))
        .await
        .unwrap();
    let follower = cluster.follower().await;
    let node4 = cluster.add_node(4).await;
    let refused = cluster
        .node(follower)
        .add_learner(4, node4.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, alcor_raft_core::AdminError::NotLeader { leader_id: Some(l), .. } if l == leader),
        "{refused:?}"
    );

    cluster.node(leader).add_learner(4, node4).await.unwrap();
    let voters = [1, 2, 3, 4].into_iter().collect();
    cluster
        .node(leader)
        .change_membership(voters, false)
        .await
        .unwrap();
    assert_eq!(cluster.node(leader).metrics().voters.len(), 4);
    assert!(cluster
        .node(4)
        .read_linearizable(host_exists(1))
        .await
        .unwrap());
    let response = cluster.node(4).client_write(create_host(2)).await.unwrap();
    assert!(response.result.is_ok());

    cluster.node(leader).remove_member(4).await.unwrap();
    let metrics = cluster.node(leader).metrics();
    assert_eq!(
        metrics.voters.into_iter().collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(!metrics.nodes.contains_key(&4));
    cluster.shutdown().await;
}
