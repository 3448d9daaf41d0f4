//! Watches: changes arrive in commit order, the stream resumes on another
//! member without gaps or repeats when its member dies, and a revision older
//! than a member's history is the typed `Compacted` error.

use std::time::Duration;

use alcor_client::types::{CreatePortRequest, ListPortsRequest, ResourceKind, WatchEventType};
use alcor_client::{Client, Error};
use futures::StreamExt;

use crate::support::{network, ProcessCluster, PROJECT, WAIT_MS_MAX};

/// Bound on waiting for one event.
const EVENT_WAIT: Duration = Duration::from_millis(WAIT_MS_MAX);

async fn create_port(client: &Client, vpc: &str, name: &str) -> String {
    client
        .ports()
        .create(CreatePortRequest {
            project_id: PROJECT.into(),
            network_id: vpc.into(),
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"))
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_delivers_changes_in_order_and_resumes_on_another_member_without_gaps() {
    let mut cluster = ProcessCluster::start(3).await;
    let client = cluster.client();
    let (vpc, _) = network(&client).await;
    let listed = client
        .ports()
        .list(ListPortsRequest::default())
        .await
        .expect("list");
    assert!(listed.items.is_empty());
    // Member 1 serves the watch: it is first and answered every call so far.
    let mut changes = Box::pin(client.watch(ResourceKind::Port, listed.revision));

    let first = create_port(&client, &vpc, "first").await;
    let event = tokio::time::timeout(EVENT_WAIT, changes.next())
        .await
        .expect("first event in time")
        .expect("stream open")
        .expect("first event");
    assert_eq!(event.id, first);
    assert_eq!(event.r#type(), WatchEventType::Put);

    cluster.kill(1);
    let second = create_port(&client, &vpc, "second").await;
    let event = tokio::time::timeout(EVENT_WAIT, changes.next())
        .await
        .expect("second event in time")
        .expect("stream open")
        .unwrap_or_else(|e| panic!("second event: {e}\n{}", cluster.logs()));
    // Resumed elsewhere: the next event is the new port, not a repeat.
    assert_eq!(event.id, second);
    assert!(event.revision > listed.revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_before_a_members_history_is_compacted() {
    let mut cluster = ProcessCluster::start(3).await;
    let client = cluster.client();
    let (vpc, _) = network(&client).await;
    create_port(&client, &vpc, "before-restart").await;
    // A restarted member's history starts at what it applied before.
    cluster.kill(1);
    cluster.respawn(1);
    cluster.wait_for_leader().await;
    let member_1 = Client::builder()
        .endpoints([cluster.api_addr(1)])
        .build()
        .expect("client");
    let mut changes = Box::pin(member_1.watch(ResourceKind::Port, 0));
    let outcome = tokio::time::timeout(EVENT_WAIT, changes.next())
        .await
        .expect("an answer in time")
        .expect("one item");
    assert!(matches!(outcome, Err(Error::Compacted(_))), "{outcome:?}");
    assert!(
        changes.next().await.is_none(),
        "the stream ends after the error"
    );
}
