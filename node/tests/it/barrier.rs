//! `Cluster.Barrier` against a real cluster: agents ack only to the member
//! they stream from, and a barrier served by a third member still sees
//! both acks, and a dead member does not block it; a host without an agent
//! keeps a barrier pending until its deadline, which names it.

use std::time::Duration;

use alcor_host_push::{SimAgent, SimAgentConfig};
use alcor_proto::api::v1 as pb;
use tokio::task::JoinHandle;
use tonic::Code;

use crate::cluster::ProcessCluster;
use crate::workload::{self, req, uuid};

/// Deadline of a barrier expected to succeed.
const BARRIER_OK_MS: u64 = 10_000;
/// Deadline of a barrier expected to time out.
const BARRIER_TIMEOUT_MS: u64 = 2_000;

/// Runs an agent until dropped.
struct RunningAgent {
    task: JoinHandle<()>,
}

impl RunningAgent {
    fn start(host: &str, endpoint: String) -> RunningAgent {
        let mut config = SimAgentConfig::new(host, vec![endpoint]);
        config.reconnect_backoff_max = Duration::from_millis(500);
        let agent = SimAgent::new(config).expect("agent config");
        let task = tokio::spawn(async move { agent.run(std::future::pending()).await });
        RunningAgent { task }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Port `id`'s revision, read linearizably from any of `targets`.
async fn port_revision(cluster: &ProcessCluster, targets: &[u64], id: &str) -> u64 {
    cluster
        .eventually("the port's revision", || async {
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
                    return Some(port.into_inner().revision);
                }
            }
            None
        })
        .await
}

/// `Barrier` on member `id` with a deadline of `timeout_ms`.
async fn barrier(
    cluster: &ProcessCluster,
    id: u64,
    revision: u64,
    hosts: &[&str],
    timeout_ms: u64,
) -> Result<pb::BarrierResponse, tonic::Status> {
    let mut client = cluster.cluster_client(id).await.expect("member answers");
    let mut request = tonic::Request::new(pb::BarrierRequest {
        revision,
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
    });
    request.set_timeout(Duration::from_millis(timeout_ms));
    client
        .barrier(request)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barrier_resolves_once_agents_on_other_members_acked_and_names_hosts_without_agents() {
    let mut cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    cluster.leader(&all).await;
    let vpc = uuid(0xb0);
    let subnet = uuid(0xb1);
    for (n, host) in (1..).zip(["h1", "h2", "h3"]) {
        workload::create_host(&cluster, &all, host, n).await;
    }
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    workload::create_port(&cluster, &all, &vpc, &subnet, &uuid(1), "h1").await;
    workload::create_port(&cluster, &all, &vpc, &subnet, &uuid(2), "h2").await;
    let revision = port_revision(&cluster, &all, &uuid(2)).await;

    // h1 streams from the first member only, h2 from the second; the third
    // member serves the barriers and holds no ack of its own.
    let _h1 = RunningAgent::start("h1", cluster.api_addr(all[0]));
    let _h2 = RunningAgent::start("h2", cluster.api_addr(all[1]));

    let done = barrier(&cluster, all[2], revision, &[], BARRIER_OK_MS)
        .await
        .expect("both agents ack within the deadline");
    assert_eq!(done.revision, revision);
    assert!(done.pending.is_empty(), "{done:?}");
    let hosts: Vec<&str> = done.acked.iter().map(|a| a.host.as_str()).collect();
    assert_eq!(hosts, ["h1", "h2"]);
    assert!(
        done.acked.iter().all(|a| a.revision >= revision),
        "{done:?}"
    );

    // The same through the CLI.
    let revision_arg = revision.to_string();
    let cli = cluster
        .ctl_json_within(
            &[all[2]],
            BARRIER_OK_MS,
            &["barrier", "--revision", &revision_arg],
        )
        .expect("alcor ctl barrier succeeds");
    assert_eq!(cli["revision"].as_u64(), Some(revision));
    assert_eq!(cli["acked"].as_array().map(Vec::len), Some(2), "{cli}");

    // h3 has no agent: a barrier naming it runs out of time and says so.
    let status = barrier(
        &cluster,
        all[2],
        revision,
        &["h1", "h3"],
        BARRIER_TIMEOUT_MS,
    )
    .await
    .expect_err("h3 never acks");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("h3"), "{}", status.message());
    let mut first = cluster
        .cluster_client(all[0])
        .await
        .expect("member answers");
    let acks_on_first = first
        .acked_revisions(req(pb::AckedRevisionsRequest {}))
        .await
        .map(|r| r.into_inner().acked);
    assert!(
        !status.message().contains("h1"),
        "{}; acks on the first member: {acks_on_first:?}",
        status.message()
    );

    // A member that is down (holding no acks that matter) does not block a
    // barrier served elsewhere.
    cluster.kill(all[2]);
    let done = barrier(&cluster, all[0], revision, &["h1", "h2"], BARRIER_OK_MS)
        .await
        .expect("the live members hold both acks");
    assert!(done.pending.is_empty(), "{done:?}");
    let live = [all[0], all[1]];

    // Once h3 has a bound port, the default host set waits for it too.
    workload::create_port(&cluster, &live, &vpc, &subnet, &uuid(3), "h3").await;
    let revision = port_revision(&cluster, &live, &uuid(3)).await;
    let status = barrier(&cluster, all[0], revision, &[], BARRIER_TIMEOUT_MS)
        .await
        .expect_err("h3 never acks");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("h3"), "{}", status.message());
}
