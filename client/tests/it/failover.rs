//! Failover: when the member in first position dies, calls move on to the
//! others and keep working.

use alcor_client::types::{CreatePortRequest, ListPortsRequest};

use crate::support::{network, ProcessCluster, PROJECT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_over_when_the_first_endpoint_is_killed() {
    let mut cluster = ProcessCluster::start(3).await;
    let client = cluster.client();
    let (vpc, _) = network(&client).await;
    let before = client
        .ports()
        .create(CreatePortRequest {
            project_id: PROJECT.into(),
            network_id: vpc.clone(),
            ..Default::default()
        })
        .await
        .expect("create before the kill");

    // Member 1 is first in the list and served every call so far.
    cluster.kill(1);

    let read = client
        .ports()
        .get(&before.id)
        .await
        .expect("read after the kill");
    assert_eq!(read.id, before.id);
    let after = client
        .ports()
        .create(CreatePortRequest {
            project_id: PROJECT.into(),
            network_id: vpc.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("create after the kill: {e}\n{}", cluster.logs()));
    let page = client
        .ports()
        .list(ListPortsRequest {
            network_id: vpc,
            ..Default::default()
        })
        .await
        .expect("list after the kill");
    let ids: Vec<&str> = page.items.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&before.id.as_str()) && ids.contains(&after.id.as_str()));
    // The client reached another member through a second connection.
    assert!(client.connections_opened() >= 2);
}
