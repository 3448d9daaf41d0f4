//! Unit and property tests of the plan.

use std::net::{IpAddr, Ipv4Addr};

use alcor_state_machine::goal::{Neighbor, PortConfig, SubnetConfig, VpcConfig};
use alcor_state_machine::model::{FixedIp, Mac};
use alcor_state_machine::{GoalObject, GoalState, Id};
use proptest::prelude::*;

use super::*;
use alcor_state_machine::limits as sm_limits;

const HOST: &str = "host-a";
const UNDERLAY: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address")
}

fn vpc(id: u128, vni: u32) -> GoalObject {
    GoalObject::Vpc(VpcConfig {
        id: Id(id),
        vni,
        mtu: 1450,
        cidr: Some("10.0.0.0/16".parse().expect("cidr")),
        admin_state_up: true,
    })
}

fn subnet(id: u128, vpc: u128) -> GoalObject {
    GoalObject::Subnet(SubnetConfig {
        id: Id(id),
        network_id: Id(vpc),
        cidr: "10.0.1.0/24".parse().expect("cidr"),
        gateway_ip: Some(ip("10.0.1.1")),
        enable_dhcp: false,
        dns_nameservers: Vec::new(),
        host_routes: Vec::new(),
    })
}

fn mac(n: u8) -> Mac {
    Mac([0xfa, 0x16, 0x3e, 0, 0, n])
}

fn port(id: u128, vpc: u128, subnet: u128, address: &str) -> GoalObject {
    GoalObject::Port(PortConfig {
        id: Id(id),
        project_id: "p1".into(),
        network_id: Id(vpc),
        fixed_ips: vec![FixedIp {
            subnet_id: Id(subnet),
            ip_address: ip(address),
        }],
        mac_address: mac(id as u8),
        device_id: String::new(),
        device_owner: String::new(),
        security_groups: Vec::new(),
        allowed_address_pairs: Vec::new(),
        admin_state_up: true,
        port_security_enabled: true,
        qos: None,
    })
}

fn neighbour(port: u128, vpc: u128, host: &str, host_ip: &str, address: &str) -> GoalObject {
    GoalObject::Neighbor(Neighbor {
        port_id: Id(port),
        network_id: Id(vpc),
        mac_address: mac(port as u8),
        ips: vec![ip(address)],
        allowed_address_pairs: Vec::new(),
        host_id: host.into(),
        host_ip: ip(host_ip),
    })
}

fn goal(objects: Vec<GoalObject>) -> GoalState {
    objects.into_iter().map(|o| (o.key(), o)).collect()
}

#[test]
fn two_vpcs_with_one_cidr_get_their_own_bridge_and_vxlan_device() {
    let state = goal(vec![
        vpc(1, 100),
        subnet(11, 1),
        port(21, 1, 11, "10.0.1.5"),
        vpc(2, 200),
        subnet(12, 2),
        port(22, 2, 12, "10.0.1.5"),
    ]);
    let plan = plan(&state, HOST, UNDERLAY);
    assert!(plan.failed.is_empty(), "{:?}", plan.failed);
    assert_eq!(plan.vpcs.len(), 2);
    assert_eq!(plan.vpcs[&100].bridge, "alcb000064");
    assert_eq!(plan.vpcs[&100].vxlan, "alcx000064");
    assert_eq!(plan.vpcs[&200].vxlan, "alcx0000c8");
    assert_eq!(plan.vpcs[&200].local, UNDERLAY);
    let first = &plan.ports[&veth_name(Id(21))];
    let second = &plan.ports[&veth_name(Id(22))];
    assert_eq!((first.vni, second.vni), (100, 200));
    assert_eq!(first.addresses, vec!["10.0.1.5/24".parse().expect("net")]);
    assert_eq!(first.gateways, vec![ip("10.0.1.1")]);
    assert_eq!(first.mtu, 1450);
    assert_eq!(first.mac, mac(21).0);
    assert_ne!(first.netns, second.netns);
}

#[test]
fn remote_ports_become_fdb_and_neighbour_entries_and_local_ones_do_not() {
    let state = goal(vec![
        vpc(1, 100),
        subnet(11, 1),
        port(21, 1, 11, "10.0.1.5"),
        neighbour(21, 1, HOST, "192.0.2.1", "10.0.1.5"),
        neighbour(22, 1, "host-b", "192.0.2.2", "10.0.1.6"),
        neighbour(23, 1, "host-c", "192.0.2.3", "10.0.1.7"),
    ]);
    let plan = plan(&state, HOST, UNDERLAY);
    let vxlan = vxlan_name(100);
    assert_eq!(plan.fdb.len(), 2);
    assert_eq!(plan.fdb[&(vxlan.clone(), mac(22).0)], ip("192.0.2.2"));
    assert_eq!(plan.fdb[&(vxlan.clone(), mac(23).0)], ip("192.0.2.3"));
    assert_eq!(plan.neighbours.len(), 2);
    assert_eq!(plan.neighbours[&(vxlan, ip("10.0.1.7"))], mac(23).0);
}

