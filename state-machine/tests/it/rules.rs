//! One test per validation rule and default; each rejection also checks that the
//! state is unchanged (see `World::reject`).

use crate::support::*;
use alcor_state_machine::model::{AllocationPool, PortStatus, Quota, ResourceKind};
use alcor_state_machine::{
    Command, GatewaySpec, Id, Kind, PortUpdate, Rejection, Reply, State, SubnetUpdate,
};

fn base() -> World {
    let mut w = World::new();
    w.ok(host("h1", "10.0.0.1"));
    w.ok(host("h2", "10.0.0.2"));
    w.ok(vpc(1, Some("192.168.0.0/16")));
    w.ok(subnet(10, 1, "192.168.1.0/24"));
    w
}

#[test]
fn subnet_defaults_gateway_to_first_host_and_pools_to_the_rest() {
    let mut w = base();
    let s = as_subnet(w.ok(subnet(11, 1, "192.168.2.0/24")));
    assert_eq!(s.gateway_ip, Some("192.168.2.1".parse().unwrap()));
    assert_eq!(
        s.allocation_pools,
        vec![AllocationPool {
            start: "192.168.2.2".parse().unwrap(),
            end: "192.168.2.254".parse().unwrap()
        }]
    );
    assert!(s.enable_dhcp);
    assert_eq!(s.meta.project_id, PROJECT);
    assert_eq!(s.meta.revision, w.index);
}

#[test]
fn gateway_in_the_middle_splits_the_default_pool() {
    let mut w = base();
    let Command::CreateSubnet {
        id,
        project_id,
        network_id,
        name,
        cidr,
        ..
    } = subnet(11, 1, "192.168.2.0/29")
    else {
        unreachable!()
    };
    let reply = w.ok(Command::CreateSubnet {
        id,
        project_id,
        network_id,
        name,
        cidr,
        gateway: GatewaySpec::Ip("192.168.2.3".parse().unwrap()),
        allocation_pools: None,
        enable_dhcp: false,
        dns_nameservers: vec![],
        host_routes: vec![],
    });
    let pools: Vec<String> = as_subnet(reply)
        .allocation_pools
        .iter()
        .map(|p| format!("{}-{}", p.start, p.end))
        .collect();
    assert_eq!(
        pools,
        vec!["192.168.2.1-192.168.2.2", "192.168.2.4-192.168.2.6"]
    );
}

#[test]
fn malformed_cidr_is_rejected() {
    let mut w = base();
    let e = w.reject(subnet(11, 1, "192.168.2.7/24"));
    assert!(matches!(e, Rejection::InvalidCidr { .. }), "{e:?}");
    let e = w.reject(subnet(11, 1, "192.168.3.0/31"));
    assert!(matches!(e, Rejection::InvalidCidr { .. }), "{e:?}");
    let e = w.reject(subnet(11, 1, "10.9.0.0/24"));
    assert!(
        matches!(e, Rejection::InvalidCidr { .. }),
        "outside the VPC CIDR: {e:?}"
    );
}

#[test]
fn overlapping_subnet_in_same_vpc_is_rejected_but_allowed_in_another() {
    let mut w = base();
    let e = w.reject(subnet(11, 1, "192.168.1.128/25"));
    assert!(matches!(e, Rejection::OverlappingSubnet { .. }), "{e:?}");
    w.ok(vpc(2, None));
    w.ok(subnet(12, 2, "192.168.1.0/24"));
}

#[test]
fn unknown_ids_are_not_found() {
    let mut w = base();
    let e = w.reject(subnet(11, 99, "10.0.0.0/24"));
    assert_eq!(
        e,
        Rejection::NotFound {
            kind: Kind::Vpc,
            id: Id(99).to_string()
        }
    );
    let e = w.reject(port(5, 1, Some("nope")));
    assert!(
        matches!(
            e,
            Rejection::NotFound {
                kind: Kind::Host,
                ..
            }
        ),
        "{e:?}"
    );
    let e = w.reject(Command::DeletePort {
        id: Id(12345),
        expected_revision: None,
    });
    assert!(matches!(
        e,
        Rejection::NotFound {
            kind: Kind::Port,
            ..
        }
    ));
}

