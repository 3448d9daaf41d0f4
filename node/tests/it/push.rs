//! Host push at scale, against real `alcor server` processes: the
//! Prometheus endpoint (`--metrics-addr`) counts agents, batches, coalescing
//! and commit-to-ack latency; a slow agent whose queue overflows is resynced
//! while the node's memory for it stays bounded; an agent that corrupts its
//! table is caught by the digest reports and repaired, and a port it failed
//! to apply shows ERROR with the reason until the resync retries it; an agent
//! on a follower keeps an ordered, gap-free stream across a leader kill and
//! a restart of its own node.

use std::collections::BTreeMap;
use std::time::Duration;

use alcor_host_push::{SimAgent, SimAgentConfig};
use alcor_proto::api::v1 as pb;
use alcor_state_machine::Id;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::cluster::{free_port, ProcessCluster, WAIT_MS_MAX};
use crate::workload::{self, req, uuid};

/// Runs an agent until dropped.
pub(crate) struct RunningAgent {
    pub(crate) agent: SimAgent,
    task: JoinHandle<()>,
}

impl RunningAgent {
    pub(crate) fn start(config: SimAgentConfig) -> RunningAgent {
        let agent = SimAgent::new(config).expect("agent config");
        let task = tokio::spawn({
            let agent = agent.clone();
            async move { agent.run(std::future::pending()).await }
        });
        RunningAgent { agent, task }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A config with a short reconnect backoff.
pub(crate) fn agent_config(host: &str, endpoints: Vec<String>) -> SimAgentConfig {
    let mut config = SimAgentConfig::new(host, endpoints);
    config.reconnect_backoff_max = Duration::from_millis(300);
    config
}

/// A 3-member cluster whose members serve metrics; returns it and each
/// member's metrics address.
fn cluster_with_metrics(server_args: &[&str]) -> (ProcessCluster, BTreeMap<u64, String>) {
    let addrs: BTreeMap<u64, String> = (1..=3)
        .map(|id| (id, format!("127.0.0.1:{}", free_port())))
        .collect();
    let cluster = ProcessCluster::start_each(3, server_args, |id| {
        vec!["--metrics-addr".to_string(), addrs[&id].clone()]
    });
    (cluster, addrs)
}

/// `GET /metrics` from `addr`; the body, if the node answers.
async fn scrape(addr: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_millis(2_000),
        stream.read_to_string(&mut response),
    )
    .await
    .ok()?
    .ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then_some(())?;
    head.contains(" 200 ").then(|| body.to_string())
}

/// The value of the sample `name` (with its labels, e.g.
/// `alcor_push_resyncs_total{cause="Overflow"}`) in a scrape.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}

/// Waits until `probe` holds on a scrape of `addr`; returns that scrape.
async fn scrape_until(
    cluster: &ProcessCluster,
    addr: &str,
    what: &str,
    probe: impl Fn(&str) -> bool,
) -> String {
    cluster
        .eventually(what, || async {
            let text = scrape(addr).await?;
            probe(&text).then_some(text)
        })
        .await
}

/// `HostDigest` of `host` through the first of `targets` that answers.
pub(crate) async fn host_digest(
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

/// Waits until `agent`'s table equals the controller's goal state for its
/// host (same digest, at or after the controller's revision).
pub(crate) async fn converges(cluster: &ProcessCluster, targets: &[u64], agent: &SimAgent) {
    let host = agent.host_id().to_string();
    cluster
        .eventually(
            &format!("{host}'s digest to equal the controller's"),
            || async {
                let expected = host_digest(cluster, targets, &host).await?;
                let (revision, digest) = agent.revision_and_digest();
                (revision >= expected.revision && digest.as_slice() == expected.digest.as_slice())
                    .then_some(())
            },
        )
        .await;
}

/// Sets port `id`'s device (a change of the port's goal object only).
async fn set_device(cluster: &ProcessCluster, targets: &[u64], id: &str, device: &str) {
    let message = pb::UpdatePortRequest {
        id: id.into(),
        device_id: Some(device.into()),
        ..Default::default()
    };
    workload::write(cluster, targets, "set port device", &[], |mut c| {
        let message = message.clone();
        async move { c.update_port(req(message)).await }
    })
    .await;
}

/// Port `id` through any of `targets` (linearizable).
async fn get_port(cluster: &ProcessCluster, targets: &[u64], id: &str) -> Option<pb::Port> {
    for target in targets {
        let Some(mut client) = cluster.client(*target).await else {
            continue;
        };
        let message = pb::GetPortRequest {
            id: id.into(),
            stale: false,
            ..Default::default()
        };
        if let Ok(port) = client.get_port(req(message)).await {
            return Some(port.into_inner());
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_counts_agents_batches_coalesced_changes_and_commit_to_ack_latency() {
    // A long batching window, so updates written one after the other reach
    // the agent as one batch.
    let (cluster, metrics) = cluster_with_metrics(&["--push-batch-window-ms", "1000"]);
    let all = cluster.ids();
    cluster.leader(&all).await;
    let (vpc, subnet, port) = (uuid(0xb0), uuid(0xb1), uuid(1));
    workload::create_host(&cluster, &all, "m1", 1).await;
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    workload::create_port(&cluster, &all, &vpc, &subnet, &port, "m1").await;
    let on_node_1 = RunningAgent::start(agent_config("m1", vec![cluster.api_addr(1)]));
    converges(&cluster, &all, &on_node_1.agent).await;

    let before = scrape(&metrics[&1]).await.expect("scrape node 1");
    assert_eq!(sample(&before, "alcor_push_connected_agents"), Some(1.0));
    assert_eq!(
        sample(&before, "alcor_push_resyncs_total{cause=\"NoState\"}"),
        Some(1.0),
        "{before}"
    );
    assert_eq!(sample(&before, "alcor_push_full_syncs_total"), Some(1.0));
    let other = scrape(&metrics[&2]).await.expect("scrape node 2");
    assert_eq!(sample(&other, "alcor_push_connected_agents"), Some(0.0));

    // Four updates of one port within the batching window: one batch, the
    // port's earlier versions collapsed away.
    for n in 0..4 {
        set_device(&cluster, &all, &port, &format!("vm-{n}")).await;
    }
    converges(&cluster, &all, &on_node_1.agent).await;
    let after = scrape_until(
        &cluster,
        &metrics[&1],
        "acked batches in the histogram",
        |t| sample(t, "alcor_push_push_latency_seconds_count").is_some_and(|n| n >= 1.0),
    )
    .await;
    let coalesced = sample(&after, "alcor_push_events_coalesced_total").expect("coalesced");
    let collapsed = sample(&after, "alcor_push_changes_collapsed_total").expect("collapsed");
    assert!(coalesced >= 1.0, "updates were not coalesced:\n{after}");
    assert!(
        collapsed >= 1.0,
        "updates of one port were not collapsed:\n{after}"
    );
    let batches = sample(&after, "alcor_push_diff_batches_total").expect("batches");
    assert!(batches >= 1.0, "{after}");
    let counters = on_node_1.agent.counters();
    assert!(
        counters.diff_batches < 4,
        "four updates took {} batches",
        counters.diff_batches
    );
    assert_eq!(counters.gaps, 0);
    assert!(after.contains("alcor_push_window_events "), "{after}");
    assert!(after.contains("alcor_push_queued_messages "), "{after}");

    drop(on_node_1);
    scrape_until(&cluster, &metrics[&1], "the agent to disconnect", |t| {
        sample(t, "alcor_push_connected_agents") == Some(0.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_agent_overflowing_its_queue_is_resynced_and_its_node_memory_stays_bounded() {
    const WINDOW_EVENTS: f64 = 8.0;
    const PORTS: u64 = 60;
    let (cluster, metrics) =
        cluster_with_metrics(&["--push-window-events", "8", "--push-batch-window-ms", "0"]);
    let all = cluster.ids();
    cluster.leader(&all).await;
    let (vpc, subnet) = (uuid(0xc0), uuid(0xc1));
    workload::create_host(&cluster, &all, "slow", 1).await;
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    // A slow agent with a tiny HTTP/2 receive window: the node can have only
    // a few messages in flight to it.
    let mut config = agent_config("slow", vec![cluster.api_addr(1)]);
    config.apply_delay = Duration::from_millis(150);
    config.stream_window_bytes = Some(4_096);
    let slow = RunningAgent::start(config);
    converges(&cluster, &all, &slow.agent).await;
    assert_eq!(slow.agent.counters().full_syncs, 1);

    // The agent stalls while the ports are created: the node's queue and
    // the stream's window fill after a few messages, and the changes after
    // them outrun the 8-event window however fast the cluster commits (a
    // merely slow agent kept up on a slow machine, where commits came
    // slower than it applied).
    slow.agent.hold(true);
    let mut largest_queue = 0.0f64;
    let mut largest_window = 0.0f64;
    for n in 0..PORTS {
        workload::create_port(&cluster, &all, &vpc, &subnet, &uuid(n), "slow").await;
        if n % 10 == 0 {
            if let Some(text) = scrape(&metrics[&1]).await {
                let queue = sample(&text, "alcor_push_queued_messages_max").unwrap_or(0.0);
                let window = sample(&text, "alcor_push_window_events").unwrap_or(0.0);
                largest_queue = largest_queue.max(queue);
                largest_window = largest_window.max(window);
            }
        }
    }
    slow.agent.hold(false);
    converges(&cluster, &all, &slow.agent).await;
    let text = scrape(&metrics[&1]).await.expect("scrape");
    let overflows = sample(&text, "alcor_push_resyncs_total{cause=\"Overflow\"}").unwrap_or(0.0);
    assert!(
        overflows >= 1.0,
        "the slow agent was never switched to resync:\n{text}"
    );
    let counters = slow.agent.counters();
    assert!(counters.full_syncs >= 2, "{counters:?}");
    assert_eq!(counters.gaps, 0, "{counters:?}");
    assert!(
        largest_queue <= alcor_host_push::limits::AGENT_QUEUE_MAX as f64,
        "{largest_queue}"
    );
    assert!(largest_window <= WINDOW_EVENTS, "{largest_window}");
    assert!(slow.agent.table().len() as u64 >= PORTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_agent_table_is_detected_by_digest_and_repaired_and_failed_port_retried_on_resync(
) {
    let (cluster, metrics) = cluster_with_metrics(&[]);
    let all = cluster.ids();
    cluster.leader(&all).await;
    let (vpc, subnet, port) = (uuid(0xd0), uuid(0xd1), uuid(7));
    workload::create_host(&cluster, &all, "d1", 1).await;
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    workload::create_port(&cluster, &all, &vpc, &subnet, &port, "d1").await;
    let mut config = agent_config("d1", vec![cluster.api_addr(2)]);
    config.digest_interval = Some(Duration::from_millis(200));
    let agent = RunningAgent::start(config);
    converges(&cluster, &all, &agent.agent).await;

    // The agent fails to program the port: ERROR with its reason.
    let port_id: Id = port.parse().expect("uuid");
    let reason = "no VF left on the NIC";
    agent
        .agent
        .fail_until_resync(BTreeMap::from([(port_id, reason.to_string())]));
    cluster
        .eventually("the port to show ERROR with the agent's reason", || async {
            let port = get_port(&cluster, &all, &port).await?;
            (port.status == pb::PortStatus::Error as i32 && port.status_detail == reason)
                .then_some(())
        })
        .await;

    // Digests matched so far.
    let text = scrape_until(&cluster, &metrics[&2], "a digest check", |t| {
        sample(t, "alcor_push_digest_checks_total").is_some_and(|n| n >= 1.0)
    })
    .await;
    assert_eq!(
        sample(&text, "alcor_push_digest_mismatches_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(agent.agent.counters().full_syncs, 1);

    // Corrupt the table: the next digest report gives it away, the node
    // resyncs the agent, the agent retries the port and it turns ACTIVE.
    assert!(agent.agent.corrupt_table());
    let text = scrape_until(&cluster, &metrics[&2], "a digest mismatch", |t| {
        sample(t, "alcor_push_digest_mismatches_total").is_some_and(|n| n >= 1.0)
    })
    .await;
    assert!(
        sample(&text, "alcor_push_resyncs_total{cause=\"DigestMismatch\"}")
            .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    converges(&cluster, &all, &agent.agent).await;
    assert!(agent.agent.counters().full_syncs >= 2);
    cluster
        .eventually("the retried port to turn ACTIVE", || async {
            let port = get_port(&cluster, &all, &port).await?;
            (port.status == pb::PortStatus::Active as i32).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_on_a_follower_stays_ordered_and_gap_free_across_a_leader_kill_and_its_node_restart()
{
    let mut cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    let leader = cluster.leader(&all).await;
    let follower = *all.iter().find(|id| **id != leader).expect("a follower");
    let third = *all
        .iter()
        .find(|id| **id != leader && **id != follower)
        .expect("a third member");
    let (vpc, subnet) = (uuid(0xe0), uuid(0xe1));
    workload::create_host(&cluster, &all, "f1", 1).await;
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    let agent = RunningAgent::start(agent_config("f1", vec![cluster.api_addr(follower)]));
    // Every revision the agent reaches, in order.
    let mut revisions = agent.agent.watch_revision();
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while revisions.changed().await.is_ok() {
            seen.push(*revisions.borrow_and_update());
        }
        seen
    });
    for n in 0..5 {
        workload::create_port(&cluster, &all, &vpc, &subnet, &uuid(n), "f1").await;
    }
    converges(&cluster, &all, &agent.agent).await;

    // The leader dies: the follower keeps serving what it applies.
    cluster.kill(leader);
    let survivors = [follower, third];
    for n in 5..10 {
        workload::create_port(&cluster, &survivors, &vpc, &subnet, &uuid(n), "f1").await;
    }
    converges(&cluster, &survivors, &agent.agent).await;
    assert_eq!(
        agent.agent.counters().reconnects,
        0,
        "still on its follower"
    );

    // Its own node restarts: the agent reconnects there and resumes.
    cluster.spawn(leader);
    cluster.kill(follower);
    for n in 10..15 {
        workload::bind_port(&cluster, &[leader, third], &uuid(n - 10), "").await;
    }
    cluster.spawn(follower);
    for n in 15..18 {
        workload::create_port(&cluster, &all, &vpc, &subnet, &uuid(n), "f1").await;
    }
    converges(&cluster, &all, &agent.agent).await;
    let counters = agent.agent.counters();
    assert!(counters.reconnects >= 1, "{counters:?}");
    assert_eq!(counters.gaps, 0, "{counters:?}");
    drop(agent);
    let seen = tokio::time::timeout(Duration::from_millis(WAIT_MS_MAX), watcher)
        .await
        .expect("watcher ends with the agent")
        .expect("watcher");
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "revisions went backwards: {seen:?}"
    );
}

/// A `alcor agent-sim` process for the one host `sim-00000`, streaming from
/// `endpoint`; killed on drop.
struct AgentProcess(std::process::Child);

impl AgentProcess {
    fn start(endpoint: &str) -> AgentProcess {
        let child = std::process::Command::new(crate::cluster::BIN)
            .args(["agent-sim", "--agents", "1", "--endpoints", endpoint])
            .args(["--report-interval-s", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn alcor agent-sim");
        AgentProcess(child)
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).expect("pid"));
        nix::sys::signal::kill(pid, signal).expect("signal the agent");
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_agent_is_dropped_by_http2_keepalive_and_streams_again_once_resumed() {
    let (cluster, metrics) = cluster_with_metrics(&["--http2-keepalive-ms", "300"]);
    let all = cluster.ids();
    cluster.leader(&all).await;
    workload::create_host(&cluster, &all, "sim-00000", 1).await;
    let agent = AgentProcess::start(&cluster.api_addr(1));
    let connected = |n: f64| move |t: &str| sample(t, "alcor_push_connected_agents") == Some(n);
    scrape_until(
        &cluster,
        &metrics[&1],
        "the agent to connect",
        connected(1.0),
    )
    .await;

    // SIGSTOP: the agent's kernel still acknowledges TCP, only HTTP/2 PINGs
    // go unanswered, so nothing but keepalive can notice it is gone.
    agent.signal(nix::sys::signal::Signal::SIGSTOP);
    scrape_until(
        &cluster,
        &metrics[&1],
        "keepalive to drop the frozen agent",
        connected(0.0),
    )
    .await;

    agent.signal(nix::sys::signal::Signal::SIGCONT);
    scrape_until(
        &cluster,
        &metrics[&1],
        "the agent to reconnect",
        connected(1.0),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alcor_agent_exits_cleanly_at_sigterm_without_waiting_for_its_next_status_line() {
    // No controller answers: the agent keeps reconnecting, and its next
    // status line is an hour away.
    let endpoint = format!("127.0.0.1:{}", free_port());
    let mut child = std::process::Command::new(crate::cluster::BIN)
        .args(["agent", "--host-id", "host-a", "--endpoints", &endpoint])
        .args(["--report-interval-s", "3600"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn alcor agent");
    // Wait until it catches SIGTERM (a signal before its handler is in
    // place would kill it, and the exit status would not be success).
    let catches_sigterm = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (nix::libc::SIGTERM - 1)) != 0)
    };
    let installed_by = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    while !catches_sigterm(child.id()) {
        assert!(
            tokio::time::Instant::now() < installed_by,
            "alcor agent never installed a SIGTERM handler"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal the agent");
    let deadline = tokio::time::Instant::now() + Duration::from_millis(5_000);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("alcor agent still runs 5 s after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}
