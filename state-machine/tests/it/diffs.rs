//! Per-host diffs: who learns what, and that diffs add up to the goal state.

use crate::support::*;
use alcor_state_machine::model::{Direction, EtherType};
use alcor_state_machine::{Command, GoalChange, GoalKey, Id, PortUpdate};

fn three_hosts() -> World {
    let mut w = World::new();
    w.ok(unlimited());
    for (h, ip) in [("h1", "10.0.0.1"), ("h2", "10.0.0.2"), ("h3", "10.0.0.3")] {
        w.ok(host(h, ip));
    }
    w.ok(vpc(1, None));
    w.ok(subnet(10, 1, "192.168.1.0/24"));
    w
}

fn keys_for(outcome: &alcor_state_machine::Outcome, host: &str) -> Vec<GoalKey> {
    outcome
        .diffs
        .changes_for(host)
        .iter()
        .map(GoalChange::key)
        .collect()
}

fn hosts_of(outcome: &alcor_state_machine::Outcome) -> Vec<String> {
    outcome.diffs.hosts()
}

#[test]
fn port_create_reaches_its_host_and_the_vpcs_other_hosts_only() {
    let mut w = three_hosts();
    w.ok(port(100, 1, Some("h1")));
    w.ok(port(101, 1, Some("h2")));
    let out = w.apply(port(102, 1, Some("h1")));
    assert!(out.result.is_ok());
    let h1 = keys_for(&out, "h1");
    assert!(h1.contains(&GoalKey::Port(Id(102))));
    assert_eq!(
        keys_for(&out, "h2"),
        vec![
            GoalKey::SgMember {
                group_id: w.state.default_security_group(PROJECT).unwrap(),
                port_id: Id(102)
            },
            GoalKey::Neighbor(Id(102))
        ]
    );
    // One shared change for the VPC, not one per host.
    let vpc_diffs: Vec<_> = out
        .diffs
        .scoped
        .iter()
        .filter(|s| s.scope == alcor_state_machine::Scope::Vpc(Id(1)))
        .collect();
    assert_eq!(vpc_diffs.len(), 1);
    assert_eq!(
        vpc_diffs[0].audience,
        vec!["h1".to_string(), "h2".to_string()]
    );
    assert!(keys_for(&out, "h3").is_empty(), "h3 has no port in the VPC");
    w.assert_tables_match(&["h1", "h2", "h3"]);
}

#[test]
fn host_joining_a_vpc_gets_its_context_in_one_diff() {
    let mut w = three_hosts();
    w.ok(Command::CreatePorts(
        (0..20u128)
            .map(|n| port_spec(100 + n, 1, Some("h1")))
            .collect(),
    ));
    let out = w.apply(port(200, 1, Some("h3")));
    let h3: Vec<GoalKey> = keys_for(&out, "h3");
    assert!(h3.contains(&GoalKey::Vpc(Id(1))));
    assert!(h3.contains(&GoalKey::Subnet(Id(10))));
    // 20 remote neighbors plus the new port itself (neighbor sets are per VPC).
    assert_eq!(
        h3.iter()
            .filter(|k| matches!(k, GoalKey::Neighbor(_)))
            .count(),
        21
    );
    assert_eq!(out.diffs.host.iter().filter(|d| d.host == "h3").count(), 1);
    w.assert_tables_match(&["h1", "h2", "h3"]);
}

