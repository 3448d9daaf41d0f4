//! External networks and router gateways (format 8): a gateway is a port on
//! an external network; floating IPs of that network map only to ports behind
//! a router with its gateway there; the gateway and the interfaces they use
//! cannot be taken away under them.

use crate::support::*;
use alcor_state_machine::model::DEVICE_OWNER_ROUTER_GATEWAY;
use alcor_state_machine::{
    Command, FixedIpRequest, GatewayRequest, InterfaceRef, InterfaceTarget, PortUpdateV5,
    Rejection, Reply, State,
};

const EXT: u128 = 2;
const EXT_SUBNET: u128 = 20;
const ROUTER: u128 = 70;
const GW_PORT: u128 = 300;
const VM: u128 = 100;

fn external_vpc(n: u128, project: &str) -> Command {
    Command::CreateVpcV8 {
        id: id(n),
        project_id: project.to_string(),
        name: format!("ext-{n}"),
        cidr: None,
        vni: None,
        mtu: None,
        admin_state_up: true,
        port_security_enabled: true,
        qos_policy_id: None,
        external: true,
    }
}

fn gateway(net: u128, port: u128, enable_snat: bool) -> GatewayRequest {
    GatewayRequest {
        network_id: id(net),
        enable_snat,
        port_id: id(port),
        fixed_ips: Vec::new(),
    }
}

fn set_gateway(gw: Option<GatewayRequest>) -> Command {
    Command::UpdateRouterV8 {
        id: id(ROUTER),
        name: None,
        routes: None,
        admin_state_up: None,
        gateway: Some(gw),
        expected_revision: None,
    }
}

/// [`set_gateway`] as the format-9 command, which may keep the addresses
/// the current gateway holds.
fn move_gateway(gw: GatewayRequest) -> Command {
    Command::UpdateRouterV9 {
        id: id(ROUTER),
        name: None,
        routes: None,
        admin_state_up: None,
        gateway: Some(Some(gw)),
        expected_revision: None,
    }
}

/// Gateway addresses asked for by address.
fn at(ips: &[&str]) -> Vec<FixedIpRequest> {
    ips.iter()
        .map(|ip| FixedIpRequest {
            subnet_id: None,
            ip_address: Some(ip.parse().unwrap()),
        })
        .collect()
}

fn fip(n: u128, net: u128, port: Option<u128>) -> Command {
    Command::CreateFloatingIp {
        id: id(n),
        project_id: PROJECT.into(),
        floating_network_id: id(net),
        floating_ip_address: None,
        port_id: port.map(id),
        fixed_ip_address: None,
        description: String::new(),
    }
}

/// An internal network 1 (subnet 10) with a VM port, an external network
/// of the operator's project with a subnet, and a router on subnet 10 with
/// no gateway yet.
fn world() -> World {
    let mut w = World::new();
    w.ok(host("h1", "10.0.0.1"));
    w.ok(vpc(1, None));
    w.ok(subnet(10, 1, "192.168.1.0/24"));
    w.ok(port(VM, 1, Some("h1")));
    w.ok(external_vpc(EXT, "admin"));
    w.ok(subnet(EXT_SUBNET, EXT, "203.0.113.0/24"));
    w.ok(Command::CreateRouterV8 {
        id: id(ROUTER),
        project_id: PROJECT.into(),
        name: "r".into(),
        routes: vec![],
        gateway: None,
    });
    w.ok(Command::AddRouterInterfaceV6 {
        router_id: id(ROUTER),
        target: InterfaceTarget::Subnet {
            subnet_id: id(10),
            port_id: id(200),
        },
    });
    w
}

#[test]
fn a_gateway_is_a_router_gateway_port_with_an_address_of_the_external_network() {
    let mut w = world();
    let Reply::RouterGateway { router, gateway } =
        w.ok(set_gateway(Some(gateway(EXT, GW_PORT, true))))
    else {
        panic!("not a gateway reply")
    };
    let gateway = gateway.expect("the router has a gateway");
    assert_eq!(gateway.network_id, id(EXT));
    assert!(gateway.enable_snat);
    assert_eq!(gateway.port_id, id(GW_PORT));
    assert_eq!(gateway.external_fixed_ips[0].subnet_id, id(EXT_SUBNET));
    assert_eq!(
        gateway.external_fixed_ips[0].ip_address.to_string(),
        "203.0.113.2"
    );
    let port = w.state.port(&id(GW_PORT)).expect("the gateway port exists");
    assert_eq!(&*port.device_owner, DEVICE_OWNER_ROUTER_GATEWAY);
    assert_eq!(&*port.device_id, id(ROUTER).to_string());
    assert_eq!(port.network_id, id(EXT));
    assert_eq!(w.state.router_gateway(id(ROUTER)), Some(&gateway));
    assert_eq!(
        router.meta.revision, w.index,
        "the gateway change bumps the router"
    );
    assert!(w.state.indexes_are_consistent());
}