#[test]
fn duplicate_ids_already_exist() {
    let mut w = base();
    let e = w.reject(vpc(1, None));
    assert!(matches!(
        e,
        Rejection::AlreadyExists {
            kind: Kind::Vpc,
            ..
        }
    ));
    let e = w.reject(host("h1", "10.0.0.9"));
    assert!(matches!(
        e,
        Rejection::AlreadyExists {
            kind: Kind::Host,
            ..
        }
    ));
}

#[test]
fn requested_ip_outside_subnet_or_in_use_is_rejected() {
    let mut w = base();
    let e = w.reject(port_with_ip(5, 1, 10, "192.168.2.5"));
    assert!(matches!(e, Rejection::IpOutsideSubnet { .. }), "{e:?}");
    w.ok(port_with_ip(5, 1, 10, "192.168.1.50"));
    let e = w.reject(port_with_ip(6, 1, 10, "192.168.1.50"));
    assert!(matches!(e, Rejection::IpInUse { .. }), "{e:?}");
    let e = w.reject(port_with_ip(6, 1, 10, "192.168.1.1"));
    assert!(matches!(e, Rejection::IpInUse { .. }), "gateway: {e:?}");
    let e = w.reject(port_with_ip(6, 1, 10, "192.168.1.255"));
    assert!(
        matches!(e, Rejection::InvalidField { .. }),
        "broadcast: {e:?}"
    );
}

#[test]
fn allocated_addresses_skip_taken_ones_and_macs_use_the_openstack_prefix() {
    let mut w = base();
    w.ok(port_with_ip(5, 1, 10, "192.168.1.3"));
    let a = as_port(w.ok(port(6, 1, None)));
    let b = as_port(w.ok(port(7, 1, None)));
    assert_eq!(a.fixed_ips[0].ip_address.to_string(), "192.168.1.2");
    assert_eq!(b.fixed_ips[0].ip_address.to_string(), "192.168.1.4");
    assert!(a.mac_address.to_string().starts_with("fa:16:3e:"));
    assert_ne!(a.mac_address, b.mac_address);
    assert_eq!(a.status, PortStatus::Down);
}

#[test]
fn requested_mac_in_use_is_rejected() {
    let mut w = base();
    let a = as_port(w.ok(port(5, 1, None)));
    let mut spec = port_spec(6, 1, None);
    spec.mac_address = Some(a.mac_address);
    let e = w.reject(Command::CreatePort(spec));
    assert!(matches!(e, Rejection::MacInUse { .. }), "{e:?}");
}

#[test]
fn exhausted_pool_is_a_typed_rejection_and_released_addresses_are_reused() {
    let mut w = base();
    w.ok(subnet(11, 1, "192.168.9.0/29")); // hosts .1-.6, gateway .1: 5 addresses
    let mut spec_ids = Vec::new();
    for n in 0..5u128 {
        let mut spec = port_spec(100 + n, 1, None);
        spec.fixed_ips = vec![alcor_state_machine::FixedIpRequest {
            subnet_id: Some(Id(11)),
            ip_address: None,
        }];
        w.ok(Command::CreatePort(spec.clone()));
        spec_ids.push(spec);
    }
    let mut spec = port_spec(200, 1, None);
    spec.fixed_ips = vec![alcor_state_machine::FixedIpRequest {
        subnet_id: Some(Id(11)),
        ip_address: None,
    }];
    let e = w.reject(Command::CreatePort(spec.clone()));
    assert_eq!(
        e,
        Rejection::Exhausted {
            pool: alcor_state_machine::Pool::Subnet(Id(11))
        }
    );
    let freed = w.state.port(&Id(102)).unwrap().fixed_ips[0].ip_address;
    w.ok(Command::DeletePort {
        id: Id(102),
        expected_revision: None,
    });
    let p = as_port(w.ok(Command::CreatePort(spec)));
    assert_eq!(p.fixed_ips[0].ip_address, freed);
}