#[test]
fn remote_ports_of_a_vpc_without_local_ports_are_not_programmed() {
    let state = goal(vec![
        vpc(1, 100),
        subnet(11, 1),
        neighbour(22, 1, "host-b", "192.0.2.2", "10.0.1.6"),
    ]);
    let plan = plan(&state, HOST, UNDERLAY);
    assert_eq!(plan, Plan::default());
}

#[test]
fn a_port_that_cannot_be_planned_is_failed_with_the_reason() {
    let state = goal(vec![
        vpc(1, 100),
        subnet(11, 1),
        port(21, 1, 99, "10.0.1.5"),
        port(22, 7, 11, "10.0.1.6"),
        port(23, 1, 11, "10.9.9.9"),
        vpc(3, 0),
        subnet(13, 3),
        port(24, 3, 13, "10.0.1.8"),
    ]);
    let plan = plan(&state, HOST, UNDERLAY);
    assert!(plan.ports.is_empty());
    assert!(plan.vpcs.is_empty());
    assert!(plan.failed[&Id(21)].contains("subnet"));
    assert!(plan.failed[&Id(22)].contains("VPC"));
    assert!(plan.failed[&Id(23)].contains("outside subnet"));
    assert!(plan.failed[&Id(24)].contains("VNI 0"));
}

#[test]
fn the_programmed_digest_changes_with_the_plan_and_with_each_failed_local_port() {
    let state = goal(vec![
        vpc(1, 100),
        subnet(11, 1),
        port(21, 1, 11, "10.0.1.5"),
        port(22, 1, 11, "10.0.1.6"),
        neighbour(31, 1, "host-b", "192.0.2.2", "10.0.1.7"),
    ]);
    let planned = plan(&state, HOST, UNDERLAY);
    assert!(planned.firewall.ports.contains_key(&Id(21)));
    let failed = |ids: &[u128]| -> BTreeMap<Id, String> {
        ids.iter()
            .map(|id| (Id(*id), "refused".to_string()))
            .collect()
    };
    let all = programmed_digest(&planned, &failed(&[]));
    assert_eq!(
        all,
        programmed_digest(&plan(&state, HOST, UNDERLAY), &failed(&[])),
        "one plan, one digest"
    );
    let without_21 = programmed_digest(&planned, &failed(&[21]));
    let without_22 = programmed_digest(&planned, &failed(&[22]));
    let without_both = programmed_digest(&planned, &failed(&[21, 22]));
    let digests = BTreeSet::from([all, without_21, without_22, without_both]);
    assert_eq!(digests.len(), 4, "each failed port shows");
    // The reason does not count, nor a failed port this host does not
    // program (a remote one).
    let other_reason = BTreeMap::from([(Id(21), "another reason".to_string())]);
    assert_eq!(programmed_digest(&planned, &other_reason), without_21);
    assert_eq!(programmed_digest(&planned, &failed(&[31])), all);
    // Any other change of the plan shows too.
    let mut other = planned.clone();
    for vpc in other.vpcs.values_mut() {
        vpc.mtu -= 1;
    }
    assert_ne!(programmed_digest(&other, &failed(&[])), all);
    let mut other = planned.clone();
    other.fdb.clear();
    assert_ne!(programmed_digest(&other, &failed(&[])), all);
}

#[test]
fn names_are_owned_short_and_stable() {
    assert_eq!(veth_name(Id(7)), veth_name(Id(7)));
    assert_eq!(veth_name(Id(7))[4..], peer_name(Id(7))[4..]);
    assert_eq!(netns_name("h", Id(7)), netns_name("h", Id(7)));
    assert_ne!(netns_name("h", Id(7)), netns_name("g", Id(7)));
    assert!(netns_name("h", Id(7)).starts_with(&netns_prefix("h")));
    assert_eq!(bridge_name(sm_limits::VNI_MAX), "alcbffffff");
}

