//! `Orchestrator.Watch` against a real 3-process cluster: commit order with
//! no gaps across concurrent creates (live and replayed from the history),
//! port status driven by an agent's ack, a watch served by a follower, and
//! the COMPACTED error after a restart from a snapshot.

use std::time::Duration;

use alcor_host_push::{SimAgent, SimAgentConfig};
use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use crate::cluster::{ProcessCluster, WAIT_MS_MAX};
use crate::workload::{self, req, uuid, PROJECT};

/// VPCs created concurrently in the ordering test.
const CONCURRENT_CREATES: u64 = 60;

async fn client_of(cluster: &ProcessCluster, id: u64) -> OrchestratorClient<Channel> {
    cluster
        .eventually("an orchestrator client", || cluster.client(id))
        .await
}

async fn watch(
    client: &mut OrchestratorClient<Channel>,
    kind: pb::ResourceKind,
    from_revision: Option<u64>,
) -> Result<Streaming<pb::WatchEvent>, tonic::Status> {
    let request = pb::WatchRequest {
        kind: kind as i32,
        from_revision,
    };
    Ok(client.watch(request).await?.into_inner())
}

/// The next `n` events, each within `WAIT_MS_MAX`.
async fn take(stream: &mut Streaming<pb::WatchEvent>, n: usize) -> Vec<pb::WatchEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_millis(WAIT_MS_MAX), stream.message())
            .await
            .expect("a watch event in time")
            .expect("a healthy stream")
            .expect("the stream goes on");
        out.push(next);
    }
    out
}

/// The revision the member's VPC list was read at.
async fn list_revision(client: &mut OrchestratorClient<Channel>) -> u64 {
    let listed = client
        .list_vpcs(req(pb::ListVpcsRequest::default()))
        .await
        .expect("list vpcs");
    listed.into_inner().revision
}

