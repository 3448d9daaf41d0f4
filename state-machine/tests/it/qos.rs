//! QoS policies (format 7): rules per slot, the policy of networks and
//! ports, the effective policy in each host's goal state and its diffs, and
//! the policy in use.

use crate::support::*;
use alcor_state_machine::goal::QosConfig;
use alcor_state_machine::model::{Direction, QosRule, QosRuleKind};
use alcor_state_machine::{
    Command, GoalKey, GoalObject, Kind, PortSpecV5, PortUpdateV5, QosRuleUpdate, Rejection, State,
};

fn policy(n: u128) -> Command {
    Command::CreateQosPolicy {
        id: id(n),
        project_id: PROJECT.to_string(),
        name: format!("qos-{n}"),
        description: String::new(),
        shared: false,
    }
}

fn bw(rule: u128, direction: Direction, max_kbps: u32) -> QosRule {
    QosRule {
        id: id(rule),
        kind: QosRuleKind::BandwidthLimit {
            direction,
            max_kbps,
            max_burst_kbps: 0,
        },
    }
}

fn add_rule(policy: u128, rule: QosRule) -> Command {
    Command::CreateQosRule {
        policy_id: id(policy),
        rule,
    }
}

fn port_with(n: u128, host: &str, qos: Option<u128>) -> Command {
    Command::CreatePortV7 {
        spec: PortSpecV5::from(port_spec(n, 1, Some(host))),
        qos_policy_id: qos.map(id),
    }
}

fn set_network(qos: Option<u128>) -> Command {
    Command::UpdateVpcV7 {
        id: id(1),
        name: None,
        mtu: None,
        admin_state_up: None,
        port_security_enabled: None,
        qos_policy_id: Some(qos.map(id)),
        expected_revision: None,
    }
}

/// The QoS part of a port's object in a host's goal state.
fn qos_of(state: &State, host: &str, port: u128) -> Option<QosConfig> {
    match state.goal_state(host).get(&GoalKey::Port(id(port))) {
        Some(GoalObject::Port(p)) => p.qos.clone(),
        other => panic!("port {port} not in {host}'s goal state: {other:?}"),
    }
}

fn world() -> World {
    let mut w = World::new();
    w.ok(host("h1", "10.0.0.1"));
    w.ok(host("h2", "10.0.0.2"));
    w.ok(vpc(1, Some("192.168.0.0/16")));
    w.ok(subnet(10, 1, "192.168.1.0/24"));
    w.ok(policy(20));
    w.ok(policy(21));
    w.ok(add_rule(20, bw(30, Direction::Egress, 1000)));
    w.ok(add_rule(21, bw(31, Direction::Ingress, 2000)));
    w
}

#[test]
fn a_ports_own_policy_wins_over_its_networks() {
    let mut w = world();
    w.ok(set_network(Some(20)));
    w.ok(port_with(100, "h1", None));
    w.ok(port_with(101, "h1", Some(21)));
    assert_eq!(
        qos_of(&w.state, "h1", 100).map(|q| q.policy_id),
        Some(id(20))
    );
    assert_eq!(
        qos_of(&w.state, "h1", 101).map(|q| q.policy_id),
        Some(id(21))
    );
    w.ok(set_network(None));
    assert_eq!(qos_of(&w.state, "h1", 100), None);
    assert_eq!(
        qos_of(&w.state, "h1", 101).map(|q| q.policy_id),
        Some(id(21))
    );
    w.assert_tables_match(&["h1", "h2"]);
}

