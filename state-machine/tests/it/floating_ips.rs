//! Floating IPs and tenancy: a quota counted in usage like the other kinds, and
//! addresses only from the caller's own networks (issue 13, finding 5).

use crate::support::*;
use alcor_state_machine::model::{Quota, ResourceKind};
use alcor_state_machine::{Command, Id, Kind, Rejection, SubnetUpdate};

fn fip(n: u128, project: &str, net: u128) -> Command {
    Command::CreateFloatingIp {
        id: id(n),
        project_id: project.into(),
        floating_network_id: id(net),
        floating_ip_address: None,
        port_id: None,
        fixed_ip_address: None,
        description: String::new(),
    }
}

fn world() -> World {
    let mut w = World::new();
    w.ok(vpc(1, None));
    w.ok(subnet(10, 1, "203.0.113.0/28"));
    w
}

#[test]
fn floating_ips_count_against_their_own_quota() {
    let mut w = world();
    w.ok(Command::SetQuota {
        project_id: PROJECT.into(),
        quota: Quota {
            floating_ip: 1,
            ..Quota::default()
        },
    });
    w.ok(fip(80, PROJECT, 1));
    assert_eq!(w.state.usage(PROJECT, ResourceKind::FloatingIp), 1);
    let refused = w.reject(fip(81, PROJECT, 1));
    assert_eq!(
        refused,
        Rejection::QuotaExceeded {
            resource: ResourceKind::FloatingIp,
            limit: 1
        }
    );
    assert_eq!(
        refused.to_string(),
        "quota exceeded for resources: ['floatingip']"
    );
    w.ok(Command::DeleteFloatingIp {
        id: id(80),
        expected_revision: None,
    });
    assert_eq!(w.state.usage(PROJECT, ResourceKind::FloatingIp), 0);
    w.ok(fip(81, PROJECT, 1));
    assert!(w.state.indexes_are_consistent());
}

#[test]
fn floating_ip_from_another_projects_network_is_refused() {
    let mut w = world();
    let refused = w.reject(fip(80, "proj-b", 1));
    assert_eq!(
        refused,
        Rejection::InvalidField {
            field: "floating_network_id".into(),
            reason: format!("network {} belongs to another project", Id(1)),
        }
    );
    assert_eq!(w.state.usage("proj-b", ResourceKind::FloatingIp), 0);
    w.ok(fip(80, PROJECT, 1));
}

#[test]
fn subnet_errors_name_a_floating_ip_holding_the_address() {
    let mut w = world();
    w.ok(Command::CreateFloatingIp {
        id: id(80),
        project_id: PROJECT.into(),
        floating_network_id: id(1),
        floating_ip_address: Some("203.0.113.5".parse().unwrap()),
        port_id: None,
        fixed_ip_address: None,
        description: String::new(),
    });
    let moved = w.reject(Command::UpdateSubnet {
        id: id(10),
        update: SubnetUpdate {
            gateway_ip: Some(Some("203.0.113.5".parse().unwrap())),
            ..SubnetUpdate::default()
        },
        expected_revision: None,
    });
    let in_use = |reason: &str| Rejection::InUse {
        kind: Kind::Subnet,
        id: id(10).to_string(),
        reason: reason.to_string(),
    };
    assert_eq!(
        moved,
        in_use(&format!(
            "gateway address 203.0.113.5 is used by floating IP {}",
            id(80)
        ))
    );
    let deleted = w.reject(Command::DeleteSubnet {
        id: id(10),
        expected_revision: None,
    });
    assert_eq!(
        deleted,
        in_use(&format!("floating IP {} has an address in it", id(80)))
    );
}
