//! The API's behaviour through a real gRPC client.

use alcor_api_gateway::limits::PORTS_BATCH_MAX;
use alcor_api_gateway::BATCH_INDEX_HEADER;
use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_client::ClusterClient;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use tonic::transport::Channel;
use tonic::Code;

use crate::harness::{assert_status, eventually, TestCluster};

const PROJECT: &str = "p1";

async fn create_vpc(c: &mut OrchestratorClient<Channel>, name: &str) -> pb::Vpc {
    let req = pb::CreateVpcRequest {
        project_id: PROJECT.into(),
        name: name.into(),
        ..Default::default()
    };
    c.create_vpc(req).await.expect("create vpc").into_inner()
}

async fn create_subnet(c: &mut OrchestratorClient<Channel>, vpc: &str, cidr: &str) -> pb::Subnet {
    let req = pb::CreateSubnetRequest {
        project_id: PROJECT.into(),
        network_id: vpc.into(),
        cidr: cidr.into(),
        ..Default::default()
    };
    c.create_subnet(req)
        .await
        .expect("create subnet")
        .into_inner()
}

fn port_request(vpc: &str, name: &str) -> pb::CreatePortRequest {
    pb::CreatePortRequest {
        project_id: PROJECT.into(),
        network_id: vpc.into(),
        name: name.into(),
        ..Default::default()
    }
}