#[test]
fn subnet_with_ports_is_in_use() {
    let mut w = base();
    w.ok(port(5, 1, None));
    let e = w.reject(Command::DeleteSubnet {
        id: Id(10),
        expected_revision: None,
    });
    assert!(
        matches!(
            e,
            Rejection::InUse {
                kind: Kind::Subnet,
                ..
            }
        ),
        "{e:?}"
    );
    let e = w.reject(Command::DeleteVpc {
        id: Id(1),
        expected_revision: None,
    });
    assert!(
        matches!(
            e,
            Rejection::InUse {
                kind: Kind::Vpc,
                ..
            }
        ),
        "{e:?}"
    );
    w.ok(Command::DeletePort {
        id: Id(5),
        expected_revision: None,
    });
    w.ok(Command::DeleteSubnet {
        id: Id(10),
        expected_revision: None,
    });
    w.ok(Command::DeleteVpc {
        id: Id(1),
        expected_revision: None,
    });
}

#[test]
fn quota_exceeded_is_rejected_and_unlimited_lifts_it() {
    let mut w = base();
    w.ok(Command::SetQuota {
        project_id: PROJECT.into(),
        quota: Quota {
            port: 2,
            ..Quota::default()
        },
    });
    w.ok(port(5, 1, None));
    w.ok(port(6, 1, None));
    let e = w.reject(port(7, 1, None));
    assert_eq!(
        e,
        Rejection::QuotaExceeded {
            resource: ResourceKind::Port,
            limit: 2
        }
    );
    assert_eq!(e.to_string(), "quota exceeded for resources: ['port']");
    w.ok(unlimited());
    w.ok(port(7, 1, None));
    assert_eq!(w.state.usage(PROJECT, ResourceKind::Port), 3);
}

#[test]
fn stale_revision_fails_compare_and_set() {
    let mut w = base();
    let p = as_port(w.ok(port(5, 1, None)));
    let rev = p.meta.revision;
    let upd = PortUpdate {
        name: Some("renamed".into()),
        ..PortUpdate::default()
    };
    let p2 = as_port(w.ok(Command::UpdatePort {
        id: Id(5),
        update: upd.clone(),
        expected_revision: Some(rev),
    }));
    assert!(p2.meta.revision > rev);
    assert_eq!(p2.meta.created_at, p.meta.created_at);
    assert!(p2.meta.updated_at > p.meta.updated_at);
    let e = w.reject(Command::UpdatePort {
        id: Id(5),
        update: upd,
        expected_revision: Some(rev),
    });
    assert_eq!(
        e,
        Rejection::StaleRevision {
            expected: rev,
            actual: p2.meta.revision
        }
    );
    let e = w.reject(Command::DeletePort {
        id: Id(5),
        expected_revision: Some(rev),
    });
    assert!(matches!(e, Rejection::StaleRevision { .. }), "{e:?}");
    let e = w.reject(Command::UpdateSubnet {
        id: Id(10),
        update: SubnetUpdate::default(),
        expected_revision: Some(1),
    });
    assert!(matches!(e, Rejection::StaleRevision { .. }), "{e:?}");
}

#[test]
fn batch_create_is_all_or_nothing() {
    let mut w = base();
    w.ok(port_with_ip(5, 1, 10, "192.168.1.40"));
    let mut specs: Vec<_> = (0..50u128)
        .map(|n| port_spec(1000 + n, 1, Some("h1")))
        .collect();
    // Entry 30 asks for a taken address: the whole batch must fail.
    specs[30].fixed_ips = vec![alcor_state_machine::FixedIpRequest {
        subnet_id: Some(Id(10)),
        ip_address: Some("192.168.1.40".parse().unwrap()),
    }];
    let e = w.reject(Command::CreatePorts(specs.clone()));
    match e {
        Rejection::BatchEntry { index, cause } => {
            assert_eq!(index, 30);
            assert!(matches!(*cause, Rejection::IpInUse { .. }));
        }
        other => panic!("{other:?}"),
    }
    assert!(w.state.port(&Id(1000)).is_none());
    specs[30].fixed_ips.clear();
    let Reply::Ports(ports) = w.ok(Command::CreatePorts(specs)) else {
        panic!()
    };
    assert_eq!(ports.len(), 50);
    let mut ips: Vec<_> = ports.iter().map(|p| p.fixed_ips[0].ip_address).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 50);
}

