//! A cluster of Raft nodes each serving `PushService` on its own port, and
//! command builders.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use alcor_host_push::{PushConfig, PushService, SimAgent, SimAgentConfig};
use alcor_raft_core::{Node, NodeId, RaftListen, RaftNode, RaftNodeConfig};
use alcor_state_machine::model::Quota;
use alcor_state_machine::{goal_digest, Command, GatewaySpec, GoalState, Id, PortSpec, Proposal};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

/// Upper bound for any wait in these tests.
pub(crate) const WAIT_MAX: Duration = Duration::from_secs(20);

/// The project every test resource belongs to.
const PROJECT: &str = "proj-a";

/// One node: Raft plus its push server.
pub(crate) struct PushNode {
    pub(crate) raft: Arc<RaftNode>,
    pub(crate) push: PushService,
    pub(crate) push_addr: SocketAddr,
    server_stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

pub(crate) struct TestCluster {
    nodes: BTreeMap<NodeId, PushNode>,
    push_addrs: BTreeMap<NodeId, SocketAddr>,
    _dirs: Vec<TempDir>,
}

impl TestCluster {
    /// Starts nodes `1..=n`, each with a push server configured by `config`.
    pub(crate) async fn start(n: u64, config: PushConfig) -> TestCluster {
        let mut listeners = BTreeMap::new();
        let mut members = BTreeMap::new();
        for id in 1..=n {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
            let node = Node {
                raft_addr: listener.local_addr().unwrap().to_string(),
                api_addr: format!("api-{id}:0"),
            };
            members.insert(id, node);
            listeners.insert(id, listener);
        }
        let mut cluster = TestCluster {
            nodes: BTreeMap::new(),
            push_addrs: BTreeMap::new(),
            _dirs: Vec::new(),
        };
        // Higher ids first: they wait for the lowest one to bootstrap.
        for (id, listener) in listeners.into_iter().rev() {
            let dir = TempDir::new().unwrap();
            let raft_config = RaftNodeConfig::new(
                id,
                dir.path().to_path_buf(),
                RaftListen::Listener(listener),
                members.clone(),
            );
            cluster._dirs.push(dir);
            let raft = Arc::new(RaftNode::start(raft_config).await.unwrap());
            let node = serve(raft, config.clone()).await;
            cluster.push_addrs.insert(id, node.push_addr);
            cluster.nodes.insert(id, node);
        }
        cluster
    }

    pub(crate) fn node(&self, id: NodeId) -> &PushNode {
        &self.nodes[&id]
    }

    /// Push endpoints of `ids`, in that order (stopped nodes included).
    pub(crate) fn endpoints(&self, ids: &[NodeId]) -> Vec<String> {
        ids.iter()
            .map(|id| self.push_addrs[id].to_string())
            .collect()
    }

