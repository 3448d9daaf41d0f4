//! Retry safety: a create whose answer was lost is repeated with the same
//! request token and yields exactly one resource; a write that is not safe
//! to repeat is not repeated and reports an indeterminate outcome.

use alcor_client::types::{CreatePortRequest, CreateRouterRequest, ListPortsRequest};
use alcor_client::{Client, Error};

use crate::support::{network, CuttingProxy, ProcessCluster, PROJECT};

/// A client whose first endpoint is a proxy to member 1 that loses the
/// first answer, followed by the real members.
async fn client_behind_cutting_proxy(cluster: &ProcessCluster) -> (Client, CuttingProxy) {
    let proxy = CuttingProxy::start(cluster.api_addr(1)).await;
    let mut endpoints = vec![proxy.address.clone()];
    endpoints.extend(cluster.endpoints().into_iter().skip(1));
    let client = Client::builder()
        .endpoints(endpoints)
        .build()
        .expect("client");
    (client, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenized_create_whose_answer_was_lost_is_retried_into_exactly_one_port() {
    let cluster = ProcessCluster::start(3).await;
    let (vpc, _) = network(&cluster.client()).await;
    let (client, _proxy) = client_behind_cutting_proxy(&cluster).await;

    let port = client
        .ports()
        .create(CreatePortRequest {
            project_id: PROJECT.into(),
            network_id: vpc.clone(),
            name: "once".into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("create through the cut: {e}\n{}", cluster.logs()));

    // The first connection was cut, so the answer came over a second one.
    assert!(client.connections_opened() >= 2);
    let page = cluster
        .client()
        .ports()
        .list(ListPortsRequest {
            network_id: vpc,
            ..Default::default()
        })
        .await
        .expect("list");
    let named: Vec<&str> = page.items.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(named, vec![port.id.as_str()], "exactly the one port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_write_whose_answer_was_lost_is_not_retried_and_is_indeterminate() {
    let cluster = ProcessCluster::start(3).await;
    let direct = cluster.client();
    let (_, subnet) = network(&direct).await;
    let router = direct
        .routers()
        .create(CreateRouterRequest {
            project_id: PROJECT.into(),
            name: "r".into(),
            ..Default::default()
        })
        .await
        .expect("create router");
    let (client, _proxy) = client_behind_cutting_proxy(&cluster).await;

    let outcome = client.routers().add_interface(&router.id, &subnet).await;
    assert!(
        matches!(outcome, Err(Error::Indeterminate { .. })),
        "{outcome:?}"
    );
    // Not repeated: one connection was used. The answer was cut after the
    // server sent it, so the write did happen, once.
    assert_eq!(client.connections_opened(), 1);
    let now = direct.routers().get(&router.id).await.expect("get router");
    assert_eq!(now.interfaces.len(), 1, "{now:?}");
}
