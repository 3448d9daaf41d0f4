//! Each typed error, from what a real cluster sends.

use std::time::Duration;

use alcor_client::types::{
    CreatePortRequest, CreateSubnetRequest, CreateVpcRequest, SetQuotaRequest, UpdateVpcRequest,
};
use alcor_client::{Client, Error};

use crate::support::{network, ProcessCluster, PROJECT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_refusals_map_to_typed_errors() {
    let cluster = ProcessCluster::start(3).await;
    let client = cluster.client();
    let (vpc, _) = network(&client).await;

    let missing = client
        .vpcs()
        .get("00000000-0000-4000-8000-00000000dead")
        .await;
    let Err(Error::NotFound(details)) = missing else {
        panic!("{missing:?}");
    };
    assert_eq!(details.resource.as_deref(), Some("network"));

    let overlapping = client
        .subnets()
        .create(CreateSubnetRequest {
            project_id: PROJECT.into(),
            network_id: vpc.clone(),
            cidr: "10.0.1.0/24".into(),
            ..Default::default()
        })
        .await;
    let Err(Error::Conflict(details)) = overlapping else {
        panic!("{overlapping:?}");
    };
    assert_eq!(details.reason, "OVERLAPPING_SUBNET");

    let current = client.vpcs().get(&vpc).await.expect("get VPC");
    let stale = client
        .vpcs()
        .update(UpdateVpcRequest {
            id: vpc.clone(),
            name: Some("renamed".into()),
            expected_revision: Some(current.revision + 1_000),
            ..Default::default()
        })
        .await;
    let Err(Error::PreconditionFailed { details, .. }) = stale else {
        panic!("{stale:?}");
    };
    assert_eq!(details.reason, "STALE_REVISION");

    let invalid = client
        .vpcs()
        .create(CreateVpcRequest {
            project_id: PROJECT.into(),
            cidr: "10.0.0.1/16".into(),
            ..Default::default()
        })
        .await;
    assert!(
        matches!(invalid, Err(Error::InvalidArgument(_))),
        "{invalid:?}"
    );

    client
        .quotas()
        .set(SetQuotaRequest {
            project_id: PROJECT.into(),
            port: Some(0),
            ..Default::default()
        })
        .await
        .expect("set quota");
    let over = client
        .ports()
        .create(CreatePortRequest {
            project_id: PROJECT.into(),
            network_id: vpc,
            ..Default::default()
        })
        .await;
    assert!(matches!(over, Err(Error::QuotaExceeded { .. })), "{over:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_token_with_a_different_request_is_a_conflict_and_same_request_returns_the_original() {
    let cluster = ProcessCluster::start(3).await;
    let client = cluster.client();
    let request = CreateVpcRequest {
        project_id: PROJECT.into(),
        name: "a".into(),
        request_token: "token-of-sdk-test".into(),
        ..Default::default()
    };
    let first = client.vpcs().create(request.clone()).await.expect("create");
    let again = client.vpcs().create(request.clone()).await.expect("repeat");
    assert_eq!(first, again);
    let changed = client
        .vpcs()
        .create(CreateVpcRequest {
            name: "b".into(),
            ..request
        })
        .await;
    let Err(Error::Conflict(details)) = changed else {
        panic!("{changed:?}");
    };
    assert_eq!(details.reason, "TOKEN_CONFLICT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reachable_endpoint_is_unavailable_within_the_deadline() {
    // Ports nobody listens on (bound, then released).
    let dead: Vec<String> = (0..2)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").to_string()
        })
        .collect();
    let client = Client::builder()
        .endpoints(dead)
        .deadline(Duration::from_millis(800))
        .build()
        .expect("client");
    let outcome = client
        .vpcs()
        .get("00000000-0000-4000-8000-000000000001")
        .await;
    assert!(
        matches!(outcome, Err(Error::Unavailable { .. })),
        "{outcome:?}"
    );
    // A write that never reached a server is not indeterminate either.
    let write = client
        .vpcs()
        .create(CreateVpcRequest {
            project_id: PROJECT.into(),
            ..Default::default()
        })
        .await;
    assert!(matches!(write, Err(Error::Unavailable { .. })), "{write:?}");
}