fn arbitrary_goal() -> impl Strategy<Value = (GoalState, Vec<u128>)> {
    // Up to 4 VPCs (VNIs 1..=4, one with an out-of-range VNI), ports and
    // neighbours spread over three hosts, some with missing subnets.
    let ports = prop::collection::vec((1u128..=5, 0u8..=3, 1u8..=250, 0usize..3), 0..24);
    ports.prop_map(|ports| {
        let hosts = [HOST, "host-b", "host-c"];
        let mut objects = Vec::new();
        for v in 1u128..=4 {
            let vni = if v == 4 {
                sm_limits::VNI_MAX + 1
            } else {
                v as u32
            };
            objects.push(vpc(v, vni));
            objects.push(subnet(10 + v, v));
        }
        let mut local = Vec::new();
        for (i, (v, _, last, host)) in ports.iter().enumerate() {
            let id = 1_000 + i as u128;
            let address = format!("10.0.1.{last}");
            let host = hosts[*host];
            objects.push(neighbour(
                id,
                *v,
                host,
                &format!("192.0.2.{}", i + 10),
                &address,
            ));
            if host == HOST {
                objects.push(port(id, *v, 10 + *v, &address));
                local.push(id);
            }
        }
        (goal(objects), local)
    })
}

proptest! {
    #[test]
    fn every_local_port_is_planned_or_failed_and_every_object_is_consistent(
        (state, local) in arbitrary_goal()
    ) {
        let plan = plan(&state, HOST, UNDERLAY);
        // The same input always gives the same plan.
        prop_assert_eq!(&plan, &super::plan(&state, HOST, UNDERLAY));
        let mut seen: Vec<Id> = plan.ports.values().map(|p| p.port_id).collect();
        seen.extend(plan.failed.keys());
        seen.sort();
        let mut expected: Vec<Id> = local.iter().map(|n| Id(*n)).collect();
        expected.sort();
        prop_assert_eq!(seen, expected);
        for (name, port) in &plan.ports {
            prop_assert!(plan.vpcs.contains_key(&port.vni));
            prop_assert_eq!(name, &port.veth);
            for owned in [&port.veth, &port.peer] {
                prop_assert!(owned.len() <= limits::IFNAME_BYTES_MAX);
                prop_assert!(owned.starts_with(OWNED_PREFIX));
            }
            prop_assert!(port.netns.starts_with(&netns_prefix(HOST)));
        }
        for vpc in plan.vpcs.values() {
            prop_assert!(vpc.bridge.len() <= limits::IFNAME_BYTES_MAX);
            prop_assert!(vpc.vxlan.len() <= limits::IFNAME_BYTES_MAX);
            prop_assert!(plan.ports_of(vpc.vni).next().is_some());
        }
        let vxlans: Vec<&String> = plan.vpcs.values().map(|v| &v.vxlan).collect();
        // Local ports are reached on the bridge, never through a tunnel.
        let local_macs: Vec<[u8; 6]> = local.iter().map(|n| mac(*n as u8).0).collect();
        for ((vxlan, remote_mac), remote) in &plan.fdb {
            prop_assert!(vxlans.contains(&vxlan));
            prop_assert_ne!(*remote, UNDERLAY);
            prop_assert!(!local_macs.contains(remote_mac));
        }
        for ((vxlan, _), mac) in &plan.neighbours {
            prop_assert!(plan.fdb.contains_key(&(vxlan.clone(), *mac)));
        }
    }
}

fn subnet_in(id: u128, vpc: u128, cidr: &str, gateway: &str) -> GoalObject {
    GoalObject::Subnet(SubnetConfig {
        id: Id(id),
        network_id: Id(vpc),
        cidr: cidr.parse().expect("cidr"),
        gateway_ip: Some(ip(gateway)),
        enable_dhcp: false,
        dns_nameservers: Vec::new(),
        host_routes: Vec::new(),
    })
}

fn router(id: u128, vpc: u128, interfaces: &[(u128, &str)], routes: &[(&str, &str)]) -> GoalObject {
    GoalObject::Router(RouterConfig {
        id: Id(id),
        network_id: Id(vpc),
        admin_state_up: true,
        interfaces: interfaces
            .iter()
            .map(
                |(subnet, address)| alcor_state_machine::model::RouterInterface {
                    subnet_id: Id(*subnet),
                    ip_address: ip(address),
                },
            )
            .collect(),
        routes: routes
            .iter()
            .map(|(destination, nexthop)| alcor_state_machine::model::Route {
                destination: destination.parse().expect("prefix"),
                nexthop: ip(nexthop),
            })
            .collect(),
    })
}

