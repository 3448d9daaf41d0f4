//! Client-chosen IDs never fall in the space the state machine derives IDs
//! from (issue 13, finding 4): a group pre-created under a future derived
//! ID would be overwritten by another project's default group.

use crate::support::*;
use alcor_state_machine::{Command, Id, Rejection};

/// `command` (a VPC or subnet create) in project `project`.
fn in_project(mut command: Command, project: &str) -> Command {
    match &mut command {
        Command::CreateVpc { project_id, .. } | Command::CreateSubnet { project_id, .. } => {
            *project_id = project.to_string();
        }
        other => panic!("not a VPC or subnet create: {other:?}"),
    }
    command
}

#[test]
fn a_group_under_the_next_but_one_derived_id_is_refused_and_the_default_group_is_intact() {
    let mut w = World::new();
    w.ok(in_project(vpc(1, None), "proj-c"));
    w.ok(in_project(subnet(10, 1, "10.1.0.0/24"), "proj-c"));
    // The issue's scenario: project A takes the ID that the entry after its
    // own will derive first.
    let next_but_one = Id::derived(w.index + 2, 1);
    assert_eq!(
        next_but_one.to_string(),
        "00000000-0004-a000-0000-000000000001"
    );
    let rejection = w.reject(Command::CreateSecurityGroup {
        id: next_but_one,
        project_id: PROJECT.to_string(),
        name: "trap".to_string(),
        description: String::new(),
    });
    assert_eq!(
        rejection,
        Rejection::ReservedId {
            field: "id".to_string(),
            id: next_but_one
        }
    );

    // Project C's first port creates C's default group under that ID.
    let mut spec = port_spec(100, 1, None);
    spec.project_id = "proj-c".to_string();
    w.ok(Command::CreatePort(spec));
    assert_eq!(w.state.default_security_group("proj-c"), Some(next_but_one));
    let group = w
        .state
        .security_group(&next_but_one)
        .expect("default group");
    assert_eq!(group.meta.project_id, "proj-c");
    assert!(group.is_default);
    let rules: Vec<Id> = w.state.rules_of(next_but_one).map(|r| r.id).collect();
    assert_eq!(rules.len(), 4, "{rules:?}");
    assert!(w.state.indexes_are_consistent());
    assert_eq!(
        w.state.usage(
            PROJECT,
            alcor_state_machine::model::ResourceKind::SecurityGroup
        ),
        0
    );
}

#[test]
fn every_create_refuses_a_client_id_of_the_derived_form() {
    let mut w = World::new();
    w.ok(unlimited());
    w.ok(vpc(1, None));
    w.ok(subnet(10, 1, "10.1.0.0/24"));
    w.ok(Command::CreateSecurityGroup {
        id: id(50),
        project_id: PROJECT.to_string(),
        name: "sg".to_string(),
        description: String::new(),
    });
    let derived = Id::derived(1_000, 3);
    let reserved = Rejection::ReservedId {
        field: "id".to_string(),
        id: derived,
    };
    let with_id = |command: Command| -> Command {
        let mut command = command;
        match &mut command {
            Command::CreateVpc { id, .. }
            | Command::CreateSubnet { id, .. }
            | Command::CreateSecurityGroup { id, .. }
            | Command::CreateSecurityGroupRule { id, .. }
            | Command::CreateRouter { id, .. }
            | Command::CreateFloatingIp { id, .. } => *id = derived,
            Command::CreatePort(spec) => spec.id = derived,
            other => panic!("not a create: {other:?}"),
        }
        command
    };
    let creates = [
        vpc(2, None),
        subnet(11, 1, "10.2.0.0/24"),
        Command::CreateSecurityGroup {
            id: id(51),
            project_id: PROJECT.to_string(),
            name: "sg".to_string(),
            description: String::new(),
        },
        Command::CreateSecurityGroupRule {
            id: id(60),
            project_id: PROJECT.to_string(),
            security_group_id: id(50),
            direction: alcor_state_machine::model::Direction::Ingress,
            ethertype: alcor_state_machine::model::EtherType::Ipv4,
            protocol: Some(6),
            port_range_min: Some(22),
            port_range_max: Some(22),
            remote_ip_prefix: None,
            remote_group_id: None,
        },
        Command::CreateRouter {
            id: id(70),
            project_id: PROJECT.to_string(),
            name: "r".to_string(),
            routes: Vec::new(),
        },
        Command::CreateFloatingIp {
            id: id(80),
            project_id: PROJECT.to_string(),
            floating_network_id: id(1),
            floating_ip_address: None,
            port_id: None,
            fixed_ip_address: None,
            description: String::new(),
        },
    ];
    for create in creates {
        assert_eq!(w.reject(with_id(create.clone())), reserved, "{create:?}");
        w.ok(create);
    }
    // In a batch the refusal names the entry.
    let batch = Command::CreatePorts(vec![port_spec(100, 1, None), {
        let mut spec = port_spec(101, 1, None);
        spec.id = derived;
        spec
    }]);
    assert_eq!(
        w.reject(batch),
        Rejection::BatchEntry {
            index: 1,
            cause: Box::new(reserved.clone())
        }
    );
    assert_eq!(w.reject(with_id(port(102, 1, None))), reserved);
    assert!(w.state.indexes_are_consistent());
}