#[test]
fn a_rule_change_reaches_every_host_with_a_port_using_the_policy() {
    let mut w = world();
    w.ok(set_network(Some(20)));
    w.ok(port_with(100, "h1", None));
    w.ok(port_with(101, "h2", None));
    w.ok(port_with(102, "h2", Some(21)));
    let outcome = w.apply(Command::UpdateQosRule {
        policy_id: id(20),
        rule_id: id(30),
        update: QosRuleUpdate {
            max_kbps: Some(5000),
            ..QosRuleUpdate::default()
        },
    });
    assert!(outcome.result.is_ok());
    assert_eq!(
        outcome.diffs.hosts(),
        vec!["h1".to_string(), "h2".to_string()]
    );
    // Port 102 uses its own policy: unchanged, not in the diff.
    let changed: Vec<GoalKey> = outcome
        .diffs
        .changes_for("h2")
        .iter()
        .map(|c| c.key())
        .collect();
    assert_eq!(changed, vec![GoalKey::Port(id(101))]);
    let rules = qos_of(&w.state, "h1", 100).expect("policy").rules;
    assert_eq!(rules, vec![bw(30, Direction::Egress, 5000)]);
    w.assert_tables_match(&["h1", "h2"]);
    // A new rule and a removed one reach them too.
    w.ok(add_rule(20, bw(32, Direction::Ingress, 7)));
    w.ok(Command::DeleteQosRule {
        policy_id: id(20),
        rule_id: id(30),
    });
    assert_eq!(
        qos_of(&w.state, "h2", 101).expect("policy").rules,
        vec![bw(32, Direction::Ingress, 7)]
    );
    w.assert_tables_match(&["h1", "h2"]);
}

#[test]
fn a_port_update_sets_and_clears_its_policy_with_a_diff() {
    let mut w = world();
    w.ok(port_with(100, "h1", None));
    let before = w.state.port(&id(100)).expect("port").meta.revision;
    let update = |qos: Option<u128>| Command::UpdatePortV7 {
        id: id(100),
        update: PortUpdateV5::default(),
        qos_policy_id: Some(qos.map(id)),
        expected_revision: None,
    };
    w.ok(update(Some(21)));
    assert!(w.state.port(&id(100)).expect("port").meta.revision > before);
    assert_eq!(w.state.port_qos_policy_id(id(100)), Some(id(21)));
    assert_eq!(w.table("h1"), w.state.goal_state("h1"));
    assert!(qos_of(&w.state, "h1", 100).is_some());
    w.ok(update(None));
    assert_eq!(qos_of(&w.state, "h1", 100), None);
    w.assert_tables_match(&["h1"]);
}

#[test]
fn a_network_owned_port_does_not_inherit_the_networks_policy() {
    let mut w = world();
    w.ok(set_network(Some(20)));
    let mut spec = PortSpecV5::from(port_spec(100, 1, Some("h1")));
    spec.device_owner = "network:dhcp".to_string();
    w.ok(Command::CreatePortV7 {
        spec,
        qos_policy_id: None,
    });
    assert_eq!(qos_of(&w.state, "h1", 100), None);
}

#[test]
fn a_policy_in_use_cannot_be_deleted() {
    let mut w = world();
    w.ok(port_with(100, "h1", Some(20)));
    w.ok(set_network(Some(21)));
    let delete = |n: u128| Command::DeleteQosPolicy {
        id: id(n),
        expected_revision: None,
    };
    for n in [20, 21] {
        let e = w.reject(delete(n));
        assert!(
            matches!(
                e,
                Rejection::InUse {
                    kind: Kind::QosPolicy,
                    ..
                }
            ),
            "{e:?}"
        );
    }
    // Once nothing uses them (the port gone, the network's cleared) they go.
    w.ok(Command::DeletePort {
        id: id(100),
        expected_revision: None,
    });
    w.ok(set_network(None));
    w.ok(delete(20));
    w.ok(delete(21));
    assert_eq!(w.state.qos_policies().count(), 0);
}

#[test]
fn a_policy_has_at_most_one_rule_per_direction_and_one_dscp_mark() {
    let mut w = world();
    let e = w.reject(add_rule(20, bw(40, Direction::Egress, 1)));
    assert_eq!(
        e,
        Rejection::QosRuleExists {
            policy_id: id(20),
            existing_id: id(30)
        }
    );
    w.ok(add_rule(20, bw(40, Direction::Ingress, 1)));
    let dscp = |rule: u128, dscp_mark: u8| QosRule {
        id: id(rule),
        kind: QosRuleKind::DscpMarking { dscp_mark },
    };
    w.ok(add_rule(20, dscp(41, 26)));
    assert!(matches!(
        w.reject(add_rule(20, dscp(42, 46))),
        Rejection::QosRuleExists { .. }
    ));
    // Turning the ingress limit into a second egress one is the same conflict.
    assert!(matches!(
        w.reject(Command::UpdateQosRule {
            policy_id: id(20),
            rule_id: id(40),
            update: QosRuleUpdate {
                direction: Some(Direction::Egress),
                ..QosRuleUpdate::default()
            },
        }),
        Rejection::QosRuleExists { .. }
    ));
}