/// VPC 1 (two subnets, one local port) and VPC 2 (the same CIDRs, one
/// local port), router 50 attached to both VPCs' first subnet and to VPC
/// 1's second, as the goal state delivers it: one copy per VPC.
fn routed_goal() -> GoalState {
    goal(vec![
        vpc(1, 100),
        vpc(2, 200),
        subnet_in(11, 1, "10.0.1.0/24", "10.0.1.1"),
        subnet_in(12, 1, "10.0.2.0/24", "10.0.2.1"),
        subnet_in(21, 2, "10.0.1.0/24", "10.0.1.1"),
        port(31, 1, 11, "10.0.1.5"),
        port(32, 2, 21, "10.0.1.5"),
        router(
            50,
            1,
            &[(11, "10.0.1.1"), (12, "10.0.2.1"), (21, "10.0.1.1")],
            &[
                ("192.168.0.0/16", "10.0.2.9"),
                ("172.16.0.0/12", "10.9.9.9"),
            ],
        ),
        router(
            50,
            2,
            &[(11, "10.0.1.1"), (12, "10.0.2.1"), (21, "10.0.1.1")],
            &[],
        ),
    ])
}

#[test]
fn a_router_copy_per_vpc_holds_the_gateways_of_that_vpcs_attached_subnets() {
    let plan = plan(&routed_goal(), HOST, UNDERLAY);
    assert_eq!(plan.routers.len(), 2, "{:?}", plan.routers);
    let copy = &plan.routers[&router_netns_name(HOST, 100, Id(50))];
    assert_eq!(copy.vni, 100);
    assert_eq!(copy.mtu, 1450);
    let mut addresses: Vec<String> = copy
        .interfaces
        .iter()
        .map(|i| i.address.to_string())
        .collect();
    addresses.sort();
    assert_eq!(addresses, ["10.0.1.1/24", "10.0.2.1/24"]);
    // A route whose next hop is on no attached subnet is left out.
    assert_eq!(
        copy.routes,
        [("192.168.0.0/16".parse().expect("net"), ip("10.0.2.9"))]
    );
    let other = &plan.routers[&router_netns_name(HOST, 200, Id(50))];
    assert_eq!(other.interfaces.len(), 1);
    assert_eq!(other.interfaces[0].subnet_id, Id(21));
    assert_eq!(other.vni, 200);
    // Each copy's interfaces go on its own VPC's bridge.
    assert!(plan.vpcs.contains_key(&copy.vni) && plan.vpcs.contains_key(&other.vni));
}

#[test]
fn router_macs_differ_per_host_and_interface_and_are_local_unicast() {
    let here = plan(&routed_goal(), HOST, UNDERLAY);
    let there = plan(&routed_goal(), "host-b", UNDERLAY);
    let macs = |p: &Plan| -> Vec<[u8; 6]> {
        p.routers
            .values()
            .flat_map(|r| r.interfaces.iter().map(|i| i.mac))
            .collect()
    };
    let (here_macs, there_macs) = (macs(&here), macs(&there));
    assert_eq!(here_macs.len(), 3);
    for mac in &here_macs {
        assert_eq!(mac[0] & 0x03, 0x02, "locally administered unicast");
        assert!(
            !there_macs.contains(mac),
            "a router MAC shared by two hosts"
        );
        assert_eq!(here_macs.iter().filter(|m| *m == mac).count(), 1);
    }
    // Names do not depend on the host; namespaces do.
    let names = |p: &Plan| -> Vec<String> {
        p.routers
            .values()
            .flat_map(|r| r.interfaces.iter().map(|i| i.veth.clone()))
            .collect()
    };
    assert_eq!(names(&here), names(&there));
    assert!(here.routers.keys().all(|n| !there.routers.contains_key(n)));
}

#[test]
fn routers_of_vpcs_without_local_ports_or_down_are_not_programmed() {
    let mut state = routed_goal();
    state.retain(|_, o| !matches!(o, GoalObject::Port(p) if p.id == Id(32)));
    let plan = plan(&state, HOST, UNDERLAY);
    assert_eq!(plan.routers.len(), 1);
    assert!(plan.routers.values().all(|r| r.vni == 100));
    for object in state.values_mut() {
        if let GoalObject::Router(r) = object {
            r.admin_state_up = false;
        }
    }
    assert!(super::plan(&state, HOST, UNDERLAY).routers.is_empty());
}