#[test]
fn duplicate_ids_inside_one_batch_reject_the_batch() {
    let mut w = base();
    let e = w.reject(Command::CreatePorts(vec![
        port_spec(7, 1, None),
        port_spec(7, 1, None),
    ]));
    assert!(matches!(e, Rejection::BatchEntry { index: 1, .. }), "{e:?}");
}

#[test]
fn oversized_batch_is_rejected() {
    let mut w = base();
    let specs: Vec<_> = (0..=alcor_state_machine::limits::BATCH_PORTS_MAX as u128)
        .map(|n| port_spec(n + 10_000, 1, None))
        .collect();
    let e = w.reject(Command::CreatePorts(specs));
    assert!(matches!(e, Rejection::BatchTooLarge { .. }), "{e:?}");
}

#[test]
fn first_port_of_a_project_creates_its_default_security_group() {
    let mut w = base();
    let p = as_port(w.ok(port(5, 1, Some("h1"))));
    let sg = w
        .state
        .default_security_group(PROJECT)
        .expect("default group");
    assert_eq!(p.security_groups[..], [sg]);
    assert_eq!(w.state.security_group(&sg).unwrap().name, "default");
    let rules: Vec<_> = w
        .state
        .security_group_rules()
        .filter(|r| r.security_group_id == sg)
        .collect();
    assert_eq!(
        rules.len(),
        4,
        "egress v4/v6 plus ingress from itself v4/v6"
    );
    assert_eq!(
        rules
            .iter()
            .filter(|r| r.remote_group_id == Some(sg))
            .count(),
        2
    );
    // A second port reuses it.
    let q = as_port(w.ok(port(6, 1, None)));
    assert_eq!(q.security_groups[..], [sg]);
}

#[test]
fn security_group_rule_needs_exclusive_remote_and_no_duplicate() {
    let mut w = base();
    w.ok(Command::CreateSecurityGroup {
        id: Id(50),
        project_id: PROJECT.into(),
        name: "web".into(),
        description: String::new(),
    });
    let rule =
        |id: u128, prefix: Option<&str>, group: Option<u128>| Command::CreateSecurityGroupRule {
            id: Id(id),
            project_id: PROJECT.into(),
            security_group_id: Id(50),
            direction: alcor_state_machine::model::Direction::Ingress,
            ethertype: alcor_state_machine::model::EtherType::Ipv4,
            protocol: Some(6),
            port_range_min: Some(80),
            port_range_max: Some(80),
            remote_ip_prefix: prefix.map(|p| p.parse().unwrap()),
            remote_group_id: group.map(Id),
        };
    let e = w.reject(rule(60, Some("0.0.0.0/0"), Some(50)));
    assert!(matches!(e, Rejection::InvalidField { .. }), "{e:?}");
    let e = w.reject(rule(60, Some("::/0"), None));
    assert!(matches!(e, Rejection::InvalidField { .. }), "family: {e:?}");
    w.ok(rule(60, Some("0.0.0.0/0"), None));
    let e = w.reject(rule(61, Some("0.0.0.0/0"), None));
    assert_eq!(
        e,
        Rejection::RuleExists {
            existing_id: Id(60)
        }
    );
}

#[test]
fn security_group_in_use_cannot_be_deleted() {
    let mut w = base();
    w.ok(Command::CreateSecurityGroup {
        id: Id(50),
        project_id: PROJECT.into(),
        name: "web".into(),
        description: String::new(),
    });
    let mut spec = port_spec(5, 1, None);
    spec.security_groups = Some(vec![Id(50)]);
    w.ok(Command::CreatePort(spec));
    let e = w.reject(Command::DeleteSecurityGroup {
        id: Id(50),
        expected_revision: None,
    });
    assert!(matches!(
        e,
        Rejection::InUse {
            kind: Kind::SecurityGroup,
            ..
        }
    ));
}