async fn all_ports(c: &mut OrchestratorClient<Channel>, vpc: &str) -> Vec<pb::Port> {
    let req = pb::ListPortsRequest {
        network_id: vpc.into(),
        limit: 1_000,
        ..Default::default()
    };
    c.list_ports(req)
        .await
        .expect("list ports")
        .into_inner()
        .ports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_are_created_read_paginated_filtered_and_deleted() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client(0).await;
    let host = pb::CreateHostRequest {
        id: "h1".into(),
        project_id: "ops".into(),
        underlay_ip: "192.168.0.1".into(),
        ..Default::default()
    };
    let host = c.create_host(host).await.expect("create host").into_inner();
    assert!(host.revision > 0);

    let vpc = create_vpc(&mut c, "web").await;
    assert_eq!(
        vpc.id.as_bytes()[14],
        b'7',
        "gateway generates time-ordered UUID v7: {}",
        vpc.id
    );
    let subnet = create_subnet(&mut c, &vpc.id, "10.0.0.0/24").await;
    assert_eq!(subnet.gateway_ip, "10.0.0.1");

    let single = c
        .create_port(port_request(&vpc.id, "single"))
        .await
        .expect("create port")
        .into_inner();
    assert_eq!(single.fixed_ips.len(), 1);
    assert!(single.revision > subnet.revision);
    let batch: Vec<_> = (0..5)
        .map(|n| pb::CreatePortRequest {
            binding_host: "h1".into(),
            ..port_request(&vpc.id, &format!("b{n}"))
        })
        .collect();
    let created = c
        .create_ports(pb::CreatePortsRequest {
            ports: batch,
            ..Default::default()
        })
        .await
        .expect("create ports")
        .into_inner()
        .ports;
    assert_eq!(created.len(), 5);
    assert!(created.iter().all(|p| p.revision == created[0].revision));

    let got = c
        .get_port(pb::GetPortRequest {
            id: single.id.clone(),
            stale: false,
            ..Default::default()
        })
        .await
        .expect("get port")
        .into_inner();
    assert_eq!(got, single);

    // Pages of 2 visit every port once, in ID order.
    let mut seen = Vec::new();
    let mut marker = String::new();
    for _ in 0..10 {
        let page = c
            .list_ports(pb::ListPortsRequest {
                network_id: vpc.id.clone(),
                limit: 2,
                marker: marker.clone(),
                ..Default::default()
            })
            .await
            .expect("list page")
            .into_inner();
        assert!(page.ports.len() <= 2);
        seen.extend(page.ports.into_iter().map(|p| p.id));
        if page.next_marker.is_empty() {
            break;
        }
        marker = page.next_marker;
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((seen.len(), &seen), (6, &sorted));

    let on_h1 = c
        .list_ports(pb::ListPortsRequest {
            host: "h1".into(),
            ..Default::default()
        })
        .await
        .expect("list by host")
        .into_inner()
        .ports;
    assert_eq!(on_h1.len(), 5);
    let other_project = c
        .list_vpcs(pb::ListVpcsRequest {
            project_id: "nobody".into(),
            ..Default::default()
        })
        .await
        .expect("list vpcs")
        .into_inner()
        .vpcs;
    assert!(other_project.is_empty());
    let subnets = c
        .list_subnets(pb::ListSubnetsRequest {
            network_id: vpc.id.clone(),
            ..Default::default()
        })
        .await
        .expect("list subnets")
        .into_inner()
        .subnets;
    assert_eq!(subnets, vec![subnet.clone()]);

    let moved = c
        .update_port(pb::UpdatePortRequest {
            id: single.id.clone(),
            binding_host: Some("h1".into()),
            expected_revision: Some(single.revision),
            ..Default::default()
        })
        .await
        .expect("update port")
        .into_inner();
    assert_eq!(moved.binding_host, "h1");
    assert!(moved.revision > single.revision);

    let deleted = c
        .delete_port(pb::DeletePortRequest {
            id: single.id.clone(),
            expected_revision: None,
        })
        .await
        .expect("delete port")
        .into_inner();
    assert!(deleted.revision > moved.revision);
    let gone = c
        .get_port(pb::GetPortRequest {
            id: single.id.clone(),
            stale: true,
            ..Default::default()
        })
        .await;
    assert_status(gone, Code::NotFound, "NOT_FOUND");
    assert_eq!(all_ports(&mut c, &vpc.id).await.len(), 5);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_rejections_arrive_as_grpc_codes_with_reasons_and_change_nothing() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client(0).await;
    let vpc = create_vpc(&mut c, "v").await;
    let subnet = create_subnet(&mut c, &vpc.id, "10.1.0.0/24").await;
    let fixed = pb::CreatePortRequest {
        fixed_ips: vec![pb::FixedIpRequest {
            subnet_id: subnet.id.clone(),
            ip_address: "10.1.0.10".into(),
        }],
        ..port_request(&vpc.id, "fixed")
    };
    let port = c
        .create_port(fixed.clone())
        .await
        .expect("create port")
        .into_inner();
    let before = all_ports(&mut c, &vpc.id).await;
    let log_before = cluster.nodes[0].node.metrics().applied_index;

    let duplicate = pb::CreateVpcRequest {
        id: vpc.id.clone(),
        project_id: PROJECT.into(),
        ..Default::default()
    };
    assert_status(
        c.create_vpc(duplicate).await,
        Code::AlreadyExists,
        "ALREADY_EXISTS",
    );
    let missing = pb::GetVpcRequest {
        id: "00000000-0000-4000-8000-000000000000".into(),
        stale: false,
        ..Default::default()
    };
    assert_status(c.get_vpc(missing).await, Code::NotFound, "NOT_FOUND");
    let taken_ip = pb::CreatePortRequest {
        id: String::new(),
        ..fixed.clone()
    };
    assert_status(
        c.create_port(taken_ip).await,
        Code::AlreadyExists,
        "IP_IN_USE",
    );
    let overlapping = pb::CreateSubnetRequest {
        project_id: PROJECT.into(),
        network_id: vpc.id.clone(),
        cidr: "10.1.0.0/25".into(),
        ..Default::default()
    };
    assert_status(
        c.create_subnet(overlapping).await,
        Code::AlreadyExists,
        "OVERLAPPING_SUBNET",
    );
    let stale = pb::DeletePortRequest {
        id: port.id.clone(),
        expected_revision: Some(port.revision + 100),
    };
    assert_status(
        c.delete_port(stale).await,
        Code::FailedPrecondition,
        "STALE_REVISION",
    );
    let in_use = pb::DeleteVpcRequest {
        id: vpc.id.clone(),
        expected_revision: None,
    };
    assert_status(
        c.delete_vpc(in_use).await,
        Code::FailedPrecondition,
        "IN_USE",
    );

    // A batch whose second entry takes a used address: nothing is created.
    let batch = pb::CreatePortsRequest {
        ports: vec![
            port_request(&vpc.id, "ok"),
            pb::CreatePortRequest {
                id: String::new(),
                ..fixed
            },
        ],
        ..Default::default()
    };
    let result = c.create_ports(batch).await;
    let index = result
        .as_ref()
        .err()
        .and_then(|s| s.metadata().get(BATCH_INDEX_HEADER))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(index.as_deref(), Some("1"));
    assert_status(result, Code::AlreadyExists, "IP_IN_USE");

    assert_eq!(all_ports(&mut c, &vpc.id).await, before);
    let vpc_now = c
        .get_vpc(pb::GetVpcRequest {
            id: vpc.id.clone(),
            stale: false,
            ..Default::default()
        })
        .await
        .expect("get vpc")
        .into_inner();
    assert_eq!(vpc_now, vpc);
    // Rejected proposals were committed (and rejected) at apply time; the
    // gateway-level ones never reached the log. Either way: same state.
    assert!(cluster.nodes[0].node.metrics().applied_index >= log_before);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_invalid_argument_and_never_proposed() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client(0).await;
    let vpc = create_vpc(&mut c, "v").await;
    let log_before = cluster.nodes[0].node.metrics().last_log_index;

    let bad_uuid = pb::GetPortRequest {
        id: "not-a-uuid".into(),
        stale: false,
        ..Default::default()
    };
    assert_status(
        c.get_port(bad_uuid).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    let bad_network = port_request("1234", "p");
    assert_status(
        c.create_port(bad_network).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    for cidr in ["10.0.0.0/33", "banana", "10.0.0.1/24"] {
        let bad_cidr = pb::CreateSubnetRequest {
            project_id: PROJECT.into(),
            network_id: vpc.id.clone(),
            cidr: cidr.into(),
            ..Default::default()
        };
        assert_status(
            c.create_subnet(bad_cidr).await,
            Code::InvalidArgument,
            "INVALID_CIDR",
        );
    }
    let bad_mac = pb::CreatePortRequest {
        mac_address: "zz:00".into(),
        ..port_request(&vpc.id, "p")
    };
    assert_status(
        c.create_port(bad_mac).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    let oversized = pb::CreatePortsRequest {
        ports: vec![port_request(&vpc.id, "p"); PORTS_BATCH_MAX + 1],
        ..Default::default()
    };
    assert_status(
        c.create_ports(oversized).await,
        Code::InvalidArgument,
        "BATCH_TOO_LARGE",
    );
    let bad_marker = pb::ListVpcsRequest {
        marker: "nope".into(),
        ..Default::default()
    };
    assert_status(
        c.list_vpcs(bad_marker).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );

    assert_eq!(cluster.nodes[0].node.metrics().last_log_index, log_before);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_the_request_size_limit_is_refused_by_the_decoder() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client(0).await;
    let huge = pb::CreateVpcRequest {
        project_id: PROJECT.into(),
        name: "x".repeat(alcor_api_gateway::limits::REQUEST_BYTES_MAX + 1),
        ..Default::default()
    };
    let status = c.create_vpc(huge).await.expect_err("oversized request");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_a_follower_commits_and_every_node_reads_it() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster
        .nodes
        .iter()
        .position(|n| n.node.id() != leader)
        .expect("a follower");
    let mut via_follower = cluster.client(follower).await;
    let vpc = create_vpc(&mut via_follower, "through-follower").await;
    let subnet = create_subnet(&mut via_follower, &vpc.id, "10.2.0.0/24").await;
    let batch = pb::CreatePortsRequest {
        ports: (0..3)
            .map(|n| port_request(&vpc.id, &format!("p{n}")))
            .collect(),
        ..Default::default()
    };
    via_follower
        .create_ports(batch)
        .await
        .expect("batch through follower");

    for idx in 0..cluster.nodes.len() {
        let mut c = cluster.client(idx).await;
        let get = pb::GetSubnetRequest {
            id: subnet.id.clone(),
            stale: false,
            ..Default::default()
        };
        let got = c
            .get_subnet(get)
            .await
            .expect("linearizable get")
            .into_inner();
        assert_eq!(got, subnet, "node index {idx}");
        assert_eq!(
            all_ports(&mut c, &vpc.id).await.len(),
            3,
            "node index {idx}"
        );
        // A stale read catches up on its own.
        let id = vpc.id.clone();
        eventually("a stale read to see the VPC", || {
            let mut c = c.clone();
            let id = id.clone();
            async move {
                c.get_vpc(pb::GetVpcRequest {
                    id,
                    stale: true,
                    ..Default::default()
                })
                .await
                .ok()
            }
        })
        .await;
    }

    let mut status_client =
        ClusterClient::connect(format!("http://{}", cluster.nodes[follower].api_addr))
            .await
            .expect("connect");
    let status = status_client
        .status(pb::StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.leader_id, Some(leader));
    assert_eq!(status.members.len(), 3);
    assert!(status.members.iter().all(|m| m.voter));
    assert_eq!(status.state, "follower");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_raft_entries_and_keep_their_own_results() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client(0).await;
    let vpc = create_vpc(&mut c, "coalesce").await;
    create_subnet(&mut c, &vpc.id, "10.20.0.0/24").await;
    let n = 64;
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut c = c.clone();
        let mut req = port_request(&vpc.id, &format!("p{i}"));
        if i == 0 {
            // One write in the crowd is invalid: only it must fail.
            req.fixed_ips = vec![pb::FixedIpRequest {
                subnet_id: String::new(),
                ip_address: "10.99.0.1".into(),
            }];
        }
        tasks.push(tokio::spawn(async move { c.create_port(req).await }));
    }
    let mut revisions = std::collections::BTreeSet::new();
    let mut ips = std::collections::BTreeSet::new();
    let mut failed = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(port) => {
                let port = port.into_inner();
                revisions.insert(port.revision);
                assert!(
                    ips.insert(port.fixed_ips[0].ip_address.clone()),
                    "address handed out twice"
                );
            }
            Err(status) => {
                assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
                failed += 1;
            }
        }
    }
    assert_eq!(failed, 1);
    assert_eq!(ips.len(), n - 1);
    assert!(
        revisions.len() < n - 1,
        "{} writes used {} Raft entries: nothing was coalesced",
        n - 1,
        revisions.len()
    );
    assert_eq!(all_ports(&mut c, &vpc.id).await.len(), n - 1);
    cluster.shutdown().await;
}