fn arbitrary_routed_goal() -> impl Strategy<Value = GoalState> {
    // Up to 3 VPCs with up to 4 subnets each, ports on some, routers
    // attached to arbitrary subnets (of any VPC) with arbitrary routes.
    let ports = prop::collection::vec((1u128..=3, 0u128..4, 2u8..=250), 0..10);
    let routers = prop::collection::vec(
        (
            1u128..=3,
            prop::collection::vec((1u128..=3, 0u128..4), 0..5),
            prop::collection::vec((0u8..=255, 0u8..=255), 0..4),
        ),
        0..6,
    );
    (ports, routers).prop_map(|(ports, routers)| {
        let mut objects = Vec::new();
        for v in 1u128..=3 {
            objects.push(vpc(v, v as u32));
            for s in 0..4u128 {
                objects.push(subnet_in(
                    v * 10 + s,
                    v,
                    &format!("10.0.{s}.0/24"),
                    &format!("10.0.{s}.1"),
                ));
            }
        }
        for (i, (v, s, last)) in ports.iter().enumerate() {
            objects.push(port(
                1_000 + i as u128,
                *v,
                v * 10 + s,
                &format!("10.0.{s}.{last}"),
            ));
        }
        for (i, (v, interfaces, routes)) in routers.iter().enumerate() {
            let interfaces: Vec<(u128, String)> = interfaces
                .iter()
                .map(|(iv, s)| (iv * 10 + s, format!("10.0.{s}.1")))
                .collect();
            let interfaces: Vec<(u128, &str)> =
                interfaces.iter().map(|(s, a)| (*s, a.as_str())).collect();
            let routes: Vec<(String, String)> = routes
                .iter()
                .map(|(d, n)| (format!("192.168.{d}.0/24"), format!("10.0.{}.{n}", n % 5)))
                .collect();
            let routes: Vec<(&str, &str)> = routes
                .iter()
                .map(|(d, n)| (d.as_str(), n.as_str()))
                .collect();
            objects.push(router(500 + i as u128, *v, &interfaces, &routes));
        }
        goal(objects)
    })
}

proptest! {
    #[test]
    fn every_router_copy_is_owned_on_a_planned_vpc_and_routes_only_its_own_subnets(
        state in arbitrary_routed_goal()
    ) {
        let plan = plan(&state, HOST, UNDERLAY);
        prop_assert_eq!(&plan, &super::plan(&state, HOST, UNDERLAY));
        let mut macs: Vec<[u8; 6]> = plan.ports.values().map(|p| p.mac).collect();
        let mut veths: Vec<&String> = plan.ports.keys().collect();
        let mut subnets: Vec<Id> = Vec::new();
        for (name, copy) in &plan.routers {
            prop_assert_eq!(name, &copy.netns);
            prop_assert!(name.starts_with(&router_netns_prefix(HOST)));
            prop_assert!(!name.starts_with(&netns_prefix(HOST)));
            prop_assert!(plan.vpcs.contains_key(&copy.vni));
            prop_assert!(!copy.interfaces.is_empty());
            for interface in &copy.interfaces {
                for owned in [&interface.veth, &interface.peer] {
                    prop_assert!(owned.len() <= limits::IFNAME_BYTES_MAX);
                    prop_assert!(owned.starts_with(OWNED_PREFIX));
                }
                // The subnet is of the copy's own VPC.
                let subnet = state.values().find_map(|o| match o {
                    GoalObject::Subnet(s) if s.id == interface.subnet_id => Some(s),
                    _ => None,
                });
                let subnet = subnet.expect("planned interface on a known subnet");
                let vpc_vni = state.values().find_map(|o| match o {
                    GoalObject::Vpc(v) if v.id == subnet.network_id => Some(v.vni),
                    _ => None,
                });
                prop_assert_eq!(vpc_vni, Some(copy.vni));
                prop_assert!(subnet.cidr.contains(&interface.address.addr()));
                macs.push(interface.mac);
                veths.push(&interface.veth);
                subnets.push(interface.subnet_id);
            }
            for (_, nexthop) in &copy.routes {
                prop_assert!(copy.interfaces.iter().any(|i| i.address.contains(nexthop)));
            }
        }
        // No two owned links or MACs of one host collide.
        let n_macs = macs.len();
        macs.sort();
        macs.dedup();
        prop_assert_eq!(macs.len(), n_macs);
        let n_veths = veths.len();
        veths.sort();
        veths.dedup();
        prop_assert_eq!(veths.len(), n_veths);
        // One gateway per subnet.
        let n_subnets = subnets.len();
        subnets.sort();
        subnets.dedup();
        prop_assert_eq!(subnets.len(), n_subnets);
    }
}
