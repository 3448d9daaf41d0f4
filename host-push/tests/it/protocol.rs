//! The wire protocol seen by a hand-written client: what a Hello gets, and
//! what invalid first messages get.

use std::net::SocketAddr;

use alcor_host_push::limits::FULL_SYNC_PART_BYTES_MAX;
use alcor_host_push::{PushConfig, PROTOCOL_VERSION};
use alcor_proto::push::v1 as pb;
use alcor_proto::push::v1::host_push_client::HostPushClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};

use crate::support::{
    assert_converged, populate, port, wait_window, RunningAgent, TestCluster, WAIT_MAX,
};

/// An open stream; dropping the sender ends it.
type Opened = (
    mpsc::Sender<pb::AgentMessage>,
    Streaming<pb::ControllerMessage>,
);

async fn open(addr: SocketAddr, first: pb::AgentMessage) -> Result<Opened, Status> {
    let mut client = HostPushClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(first).await.unwrap();
    let inbound = client.sync(ReceiverStream::new(rx)).await?.into_inner();
    Ok((tx, inbound))
}

fn hello(host: &str, revision: Option<u64>) -> pb::AgentMessage {
    pb::AgentMessage {
        kind: Some(pb::agent_message::Kind::Hello(pb::Hello {
            protocol_version: PROTOCOL_VERSION,
            host_id: host.to_string(),
            last_applied_revision: revision.unwrap_or(0),
            has_state: revision.is_some(),
        })),
    }
}

/// The FullSync messages a fresh agent of `host` speaking `version` gets,
/// up to the one without `more`.
async fn full_sync_messages(addr: SocketAddr, host: &str, version: u32) -> Vec<pb::FullSync> {
    let mut first = hello(host, None);
    if let Some(pb::agent_message::Kind::Hello(h)) = &mut first.kind {
        h.protocol_version = version;
    }
    let (_tx, mut inbound) = open(addr, first).await.unwrap();
    let mut parts = Vec::new();
    loop {
        let message = tokio::time::timeout(WAIT_MAX, inbound.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Some(pb::controller_message::Kind::FullSync(sync)) = message.kind else {
            panic!("expected a FullSync part, got {message:?}");
        };
        let more = sync.more;
        parts.push(sync);
        if !more {
            return parts;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_goal_state_comes_in_parts_to_new_agents_and_whole_to_version_1_agents() {
    let cluster = TestCluster::start(3, PushConfig::default()).await;
    populate(&cluster).await;
    // 80 ports of h2 and h3 in h1's VPC: h1's goal state holds a neighbor
    // entry for each, several parts' worth.
    let mut last = 0;
    for n in 0..80 {
        let host = if n % 2 == 0 { "h2" } else { "h3" };
        last = cluster.write(port(400 + n, 1, host)).await;
    }
    let leader = cluster.wait_leader().await;
    cluster.wait_applied(leader, last).await;
    let node = cluster.node(leader);

    let parts = full_sync_messages(node.push_addr, "h1", PROTOCOL_VERSION).await;
    assert!(parts.len() >= 3, "{} parts", parts.len());
    let revision = parts[0].revision;
    assert!(revision >= last);
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(part.revision, revision, "part {i}");
        assert_eq!(part.more, i + 1 < parts.len(), "part {i}");
        let bytes = prost::Message::encoded_len(part);
        assert!(bytes <= FULL_SYNC_PART_BYTES_MAX, "part {i}: {bytes} bytes");
    }
    let objects: Vec<pb::GoalObject> = parts.into_iter().flat_map(|p| p.objects).collect();

    // A version 1 agent predates parts: the same goal state, one message.
    let whole = full_sync_messages(node.push_addr, "h1", 1).await;
    assert_eq!(whole.len(), 1);
    assert_eq!(whole[0].objects, objects);

    // And an agent of this build gathers the parts into the right table.
    let agent = RunningAgent::start("h1", vec![node.push_addr.to_string()]);
    agent.reach(last).await;
    assert_converged(&cluster, leader, &agent.agent).await;
    agent.stop().await;
    cluster.shutdown().await;
}

async fn first_message(addr: SocketAddr, revision: Option<u64>) -> pb::controller_message::Kind {
    let (_tx, mut inbound) = open(addr, hello("h1", revision)).await.unwrap();
    let message = tokio::time::timeout(WAIT_MAX, inbound.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    message.kind.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_older_than_the_retained_window_gets_a_full_sync() {
    let config = PushConfig {
        window_events_max: 2,
        ..PushConfig::default()
    };
    let cluster = TestCluster::start(3, config).await;
    populate(&cluster).await;
    let mut last = 0;
    for n in 0..5 {
        last = cluster.write(port(300 + n, 1, "h1")).await;
    }
    let leader = cluster.wait_leader().await;
    cluster.wait_applied(leader, last).await;
    let node = cluster.node(leader);
    wait_window(&node.push, last).await;
    let (base, window_last) = node.push.window_range();
    assert!(
        base > 1 && window_last >= last,
        "window ({base}, {window_last}]"
    );

    match first_message(node.push_addr, Some(base)).await {
        pb::controller_message::Kind::DiffBatch(batch) => {
            assert_eq!(batch.from_revision, base);
            assert_eq!(batch.to_revision, window_last);
            assert!(!batch.changes.is_empty());
        }
        other => panic!("resume inside the window got {other:?}"),
    }
    for revision in [Some(base - 1), Some(1), None] {
        match first_message(node.push_addr, revision).await {
            pb::controller_message::Kind::FullSync(sync) => {
                assert!(sync.revision >= last);
                assert!(!sync.objects.is_empty());
            }
            other => panic!("Hello at {revision:?} got {other:?}"),
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_first_message_is_rejected_and_the_server_keeps_serving() {
    let cluster = TestCluster::start(3, PushConfig::default()).await;
    let populated = populate(&cluster).await;
    let leader = cluster.wait_leader().await;
    let addr = cluster.node(leader).push_addr;

    let ack_first = pb::AgentMessage {
        kind: Some(pb::agent_message::Kind::Ack(pb::Ack {
            revision: 7,
            statuses: Vec::new(),
        })),
    };
    let empty = pb::AgentMessage { kind: None };
    let mut wrong_version = hello("h1", None);
    if let Some(pb::agent_message::Kind::Hello(h)) = &mut wrong_version.kind {
        h.protocol_version = PROTOCOL_VERSION + 1;
    }
    let no_host = hello("", None);
    let bad_key = pb::AgentMessage {
        kind: Some(pb::agent_message::Kind::Ack(pb::Ack {
            revision: 1,
            statuses: vec![pb::ResourceStatus {
                key: Some(pb::GoalKey {
                    bincode_v1: vec![0xff; 3],
                }),
                ok: false,
                reason: String::new(),
            }],
        })),
    };
    for garbage in [ack_first, empty, wrong_version, no_host, bad_key] {
        let status = open(addr, garbage.clone()).await.err();
        assert_eq!(
            status.as_ref().map(Status::code),
            Some(Code::InvalidArgument),
            "{garbage:?} got {status:?}"
        );
    }

    let agent = RunningAgent::start("h1", cluster.endpoints(&[leader]));
    agent.reach(populated).await;
    assert_eq!(agent.agent.counters().full_syncs, 1);
    agent.stop().await;
    cluster.shutdown().await;
}
