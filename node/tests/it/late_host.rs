//! Neutron parity over gRPC against a 3-process cluster: a port bound to a
//! host that has not registered waits (DOWN, `VIF_TYPE_BINDING_FAILED`) and
//! binds when the host registers, its agent then receiving and acking it
//! (ACTIVE); a router interface is a port the port API may not delete.

use std::time::Duration;

use alcor_host_push::{SimAgent, SimAgentConfig};
use alcor_proto::api::v1 as pb;
use tonic::Code;

use crate::cluster::ProcessCluster;
use crate::workload::{self, req, uuid};

const LATE_HOST: &str = "late-host";

/// The port as the first member that answers reads it.
async fn port(cluster: &ProcessCluster, targets: &[u64], id: &str) -> Option<pb::Port> {
    for member in targets {
        let Some(mut c) = cluster.client(*member).await else {
            continue;
        };
        let message = pb::GetPortRequest {
            id: id.into(),
            stale: false,
            ..Default::default()
        };
        if let Ok(found) = c.get_port(req(message)).await {
            return Some(found.into_inner());
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_bound_before_its_host_registers_binds_and_goes_active_when_it_does() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    let (vpc, subnet, port_id) = (uuid(0xb0), uuid(0xb1), uuid(0xb2));
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    workload::create_port(&cluster, &all, &vpc, &subnet, &port_id, LATE_HOST).await;
    let waiting = port(&cluster, &all, &port_id).await.expect("port");
    assert_eq!(
        (waiting.vif_type(), waiting.status()),
        (pb::VifType::BindingFailed, pb::PortStatus::Down),
        "bound to a host that has not registered"
    );

    workload::create_host(&cluster, &all, LATE_HOST, 9).await;
    let bound = port(&cluster, &all, &port_id).await.expect("port");
    assert_eq!(bound.vif_type(), pb::VifType::Ovs, "the host registered");
    assert!(bound.revision > waiting.revision, "the binding is a change");

    let endpoints = all.iter().map(|id| cluster.api_addr(*id)).collect();
    let mut config = SimAgentConfig::new(LATE_HOST, endpoints);
    config.reconnect_backoff_max = Duration::from_millis(500);
    let agent = SimAgent::new(config).expect("agent config");
    let task = tokio::spawn({
        let agent = agent.clone();
        async move { agent.run(std::future::pending()).await }
    });
    cluster
        .eventually("the late host's agent to program the port", || async {
            let p = port(&cluster, &all, &port_id).await?;
            (p.status() == pb::PortStatus::Active).then_some(())
        })
        .await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_interface_is_a_port_the_port_api_may_not_delete() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    let (vpc, subnet, router_id) = (uuid(0xc0), uuid(0xc1), uuid(0xc2));
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    let leader = cluster.leader(&all).await;
    let mut c = cluster.client(leader).await.expect("leader client");
    c.create_router(req(pb::CreateRouterRequest {
        id: router_id.clone(),
        project_id: workload::PROJECT.into(),
        name: "r".into(),
        ..Default::default()
    }))
    .await
    .expect("create router");
    let router = c
        .add_router_interface(req(pb::RouterInterfaceRequest {
            router_id: router_id.clone(),
            subnet_id: subnet.clone(),
            ..Default::default()
        }))
        .await
        .expect("add interface")
        .into_inner();
    let iface = &router.interfaces[0];
    let port = port(&cluster, &all, &iface.port_id)
        .await
        .expect("the interface's port");
    assert_eq!(
        (
            port.device_owner.as_str(),
            port.device_id.as_str(),
            port.fixed_ips[0].ip_address.as_str()
        ),
        ("network:router_interface", router_id.as_str(), "10.0.1.1")
    );
    let refused = c
        .delete_port(req(pb::DeletePortRequest {
            id: iface.port_id.clone(),
            expected_revision: None,
        }))
        .await
        .expect_err("an interface's port is not deleted through the port API");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        refused
            .metadata()
            .get(alcor_proto::REASON_HEADER)
            .map(|v| v.as_bytes()),
        Some(&b"ROUTER_INTERFACE_PORT"[..])
    );
}