#[test]
fn host_in_maintenance_accepts_no_new_bindings_and_bound_host_cannot_be_deleted() {
    let mut w = base();
    w.ok(port(5, 1, Some("h1")));
    let e = w.reject(Command::DeleteHost {
        id: "h1".into(),
        expected_revision: None,
    });
    assert!(matches!(
        e,
        Rejection::InUse {
            kind: Kind::Host,
            ..
        }
    ));
    w.ok(Command::UpdateHost {
        id: "h2".into(),
        underlay_ip: None,
        status: Some(alcor_state_machine::model::HostStatus::Maintenance),
        expected_revision: None,
    });
    let e = w.reject(port(6, 1, Some("h2")));
    assert!(matches!(e, Rejection::InvalidField { .. }), "{e:?}");
}

#[test]
fn router_interface_takes_the_gateway_and_pins_the_subnet() {
    let mut w = base();
    w.ok(Command::CreateRouter {
        id: Id(70),
        project_id: PROJECT.into(),
        name: "r".into(),
        routes: vec![],
    });
    let Reply::Router(r) = w.ok(Command::AddRouterInterface {
        router_id: Id(70),
        subnet_id: Id(10),
    }) else {
        panic!()
    };
    assert_eq!(r.interfaces[0].ip_address.to_string(), "192.168.1.1");
    let e = w.reject(Command::AddRouterInterface {
        router_id: Id(70),
        subnet_id: Id(10),
    });
    assert!(matches!(e, Rejection::InUse { .. }));
    let e = w.reject(Command::DeleteSubnet {
        id: Id(10),
        expected_revision: None,
    });
    assert!(matches!(e, Rejection::InUse { .. }));
    let e = w.reject(Command::DeleteRouter {
        id: Id(70),
        expected_revision: None,
    });
    assert!(matches!(e, Rejection::InUse { .. }));
    w.ok(Command::RemoveRouterInterface {
        router_id: Id(70),
        subnet_id: Id(10),
    });
    w.ok(Command::DeleteRouter {
        id: Id(70),
        expected_revision: None,
    });
}

#[test]
fn vpcs_get_distinct_vnis_and_a_taken_vni_is_rejected() {
    let mut w = base();
    let Reply::Vpc(a) = w.ok(vpc(2, None)) else {
        panic!()
    };
    let Reply::Vpc(b) = w.ok(vpc(3, None)) else {
        panic!()
    };
    assert_ne!(a.vni, b.vni);
    assert_eq!(a.mtu, 1450);
    let e = w.reject(Command::CreateVpc {
        id: Id(4),
        project_id: PROJECT.into(),
        name: "x".into(),
        cidr: None,
        vni: Some(a.vni),
        mtu: None,
        admin_state_up: true,
    });
    assert!(matches!(e, Rejection::InUse { .. }), "{e:?}");
}

#[test]
fn snapshot_rejects_garbage_and_other_versions() {
    assert!(State::restore(b"garbage").is_err());
    let mut bytes = State::new().snapshot();
    assert!(State::restore(&bytes).is_ok());
    bytes[8] = 99;
    assert_eq!(
        State::restore(&bytes).unwrap_err(),
        alcor_state_machine::SnapshotError::UnsupportedVersion(99)
    );
    let mut bytes = base().state.snapshot();
    bytes.truncate(bytes.len() - 3);
    assert!(matches!(
        State::restore(&bytes),
        Err(alcor_state_machine::SnapshotError::Corrupt(_))
    ));
}

#[test]
fn ipv6_subnet_allocates_from_its_range() {
    let mut w = World::new();
    w.ok(vpc(1, None));
    w.ok(subnet(10, 1, "2001:db8::/64"));
    let p = as_port(w.ok(port(5, 1, None)));
    assert_eq!(p.fixed_ips[0].ip_address.to_string(), "2001:db8::2");
}

