//! Writes for the multi-process tests: every call carries a deadline and is
//! retried against the given members until one accepts it, so a test can
//! keep writing through a failover. IDs are chosen by the test, so a retry
//! of a write whose outcome was unknown is recognised (ALREADY_EXISTS for a
//! create, NOT_FOUND for a delete).

use std::future::Future;
use std::time::Duration;

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::cluster::{ProcessCluster, WAIT_MS_MAX};

pub(crate) const PROJECT: &str = "p1";

/// Deadline of one call.
const CALL_TIMEOUT_MS: u64 = 3_000;

/// `message` with a `grpc-timeout`.
pub(crate) fn req<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_millis(CALL_TIMEOUT_MS));
    request
}

/// A test-chosen UUID.
pub(crate) fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// Sends `op` to `targets` in turn (every 100 ms) until it succeeds or fails
/// with one of `done` (the effect of an earlier, indeterminate attempt);
/// panics with the members' logs after `WAIT_MS_MAX`. Returns the value of
/// the successful call, or `None` when a `done` code ended it.
pub(crate) async fn write<T, F, Fut>(
    cluster: &ProcessCluster,
    targets: &[u64],
    what: &str,
    done: &[Code],
    mut op: F,
) -> Option<T>
where
    F: FnMut(OrchestratorClient<Channel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    let mut last = String::from("no attempt");
    for attempt in 0usize.. {
        let target = targets[attempt % targets.len()];
        if let Some(client) = cluster.client(target).await {
            match op(client).await {
                Ok(response) => return Some(response.into_inner()),
                Err(status) if done.contains(&status.code()) => return None,
                Err(status) => last = format!("node {target}: {status}"),
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: no member accepted it within {WAIT_MS_MAX} ms; last: {last}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

pub(crate) async fn create_host(cluster: &ProcessCluster, targets: &[u64], host: &str, n: u8) {
    let message = pb::CreateHostRequest {
        id: host.into(),
        project_id: PROJECT.into(),
        underlay_ip: format!("192.168.0.{n}"),
        ..Default::default()
    };
    write(
        cluster,
        targets,
        "create host",
        &[Code::AlreadyExists],
        |mut c| {
            let message = message.clone();
            async move { c.create_host(req(message)).await }
        },
    )
    .await;
}

/// Creates VPC `vpc` (10.0.0.0/16) with subnet `subnet` (10.0.1.0/24).
pub(crate) async fn create_network(
    cluster: &ProcessCluster,
    targets: &[u64],
    vpc: &str,
    subnet: &str,
) {
    let message = pb::CreateVpcRequest {
        id: vpc.into(),
        project_id: PROJECT.into(),
        name: "vpc".into(),
        cidr: "10.0.0.0/16".into(),
        ..Default::default()
    };
    write(
        cluster,
        targets,
        "create vpc",
        &[Code::AlreadyExists],
        |mut c| {
            let message = message.clone();
            async move { c.create_vpc(req(message)).await }
        },
    )
    .await;
    let message = pb::CreateSubnetRequest {
        id: subnet.into(),
        project_id: PROJECT.into(),
        network_id: vpc.into(),
        cidr: "10.0.1.0/24".into(),
        ..Default::default()
    };
    write(
        cluster,
        targets,
        "create subnet",
        &[Code::AlreadyExists],
        |mut c| {
            let message = message.clone();
            async move { c.create_subnet(req(message)).await }
        },
    )
    .await;
}

/// Creates port `id` in `vpc`/`subnet`, bound to `host` ("" for none).
pub(crate) async fn create_port(
    cluster: &ProcessCluster,
    targets: &[u64],
    vpc: &str,
    subnet: &str,
    id: &str,
    host: &str,
) {
    let message = pb::CreatePortRequest {
        id: id.into(),
        project_id: PROJECT.into(),
        network_id: vpc.into(),
        fixed_ips: vec![pb::FixedIpRequest {
            subnet_id: subnet.into(),
            ip_address: String::new(),
        }],
        binding_host: host.into(),
        ..Default::default()
    };
    write(
        cluster,
        targets,
        "create port",
        &[Code::AlreadyExists],
        |mut c| {
            let message = message.clone();
            async move { c.create_port(req(message)).await }
        },
    )
    .await;
}

/// Moves port `id`'s binding to `host`.
pub(crate) async fn bind_port(cluster: &ProcessCluster, targets: &[u64], id: &str, host: &str) {
    let message = pb::UpdatePortRequest {
        id: id.into(),
        binding_host: Some(host.into()),
        ..Default::default()
    };
    write(cluster, targets, "update port binding", &[], |mut c| {
        let message = message.clone();
        async move { c.update_port(req(message)).await }
    })
    .await;
}

pub(crate) async fn delete_port(cluster: &ProcessCluster, targets: &[u64], id: &str) {
    let message = pb::DeletePortRequest {
        id: id.into(),
        expected_revision: None,
    };
    write(
        cluster,
        targets,
        "delete port",
        &[Code::NotFound],
        |mut c| {
            let message = message.clone();
            async move { c.delete_port(req(message)).await }
        },
    )
    .await;
}
