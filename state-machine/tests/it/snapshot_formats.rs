//! Older snapshot formats and older log entries keep working.
//!
//! `tests/fixtures/state-v4.bin` is the snapshot a format-4 build wrote
//! after applying [`format4_log`]: a small state with every resource kind
//! (host, VPC, subnet, port with an allowed address pair and tags, batch of
//! ports, security group and a remote-group rule, router with an interface
//! and a route, floating IP, quota, request token). Today's build must
//! restore it, and must also apply the same log entries (their commands are
//! format-4 variants, unchanged) to exactly the state the restore gives.
//!
//! A new format version writes its own fixture:
//! `ALCOR_WRITE_FIXTURES=1 cargo test -p alcor-state-machine --test it snapshot_formats`
//! writes `state-v{SNAPSHOT_VERSION}.bin`; older files are kept and read.

use crate::support::{host, id, port_spec, subnet, vpc, World, PROJECT};
use alcor_state_machine::model::{AddressPair, Direction, EtherType, Quota};
use alcor_state_machine::{
    Command, FixedIpRequest, PortUpdate, State, SNAPSHOT_VERSION, SNAPSHOT_VERSIONS_READ,
};
use std::path::PathBuf;

fn fixture(version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/state-v{version}.bin"))
}

/// Commands of every resource kind, as a format-4 build proposed them.
fn format4_log() -> Vec<Command> {
    let mut tagged = port_spec(30, 1, Some("h1"));
    tagged.allowed_address_pairs = vec![
        AddressPair {
            ip_address: "10.0.0.200/32".parse().unwrap(),
            mac_address: None,
        },
        AddressPair {
            ip_address: "10.0.8.0/24".parse().unwrap(),
            mac_address: Some("fa:16:3e:00:00:99".parse().unwrap()),
        },
    ];
    tagged.fixed_ips = vec![FixedIpRequest {
        subnet_id: Some(id(2)),
        ip_address: Some("10.0.0.30".parse().unwrap()),
    }];
    vec![
        host("h1", "192.168.0.1"),
        host("h2", "192.168.0.2"),
        vpc(1, Some("10.0.0.0/16")),
        subnet(2, 1, "10.0.0.0/24"),
        vpc(3, None),
        subnet(4, 3, "172.16.0.0/24"),
        Command::CreateSecurityGroup {
            id: id(10),
            project_id: PROJECT.to_string(),
            name: "web".to_string(),
            description: "web servers".to_string(),
        },
        Command::CreateSecurityGroupRule {
            id: id(11),
            project_id: PROJECT.to_string(),
            security_group_id: id(10),
            direction: Direction::Ingress,
            ethertype: EtherType::Ipv4,
            protocol: Some(6),
            port_range_min: Some(80),
            port_range_max: Some(80),
            remote_ip_prefix: None,
            remote_group_id: Some(id(10)),
        },
        Command::WithTags {
            tags: ["blue".to_string()].into_iter().collect(),
            command: Box::new(Command::CreatePort(tagged)),
        },
        Command::Idempotent {
            token: "req-1".to_string(),
            command: Box::new(Command::CreatePorts(vec![
                port_spec(31, 1, Some("h2")),
                port_spec(32, 1, None),
            ])),
        },
        Command::UpdatePort {
            id: id(31),
            update: PortUpdate {
                security_groups: Some(vec![id(10)]),
                allowed_address_pairs: Some(vec![AddressPair {
                    ip_address: "10.0.0.201/32".parse().unwrap(),
                    mac_address: None,
                }]),
                ..PortUpdate::default()
            },
            expected_revision: None,
        },
        Command::SetPortStatus {
            id: id(30),
            status: alcor_state_machine::model::PortStatus::Active,
            if_bound_to: Some("h1".to_string()),
            if_revision_at_most: None,
        },
        Command::CreateRouter {
            id: id(20),
            project_id: PROJECT.to_string(),
            name: "r".to_string(),
            routes: Vec::new(),
        },
        Command::AddRouterInterface {
            router_id: id(20),
            subnet_id: id(2),
        },
        Command::CreateFloatingIp {
            id: id(40),
            project_id: PROJECT.to_string(),
            floating_network_id: id(3),
            floating_ip_address: None,
            port_id: Some(id(30)),
            fixed_ip_address: None,
            description: "vip".to_string(),
        },
        Command::SetQuota {
            project_id: PROJECT.to_string(),
            quota: Quota {
                port: 99,
                ..Quota::default()
            },
        },
    ]
}

fn format4_state() -> State {
    let mut world = World::new();
    for command in format4_log() {
        world.ok(command);
    }
    world.state
}

#[test]
fn format4_snapshot_restores_to_the_state_its_log_applies_to_today() {
    let built = format4_state();
    if std::env::var_os("ALCOR_WRITE_FIXTURES").is_some() {
        std::fs::write(fixture(SNAPSHOT_VERSION), built.snapshot()).unwrap();
    }
    let bytes = std::fs::read(fixture(4)).expect("the checked-in format-4 snapshot");
    assert_eq!(bytes[8..12], 4u32.to_le_bytes(), "written as format 4");
    let restored = State::restore(&bytes).expect("a format-4 snapshot restores");
    assert_eq!(restored.applied_index(), built.applied_index());
    assert!(restored.indexes_are_consistent());
    // Byte-identical state: the format-4 defaults are what today's code
    // gives the same format-4 commands.
    assert_eq!(restored.snapshot(), built.snapshot());
    for host in ["h1", "h2"] {
        assert_eq!(restored.goal_state(host), built.goal_state(host));
    }
}

#[test]
fn a_restored_format4_snapshot_is_written_as_the_current_format() {
    let bytes = std::fs::read(fixture(4)).expect("the checked-in format-4 snapshot");
    let restored = State::restore(&bytes).unwrap();
    let current = restored.snapshot();
    assert_eq!(current[8..12], SNAPSHOT_VERSION.to_le_bytes());
    let again = State::restore(&current).unwrap();
    assert_eq!(again.snapshot(), current);
    let ports: Vec<_> = again.ports().cloned().collect();
    assert_eq!(ports, restored.ports().cloned().collect::<Vec<_>>());
    assert_eq!(ports.len(), 3);
    assert!(ports.iter().all(|p| p.port_security_enabled));
    assert!(again.vpcs().all(|v| v.port_security_enabled));
}

#[test]
fn every_readable_snapshot_version_has_a_fixture() {
    assert_eq!(SNAPSHOT_VERSIONS_READ.last(), Some(&SNAPSHOT_VERSION));
    for version in SNAPSHOT_VERSIONS_READ {
        let bytes = std::fs::read(fixture(version))
            .unwrap_or_else(|_| panic!("no fixture for snapshot version {version}"));
        let state = State::restore(&bytes).unwrap();
        assert_eq!(state.snapshot(), format4_state().snapshot(), "v{version}");
    }
    // The current format's fixture is today's encoding byte for byte: an
    // encoding change without a version bump fails here.
    let current = std::fs::read(fixture(SNAPSHOT_VERSION)).unwrap();
    assert!(
        current == format4_state().snapshot(),
        "encoding changed without a version bump"
    );
}

#[test]
fn an_unknown_snapshot_version_is_refused() {
    let mut bytes = format4_state().snapshot();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    assert!(State::restore(&bytes).is_err());
    bytes[8..12].copy_from_slice(&(SNAPSHOT_VERSION + 1).to_le_bytes());
    assert!(State::restore(&bytes).is_err());
}