#[test]
fn batch_entry_applies_each_command_independently() {
    let mut w = base();
    let mut other = port_spec(7, 1, None);
    other.project_id = "proj-b".into();
    let Reply::Batch(results) = w.ok(Command::Batch(vec![
        port(5, 1, Some("h1")),
        port_with_ip(6, 1, 10, "10.9.9.9"),
        Command::CreatePort(other),
    ])) else {
        panic!("not a batch reply")
    };
    assert!(results[0].is_ok());
    assert!(
        matches!(results[1], Err(Rejection::IpOutsideSubnet { .. })),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok());
    assert!(w.state.port(&Id(6)).is_none());
    // Both projects got their own default group, with distinct derived IDs.
    let a = w.state.default_security_group(PROJECT).unwrap();
    let b = w.state.default_security_group("proj-b").unwrap();
    assert_ne!(a, b);
    assert_eq!(w.state.security_group_rules().count(), 8);
    assert_eq!(
        w.state.port(&Id(5)).unwrap().meta.revision,
        w.state.port(&Id(7)).unwrap().meta.revision
    );
    let e = w.reject(Command::Batch(vec![Command::Batch(vec![])]));
    assert!(matches!(e, Rejection::InvalidField { .. }));
}

fn with_token(token: &str, command: Command) -> Command {
    Command::Idempotent {
        token: token.to_string(),
        command: Box::new(command),
    }
}

#[test]
fn retried_create_with_its_token_returns_the_original_result_once() {
    let mut w = base();
    let first = as_port(w.ok(with_token("req-1", port(5, 1, Some("h1")))));
    let ports_before = w.state.port_count();
    let index_before = w.index;
    let outcome = w.apply(with_token("req-1", port(5, 1, Some("h1"))));
    let again = match outcome.result {
        Ok(reply) => as_port(reply),
        Err(e) => panic!("retry rejected: {e}"),
    };
    assert_eq!(again, first, "the retry returns the original port");
    assert!(outcome.diffs.is_empty(), "the retry changed no goal state");
    assert_eq!(w.state.port_count(), ports_before);
    assert!(w.index > index_before);
    // Same token, different request: a conflict, and nothing changes.
    let e = w.reject(with_token("req-1", port(6, 1, Some("h1"))));
    assert_eq!(
        e,
        Rejection::TokenConflict {
            token: "req-1".to_string()
        }
    );
    // Tokens survive a snapshot round trip (they are replicated state).
    let restored = State::restore(&w.state.snapshot()).unwrap();
    let mut w2 = World {
        state: restored,
        index: w.index,
        tables: Default::default(),
    };
    assert_eq!(
        as_port(w2.ok(with_token("req-1", port(5, 1, Some("h1"))))),
        first
    );
}

#[test]
fn rejected_request_does_not_consume_its_token() {
    let mut w = base();
    let e = w.reject(with_token("req-2", port(5, 1, Some("nowhere"))));
    assert!(matches!(
        e,
        Rejection::NotFound {
            kind: Kind::Host,
            ..
        }
    ));
    as_port(w.ok(with_token("req-2", port(5, 1, Some("h1")))));
}

#[test]
fn oldest_tokens_are_forgotten_beyond_the_limit() {
    let mut w = base();
    let quota = |n: i64| Command::SetQuota {
        project_id: PROJECT.into(),
        quota: Quota {
            port: n,
            ..Quota::default()
        },
    };
    for i in 0..=alcor_state_machine::limits::TOKENS_MAX {
        w.ok(with_token(&format!("t-{i}"), quota(i as i64)));
    }
    // t-0 was forgotten: reusing it for another request is no longer a conflict.
    w.ok(with_token("t-0", quota(7)));
    // A recent one is still remembered.
    let e = w.reject(with_token(
        &format!("t-{}", alcor_state_machine::limits::TOKENS_MAX),
        quota(7),
    ));
    assert!(matches!(e, Rejection::TokenConflict { .. }));
}

#[test]
fn port_status_from_a_stale_ack_changes_nothing() {
    let mut w = base();
    let p = as_port(w.ok(port(5, 1, Some("h1"))));
    let set = |host: &str, rev: u64| Command::SetPortStatus {
        id: Id(5),
        status: PortStatus::Active,
        if_bound_to: Some(host.to_string()),
        if_revision_at_most: Some(rev),
    };
    // An ack from another host, or from before the port's last change: no effect.
    w.ok(set("h2", p.meta.revision));
    w.ok(set("h1", p.meta.revision - 1));
    assert_eq!(w.state.port(&Id(5)).unwrap().status, PortStatus::Down);
    w.ok(set("h1", p.meta.revision));
    assert_eq!(w.state.port(&Id(5)).unwrap().status, PortStatus::Active);
}