#[test]
fn a_router_created_with_a_gateway_has_it_in_the_same_entry() {
    let mut w = world();
    let Reply::RouterGateway { gateway: made, .. } = w.ok(Command::CreateRouterV8 {
        id: id(71),
        project_id: PROJECT.into(),
        name: "r2".into(),
        routes: vec![],
        gateway: Some(GatewayRequest {
            fixed_ips: vec![FixedIpRequest {
                subnet_id: Some(id(EXT_SUBNET)),
                ip_address: Some("203.0.113.50".parse().unwrap()),
            }],
            ..gateway(EXT, 301, false)
        }),
    }) else {
        panic!("not a gateway reply")
    };
    let made = made.expect("a gateway");
    assert!(!made.enable_snat);
    assert_eq!(
        made.external_fixed_ips[0].ip_address.to_string(),
        "203.0.113.50"
    );
    // A failing gateway creates no router.
    let e = w.reject(Command::CreateRouterV8 {
        id: id(72),
        project_id: PROJECT.into(),
        name: "r3".into(),
        routes: vec![],
        gateway: Some(GatewayRequest {
            fixed_ips: vec![FixedIpRequest {
                subnet_id: None,
                ip_address: Some("203.0.113.50".parse().unwrap()),
            }],
            ..gateway(EXT, 302, true)
        }),
    });
    assert!(matches!(e, Rejection::IpInUse { .. }), "{e:?}");
    assert!(w.state.router(&id(72)).is_none());
}

#[test]
fn a_gateway_on_a_network_that_is_not_external_is_refused() {
    let mut w = world();
    let e = w.reject(set_gateway(Some(gateway(1, GW_PORT, true))));
    assert!(
        matches!(&e, Rejection::InvalidField { field, .. } if field == "external_gateway_info"),
        "{e:?}"
    );
}

#[test]
fn changing_only_snat_keeps_the_gateway_port() {
    let mut w = world();
    w.ok(set_gateway(Some(gateway(EXT, GW_PORT, true))));
    w.ok(set_gateway(Some(gateway(EXT, 999, false))));
    let gw = w.state.router_gateway(id(ROUTER)).expect("gateway");
    assert!(!gw.enable_snat);
    assert_eq!(gw.port_id, id(GW_PORT));
    assert!(w.state.port(&id(999)).is_none());
}

#[test]
fn a_floating_ip_of_an_external_network_needs_a_router_path() {
    let mut w = world();
    let e = w.reject(fip(80, EXT, Some(VM)));
    assert_eq!(
        e,
        Rejection::ExternalNetworkUnreachable {
            network_id: id(EXT),
            subnet_id: id(10),
            port_id: id(VM),
        }
    );
    assert!(e.to_string().starts_with(&format!(
        "External network {} is not reachable from subnet {}",
        id(EXT),
        id(10)
    )));
    // Allocated without a port, then associated: refused the same way.
    w.ok(fip(81, EXT, None));
    let e = w.reject(Command::UpdateFloatingIp {
        id: id(81),
        port_id: Some(Some(id(VM))),
        fixed_ip_address: None,
        description: None,
        expected_revision: None,
    });
    assert!(
        matches!(e, Rejection::ExternalNetworkUnreachable { .. }),
        "{e:?}"
    );
    // With the gateway, the path exists.
    w.ok(set_gateway(Some(gateway(EXT, GW_PORT, true))));
    let Reply::FloatingIp(f) = w.ok(fip(80, EXT, Some(VM))) else {
        panic!("not a floating IP")
    };
    assert_eq!(w.state.floating_ip_router(&f), Some(id(ROUTER)));
    w.assert_tables_match(&["h1"]);
}

