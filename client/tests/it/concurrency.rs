//! Concurrent callers share one HTTP/2 connection per endpoint.

use alcor_client::types::{CreatePortRequest, ListPortsRequest};

use crate::support::{established_connections_to, network, ProcessCluster, PROJECT};

/// Tasks calling at once.
const CALLERS: usize = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_connection() {
    let cluster = ProcessCluster::start(3).await;
    let endpoint = cluster.api_addr(1);
    let port: u16 = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let client = alcor_client::Client::builder()
        .endpoints([endpoint])
        .build()
        .expect("client");
    let (vpc, _) = network(&client).await;

    let mut tasks = Vec::with_capacity(CALLERS);
    for n in 0..CALLERS {
        let client = client.clone();
        let vpc = vpc.clone();
        tasks.push(tokio::spawn(async move {
            client
                .ports()
                .create(CreatePortRequest {
                    project_id: PROJECT.into(),
                    network_id: vpc,
                    name: format!("c{n}"),
                    ..Default::default()
                })
                .await
        }));
    }
    for task in tasks {
        task.await.expect("join").expect("concurrent create");
    }

    assert_eq!(client.connections_opened(), 1);
    assert_eq!(established_connections_to(port), 1);
    let page = client
        .ports()
        .list(ListPortsRequest {
            network_id: vpc,
            limit: 1_000,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.items.len(), CALLERS);
}
