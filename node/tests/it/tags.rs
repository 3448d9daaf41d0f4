//! Neutron-style tags against a real 3-process cluster: set on create,
//! replaced (or cleared) on update, kept by updates that do not name them,
//! bounded at the edge, and the four list filters.

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use tonic::transport::Channel;
use tonic::Code;

use crate::cluster::ProcessCluster;
use crate::workload::{self, req, uuid, PROJECT};

fn strings(tags: &[&str]) -> Vec<String> {
    tags.iter().map(|t| t.to_string()).collect()
}

async fn port_ids(
    client: &mut OrchestratorClient<Channel>,
    filter: pb::ListPortsRequest,
) -> Vec<String> {
    let listed = client
        .list_ports(req(filter))
        .await
        .expect("list ports")
        .into_inner();
    listed.ports.into_iter().map(|p| p.id).collect()
}

fn port_request(vpc: &str, id: &str, tags: &[&str]) -> pb::CreatePortRequest {
    pb::CreatePortRequest {
        id: id.into(),
        project_id: PROJECT.into(),
        network_id: vpc.into(),
        tags: strings(tags),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_set_replaced_cleared_bounded_and_filtered_from_the_index() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    let leader = cluster.leader(&all).await;
    let (vpc, subnet) = (uuid(0xe0), uuid(0xe1));
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    let mut c = cluster
        .eventually("a client", || cluster.client(leader))
        .await;

    let (red, blue, both, none) = (uuid(0xe2), uuid(0xe3), uuid(0xe4), uuid(0xe5));
    let created = c
        .create_port(req(port_request(&vpc, &red, &["red", "prod", "red"])))
        .await
        .expect("create red")
        .into_inner();
    assert_eq!(created.tags, strings(&["prod", "red"]), "a sorted set");
    for (id, tags) in [
        (&blue, vec!["blue"]),
        (&both, vec!["red", "blue"]),
        (&none, vec![]),
    ] {
        c.create_port(req(port_request(&vpc, id, &tags)))
            .await
            .expect("create port");
    }

    let filter =
        |tags: &[&str], any: &[&str], not: &[&str], not_any: &[&str]| pb::ListPortsRequest {
            tags: strings(tags),
            tags_any: strings(any),
            not_tags: strings(not),
            not_tags_any: strings(not_any),
            ..Default::default()
        };
    let mut expect = vec![red.clone(), both.clone()];
    expect.sort();
    assert_eq!(
        port_ids(&mut c, filter(&["red"], &[], &[], &[])).await,
        expect
    );
    assert_eq!(
        port_ids(&mut c, filter(&["red", "blue"], &[], &[], &[])).await,
        vec![both.clone()]
    );
    let mut any = vec![red.clone(), blue.clone(), both.clone()];
    any.sort();
    assert_eq!(
        port_ids(&mut c, filter(&[], &["blue", "prod"], &[], &[])).await,
        any
    );
    let mut not_red_and_blue = vec![red.clone(), blue.clone(), none.clone()];
    not_red_and_blue.sort();
    assert_eq!(
        port_ids(&mut c, filter(&[], &[], &["red", "blue"], &[])).await,
        not_red_and_blue
    );
    let mut no_red = vec![blue.clone(), none.clone()];
    no_red.sort();
    assert_eq!(
        port_ids(&mut c, filter(&[], &[], &[], &["red"])).await,
        no_red
    );
    let network_and_tag = pb::ListPortsRequest {
        network_id: vpc.clone(),
        ..filter(&["blue"], &[], &[], &["red"])
    };
    assert_eq!(port_ids(&mut c, network_and_tag).await, vec![blue.clone()]);

    // An update without tags keeps them; with a set replaces; empty clears.
    let renamed = c
        .update_port(req(pb::UpdatePortRequest {
            id: red.clone(),
            name: Some("renamed".into()),
            ..Default::default()
        }))
        .await
        .expect("rename")
        .into_inner();
    assert_eq!(renamed.tags, strings(&["prod", "red"]));
    let retagged = c
        .update_port(req(pb::UpdatePortRequest {
            id: red.clone(),
            tags: Some(pb::TagSet {
                tags: strings(&["green"]),
            }),
            expected_revision: Some(renamed.revision),
            ..Default::default()
        }))
        .await
        .expect("retag")
        .into_inner();
    assert_eq!(retagged.tags, strings(&["green"]));
    assert!(retagged.revision > renamed.revision);
    assert_eq!(
        port_ids(&mut c, filter(&["red"], &[], &[], &[])).await,
        vec![both.clone()]
    );
    let cleared = c
        .update_port(req(pb::UpdatePortRequest {
            id: red.clone(),
            tags: Some(pb::TagSet::default()),
            ..Default::default()
        }))
        .await
        .expect("clear")
        .into_inner();
    assert!(cleared.tags.is_empty());

    // Bad tags are INVALID_ARGUMENT naming the field, and change nothing.
    let too_many: Vec<String> = (0..=50).map(|n| format!("t{n}")).collect();
    let refused = c
        .update_port(req(pb::UpdatePortRequest {
            id: blue.clone(),
            tags: Some(pb::TagSet { tags: too_many }),
            ..Default::default()
        }))
        .await
        .expect_err("51 tags");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("tags"), "{refused:?}");
    let comma = c
        .list_ports(req(filter(&[], &["a,b"], &[], &[])))
        .await
        .expect_err("a comma in a filter tag");
    assert!(comma.message().contains("tags_any"), "{comma:?}");
    let batch = c
        .create_ports(req(pb::CreatePortsRequest {
            ports: vec![port_request(&vpc, &uuid(0xe6), &["x"])],
            request_token: String::new(),
        }))
        .await
        .expect_err("tags on a batch entry");
    assert_eq!(batch.code(), Code::InvalidArgument);
    let blue_now = c
        .get_port(req(pb::GetPortRequest {
            id: blue.clone(),
            stale: false,
            ..Default::default()
        }))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(blue_now.tags, strings(&["blue"]));

    // The other kinds carry tags the same way.
    let tagged_vpc = c
        .update_vpc(req(pb::UpdateVpcRequest {
            id: vpc.clone(),
            tags: Some(pb::TagSet {
                tags: strings(&["net"]),
            }),
            ..Default::default()
        }))
        .await
        .expect("tag vpc")
        .into_inner();
    assert_eq!(tagged_vpc.tags, strings(&["net"]));
    let vpcs = c
        .list_vpcs(req(pb::ListVpcsRequest {
            tags: strings(&["net"]),
            ..Default::default()
        }))
        .await
        .expect("list vpcs")
        .into_inner();
    assert_eq!(vpcs.vpcs.len(), 1);
    let group = c
        .create_security_group(req(pb::CreateSecurityGroupRequest {
            project_id: PROJECT.into(),
            name: "web".into(),
            tags: strings(&["sg"]),
            ..Default::default()
        }))
        .await
        .expect("create group")
        .into_inner();
    assert_eq!(group.tags, strings(&["sg"]));
}
