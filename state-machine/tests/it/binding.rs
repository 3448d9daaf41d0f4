//! Binding to a host the controller does not know yet (format 6): the port
//! is accepted, waits (`Binding::HostUnknown`, status down), and binds when
//! the host registers; the host's goal state then holds it, and its
//! neighbors reach the other hosts.

use crate::support::*;
use alcor_state_machine::model::{Binding, PortStatus};
use alcor_state_machine::{Command, GoalKey, PortSpecV5, PortUpdateV5, Rejection};

fn spec_on(n: u128, host: &str) -> PortSpecV5 {
    PortSpecV5::from(port_spec(n, 1, Some(host)))
}

fn world() -> World {
    let mut w = World::new();
    w.ok(host("h1", "10.0.0.1"));
    w.ok(vpc(1, Some("192.168.0.0/16")));
    w.ok(subnet(10, 1, "192.168.1.0/24"));
    w
}

#[test]
fn a_port_bound_to_an_unknown_host_waits_and_binds_when_the_host_registers() {
    let mut w = world();
    w.ok(port(100, 1, Some("h1")));
    w.ok(Command::CreatePortV6(spec_on(101, "h-new")));
    let p = w.state.port(&id(101)).expect("port").clone();
    assert_eq!(w.state.binding(&p), Binding::HostUnknown);
    assert_eq!(p.status, PortStatus::Down);
    // h1 does not see a neighbor on a host with no address yet.
    assert!(!w
        .state
        .goal_state("h1")
        .contains_key(&GoalKey::Neighbor(id(101))));
    w.ok(host("h-new", "10.0.0.9"));
    let after = w.state.port(&id(101)).expect("port").clone();
    assert_eq!(w.state.binding(&after), Binding::Bound);
    assert!(
        after.meta.revision > p.meta.revision,
        "watchers see the binding"
    );
    assert!(w
        .state
        .goal_state("h-new")
        .contains_key(&GoalKey::Port(id(101))));
    assert!(w
        .state
        .goal_state("h1")
        .contains_key(&GoalKey::Neighbor(id(101))));
    w.assert_tables_match(&["h1", "h-new"]);
}

#[test]
fn an_update_may_bind_to_an_unknown_host_but_older_commands_still_refuse_it() {
    let mut w = world();
    w.ok(port(100, 1, None));
    let e = w.reject(Command::UpdatePortV5 {
        id: id(100),
        update: PortUpdateV5 {
            binding_host: Some(Some("h-new".into())),
            ..PortUpdateV5::default()
        },
        expected_revision: None,
    });
    assert!(matches!(e, Rejection::NotFound { .. }), "{e:?}");
    let e = w.reject(Command::CreatePortV5(spec_on(101, "h-new")));
    assert!(matches!(e, Rejection::NotFound { .. }), "{e:?}");
    w.ok(Command::UpdatePortV6 {
        id: id(100),
        update: PortUpdateV5 {
            binding_host: Some(Some("h-new".into())),
            ..PortUpdateV5::default()
        },
        expected_revision: None,
    });
    let p = w.state.port(&id(100)).expect("port");
    assert_eq!(w.state.binding(p), Binding::HostUnknown);
    // A host name that could never register is refused.
    let e = w.reject(Command::CreatePortV6(spec_on(102, "no spaces")));
    assert!(matches!(e, Rejection::InvalidField { .. }), "{e:?}");
}

#[test]
fn a_host_with_waiting_ports_cannot_be_registered_away_and_unbound_is_unbound() {
    let mut w = world();
    w.ok(port(100, 1, None));
    let p = w.state.port(&id(100)).expect("port");
    assert_eq!(w.state.binding(p), Binding::Unbound);
    w.ok(Command::CreatePortV6(spec_on(101, "h-new")));
    w.ok(host("h-new", "10.0.0.9"));
    let e = w.reject(Command::DeleteHost {
        id: "h-new".into(),
        expected_revision: None,
    });
    assert!(matches!(e, Rejection::InUse { .. }), "{e:?}");
}
