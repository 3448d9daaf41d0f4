//! Floating IPs over gRPC against a real 3-process cluster: idempotent create
//! by request token, association through a follower, compare-and-set, the
//! list filters, typed errors that change nothing, and release.

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use tonic::transport::Channel;
use tonic::Code;

use crate::cluster::ProcessCluster;
use crate::workload::{self, req, uuid, PROJECT};

/// The `x-alcor-reason` of a failed call.
fn reason(status: &tonic::Status) -> String {
    status
        .metadata()
        .get(alcor_proto::REASON_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn client_of(cluster: &ProcessCluster, id: u64) -> OrchestratorClient<Channel> {
    cluster
        .eventually("an orchestrator client", || cluster.client(id))
        .await
}

async fn list(
    client: &mut OrchestratorClient<Channel>,
    filter: pb::ListFloatingIpsRequest,
) -> Vec<String> {
    let listed = client
        .list_floating_ips(req(filter))
        .await
        .expect("list floating IPs")
        .into_inner();
    listed.floating_ips.into_iter().map(|f| f.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floating_ips_are_created_once_per_token_associated_with_cas_filtered_and_released() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    let leader = cluster.leader(&all).await;
    let follower = *all.iter().find(|id| **id != leader).expect("a follower");
    let (vpc, subnet, port) = (uuid(0xf0), uuid(0xf1), uuid(0xf2));
    let (external, external_subnet) = (uuid(0xf3), uuid(0xf4));
    workload::create_host(&cluster, &all, "host-a", 1).await;
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    workload::create_port(&cluster, &all, &vpc, &subnet, &port, "host-a").await;
    let mut c = client_of(&cluster, leader).await;
    c.create_vpc(req(pb::CreateVpcRequest {
        id: external.clone(),
        project_id: PROJECT.into(),
        cidr: "203.0.113.0/24".into(),
        ..Default::default()
    }))
    .await
    .expect("create external vpc");
    c.create_subnet(req(pb::CreateSubnetRequest {
        id: external_subnet.clone(),
        project_id: PROJECT.into(),
        network_id: external.clone(),
        cidr: "203.0.113.0/24".into(),
        ..Default::default()
    }))
    .await
    .expect("create external subnet");

    // The same token twice: one floating IP, the original reply.
    let create = pb::CreateFloatingIpRequest {
        project_id: PROJECT.into(),
        floating_network_id: external.clone(),
        description: "web".into(),
        request_token: "fip-token-1".into(),
        ..Default::default()
    };
    let first = c
        .create_floating_ip(req(create.clone()))
        .await
        .expect("create floating IP")
        .into_inner();
    let mut on_follower = client_of(&cluster, follower).await;
    let retry = on_follower
        .create_floating_ip(req(create.clone()))
        .await
        .expect("retried create")
        .into_inner();
    assert_eq!(retry, first, "a retry with the token returns the original");
    assert_eq!(first.status, pb::FloatingIpStatus::Down as i32);
    assert_eq!(first.description, "web");
    assert!(first.floating_ip_address.starts_with("203.0.113."));
    let conflict = c
        .create_floating_ip(req(pb::CreateFloatingIpRequest {
            description: "other".into(),
            ..create.clone()
        }))
        .await
        .expect_err("same token, other request");
    assert_eq!(conflict.code(), Code::AlreadyExists);
    assert_eq!(reason(&conflict), "TOKEN_CONFLICT");

    // A missing port is NOT_FOUND, a malformed ID INVALID_ARGUMENT naming the
    // field; neither changes anything (checked by the CAS update below).
    let bad = c
        .update_floating_ip(req(pb::UpdateFloatingIpRequest {
            id: first.id.clone(),
            port_id: Some(external_subnet.clone()),
            ..Default::default()
        }))
        .await
        .expect_err("associate to a missing port");
    assert_eq!(bad.code(), Code::NotFound, "{bad:?}");
    let malformed = c
        .update_floating_ip(req(pb::UpdateFloatingIpRequest {
            id: first.id.clone(),
            port_id: Some("not-a-uuid".into()),
            ..Default::default()
        }))
        .await
        .expect_err("malformed port id");
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert!(malformed.message().contains("port_id"), "{malformed:?}");

    // Associate through a follower under compare-and-set.
    let associated = on_follower
        .update_floating_ip(req(pb::UpdateFloatingIpRequest {
            id: first.id.clone(),
            port_id: Some(port.clone()),
            expected_revision: Some(first.revision),
            ..Default::default()
        }))
        .await
        .expect("associate")
        .into_inner();
    assert_eq!(associated.port_id, port);
    assert!(associated.fixed_ip_address.starts_with("10.0.1."));
    assert_eq!(associated.status, pb::FloatingIpStatus::Active as i32);
    assert!(associated.revision > first.revision);
    let stale = c
        .update_floating_ip(req(pb::UpdateFloatingIpRequest {
            id: first.id.clone(),
            description: Some("late".into()),
            expected_revision: Some(first.revision),
            ..Default::default()
        }))
        .await
        .expect_err("stale revision");
    assert_eq!(stale.code(), Code::FailedPrecondition);
    assert_eq!(reason(&stale), "STALE_REVISION");
    let got = c
        .get_floating_ip(req(pb::GetFloatingIpRequest {
            id: first.id.clone(),
            stale: false,
            ..Default::default()
        }))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got, associated, "the stale update changed nothing");

    // A second, unassociated floating IP; then the list filters.
    let second = c
        .create_floating_ip(req(pb::CreateFloatingIpRequest {
            id: uuid(0xf5),
            project_id: PROJECT.into(),
            floating_network_id: external.clone(),
            ..Default::default()
        }))
        .await
        .expect("create second")
        .into_inner();
    let by_port = pb::ListFloatingIpsRequest {
        port_id: port.clone(),
        ..Default::default()
    };
    assert_eq!(list(&mut c, by_port).await, vec![first.id.clone()]);
    let by_network = pb::ListFloatingIpsRequest {
        floating_network_id: external.clone(),
        ..Default::default()
    };
    let mut both = vec![first.id.clone(), second.id.clone()];
    both.sort();
    assert_eq!(list(&mut c, by_network).await, both);
    let down = pb::ListFloatingIpsRequest {
        status: pb::FloatingIpStatus::Down as i32,
        ..Default::default()
    };
    assert_eq!(list(&mut c, down).await, vec![second.id.clone()]);
    let other_project = pb::ListFloatingIpsRequest {
        project_id: "someone-else".into(),
        ..Default::default()
    };
    assert!(list(&mut c, other_project).await.is_empty());

    // router_id follows the router attached to the fixed address's subnet.
    let router = c
        .create_router(req(pb::CreateRouterRequest {
            id: uuid(0xf6),
            project_id: PROJECT.into(),
            ..Default::default()
        }))
        .await
        .expect("create router")
        .into_inner();
    c.add_router_interface(req(pb::RouterInterfaceRequest {
        router_id: router.id.clone(),
        subnet_id: subnet.clone(),
        ..Default::default()
    }))
    .await
    .expect("add interface");
    let by_router = pb::ListFloatingIpsRequest {
        router_id: router.id.clone(),
        ..Default::default()
    };
    assert_eq!(list(&mut c, by_router).await, vec![first.id.clone()]);

    // Disassociate, then release under compare-and-set.
    let released = c
        .update_floating_ip(req(pb::UpdateFloatingIpRequest {
            id: first.id.clone(),
            port_id: Some(String::new()),
            ..Default::default()
        }))
        .await
        .expect("disassociate")
        .into_inner();
    assert_eq!(released.port_id, "");
    assert_eq!(released.router_id, "");
    assert_eq!(released.status, pb::FloatingIpStatus::Down as i32);
    let stale_delete = c
        .delete_floating_ip(req(pb::DeleteFloatingIpRequest {
            id: first.id.clone(),
            expected_revision: Some(associated.revision),
        }))
        .await
        .expect_err("stale delete");
    assert_eq!(stale_delete.code(), Code::FailedPrecondition);
    c.delete_floating_ip(req(pb::DeleteFloatingIpRequest {
        id: first.id.clone(),
        expected_revision: Some(released.revision),
    }))
    .await
    .expect("delete");
    let gone = c
        .get_floating_ip(req(pb::GetFloatingIpRequest {
            id: first.id.clone(),
            stale: false,
            ..Default::default()
        }))
        .await
        .expect_err("deleted");
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(reason(&gone), "NOT_FOUND");
}