#[test]
fn an_external_network_of_another_project_gives_floating_ips_to_any_project() {
    let mut w = world();
    w.ok(set_gateway(Some(gateway(EXT, GW_PORT, true))));
    // The external network is the operator's ("admin"); the floating IP is
    // proj-a's.
    w.ok(fip(80, EXT, Some(VM)));
    assert_eq!(
        w.state.vpc(&id(EXT)).map(|v| v.meta.project_id.as_str()),
        Some("admin")
    );
}

#[test]
fn the_gateway_cannot_leave_while_floating_ips_use_it() {
    let mut w = world();
    w.ok(set_gateway(Some(gateway(EXT, GW_PORT, true))));
    w.ok(fip(80, EXT, Some(VM)));
    let e = w.reject(set_gateway(None));
    assert_eq!(
        e,
        Rejection::GatewayInUseByFloatingIps {
            router_id: id(ROUTER),
            network_id: id(EXT),
        }
    );
    // Moving it to another external network is the same.
    w.ok(external_vpc(3, "admin"));
    w.ok(subnet(30, 3, "198.51.100.0/24"));
    let e = w.reject(set_gateway(Some(gateway(3, 301, true))));
    assert!(
        matches!(e, Rejection::GatewayInUseByFloatingIps { .. }),
        "{e:?}"
    );
    // The interface the floating IP goes through cannot go either.
    let e = w.reject(Command::RemoveRouterInterfaceV6 {
        router_id: id(ROUTER),
        target: InterfaceRef::Subnet(id(10)),
    });
    assert!(matches!(e, Rejection::InUse { .. }), "{e:?}");
    // Disassociated, the gateway may go, and its port with it.
    w.ok(Command::UpdateFloatingIp {
        id: id(80),
        port_id: Some(None),
        fixed_ip_address: None,
        description: None,
        expected_revision: None,
    });
    w.ok(set_gateway(None));
    assert!(w.state.router_gateway(id(ROUTER)).is_none());
    assert!(w.state.port(&id(GW_PORT)).is_none());
    assert!(w.state.indexes_are_consistent());
}

#[test]
fn moving_the_gateway_replaces_its_port() {
    let mut w = world();
    w.ok(set_gateway(Some(gateway(EXT, GW_PORT, true))));
    w.ok(external_vpc(3, "admin"));
    w.ok(subnet(30, 3, "198.51.100.0/24"));
    w.ok(set_gateway(Some(gateway(3, 301, true))));
    assert!(w.state.port(&id(GW_PORT)).is_none());
    let gw = w.state.router_gateway(id(ROUTER)).expect("gateway");
    assert_eq!((gw.network_id, gw.port_id), (id(3), id(301)));
}

#[test]
fn moving_the_gateway_to_addresses_that_include_its_own_keeps_that_address() {
    let mut w = world();
    let addresses = |w: &World| -> Vec<String> {
        let gw = w.state.router_gateway(id(ROUTER)).expect("gateway");
        let port = w.state.port(&gw.port_id).expect("gateway port");
        assert_eq!(port.fixed_ips.to_vec(), gw.external_fixed_ips);
        gw.external_fixed_ips
            .iter()
            .map(|f| f.ip_address.to_string())
            .collect()
    };
    w.ok(set_gateway(Some(GatewayRequest {
        fixed_ips: at(&["203.0.113.10"]),
        ..gateway(EXT, GW_PORT, true)
    })));
    let wider = |port| GatewayRequest {
        fixed_ips: at(&["203.0.113.10", "203.0.113.11"]),
        ..gateway(EXT, port, true)
    };
    // The format-8 command keeps refusing it, so its log entries apply as
    // they did.
    let e = w.reject(set_gateway(Some(wider(301))));
    assert!(matches!(e, Rejection::IpInUse { .. }), "{e:?}");
    // Format 9: the router keeps its address and gains the other one.
    let Reply::RouterGateway {
        gateway: Some(made),
        ..
    } = w.ok(move_gateway(wider(301)))
    else {
        panic!("not a gateway reply")
    };
    assert_eq!(made.port_id, id(301));
    assert!(w.state.port(&id(GW_PORT)).is_none());
    assert_eq!(addresses(&w), ["203.0.113.10", "203.0.113.11"]);
    assert!(w.state.indexes_are_consistent());
    // Down to the other address: the first is free again.
    w.ok(move_gateway(GatewayRequest {
        fixed_ips: at(&["203.0.113.11"]),
        ..gateway(EXT, 302, false)
    }));
    assert_eq!(addresses(&w), ["203.0.113.11"]);
    w.ok(Command::CreateFloatingIp {
        id: id(400),
        project_id: PROJECT.into(),
        floating_network_id: id(EXT),
        floating_ip_address: Some("203.0.113.10".parse().unwrap()),
        port_id: None,
        fixed_ip_address: None,
        description: String::new(),
    });
    // A move onto an address something else holds changes nothing.
    let e = w.reject(move_gateway(GatewayRequest {
        fixed_ips: at(&["203.0.113.11", "203.0.113.10"]),
        ..gateway(EXT, 303, true)
    }));
    assert!(matches!(e, Rejection::IpInUse { .. }), "{e:?}");
    assert_eq!(addresses(&w), ["203.0.113.11"]);
    assert!(w.state.indexes_are_consistent());
}