#[test]
fn moving_a_port_removes_it_from_the_old_host_and_adds_it_to_the_new() {
    let mut w = three_hosts();
    w.ok(port(100, 1, Some("h1")));
    w.ok(port(101, 1, Some("h1")));
    w.ok(port(102, 1, Some("h2")));
    let upd = PortUpdate {
        binding_host: Some(Some("h3".into())),
        ..PortUpdate::default()
    };
    let out = w.apply(Command::UpdatePort {
        id: Id(100),
        update: upd,
        expected_revision: None,
    });
    let h1 = out.diffs.changes_for("h1");
    assert!(h1.contains(&GoalChange::Remove(GoalKey::Port(Id(100)))));
    assert!(h1
        .iter()
        .any(|c| matches!(c, GoalChange::Upsert(o) if o.key() == GoalKey::Neighbor(Id(100)))));
    assert!(keys_for(&out, "h3").contains(&GoalKey::Port(Id(100))));
    w.assert_tables_match(&["h1", "h2", "h3"]);
    assert_eq!(
        w.state.port(&Id(100)).unwrap().status,
        alcor_state_machine::model::PortStatus::Down
    );
}

#[test]
fn renaming_a_port_pushes_nothing() {
    let mut w = three_hosts();
    w.ok(port(100, 1, Some("h1")));
    let upd = PortUpdate {
        name: Some("new-name".into()),
        ..PortUpdate::default()
    };
    let out = w.apply(Command::UpdatePort {
        id: Id(100),
        update: upd,
        expected_revision: None,
    });
    assert!(out.result.is_ok());
    assert!(out.diffs.is_empty(), "{:?}", out.diffs);
}

#[test]
fn rule_change_reaches_each_host_using_the_group_once_as_a_rule_delta() {
    let mut w = three_hosts();
    w.ok(Command::CreateSecurityGroup {
        id: Id(50),
        project_id: PROJECT.into(),
        name: "web".into(),
        description: String::new(),
    });
    let mut specs = Vec::new();
    for n in 0..30u128 {
        let mut spec = port_spec(100 + n, 1, Some(["h1", "h2"][(n % 2) as usize]));
        spec.security_groups = Some(vec![Id(50)]);
        specs.push(spec);
    }
    w.ok(Command::CreatePorts(specs));
    w.ok(port(300, 1, Some("h3"))); // default group, not "web"
    let out = w.apply(Command::CreateSecurityGroupRule {
        id: Id(60),
        project_id: PROJECT.into(),
        security_group_id: Id(50),
        direction: Direction::Ingress,
        ethertype: EtherType::Ipv4,
        protocol: Some(6),
        port_range_min: Some(22),
        port_range_max: Some(22),
        remote_ip_prefix: Some("10.0.0.0/8".parse().unwrap()),
        remote_group_id: None,
    });
    assert_eq!(hosts_of(&out), vec!["h1", "h2"]);
    for host in ["h1", "h2"] {
        assert_eq!(keys_for(&out, host), vec![GoalKey::SgRule(Id(60))]);
    }
    assert_eq!(
        out.diffs.scoped.len(),
        1,
        "one rule delta shared by both hosts"
    );
    w.assert_tables_match(&["h1", "h2", "h3"]);
}

#[test]
fn joining_a_remote_group_updates_hosts_whose_rules_name_it() {
    let mut w = three_hosts();
    w.ok(Command::CreateSecurityGroup {
        id: Id(50),
        project_id: PROJECT.into(),
        name: "web".into(),
        description: String::new(),
    });
    w.ok(Command::CreateSecurityGroup {
        id: Id(51),
        project_id: PROJECT.into(),
        name: "db".into(),
        description: String::new(),
    });
    w.ok(Command::CreateSecurityGroupRule {
        id: Id(60),
        project_id: PROJECT.into(),
        security_group_id: Id(51),
        direction: Direction::Ingress,
        ethertype: EtherType::Ipv4,
        protocol: Some(6),
        port_range_min: Some(5432),
        port_range_max: Some(5432),
        remote_ip_prefix: None,
        remote_group_id: Some(Id(50)),
    });
    let mut db = port_spec(100, 1, Some("h1"));
    db.security_groups = Some(vec![Id(51)]);
    w.ok(Command::CreatePort(db));
    // A web port on h2 joins group 50: h1 (db rules name 50) learns its address.
    let mut web = port_spec(101, 1, Some("h2"));
    web.security_groups = Some(vec![Id(50)]);
    let out = w.apply(Command::CreatePort(web));
    assert!(keys_for(&out, "h1").contains(&GoalKey::SgMember {
        group_id: Id(50),
        port_id: Id(101)
    }));
    w.assert_tables_match(&["h1", "h2", "h3"]);
    // Leaving the group removes it again.
    let upd = PortUpdate {
        security_groups: Some(vec![]),
        ..PortUpdate::default()
    };
    let out = w.apply(Command::UpdatePort {
        id: Id(101),
        update: upd,
        expected_revision: None,
    });
    let h1 = out.diffs.changes_for("h1");
    assert!(h1.contains(&GoalChange::Remove(GoalKey::SgMember {
        group_id: Id(50),
        port_id: Id(101)
    })));
    w.assert_tables_match(&["h1", "h2", "h3"]);
}