#[test]
fn rule_values_outside_neutrons_ranges_are_refused() {
    let mut w = world();
    for mark in [1u8, 7, 47, 64] {
        let e = w.reject(add_rule(
            21,
            QosRule {
                id: id(50),
                kind: QosRuleKind::DscpMarking { dscp_mark: mark },
            },
        ));
        assert!(matches!(e, Rejection::InvalidField { ref field, .. } if field == "dscp_mark"));
    }
    let e = w.reject(add_rule(21, bw(50, Direction::Egress, u32::MAX)));
    assert!(matches!(e, Rejection::InvalidField { ref field, .. } if field == "max_kbps"));
    // A DSCP field on a bandwidth rule is refused, not ignored.
    let e = w.reject(Command::UpdateQosRule {
        policy_id: id(20),
        rule_id: id(30),
        update: QosRuleUpdate {
            dscp_mark: Some(8),
            ..QosRuleUpdate::default()
        },
    });
    assert!(matches!(e, Rejection::InvalidField { ref field, .. } if field == "dscp_mark"));
}

#[test]
fn another_projects_unshared_policy_is_not_found() {
    let mut w = world();
    w.ok(Command::CreateQosPolicy {
        id: id(22),
        project_id: "proj-b".to_string(),
        name: "theirs".to_string(),
        description: String::new(),
        shared: false,
    });
    let e = w.reject(port_with(100, "h1", Some(22)));
    assert!(
        matches!(
            e,
            Rejection::NotFound {
                kind: Kind::QosPolicy,
                ..
            }
        ),
        "{e:?}"
    );
    w.ok(Command::UpdateQosPolicy {
        id: id(22),
        name: None,
        description: None,
        shared: Some(true),
        expected_revision: None,
    });
    w.ok(port_with(100, "h1", Some(22)));
}

#[test]
fn qos_survives_a_snapshot_round_trip() {
    let mut w = world();
    w.ok(set_network(Some(20)));
    w.ok(port_with(100, "h1", Some(21)));
    let restored = State::restore(&w.state.snapshot()).expect("restore");
    assert_eq!(restored.snapshot(), w.state.snapshot());
    assert_eq!(restored.goal_state("h1"), w.state.goal_state("h1"));
    assert_eq!(restored.network_qos_policy_id(id(1)), Some(id(20)));
}

#[test]
fn a_policy_moved_off_a_port_or_network_is_no_longer_in_use() {
    let mut w = world();
    w.ok(port_with(100, "h1", Some(20)));
    w.ok(set_network(Some(20)));
    // The port and the network move to policy 21: 20 has no user left.
    w.ok(Command::UpdatePortV7 {
        id: id(100),
        update: PortUpdateV5::default(),
        qos_policy_id: Some(Some(id(21))),
        expected_revision: None,
    });
    w.ok(set_network(Some(21)));
    assert!(w.state.indexes_are_consistent());
    w.ok(Command::DeleteQosPolicy {
        id: id(20),
        expected_revision: None,
    });
    // 21 is used by the network first, then by the port.
    let e = w.reject(Command::DeleteQosPolicy {
        id: id(21),
        expected_revision: None,
    });
    assert!(
        matches!(&e, Rejection::InUse { kind: Kind::QosPolicy, reason, .. } if reason.contains("network")),
        "{e:?}"
    );
    w.ok(set_network(None));
    let e = w.reject(Command::DeleteQosPolicy {
        id: id(21),
        expected_revision: None,
    });
    assert!(
        matches!(&e, Rejection::InUse { reason, .. } if reason.contains("port")),
        "{e:?}"
    );
}