    /// Waits until every running node agrees on one leader; returns it.
    pub(crate) async fn wait_leader(&self) -> NodeId {
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        loop {
            let leaders: Vec<_> = self
                .nodes
                .values()
                .map(|n| n.raft.metrics().leader)
                .collect();
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

    /// Commits `command` (it must be accepted); returns its log index.
    pub(crate) async fn write(&self, command: Command) -> u64 {
        let leader = self.wait_leader().await;
        write_to(&self.nodes[&leader].raft, command).await
    }

    /// Waits until node `id` applied `index`.
    pub(crate) async fn wait_applied(&self, id: NodeId, index: u64) {
        self.nodes[&id]
            .raft
            .raft()
            .wait(Some(WAIT_MAX))
            .applied_index_at_least(Some(index), "applied")
            .await
            .unwrap();
    }

    /// `host`'s goal state on node `id` and the state's revision.
    pub(crate) fn goal(&self, id: NodeId, host: &str) -> (u64, GoalState) {
        self.nodes[&id]
            .raft
            .read_stale(|state| (state.applied_index(), state.goal_state(host)))
            .unwrap()
    }

    /// Stops node `id` the way a node binary would: push streams first,
    /// then the push server, then Raft.
    pub(crate) async fn stop(&mut self, id: NodeId) {
        let node = self.nodes.remove(&id).unwrap();
        node.push.close();
        let _ = node.server_stop.send(());
        tokio::time::timeout(WAIT_MAX, node.server)
            .await
            .expect("push server drains")
            .unwrap()
            .unwrap();
        node.raft.shutdown().await.unwrap();
    }

    pub(crate) async fn shutdown(mut self) {
        let ids: Vec<_> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

/// Serves a push service for `raft` on a fresh 127.0.0.1 port.
async fn serve(raft: Arc<RaftNode>, config: PushConfig) -> PushNode {
    let push = PushService::new(&raft, config).unwrap();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let push_addr = listener.local_addr().unwrap();
    let (server_stop, stop_rx) = oneshot::channel::<()>();
    let service = push.clone().into_server();
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stop_rx.await;
            })
            .await
    });
    PushNode {
        raft,
        push,
        push_addr,
        server_stop,
        server,
    }
}

/// Commits `command` through `raft` (it must be accepted).
pub(crate) async fn write_to(raft: &RaftNode, command: Command) -> u64 {
    let name = command.name();
    let proposal = Proposal {
        time_ms: 1_700_000_000_000,
        command,
    };
    let response = raft.client_write(proposal).await.unwrap();
    assert!(response.result.is_ok(), "{name} rejected: {response:?}");
    response.log_index
}

/// A running agent and the way to stop it.
pub(crate) struct RunningAgent {
    pub(crate) agent: SimAgent,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningAgent {
    pub(crate) fn start(host: &str, endpoints: Vec<String>) -> RunningAgent {
        RunningAgent::start_failing(host, endpoints, BTreeMap::new())
    }

    /// An agent that reports `fail_ports` as failed with their reasons.
    pub(crate) fn start_failing(
        host: &str,
        endpoints: Vec<String>,
        fail_ports: BTreeMap<Id, String>,
    ) -> RunningAgent {
        let mut config = SimAgentConfig::new(host, endpoints);
        config.fail_ports = fail_ports;
        config.reconnect_backoff_min = Duration::from_millis(20);
        config.reconnect_backoff_max = Duration::from_millis(200);
        let agent = SimAgent::new(config).unwrap();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let runner = agent.clone();
        let task = tokio::spawn(async move {
            runner
                .run(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        RunningAgent { agent, stop, task }
    }

    /// Waits until the agent reached `revision`.
    pub(crate) async fn reach(&self, revision: u64) {
        let reached = tokio::time::timeout(WAIT_MAX, self.agent.wait_for_revision(revision)).await;
        assert!(
            reached.is_ok(),
            "agent stuck at revision {} < {revision}, {:?}",
            self.agent.revision(),
            self.agent.counters()
        );
    }

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT_MAX, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// Waits until `push` recorded an ack of `host` at `revision` or later.
pub(crate) async fn wait_acked(push: &PushService, host: &str, revision: u64) {
    let acked = tokio::time::timeout(WAIT_MAX, async {
        while push.acked_revision(host) < Some(revision) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        acked.is_ok(),
        "acked {:?} < {revision}",
        push.acked_revision(host)
    );
}

/// Waits until `push`'s retained window reached `revision`.
pub(crate) async fn wait_window(push: &PushService, revision: u64) {
    let reached = tokio::time::timeout(WAIT_MAX, async {
        while push.window_range().1 < revision {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "window {:?} < {revision}",
        push.window_range()
    );
}

/// Asserts the agent's table equals `host`'s goal state on node `id`, by
/// digest (and by content, for a readable failure). Waits first (bounded)
/// for the agent to reach the node's applied index: an entry committed just
/// after the test's last write (a port-status update driven by the agent's
/// own ack) moves that index on.
pub(crate) async fn assert_converged(cluster: &TestCluster, id: NodeId, agent: &SimAgent) {
    let deadline = tokio::time::Instant::now() + WAIT_MAX;
    while agent.revision() < cluster.goal(id, agent.host_id()).0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (revision, goal) = cluster.goal(id, agent.host_id());
    let (agent_revision, agent_digest) = agent.revision_and_digest();
    assert!(
        agent_revision >= revision,
        "agent at {agent_revision}, node {id} at {revision}"
    );
    assert_eq!(agent.table(), goal, "tables differ from node {id}");
    assert_eq!(
        agent_digest,
        goal_digest(&goal),
        "digests differ from node {id}"
    );
}

pub(crate) fn host(name: &str, n: u8) -> Command {
    Command::CreateHost {
        id: name.to_string(),
        project_id: "admin".to_string(),
        underlay_ip: std::net::IpAddr::V4(Ipv4Addr::new(192, 168, 0, n)),
    }
}

pub(crate) fn unlimited() -> Command {
    Command::SetQuota {
        project_id: PROJECT.to_string(),
        quota: Quota {
            network: -1,
            subnet: -1,
            port: -1,
            router: -1,
            security_group: -1,
            security_group_rule: -1,
            floating_ip: -1,
        },
    }
}

pub(crate) fn vpc(n: u128) -> Command {
    Command::CreateVpc {
        id: Id(n),
        project_id: PROJECT.to_string(),
        name: format!("vpc-{n}"),
        cidr: Some("10.0.0.0/16".parse().unwrap()),
        vni: None,
        mtu: None,
        admin_state_up: true,
    }
}

pub(crate) fn subnet(n: u128, vpc: u128) -> Command {
    Command::CreateSubnet {
        id: Id(n),
        project_id: PROJECT.to_string(),
        network_id: Id(vpc),
        name: format!("subnet-{n}"),
        cidr: "10.0.1.0/24".parse().unwrap(),
        gateway: GatewaySpec::Default,
        allocation_pools: None,
        enable_dhcp: true,
        dns_nameservers: Vec::new(),
        host_routes: Vec::new(),
    }
}

pub(crate) fn port(n: u128, vpc: u128, host: &str) -> Command {
    Command::CreatePort(PortSpec {
        id: Id(n),
        project_id: PROJECT.to_string(),
        network_id: Id(vpc),
        name: format!("port-{n}"),
        fixed_ips: Vec::new(),
        mac_address: None,
        binding_host: Some(host.to_string()),
        device_id: format!("vm-{n}"),
        device_owner: "compute:nova".to_string(),
        security_groups: None,
        allowed_address_pairs: Vec::new(),
        admin_state_up: true,
    })
}

/// Hosts h1..h3, VPC 1 with subnet 2, and port 100 on h1; returns the last
/// log index.
pub(crate) async fn populate(cluster: &TestCluster) -> u64 {
    cluster.write(unlimited()).await;
    for (name, n) in [("h1", 1), ("h2", 2), ("h3", 3)] {
        cluster.write(host(name, n)).await;
    }
    cluster.write(vpc(1)).await;
    cluster.write(subnet(2, 1)).await;
    cluster.write(port(100, 1, "h1")).await
}
