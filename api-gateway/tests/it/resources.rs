//! Updates with compare-and-set, security groups and rules, routers,
//! quotas and idempotent creates, through a real gRPC client.

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use tonic::transport::Channel;
use tonic::Code;

use crate::harness::{assert_status, TestCluster};

const PROJECT: &str = "p1";

type Client = OrchestratorClient<Channel>;

async fn create_vpc(c: &mut Client, project: &str, name: &str) -> pb::Vpc {
    let req = pb::CreateVpcRequest {
        project_id: project.into(),
        name: name.into(),
        ..Default::default()
    };
    c.create_vpc(req).await.expect("create vpc").into_inner()
}

async fn create_subnet(c: &mut Client, vpc: &str, cidr: &str) -> pb::Subnet {
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

async fn get_vpc(c: &mut Client, id: &str) -> pb::Vpc {
    let req = pb::GetVpcRequest {
        id: id.into(),
        stale: false,
        ..Default::default()
    };
    c.get_vpc(req).await.expect("get vpc").into_inner()
}

async fn create_group(c: &mut Client, name: &str) -> pb::SecurityGroup {
    let req = pb::CreateSecurityGroupRequest {
        project_id: PROJECT.into(),
        name: name.into(),
        ..Default::default()
    };
    c.create_security_group(req)
        .await
        .expect("create security group")
        .into_inner()
}

fn ssh_rule(group: &str) -> pb::CreateSecurityGroupRuleRequest {
    pb::CreateSecurityGroupRuleRequest {
        project_id: PROJECT.into(),
        security_group_id: group.into(),
        direction: pb::Direction::Ingress as i32,
        ethertype: pb::EtherType::Ipv4 as i32,
        protocol: "tcp".into(),
        port_range_min: Some(22),
        port_range_max: Some(22),
        remote_ip_prefix: "192.0.2.0/24".into(),
        ..Default::default()
    }
}

async fn rules_of(c: &mut Client, group: &str) -> Vec<pb::SecurityGroupRule> {
    let req = pb::ListSecurityGroupRulesRequest {
        security_group_id: group.into(),
        ..Default::default()
    };
    c.list_security_group_rules(req)
        .await
        .expect("list rules")
        .into_inner()
        .security_group_rules
}

async fn get_quota(c: &mut Client, project: &str) -> pb::Quota {
    let req = pb::GetQuotaRequest {
        project_id: project.into(),
        stale: false,
    };
    c.get_quota(req).await.expect("get quota").into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_update_succeeds_then_a_stale_revision_fails_and_changes_nothing() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client(0).await;

    let vpc = create_vpc(&mut c, PROJECT, "before").await;
    let update = pb::UpdateVpcRequest {
        id: vpc.id.clone(),
        name: Some("after".into()),
        mtu: Some(1400),
        admin_state_up: Some(false),
        expected_revision: Some(vpc.revision),
        ..Default::default()
    };
    let updated = c
        .update_vpc(update.clone())
        .await
        .expect("update vpc")
        .into_inner();
    assert_eq!(
        (updated.name.as_str(), updated.mtu, updated.admin_state_up),
        ("after", 1400, false)
    );
    assert!(updated.revision > vpc.revision);
    // The same update again carries a revision that has moved.
    let stale = pb::UpdateVpcRequest {
        name: Some("lost".into()),
        ..update
    };
    assert_status(
        c.update_vpc(stale).await,
        Code::FailedPrecondition,
        "STALE_REVISION",
    );
    assert_eq!(get_vpc(&mut c, &vpc.id).await, updated);

    // Hosts: underlay address and status.
    let host = pb::CreateHostRequest {
        id: "h1".into(),
        project_id: "ops".into(),
        underlay_ip: "192.168.0.1".into(),
        ..Default::default()
    };
    let host = c.create_host(host).await.expect("create host").into_inner();
    let drained = c
        .update_host(pb::UpdateHostRequest {
            id: "h1".into(),
            underlay_ip: Some("192.168.0.2".into()),
            status: Some(pb::HostStatus::Maintenance as i32),
            expected_revision: Some(host.revision),
        })
        .await
        .expect("update host")
        .into_inner();
    assert_eq!(drained.underlay_ip, "192.168.0.2");
    assert_eq!(drained.status, pb::HostStatus::Maintenance as i32);
    let stale_host = pb::UpdateHostRequest {
        id: "h1".into(),
        status: Some(pb::HostStatus::Up as i32),
        expected_revision: Some(host.revision),
        ..Default::default()
    };
    assert_status(
        c.update_host(stale_host).await,
        Code::FailedPrecondition,
        "STALE_REVISION",
    );
    let bad_status = pb::UpdateHostRequest {
        id: "h1".into(),
        status: Some(pb::HostStatus::Unspecified as i32),
        ..Default::default()
    };
    assert_status(
        c.update_host(bad_status).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );

    // Subnets: lists are replaced when set, left alone when unset.
    let subnet = create_subnet(&mut c, &vpc.id, "10.0.0.0/24").await;
    let changed = c
        .update_subnet(pb::UpdateSubnetRequest {
            id: subnet.id.clone(),
            name: Some("s".into()),
            dns_nameservers: Some(pb::AddressList {
                addresses: vec!["10.0.0.53".into()],
            }),
            host_routes: Some(pb::RouteList {
                routes: vec![pb::Route {
                    destination: "172.16.0.0/16".into(),
                    nexthop: "10.0.0.254".into(),
                }],
            }),
            enable_dhcp: Some(false),
            expected_revision: Some(subnet.revision),
            ..Default::default()
        })
        .await
        .expect("update subnet")
        .into_inner();
    assert_eq!(changed.dns_nameservers, vec!["10.0.0.53".to_string()]);
    assert_eq!(changed.host_routes.len(), 1);
    assert!(!changed.enable_dhcp);
    assert_eq!(changed.allocation_pools, subnet.allocation_pools);
    let stale_subnet = pb::UpdateSubnetRequest {
        id: subnet.id.clone(),
        gateway_ip: Some(String::new()),
        expected_revision: Some(subnet.revision),
        ..Default::default()
    };
    assert_status(
        c.update_subnet(stale_subnet).await,
        Code::FailedPrecondition,
        "STALE_REVISION",
    );
    let now = c
        .get_subnet(pb::GetSubnetRequest {
            id: subnet.id.clone(),
            stale: false,
            ..Default::default()
        })
        .await
        .expect("get subnet")
        .into_inner();
    assert_eq!(now, changed);

    // Ports: allowed address pairs.
    let port = pb::CreatePortRequest {
        project_id: PROJECT.into(),
        network_id: vpc.id.clone(),
        ..Default::default()
    };
    let port = c.create_port(port).await.expect("create port").into_inner();
    let paired = c
        .update_port(pb::UpdatePortRequest {
            id: port.id.clone(),
            allowed_address_pairs: Some(pb::AddressPairList {
                pairs: vec![pb::AddressPair {
                    ip_address: "10.0.0.100".into(),
                    mac_address: String::new(),
                }],
            }),
            expected_revision: Some(port.revision),
            ..Default::default()
        })
        .await
        .expect("update port")
        .into_inner();
    // As sent (an address stays an address), the MAC the port's own.
    assert_eq!(
        paired.allowed_address_pairs,
        vec![pb::AddressPair {
            ip_address: "10.0.0.100".into(),
            mac_address: port.mac_address.clone(),
        }]
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_pairs_come_back_as_sent_and_port_security_off_excludes_groups_and_pairs() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client(0).await;
    let vpc = create_vpc(&mut c, PROJECT, "pairs").await;
    assert!(vpc.port_security_enabled);
    let pair = |ip: &str, mac: &str| pb::AddressPair {
        ip_address: ip.into(),
        mac_address: mac.into(),
    };
    let port = c
        .create_port(pb::CreatePortRequest {
            project_id: PROJECT.into(),
            network_id: vpc.id.clone(),
            allowed_address_pairs: vec![
                pair("10.77.0.200", ""),
                pair("10.77.0.200/32", "fa:16:3e:00:00:aa"),
                pair("10.77.1.0/24", ""),
            ],
            ..Default::default()
        })
        .await
        .expect("create port")
        .into_inner();
    let mac = port.mac_address.as_str();
    assert_eq!(
        port.allowed_address_pairs,
        vec![
            pair("10.77.0.200", mac),
            pair("10.77.0.200/32", "fa:16:3e:00:00:aa"),
            pair("10.77.1.0/24", mac),
        ]
    );
    assert!(port.port_security_enabled);
    assert_eq!(port.security_groups.len(), 1, "the default group");

    // A network without port security: its ports have none and no group.
    let open = c
        .create_vpc(pb::CreateVpcRequest {
            project_id: PROJECT.into(),
            name: "open".into(),
            port_security_enabled: Some(false),
            ..Default::default()
        })
        .await
        .expect("create vpc")
        .into_inner();
    assert!(!open.port_security_enabled);
    let open_port = pb::CreatePortRequest {
        project_id: PROJECT.into(),
        network_id: open.id.clone(),
        ..Default::default()
    };
    let unguarded = c
        .create_port(open_port.clone())
        .await
        .expect("create port")
        .into_inner();
    assert!(!unguarded.port_security_enabled);
    assert!(unguarded.security_groups.is_empty());
    let with_group = pb::CreatePortRequest {
        security_groups: Some(pb::IdList {
            ids: port.security_groups.clone(),
        }),
        ..open_port.clone()
    };
    let refused = c.create_port(with_group).await;
    assert_status(refused, Code::FailedPrecondition, "PORT_SECURITY_REQUIRED");
    let with_pair = pb::CreatePortRequest {
        allowed_address_pairs: vec![pair("10.77.0.9", "")],
        ..open_port
    };
    let refused = c.create_port(with_pair).await;
    assert_status(refused, Code::FailedPrecondition, "PORT_SECURITY_REQUIRED");

    // Turning it off on a port that keeps its group or pairs is refused.
    let off = pb::UpdatePortRequest {
        id: port.id.clone(),
        port_security_enabled: Some(false),
        ..Default::default()
    };
    let refused = c.update_port(off.clone()).await;
    assert_status(refused, Code::FailedPrecondition, "PORT_SECURITY_REQUIRED");
    let cleared = c
        .update_port(pb::UpdatePortRequest {
            security_groups: Some(pb::IdList { ids: Vec::new() }),
            allowed_address_pairs: Some(pb::AddressPairList { pairs: Vec::new() }),
            ..off
        })
        .await
        .expect("update port")
        .into_inner();
    assert!(!cleared.port_security_enabled);
    assert!(cleared.security_groups.is_empty() && cleared.allowed_address_pairs.is_empty());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_and_rules_are_created_listed_updated_and_deleted() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client(0).await;

    let web = create_group(&mut c, "web").await;
    let db = create_group(&mut c, "db").await;
    assert!(!web.is_default);
    let got = c
        .get_security_group(pb::GetSecurityGroupRequest {
            id: web.id.clone(),
            stale: false,
            ..Default::default()
        })
        .await
        .expect("get group")
        .into_inner();
    assert_eq!(got, web);

    // Pages of one visit both groups; another project sees none.
    let first = c
        .list_security_groups(pb::ListSecurityGroupsRequest {
            project_id: PROJECT.into(),
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("list groups")
        .into_inner();
    assert_eq!(first.security_groups.len(), 1);
    let second = c
        .list_security_groups(pb::ListSecurityGroupsRequest {
            project_id: PROJECT.into(),
            limit: 1,
            marker: first.next_marker.clone(),
            ..Default::default()
        })
        .await
        .expect("list groups")
        .into_inner();
    let mut ids = vec![
        first.security_groups[0].id.clone(),
        second.security_groups[0].id.clone(),
    ];
    ids.sort();
    let mut expected = vec![web.id.clone(), db.id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    let other = c
        .list_security_groups(pb::ListSecurityGroupsRequest {
            project_id: "nobody".into(),
            ..Default::default()
        })
        .await
        .expect("list groups")
        .into_inner();
    assert!(other.security_groups.is_empty());

    let renamed = c
        .update_security_group(pb::UpdateSecurityGroupRequest {
            id: web.id.clone(),
            name: Some("frontend".into()),
            expected_revision: Some(web.revision),
            ..Default::default()
        })
        .await
        .expect("rename group")
        .into_inner();
    assert_eq!(renamed.name, "frontend");

    // Neutron's two egress rules come with every new group.
    assert_eq!(rules_of(&mut c, &web.id).await.len(), 2);
    let ssh = c
        .create_security_group_rule(ssh_rule(&web.id))
        .await
        .expect("create rule")
        .into_inner();
    assert_eq!(
        (
            ssh.protocol.as_str(),
            ssh.port_range_min,
            ssh.port_range_max
        ),
        ("6", Some(22), Some(22))
    );
    assert_status(
        c.create_security_group_rule(ssh_rule(&web.id)).await,
        Code::AlreadyExists,
        "RULE_EXISTS",
    );
    let from_web = pb::CreateSecurityGroupRuleRequest {
        security_group_id: db.id.clone(),
        protocol: "6".into(),
        port_range_min: Some(5432),
        port_range_max: Some(5432),
        remote_ip_prefix: String::new(),
        remote_group_id: web.id.clone(),
        ..ssh_rule(&db.id)
    };
    let from_web = c
        .create_security_group_rule(from_web)
        .await
        .expect("create remote-group rule")
        .into_inner();
    let rules = rules_of(&mut c, &web.id).await;
    assert_eq!(rules.len(), 3);
    assert!(rules.contains(&ssh));
    let got = c
        .get_security_group_rule(pb::GetSecurityGroupRuleRequest {
            id: ssh.id.clone(),
            stale: false,
            ..Default::default()
        })
        .await
        .expect("get rule")
        .into_inner();
    assert_eq!(got, ssh);

    // A group another group's rule names cannot go.
    let web_delete = pb::DeleteSecurityGroupRequest {
        id: web.id.clone(),
        expected_revision: None,
    };
    assert_status(
        c.delete_security_group(web_delete.clone()).await,
        Code::FailedPrecondition,
        "IN_USE",
    );
    c.delete_security_group_rule(pb::DeleteSecurityGroupRuleRequest {
        id: from_web.id.clone(),
        expected_revision: Some(from_web.revision),
    })
    .await
    .expect("delete rule");
    c.delete_security_group(web_delete)
        .await
        .expect("delete group");
    assert_status(
        c.get_security_group_rule(pb::GetSecurityGroupRuleRequest {
            id: ssh.id.clone(),
            stale: false,
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "NOT_FOUND",
    );
    assert_eq!(rules_of(&mut c, &db.id).await.len(), 2);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rule_fields_are_invalid_argument_naming_the_field_and_never_proposed() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client(0).await;
    let group = create_group(&mut c, "g").await;
    let log_before = cluster.nodes[0].node.metrics().last_log_index;

    type Mutate = fn(&mut pb::CreateSecurityGroupRuleRequest);
    let cases: Vec<(&str, &str, Mutate)> = vec![
        ("no direction", "direction", |r| r.direction = 0),
        ("unknown direction", "direction", |r| r.direction = 9),
        ("unknown ethertype", "ethertype", |r| r.ethertype = 9),
        ("unknown protocol", "protocol", |r| {
            r.protocol = "tpc".into()
        }),
        ("protocol 256", "protocol", |r| r.protocol = "256".into()),
        ("port above 65535", "port_range_max", |r| {
            r.port_range_max = Some(70_000)
        }),
        ("port 0", "port_range_min", |r| r.port_range_min = Some(0)),
        ("min above max", "port_range_min", |r| {
            r.port_range_min = Some(80)
        }),
        ("min without max", "port_range_max", |r| {
            r.port_range_max = None
        }),
        ("ports without protocol", "port_range_min", |r| {
            r.protocol = String::new()
        }),
        ("ports on gre", "port_range_min", |r| {
            r.protocol = "gre".into()
        }),
        ("icmp type 300", "port_range_min", |r| {
            r.protocol = "icmp".into();
            r.port_range_min = Some(300);
            r.port_range_max = None;
        }),
        ("prefix and group", "remote_ip_prefix", |r| {
            r.remote_group_id = "00000000-0000-4000-8000-000000000001".into()
        }),
        ("IPv6 prefix on IPv4", "remote_ip_prefix", |r| {
            r.remote_ip_prefix = "2001:db8::/32".into()
        }),
        ("IPv4 prefix on IPv6", "remote_ip_prefix", |r| {
            r.ethertype = pb::EtherType::Ipv6 as i32
        }),
        ("host bits", "remote_ip_prefix", |r| {
            r.remote_ip_prefix = "192.0.2.1/24".into()
        }),
        ("not a prefix", "remote_ip_prefix", |r| {
            r.remote_ip_prefix = "banana".into()
        }),
        ("bad group id", "security_group_id", |r| {
            r.security_group_id = "nope".into()
        }),
        ("bad remote group", "remote_group_id", |r| {
            r.remote_ip_prefix = String::new();
            r.remote_group_id = "nope".into();
        }),
    ];
    for (what, field, mutate) in cases {
        let mut req = ssh_rule(&group.id);
        mutate(&mut req);
        let status = c.create_security_group_rule(req).await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(
            status.message().contains(&format!("invalid {field}:")),
            "{what}: {status:?}"
        );
    }
    assert_eq!(cluster.nodes[0].node.metrics().last_log_index, log_before);
    assert_eq!(rules_of(&mut c, &group.id).await.len(), 2);

    // The accepted spellings: names, numbers, "any", ICMP type and code.
    let icmp6 = pb::CreateSecurityGroupRuleRequest {
        ethertype: pb::EtherType::Ipv6 as i32,
        protocol: "icmp".into(),
        port_range_min: Some(128),
        port_range_max: Some(0),
        remote_ip_prefix: "2001:db8::1".into(),
        ..ssh_rule(&group.id)
    };
    let icmp6 = c
        .create_security_group_rule(icmp6)
        .await
        .expect("icmpv6 rule")
        .into_inner();
    assert_eq!(icmp6.protocol, "58");
    assert_eq!(icmp6.remote_ip_prefix, "2001:db8::1/128");
    let any = pb::CreateSecurityGroupRuleRequest {
        protocol: "any".into(),
        port_range_min: None,
        port_range_max: None,
        ..ssh_rule(&group.id)
    };
    let any = c
        .create_security_group_rule(any)
        .await
        .expect("any-protocol rule")
        .into_inner();
    assert_eq!(any.protocol, "");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_interfaces_attach_and_detach_and_hold_their_subnet() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client(0).await;
    let vpc = create_vpc(&mut c, PROJECT, "v").await;
    let subnet = create_subnet(&mut c, &vpc.id, "10.5.0.0/24").await;

    let router = c
        .create_router(pb::CreateRouterRequest {
            project_id: PROJECT.into(),
            name: "r".into(),
            ..Default::default()
        })
        .await
        .expect("create router")
        .into_inner();
    assert!(router.admin_state_up && router.interfaces.is_empty());
    let attach = pb::RouterInterfaceRequest {
        router_id: router.id.clone(),
        subnet_id: subnet.id.clone(),
        ..Default::default()
    };
    let attached = c
        .add_router_interface(attach.clone())
        .await
        .expect("add interface")
        .into_inner();
    let port_id = attached.interfaces[0].port_id.clone();
    assert!(!port_id.is_empty(), "the interface is a port");
    assert_eq!(
        attached.interfaces,
        vec![pb::RouterInterface {
            subnet_id: subnet.id.clone(),
            ip_address: subnet.gateway_ip.clone(),
            port_id: port_id.clone(),
        }]
    );
    let get_port = pb::GetPortRequest {
        id: port_id.clone(),
        stale: false,
        ..Default::default()
    };
    let port = c
        .get_port(get_port.clone())
        .await
        .expect("the interface's port")
        .into_inner();
    assert_eq!(
        (
            port.device_owner.as_str(),
            port.device_id.as_str(),
            port.fixed_ips[0].ip_address.as_str()
        ),
        (
            "network:router_interface",
            router.id.as_str(),
            subnet.gateway_ip.as_str()
        )
    );
    assert_status(
        c.delete_port(pb::DeletePortRequest {
            id: port_id.clone(),
            expected_revision: None,
        })
        .await,
        Code::FailedPrecondition,
        "ROUTER_INTERFACE_PORT",
    );
    let updated = c
        .update_router(pb::UpdateRouterRequest {
            id: router.id.clone(),
            name: Some("edge".into()),
            routes: Some(pb::RouteList {
                routes: vec![pb::Route {
                    destination: "0.0.0.0/0".into(),
                    nexthop: "10.5.0.254".into(),
                }],
            }),
            admin_state_up: Some(false),
            expected_revision: Some(attached.revision),
            ..Default::default()
        })
        .await
        .expect("update router")
        .into_inner();
    assert_eq!(
        (
            updated.name.as_str(),
            updated.routes.len(),
            updated.admin_state_up
        ),
        ("edge", 1, false)
    );

    let delete_subnet = pb::DeleteSubnetRequest {
        id: subnet.id.clone(),
        expected_revision: None,
    };
    assert_status(
        c.delete_subnet(delete_subnet.clone()).await,
        Code::FailedPrecondition,
        "IN_USE",
    );
    let delete_router = pb::DeleteRouterRequest {
        id: router.id.clone(),
        expected_revision: None,
    };
    assert_status(
        c.delete_router(delete_router.clone()).await,
        Code::FailedPrecondition,
        "IN_USE",
    );
    let listed = c
        .list_routers(pb::ListRoutersRequest {
            project_id: PROJECT.into(),
            ..Default::default()
        })
        .await
        .expect("list routers")
        .into_inner()
        .routers;
    assert_eq!(listed, vec![updated]);

    let detached = c
        .remove_router_interface(attach.clone())
        .await
        .expect("remove interface")
        .into_inner();
    assert!(detached.interfaces.is_empty());
    assert_status(c.get_port(get_port).await, Code::NotFound, "NOT_FOUND");
    // Detaching what is not attached names the field (the state machine's
    // choice; Neutron answers 404).
    assert_status(
        c.remove_router_interface(attach).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    c.delete_subnet(delete_subnet).await.expect("delete subnet");
    c.delete_router(delete_router).await.expect("delete router");
    assert_status(
        c.get_router(pb::GetRouterRequest {
            id: router.id,
            stale: false,
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "NOT_FOUND",
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_set_then_create_beyond_it_is_quota_exceeded_and_usage_is_reported() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client(0).await;
    let project = "quota-p";

    let defaults = get_quota(&mut c, project).await;
    let limits = defaults.limits.expect("limits");
    assert_eq!((limits.network, limits.port), (100, 500));
    assert_eq!(defaults.usage.expect("usage").network, 0);

    let set = c
        .set_quota(pb::SetQuotaRequest {
            project_id: project.into(),
            network: Some(1),
            ..Default::default()
        })
        .await
        .expect("set quota")
        .into_inner();
    let limits = set.limits.expect("limits");
    assert_eq!((limits.network, limits.subnet), (1, 100));

    create_vpc(&mut c, project, "only").await;
    let beyond = pb::CreateVpcRequest {
        project_id: project.into(),
        ..Default::default()
    };
    assert_status(
        c.create_vpc(beyond.clone()).await,
        Code::ResourceExhausted,
        "QUOTA_EXCEEDED",
    );
    let quota = get_quota(&mut c, project).await;
    assert_eq!(quota.usage.expect("usage").network, 1);

    // Unset limits keep their value.
    let partial = c
        .set_quota(pb::SetQuotaRequest {
            project_id: project.into(),
            router: Some(-1),
            ..Default::default()
        })
        .await
        .expect("set quota")
        .into_inner()
        .limits
        .expect("limits");
    assert_eq!((partial.network, partial.router), (1, -1));
    let below_unlimited = pb::SetQuotaRequest {
        project_id: project.into(),
        port: Some(-2),
        ..Default::default()
    };
    assert_status(
        c.set_quota(below_unlimited).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );

    let reset = c
        .reset_quota(pb::ResetQuotaRequest {
            project_id: project.into(),
        })
        .await
        .expect("reset quota")
        .into_inner();
    assert_eq!(reset.limits, defaults.limits);
    assert_eq!(reset.usage.expect("usage").network, 1);
    c.create_vpc(beyond).await.expect("create after reset");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_create_with_a_token_returns_the_original_and_a_conflicting_reuse_is_rejected() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client(0).await;
    let create = pb::CreateVpcRequest {
        project_id: PROJECT.into(),
        name: "once".into(),
        request_token: "tok-vpc-1".into(),
        ..Default::default()
    };
    let first = c
        .create_vpc(create.clone())
        .await
        .expect("create")
        .into_inner();
    let retry = c
        .create_vpc(create.clone())
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(retry, first);
    assert_eq!(
        first.id.as_bytes()[14],
        b'8',
        "token-derived id: {}",
        first.id
    );
    let vpcs = c
        .list_vpcs(pb::ListVpcsRequest {
            project_id: PROJECT.into(),
            ..Default::default()
        })
        .await
        .expect("list vpcs")
        .into_inner()
        .vpcs;
    assert_eq!(vpcs.len(), 1);

    let conflicting = pb::CreateVpcRequest {
        name: "other".into(),
        ..create
    };
    assert_status(
        c.create_vpc(conflicting).await,
        Code::AlreadyExists,
        "TOKEN_CONFLICT",
    );

    // A retried port create gets the same port, address and MAC.
    create_subnet(&mut c, &first.id, "10.9.0.0/24").await;
    let port = pb::CreatePortRequest {
        project_id: PROJECT.into(),
        network_id: first.id.clone(),
        request_token: "tok-port-1".into(),
        ..Default::default()
    };
    let a = c
        .create_port(port.clone())
        .await
        .expect("port")
        .into_inner();
    let b = c
        .create_port(port.clone())
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(a, b);

    let tokened_entry = pb::CreatePortsRequest {
        ports: vec![port],
        ..Default::default()
    };
    assert_status(
        c.create_ports(tokened_entry).await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_batch_with_a_token_creates_its_ports_once() {
    let cluster = TestCluster::start(1).await;
    let mut c = cluster.client(0).await;
    let vpc = create_vpc(&mut c, PROJECT, "batch-once").await;
    create_subnet(&mut c, &vpc.id, "10.11.0.0/24").await;
    let batch = pb::CreatePortsRequest {
        ports: (0..5)
            .map(|_| pb::CreatePortRequest {
                project_id: PROJECT.into(),
                network_id: vpc.id.clone(),
                ..Default::default()
            })
            .collect(),
        request_token: "tok-batch-1".into(),
    };
    let first = c
        .create_ports(batch.clone())
        .await
        .expect("batch")
        .into_inner();
    let retry = c.create_ports(batch).await.expect("retry").into_inner();
    assert_eq!(retry, first, "the retry returns the original ports");
    let ports = c
        .list_ports(pb::ListPortsRequest {
            network_id: vpc.id.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .ports;
    assert_eq!(ports.len(), 5, "created once");
    cluster.shutdown().await;
}

/// The gRPC side of external networks: `external` on a VPC, a router's
/// `external_gateway` (created with the router, on a follower that may not
/// have applied it yet: the reply carries it), the floating IP reachability
/// check (FAILED_PRECONDITION EXTERNAL_NETWORK_UNREACHABLE) and the gateway
/// held by a floating IP (GATEWAY_IN_USE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_gateways_carry_floating_ips_of_their_network() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (0..3).find(|i| *i as u64 + 1 != leader).unwrap_or(0);
    let mut c = cluster.client(follower).await;
    let ext = c
        .create_vpc(pb::CreateVpcRequest {
            project_id: "admin".into(),
            name: "public".into(),
            external: true,
            ..Default::default()
        })
        .await
        .expect("create external vpc")
        .into_inner();
    assert!(ext.external);
    let ext_subnet = c
        .create_subnet(pb::CreateSubnetRequest {
            project_id: "admin".into(),
            network_id: ext.id.clone(),
            cidr: "203.0.113.0/24".into(),
            ..Default::default()
        })
        .await
        .expect("create external subnet")
        .into_inner();
    let vpc = create_vpc(&mut c, PROJECT, "v").await;
    assert!(!vpc.external);
    let subnet = create_subnet(&mut c, &vpc.id, "10.5.0.0/24").await;
    let port = c
        .create_port(pb::CreatePortRequest {
            project_id: PROJECT.into(),
            network_id: vpc.id.clone(),
            ..Default::default()
        })
        .await
        .expect("create port")
        .into_inner();
    let fip_request = pb::CreateFloatingIpRequest {
        project_id: PROJECT.into(),
        floating_network_id: ext.id.clone(),
        port_id: port.id.clone(),
        ..Default::default()
    };
    // Not behind any router yet.
    assert_status(
        c.create_floating_ip(fip_request.clone()).await,
        Code::FailedPrecondition,
        "EXTERNAL_NETWORK_UNREACHABLE",
    );

    let router = c
        .create_router(pb::CreateRouterRequest {
            project_id: PROJECT.into(),
            name: "r".into(),
            external_gateway: Some(pb::RouterGatewayRequest {
                network_id: ext.id.clone(),
                enable_snat: None,
                external_fixed_ips: vec![pb::FixedIpRequest {
                    subnet_id: ext_subnet.id.clone(),
                    ip_address: "203.0.113.9".into(),
                }],
            }),
            ..Default::default()
        })
        .await
        .expect("create router with a gateway")
        .into_inner();
    let gateway = router
        .external_gateway
        .clone()
        .expect("the reply has the gateway");
    assert_eq!(gateway.network_id, ext.id);
    assert!(gateway.enable_snat, "SNAT defaults to on");
    assert_eq!(
        gateway.external_fixed_ips,
        vec![pb::FixedIp {
            subnet_id: ext_subnet.id.clone(),
            ip_address: "203.0.113.9".into(),
        }]
    );
    let gw_port = c
        .get_port(pb::GetPortRequest {
            id: gateway.port_id.clone(),
            ..Default::default()
        })
        .await
        .expect("the gateway port exists")
        .into_inner();
    assert_eq!(gw_port.device_owner, "network:router_gateway");
    assert_eq!(gw_port.device_id, router.id);

    c.add_router_interface(pb::RouterInterfaceRequest {
        router_id: router.id.clone(),
        subnet_id: subnet.id.clone(),
        ..Default::default()
    })
    .await
    .expect("add interface");
    let fip = c
        .create_floating_ip(fip_request)
        .await
        .expect("a floating IP behind the router")
        .into_inner();
    assert_eq!(fip.router_id, router.id);

    let clear = pb::UpdateRouterRequest {
        id: router.id.clone(),
        external_gateway: Some(pb::RouterGatewayChange { gateway: None }),
        ..Default::default()
    };
    assert_status(
        c.update_router(clear.clone()).await,
        Code::FailedPrecondition,
        "GATEWAY_IN_USE",
    );
    assert_status(
        c.update_vpc(pb::UpdateVpcRequest {
            id: ext.id.clone(),
            external: Some(false),
            ..Default::default()
        })
        .await,
        Code::FailedPrecondition,
        "IN_USE",
    );
    c.delete_floating_ip(pb::DeleteFloatingIpRequest {
        id: fip.id.clone(),
        ..Default::default()
    })
    .await
    .expect("delete floating IP");
    let cleared = c
        .update_router(clear)
        .await
        .expect("clear the gateway")
        .into_inner();
    assert!(cleared.external_gateway.is_none());
    cluster.shutdown().await;
}

/// A request as `principal` (what the auth layer attaches), for the
/// service called in process.
fn as_caller<T>(principal: &alcor_proto::identity::Principal, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(principal.clone());
    request
}

/// `caller` can neither rename nor delete VPC `id`: both answer NOT_FOUND.
async fn assert_neither_renamed_nor_deleted_by(
    svc: &alcor_api_gateway::OrchestratorService,
    caller: &alcor_proto::identity::Principal,
    id: &str,
) {
    use alcor_proto::api::v1::orchestrator_server::Orchestrator;
    let rename = pb::UpdateVpcRequest {
        id: id.into(),
        name: Some("mine".into()),
        ..Default::default()
    };
    assert_status(
        svc.update_vpc(as_caller(caller, rename)).await,
        Code::NotFound,
        "NOT_FOUND",
    );
    let delete = pb::DeleteVpcRequest {
        id: id.into(),
        ..Default::default()
    };
    assert_status(
        svc.delete_vpc(as_caller(caller, delete)).await,
        Code::NotFound,
        "NOT_FOUND",
    );
}

/// Neutron's `router:external` networks are read by every project: a member
/// of another project gets and lists the external network (not the owner's
/// other networks, and only when its list names no other project), and
/// cannot update or delete it (NOT_FOUND, as before). Its subnets stay the
/// owner's (Neutron shows them to other projects only when shared), and the
/// owner's other network stays invisible to every verb.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_project_reads_an_external_vpc_and_only_its_owner_changes_it() {
    use alcor_api_gateway::OrchestratorService;
    use alcor_proto::api::v1::orchestrator_server::Orchestrator;
    use alcor_proto::identity::Principal;

    let cluster = TestCluster::start(1).await;
    let svc = OrchestratorService::new(std::sync::Arc::clone(&cluster.nodes[0].node));
    let admin = Principal::Admin;
    let bob = Principal::Member {
        project: "bob".into(),
    };
    let create = |name: &str, project: &str, external: bool| pb::CreateVpcRequest {
        project_id: project.into(),
        name: name.into(),
        external,
        ..Default::default()
    };
    let public = svc
        .create_vpc(as_caller(&admin, create("public", "ops", true)))
        .await
        .expect("create external vpc")
        .into_inner();
    let private = svc
        .create_vpc(as_caller(&admin, create("ops-private", "ops", false)))
        .await
        .expect("create private vpc")
        .into_inner();
    svc.create_vpc(as_caller(&bob, create("bob-net", "", false)))
        .await
        .expect("create bob's vpc");

    let list = |project: &str| pb::ListVpcsRequest {
        project_id: project.into(),
        ..Default::default()
    };
    // Sorted: a list is in ID order.
    let names = |vpcs: Vec<pb::Vpc>| -> Vec<String> {
        let mut names: Vec<String> = vpcs.into_iter().map(|v| v.name).collect();
        names.sort();
        names
    };
    let listed = svc
        .list_vpcs(as_caller(&bob, list("")))
        .await
        .expect("bob lists")
        .into_inner();
    assert_eq!(
        names(listed.vpcs),
        vec!["bob-net".to_string(), "public".to_string()]
    );
    let own = svc
        .list_vpcs(as_caller(&bob, list("bob")))
        .await
        .expect("bob lists his project")
        .into_inner();
    assert_eq!(names(own.vpcs), vec!["bob-net".to_string()]);
    let got = |id: &str| pb::GetVpcRequest {
        id: id.into(),
        ..Default::default()
    };
    let shown = svc
        .get_vpc(as_caller(&bob, got(&public.id)))
        .await
        .expect("bob gets the external vpc")
        .into_inner();
    assert!(shown.external && shown.project_id == "ops");
    assert_status(
        svc.get_vpc(as_caller(&bob, got(&private.id))).await,
        Code::NotFound,
        "NOT_FOUND",
    );

    assert_neither_renamed_nor_deleted_by(&svc, &bob, &public.id).await;
    let after = svc
        .get_vpc(as_caller(&admin, got(&public.id)))
        .await
        .expect("admin gets it")
        .into_inner();
    assert_eq!(after.name, "public");

    // The external network's subnet is not Bob's to read.
    let ext_subnet = svc
        .create_subnet(as_caller(
            &admin,
            pb::CreateSubnetRequest {
                project_id: "ops".into(),
                network_id: public.id.clone(),
                cidr: "203.0.113.0/24".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("admin creates the external subnet")
        .into_inner();
    let subnets = |network: &str| pb::ListSubnetsRequest {
        network_id: network.into(),
        ..Default::default()
    };
    let listed = svc
        .list_subnets(as_caller(&bob, subnets(&public.id)))
        .await
        .expect("bob lists the external network's subnets")
        .into_inner();
    assert!(listed.subnets.is_empty(), "{:?}", listed.subnets);
    let get_subnet = pb::GetSubnetRequest {
        id: ext_subnet.id.clone(),
        ..Default::default()
    };
    assert_status(
        svc.get_subnet(as_caller(&bob, get_subnet)).await,
        Code::NotFound,
        "NOT_FOUND",
    );
    let owned = svc
        .list_subnets(as_caller(&admin, subnets(&public.id)))
        .await
        .expect("admin lists them")
        .into_inner();
    assert_eq!(owned.subnets.len(), 1);

    // The reverse: the owner's network that is not external is invisible
    // to Bob when he changes it too (get and list are checked above).
    assert_neither_renamed_nor_deleted_by(&svc, &bob, &private.id).await;
    let kept = svc
        .get_vpc(as_caller(&admin, got(&private.id)))
        .await
        .expect("admin gets the private vpc")
        .into_inner();
    assert_eq!(kept.name, "ops-private");
}