fn vpc_request(n: u64) -> pb::CreateVpcRequest {
    pb::CreateVpcRequest {
        id: uuid(0x1000 + n),
        project_id: PROJECT.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_delivers_concurrent_creates_in_commit_order_without_gaps_on_leader_and_follower() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    let leader = cluster.leader(&all).await;
    let follower = *all.iter().find(|id| **id != leader).expect("a follower");
    let mut on_leader = client_of(&cluster, leader).await;
    let mut on_follower = client_of(&cluster, follower).await;
    let start = list_revision(&mut on_leader).await;
    let mut live = watch(&mut on_leader, pb::ResourceKind::Vpc, Some(start))
        .await
        .expect("watch the leader");
    let mut followed = watch(&mut on_follower, pb::ResourceKind::Vpc, Some(start))
        .await
        .expect("watch a follower");

    // Concurrent creates through every member, so writes are coalesced.
    let mut tasks = Vec::new();
    for n in 0..CONCURRENT_CREATES {
        let target = all[(n as usize) % all.len()];
        let mut client = client_of(&cluster, target).await;
        // One attempt each (a retry could not tell its create from the
        // first's), so a deadline that a slow machine does not reach.
        let mut request = req(vpc_request(n));
        request.set_timeout(Duration::from_millis(WAIT_MS_MAX));
        tasks.push(tokio::spawn(async move {
            let vpc = client
                .create_vpc(request)
                .await
                .expect("create vpc")
                .into_inner();
            (vpc.id, vpc.revision)
        }));
    }
    let mut created = Vec::new();
    for task in tasks {
        created.push(task.await.expect("create task"));
    }
    created.sort();

    let events = take(&mut live, CONCURRENT_CREATES as usize).await;
    let revisions: Vec<u64> = events.iter().map(|e| e.revision).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] <= w[1]),
        "commit order: {revisions:?}"
    );
    assert!(revisions.iter().all(|r| *r > start));
    let mut seen: Vec<(String, u64)> = events.iter().map(|e| (e.id.clone(), e.revision)).collect();
    seen.sort();
    assert_eq!(seen, created, "every create exactly once, at its revision");
    for event in &events {
        assert_eq!(event.r#type, pb::WatchEventType::Put as i32);
        assert_eq!(event.kind, pb::ResourceKind::Vpc as i32);
        match &event.object {
            Some(pb::watch_event::Object::Vpc(vpc)) => assert_eq!(vpc.id, event.id),
            other => panic!("a VPC object, not {other:?}"),
        }
    }
    // A follower serves the same sequence from what it applied itself, and a
    // late watcher from the same revision replays it from the history.
    assert_eq!(take(&mut followed, events.len()).await, events);
    let mut replay = watch(&mut on_leader, pb::ResourceKind::Vpc, Some(start))
        .await
        .expect("a late watch");
    assert_eq!(take(&mut replay, events.len()).await, events);

    // A delete is an event without an object.
    let (gone, _) = &created[0];
    let deleted = on_leader
        .delete_vpc(req(pb::DeleteVpcRequest {
            id: gone.clone(),
            expected_revision: None,
        }))
        .await
        .expect("delete")
        .into_inner();
    let event = take(&mut live, 1).await.remove(0);
    assert_eq!(
        (event.id.as_str(), event.revision),
        (gone.as_str(), deleted.revision)
    );
    assert_eq!(event.r#type, pb::WatchEventType::Delete as i32);
    assert!(event.object.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_shows_a_port_go_from_down_to_active_when_its_agent_acks() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    let leader = cluster.leader(&all).await;
    let (vpc, subnet, port) = (uuid(0xb0), uuid(0xb1), uuid(0xb2));
    workload::create_host(&cluster, &all, "host-w", 1).await;
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    let mut client = client_of(&cluster, leader).await;
    let start = list_revision(&mut client).await;
    let mut ports = watch(&mut client, pb::ResourceKind::Port, Some(start))
        .await
        .expect("watch ports");
    workload::create_port(&cluster, &all, &vpc, &subnet, &port, "host-w").await;
    let created = take(&mut ports, 1).await.remove(0);
    let Some(pb::watch_event::Object::Port(down)) = created.object else {
        panic!("a port object")
    };
    assert_eq!(
        (down.id.as_str(), down.status),
        (port.as_str(), pb::PortStatus::Down as i32)
    );

    let endpoints = all.iter().map(|id| cluster.api_addr(*id)).collect();
    let agent = SimAgent::new(SimAgentConfig::new("host-w", endpoints)).expect("agent");
    let task = tokio::spawn({
        let agent = agent.clone();
        async move { agent.run(std::future::pending()).await }
    });
    let changed = take(&mut ports, 1).await.remove(0);
    task.abort();
    let Some(pb::watch_event::Object::Port(active)) = changed.object else {
        panic!("a port object")
    };
    assert_eq!(active.id, port);
    assert_eq!(active.status, pb::PortStatus::Active as i32);
    assert!(changed.revision > created.revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_before_a_restarted_members_snapshot_is_compacted_and_a_relist_resumes() {
    let mut cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    let leader = cluster.leader(&all).await;
    let member = *all.iter().find(|id| **id != leader).expect("a follower");
    let mut client = client_of(&cluster, leader).await;
    for n in 0..5 {
        client
            .create_vpc(req(vpc_request(n)))
            .await
            .expect("create vpc");
    }
    cluster.quiescent(&all, 1).await;
    let snapshot = cluster
        .ctl_json_within(&[member], 10_000, &["cluster", "snapshot"])
        .expect("snapshot on the member");
    assert!(snapshot["snapshot_index"].as_u64() > Some(1));
    cluster.kill(member);
    cluster.spawn(member);

    let mut restarted = client_of(&cluster, member).await;
    let refused = cluster
        .eventually("the restarted member to answer Watch", || async {
            let mut client = cluster.client(member).await?;
            match watch(&mut client, pb::ResourceKind::Unspecified, Some(0)).await {
                Err(status) if status.code() == Code::Unavailable => None,
                other => Some(other),
            }
        })
        .await
        .expect_err("revision 0 is older than the history");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let reason = refused
        .metadata()
        .get(alcor_proto::REASON_HEADER)
        .and_then(|v| v.to_str().ok());
    assert_eq!(reason, Some("COMPACTED"));
    assert!(refused.message().contains("re-list"), "{refused:?}");

    // Re-list, then watch from the list's revision: the next write arrives.
    let revision = list_revision(&mut restarted).await;
    let mut resumed = watch(
        &mut restarted,
        pb::ResourceKind::Unspecified,
        Some(revision),
    )
    .await
    .expect("watch from the list");
    let created = client
        .create_vpc(req(vpc_request(99)))
        .await
        .expect("create after restart")
        .into_inner();
    let event = take(&mut resumed, 1).await.remove(0);
    assert_eq!((event.id, event.revision), (created.id, created.revision));
}