#[test]
fn the_gateway_port_cannot_be_deleted_or_given_away_through_the_port_api() {
    let mut w = world();
    w.ok(set_gateway(Some(gateway(EXT, GW_PORT, true))));
    let e = w.reject(Command::DeletePort {
        id: id(GW_PORT),
        expected_revision: None,
    });
    assert_eq!(
        e,
        Rejection::RouterInterfacePort {
            port_id: id(GW_PORT),
            router_id: id(ROUTER),
        }
    );
    let e = w.reject(Command::UpdatePortV7 {
        id: id(GW_PORT),
        update: PortUpdateV5 {
            device_id: Some("vm".into()),
            ..PortUpdateV5::default()
        },
        qos_policy_id: None,
        expected_revision: None,
    });
    assert!(matches!(e, Rejection::RouterInterfacePort { .. }), "{e:?}");
}

#[test]
fn deleting_a_router_deletes_its_gateway_port() {
    let mut w = world();
    w.ok(set_gateway(Some(gateway(EXT, GW_PORT, true))));
    w.ok(Command::RemoveRouterInterfaceV6 {
        router_id: id(ROUTER),
        target: InterfaceRef::Subnet(id(10)),
    });
    w.ok(Command::DeleteRouter {
        id: id(ROUTER),
        expected_revision: None,
    });
    assert!(w.state.port(&id(GW_PORT)).is_none());
    assert!(w.state.router_gateway(id(ROUTER)).is_none());
    assert!(w.state.indexes_are_consistent());
}

#[test]
fn external_cannot_be_turned_off_under_a_gateway() {
    let mut w = world();
    w.ok(set_gateway(Some(gateway(EXT, GW_PORT, true))));
    let update = |external| Command::UpdateVpcV8 {
        id: id(EXT),
        name: None,
        mtu: None,
        admin_state_up: None,
        port_security_enabled: None,
        qos_policy_id: None,
        external: Some(external),
        expected_revision: None,
    };
    let e = w.reject(update(false));
    assert!(matches!(e, Rejection::InUse { .. }), "{e:?}");
    w.ok(set_gateway(None));
    w.ok(update(false));
    assert!(!w.state.network_is_external(id(EXT)));
}

#[test]
fn a_network_whose_floating_ips_have_no_router_path_cannot_become_external() {
    let mut w = world();
    // A floating IP of proj-a's own network 3 (no router needed while it is
    // not external).
    w.ok(vpc(3, None));
    w.ok(subnet(30, 3, "198.51.100.0/24"));
    w.ok(fip(80, 3, Some(VM)));
    let e = w.reject(Command::UpdateVpcV8 {
        id: id(3),
        name: None,
        mtu: None,
        admin_state_up: None,
        port_security_enabled: None,
        qos_policy_id: None,
        external: Some(true),
        expected_revision: None,
    });
    assert!(
        matches!(e, Rejection::ExternalNetworkUnreachable { .. }),
        "{e:?}"
    );
}

#[test]
fn gateways_and_external_flags_survive_a_snapshot() {
    let mut w = world();
    w.ok(set_gateway(Some(gateway(EXT, GW_PORT, false))));
    w.ok(fip(80, EXT, Some(VM)));
    let restored = State::restore(&w.state.snapshot()).expect("restores");
    assert_eq!(restored.snapshot(), w.state.snapshot());
    assert!(restored.network_is_external(id(EXT)));
    assert_eq!(
        restored.router_gateway(id(ROUTER)),
        w.state.router_gateway(id(ROUTER))
    );
    assert!(restored.indexes_are_consistent());
}