#[test]
fn host_underlay_change_updates_neighbors_everywhere() {
    let mut w = three_hosts();
    w.ok(port(100, 1, Some("h1")));
    w.ok(port(101, 1, Some("h2")));
    w.ok(port(102, 1, Some("h3")));
    let out = w.apply(Command::UpdateHost {
        id: "h1".into(),
        underlay_ip: Some("10.9.9.9".parse().unwrap()),
        status: None,
        expected_revision: None,
    });
    assert_eq!(
        hosts_of(&out),
        vec!["h1", "h2", "h3"],
        "every host of the VPC, h1 included, holds h1's neighbor entries"
    );
    w.assert_tables_match(&["h1", "h2", "h3"]);
}

#[test]
fn floating_ip_follows_its_port_between_hosts_and_is_released_with_it() {
    let mut w = three_hosts();
    w.ok(vpc(2, None));
    w.ok(subnet(20, 2, "203.0.113.0/24"));
    w.ok(port(100, 1, Some("h1")));
    let out = w.apply(Command::CreateFloatingIp {
        id: Id(80),
        project_id: PROJECT.into(),
        floating_network_id: Id(2),
        floating_ip_address: None,
        port_id: Some(Id(100)),
        fixed_ip_address: None,
        description: String::new(),
    });
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(keys_for(&out, "h1"), vec![GoalKey::FloatingIp(Id(80))]);
    let fip = w.state.floating_ip(&Id(80)).unwrap().clone();
    assert_eq!(fip.floating_ip_address.to_string(), "203.0.113.2");
    w.assert_tables_match(&["h1", "h2", "h3"]);
    // The port moves: the floating IP moves with it.
    let upd = PortUpdate {
        binding_host: Some(Some("h2".into())),
        ..PortUpdate::default()
    };
    let out = w.apply(Command::UpdatePort {
        id: Id(100),
        update: upd,
        expected_revision: None,
    });
    assert!(out
        .diffs
        .changes_for("h1")
        .contains(&GoalChange::Remove(GoalKey::FloatingIp(Id(80)))));
    assert!(keys_for(&out, "h2").contains(&GoalKey::FloatingIp(Id(80))));
    w.assert_tables_match(&["h1", "h2", "h3"]);
    // The floating network's subnet holds the address.
    let e = w.reject(Command::DeleteSubnet {
        id: Id(20),
        expected_revision: None,
    });
    assert!(
        matches!(e, alcor_state_machine::Rejection::InUse { .. }),
        "{e:?}"
    );
    // Deleting the port disassociates it.
    w.ok(Command::DeletePort {
        id: Id(100),
        expected_revision: None,
    });
    assert_eq!(w.state.floating_ip(&Id(80)).unwrap().port_id, None);
    w.assert_tables_match(&["h1", "h2", "h3"]);
    w.ok(Command::DeleteFloatingIp {
        id: Id(80),
        expected_revision: None,
    });
    w.ok(Command::DeleteSubnet {
        id: Id(20),
        expected_revision: None,
    });
}
