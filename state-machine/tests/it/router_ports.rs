//! Router interfaces are ports (format 6): by subnet a port on the gateway
//! address is created in the same entry, by port the given port is used; the
//! port API may not delete it or change its device while it is one; removing
//! the interface deletes it.

use crate::support::*;
use alcor_state_machine::model::DEVICE_OWNER_ROUTER_INTERFACE;
use alcor_state_machine::{
    Command, Id, InterfaceRef, InterfaceTarget, PortSpecV5, PortUpdateV5, Rejection, Reply,
};

fn world_with_router() -> World {
    let mut w = World::new();
    w.ok(host("h1", "10.0.0.1"));
    w.ok(vpc(1, Some("192.168.0.0/16")));
    w.ok(subnet(10, 1, "192.168.1.0/24"));
    w.ok(subnet(11, 1, "192.168.2.0/24"));
    w.ok(Command::CreateRouter {
        id: id(70),
        project_id: PROJECT.into(),
        name: "r".into(),
        routes: vec![],
    });
    w
}

fn add_by_subnet(subnet: u128, port: u128) -> Command {
    Command::AddRouterInterfaceV6 {
        router_id: id(70),
        target: InterfaceTarget::Subnet {
            subnet_id: id(subnet),
            port_id: id(port),
        },
    }
}

#[test]
fn an_interface_by_subnet_creates_a_router_port_on_the_gateway_address() {
    let mut w = world_with_router();
    let Reply::RouterInterface {
        router,
        subnet_id,
        port_id,
    } = w.ok(add_by_subnet(10, 200))
    else {
        panic!("not an interface reply")
    };
    assert_eq!((subnet_id, port_id), (id(10), Some(id(200))));
    assert_eq!(router.interfaces[0].ip_address.to_string(), "192.168.1.1");
    let port = w.state.port(&id(200)).expect("the interface's port exists");
    assert_eq!(&*port.device_owner, DEVICE_OWNER_ROUTER_INTERFACE);
    assert_eq!(&*port.device_id, id(70).to_string());
    assert_eq!(port.fixed_ips[0].ip_address.to_string(), "192.168.1.1");
    assert_eq!(port.fixed_ips[0].subnet_id, id(10));
    assert!(port.security_groups.is_empty());
    assert_eq!(w.state.interface_router(port), Some(id(70)));
    assert_eq!(
        w.state
            .interface_port(id(70), &router.interfaces[0])
            .map(|p| p.id),
        Some(id(200))
    );
}

#[test]
fn a_router_port_cannot_be_deleted_or_given_another_device_through_the_port_api() {
    let mut w = world_with_router();
    w.ok(add_by_subnet(10, 200));
    let e = w.reject(Command::DeletePort {
        id: id(200),
        expected_revision: None,
    });
    assert_eq!(
        e,
        Rejection::RouterInterfacePort {
            port_id: id(200),
            router_id: id(70)
        }
    );
    let e = w.reject(Command::UpdatePortV6 {
        id: id(200),
        update: PortUpdateV5 {
            device_id: Some("vm-1".into()),
            ..PortUpdateV5::default()
        },
        expected_revision: None,
    });
    assert!(matches!(e, Rejection::RouterInterfacePort { .. }), "{e:?}");
    // Its name may change.
    w.ok(Command::UpdatePortV6 {
        id: id(200),
        update: PortUpdateV5 {
            name: Some("gw".into()),
            ..PortUpdateV5::default()
        },
        expected_revision: None,
    });
}

#[test]
fn removing_an_interface_by_subnet_deletes_its_port_and_frees_the_gateway() {
    let mut w = world_with_router();
    w.ok(add_by_subnet(10, 200));
    let Reply::RouterInterface {
        router, port_id, ..
    } = w.ok(Command::RemoveRouterInterfaceV6 {
        router_id: id(70),
        target: InterfaceRef::Subnet(id(10)),
    })
    else {
        panic!("not an interface reply")
    };
    assert!(router.interfaces.is_empty());
    assert_eq!(port_id, Some(id(200)));
    assert!(w.state.port(&id(200)).is_none());
    // The gateway address is free for the next interface.
    w.ok(add_by_subnet(10, 201));
    w.ok(Command::DeleteSubnet {
        id: id(11),
        expected_revision: None,
    });
}

#[test]
fn an_interface_by_port_uses_the_given_port_and_removing_it_by_port_deletes_it() {
    let mut w = world_with_router();
    w.ok(port_with_ip(300, 1, 11, "192.168.2.50"));
    let e = w.reject(Command::AddRouterInterfaceV6 {
        router_id: id(70),
        target: InterfaceTarget::Port(id(300)),
    });
    // port_with_ip gives the port a device: in use.
    assert!(matches!(e, Rejection::InUse { .. }), "{e:?}");
    w.ok(Command::UpdatePortV6 {
        id: id(300),
        update: PortUpdateV5 {
            device_id: Some(String::new()),
            ..PortUpdateV5::default()
        },
        expected_revision: None,
    });
    let Reply::RouterInterface {
        router, subnet_id, ..
    } = w.ok(Command::AddRouterInterfaceV6 {
        router_id: id(70),
        target: InterfaceTarget::Port(id(300)),
    })
    else {
        panic!("not an interface reply")
    };
    assert_eq!(subnet_id, id(11));
    assert_eq!(router.interfaces[0].ip_address.to_string(), "192.168.2.50");
    let port = w.state.port(&id(300)).expect("port");
    assert_eq!(&*port.device_owner, DEVICE_OWNER_ROUTER_INTERFACE);
    assert_eq!(&*port.device_id, id(70).to_string());
    w.ok(Command::RemoveRouterInterfaceV6 {
        router_id: id(70),
        target: InterfaceRef::Port(id(300)),
    });
    assert!(w.state.port(&id(300)).is_none());
    assert!(w
        .state
        .router(&id(70))
        .expect("router")
        .interfaces
        .is_empty());
}

#[test]
fn a_failed_interface_port_create_leaves_the_router_unchanged() {
    let mut w = world_with_router();
    // Someone else's port holds the ID.
    w.ok(port(200, 1, None));
    let e = w.reject(add_by_subnet(10, 200));
    assert!(matches!(e, Rejection::AlreadyExists { .. }), "{e:?}");
    assert!(w
        .state
        .router(&id(70))
        .expect("router")
        .interfaces
        .is_empty());
}

#[test]
fn only_a_router_interface_port_may_take_the_gateway_address() {
    let mut w = world_with_router();
    let e = w.reject(port_with_ip(300, 1, 10, "192.168.1.1"));
    assert!(matches!(e, Rejection::IpInUse { .. }), "{e:?}");
    let mut spec = PortSpecV5::from(port_spec(300, 1, None));
    spec.fixed_ips = vec![alcor_state_machine::FixedIpRequest {
        subnet_id: Some(id(10)),
        ip_address: Some("192.168.1.1".parse().unwrap()),
    }];
    spec.device_owner = DEVICE_OWNER_ROUTER_INTERFACE.into();
    spec.device_id = String::new();
    w.ok(Command::CreatePortV6(spec));
    // Not an interface yet: the port API may delete it.
    w.ok(Command::DeletePort {
        id: Id(300),
        expected_revision: None,
    });
}
