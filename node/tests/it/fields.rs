//! Field selection on Get and List against a real 3-process cluster: the
//! named fields are filled in, the others keep their defaults, paging still
//! works, and an unknown name is INVALID_ARGUMENT naming it.

use alcor_proto::api::v1 as pb;
use tonic::Code;

use crate::cluster::ProcessCluster;
use crate::workload::{self, req, uuid};

fn names(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|f| f.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_list_fill_in_only_the_selected_fields_and_refuse_unknown_names() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    let leader = cluster.leader(&all).await;
    let (vpc, subnet) = (uuid(0xd0), uuid(0xd1));
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    for n in 0..3 {
        workload::create_port(&cluster, &all, &vpc, &subnet, &uuid(0xd2 + n), "").await;
    }
    let mut c = cluster
        .eventually("a client", || cluster.client(leader))
        .await;

    let full = c
        .get_port(req(pb::GetPortRequest {
            id: uuid(0xd2),
            ..Default::default()
        }))
        .await
        .expect("get")
        .into_inner();
    assert!(!full.mac_address.is_empty() && !full.fixed_ips.is_empty());
    let selected = c
        .get_port(req(pb::GetPortRequest {
            id: uuid(0xd2),
            fields: names(&["id", "status", "fixed_ips"]),
            ..Default::default()
        }))
        .await
        .expect("get with fields")
        .into_inner();
    assert_eq!(
        selected,
        pb::Port {
            id: full.id.clone(),
            status: full.status,
            fixed_ips: full.fixed_ips.clone(),
            ..Default::default()
        }
    );

    let page = c
        .list_ports(req(pb::ListPortsRequest {
            network_id: vpc.clone(),
            limit: 2,
            fields: names(&["id"]),
            ..Default::default()
        }))
        .await
        .expect("list with fields")
        .into_inner();
    assert_eq!(page.ports.len(), 2);
    assert!(page
        .ports
        .iter()
        .all(|p| !p.id.is_empty() && p.network_id.is_empty() && p.mac_address.is_empty()));
    assert_eq!(page.next_marker, page.ports[1].id, "paging is unaffected");

    let unknown = c
        .list_vpcs(req(pb::ListVpcsRequest {
            fields: names(&["id", "colour"]),
            ..Default::default()
        }))
        .await
        .expect_err("unknown field");
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(unknown.message().contains("fields") && unknown.message().contains("colour"));
    let foreign = c
        .get_vpc(req(pb::GetVpcRequest {
            id: vpc.clone(),
            fields: names(&["mac_address"]),
            ..Default::default()
        }))
        .await
        .expect_err("a port field on a VPC");
    assert_eq!(foreign.code(), Code::InvalidArgument);
}
