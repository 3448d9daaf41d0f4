//! Tests of the delta: applied to a model of the kernel holding one plan,
//! it must leave exactly the next plan's objects, whatever the sequence.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use alcor_state_machine::Id;
use proptest::prelude::*;

use super::*;
use crate::plan::{self, RouterInterfacePlan};

/// One kernel object of the model, by identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Object {
    Vpc(u32),
    Port(String),
    Router(String),
    Gateway(String),
    Fdb(String, [u8; 6]),
    Neighbour(String, IpAddr),
}

/// The model of what the kernel holds: object → its content.
type Kernel = BTreeMap<Object, String>;

/// What the kernel holds once `plan` is programmed in full.
fn objects(plan: &Plan) -> Kernel {
    let mut out = Kernel::new();
    for (vni, vpc) in &plan.vpcs {
        out.insert(Object::Vpc(*vni), format!("{vpc:?}"));
    }
    for (veth, port) in &plan.ports {
        out.insert(Object::Port(veth.clone()), format!("{port:?}"));
    }
    for (netns, router) in &plan.routers {
        out.insert(Object::Router(netns.clone()), format!("{router:?}"));
        for interface in &router.interfaces {
            out.insert(Object::Gateway(interface.veth.clone()), String::new());
        }
    }
    for ((vxlan, mac), dst) in &plan.fdb {
        out.insert(Object::Fdb(vxlan.clone(), *mac), dst.to_string());
    }
    for ((vxlan, ip), mac) in &plan.neighbours {
        out.insert(Object::Neighbour(vxlan.clone(), *ip), format!("{mac:?}"));
    }
    out
}

/// Drops every entry on VXLAN device `vxlan` (the device was deleted or
/// recreated).
fn drop_entries(kernel: &mut Kernel, vxlan: &str) {
    kernel.retain(|o, _| match o {
        Object::Fdb(v, _) | Object::Neighbour(v, _) => v != vxlan,
        _ => true,
    });
}

/// What a pass that does `delta` leaves of `kernel`, as the kernel does
/// it: a namespace takes its interfaces with it, a VXLAN device its
/// entries, and a changed VPC may have its VXLAN device recreated.
fn apply(delta: &Delta<'_>, mut kernel: Kernel) -> Kernel {
    for port in &delta.ports_removed {
        kernel.remove(&Object::Port(port.veth.clone()));
    }
    for gateway in &delta.gateways_removed {
        kernel.remove(&Object::Gateway(gateway.to_string()));
    }
    for router in &delta.routers_removed {
        kernel.remove(&Object::Router(router.netns.clone()));
        for interface in &router.interfaces {
            kernel.remove(&Object::Gateway(interface.veth.clone()));
        }
    }
    for vpc in &delta.vpcs_changed {
        let content = format!("{vpc:?}");
        let before = kernel.insert(Object::Vpc(vpc.vni), content.clone());
        if before.is_some_and(|b| b != content) {
            drop_entries(&mut kernel, &vpc.vxlan);
        }
    }
    for vpc in &delta.vpcs_removed {
        kernel.remove(&Object::Vpc(vpc.vni));
        drop_entries(&mut kernel, &vpc.vxlan);
    }
    for port in &delta.ports_changed {
        kernel.insert(Object::Port(port.veth.clone()), format!("{port:?}"));
    }
    for router in &delta.routers_changed {
        kernel.insert(Object::Router(router.netns.clone()), format!("{router:?}"));
        for interface in &router.interfaces {
            kernel.insert(Object::Gateway(interface.veth.clone()), String::new());
        }
    }
    for (vxlan, mac, dst) in &delta.fdb_removed {
        let key = Object::Fdb(vxlan.to_string(), *mac);
        if kernel.get(&key) == Some(&dst.to_string()) {
            kernel.remove(&key);
        }
    }
    for (vxlan, ip, mac) in &delta.neighbours_removed {
        let key = Object::Neighbour(vxlan.to_string(), *ip);
        if kernel.get(&key) == Some(&format!("{mac:?}")) {
            kernel.remove(&key);
        }
    }
    for (vxlan, mac, dst) in &delta.fdb_added {
        kernel.insert(Object::Fdb(vxlan.to_string(), *mac), dst.to_string());
    }
    for (vxlan, ip, mac) in &delta.neighbours_added {
        kernel.insert(
            Object::Neighbour(vxlan.to_string(), *ip),
            format!("{mac:?}"),
        );
    }
    kernel
}

const UNDERLAY: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const VNIS: [u32; 3] = [100, 200, 300];

/// A plan from small choices: per VPC its MTU variant, per port its VPC
/// and address variant, per remote entry its VPC and destination, per
/// router its VPC and interfaces (objects of an absent VPC are left out,
/// as the plan does).
#[derive(Clone, Debug)]
struct Seed {
    vpcs: [Option<u8>; 3],
    ports: [Option<(usize, u8)>; 6],
    remotes: [Option<(usize, u8)>; 6],
    routers: [Option<(usize, u8)>; 2],
}

fn seed() -> impl Strategy<Value = Seed> {
    let choice = || proptest::option::of((0..3usize, 0..3u8));
    (
        proptest::array::uniform3(proptest::option::of(0..2u8)),
        proptest::array::uniform6(choice()),
        proptest::array::uniform6(choice()),
        proptest::array::uniform2(choice()),
    )
        .prop_map(|(vpcs, ports, remotes, routers)| Seed {
            vpcs,
            ports,
            remotes,
            routers,
        })
}

fn build(seed: &Seed) -> Plan {
    let mut out = Plan::default();
    for (i, mtu) in seed.vpcs.iter().enumerate() {
        let Some(mtu) = mtu else { continue };
        let vni = VNIS[i];
        out.vpcs.insert(
            vni,
            VpcPlan {
                vni,
                mtu: 1400 + u32::from(*mtu),
                bridge: plan::bridge_name(vni),
                vxlan: plan::vxlan_name(vni),
                local: UNDERLAY,
            },
        );
    }
    let vpc_of = |i: usize| out.vpcs.get(&VNIS[i]).cloned();
    let mut ports = BTreeMap::new();
    for (n, choice) in seed.ports.iter().enumerate() {
        let Some((i, variant)) = choice else { continue };
        let Some(vpc) = vpc_of(*i) else { continue };
        let id = Id(n as u128 + 1);
        let address = format!("10.0.0.{}/24", 10 + variant).parse().expect("net");
        let port = PortPlan {
            port_id: id,
            vni: vpc.vni,
            veth: plan::veth_name(id),
            peer: plan::peer_name(id),
            netns: plan::netns_name("h", id),
            mac: [2, 0, 0, 0, 0, n as u8],
            mtu: vpc.mtu,
            addresses: vec![address],
            gateways: Vec::new(),
        };
        ports.insert(port.veth.clone(), port);
    }
    out.ports = ports;
    for (n, choice) in seed.remotes.iter().enumerate() {
        let Some((i, variant)) = choice else { continue };
        let Some(vpc) = vpc_of(*i) else { continue };
        let mac = [2, 1, 0, 0, 0, n as u8];
        let dst = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + variant));
        out.fdb.insert((vpc.vxlan.clone(), mac), dst);
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100 + n as u8));
        out.neighbours.insert((vpc.vxlan.clone(), ip), mac);
    }
    for (n, choice) in seed.routers.iter().enumerate() {
        let Some((i, mask)) = choice else { continue };
        let Some(vpc) = vpc_of(*i) else { continue };
        let router_id = Id(0x100 + n as u128);
        let interfaces: Vec<RouterInterfacePlan> = (0..2u128)
            .filter(|s| (mask + 1) & (1 << s) != 0)
            .map(|s| RouterInterfacePlan {
                subnet_id: Id(0x200 + s),
                veth: plan::gateway_veth_name(router_id, Id(0x200 + s)),
                peer: plan::gateway_peer_name(router_id, Id(0x200 + s)),
                mac: plan::router_mac("h", router_id, Id(0x200 + s)),
                address: format!("10.{s}.0.1/24").parse().expect("net"),
            })
            .collect();
        let router = RouterPlan {
            router_id,
            vni: vpc.vni,
            netns: plan::router_netns_name("h", vpc.vni, router_id),
            mtu: vpc.mtu,
            interfaces,
            routes: Vec::new(),
        };
        out.routers.insert(router.netns.clone(), router);
    }
    out
}

proptest! {
    #[test]
    fn a_delta_turns_the_objects_of_one_plan_into_those_of_the_next(
        seeds in proptest::collection::vec(seed(), 2..8)
    ) {
        let plans: Vec<Plan> = seeds.iter().map(build).collect();
        let mut kernel = objects(&plans[0]);
        for pair in plans.windows(2) {
            let delta = Delta::between(&pair[0], &pair[1]);
            kernel = apply(&delta, kernel);
            prop_assert_eq!(&kernel, &objects(&pair[1]));
        }
    }
}

#[test]
fn an_unchanged_plan_touches_nothing() {
    let seed = Seed {
        vpcs: [Some(0), Some(1), None],
        ports: [Some((0, 0)), Some((1, 1)), None, None, Some((0, 2)), None],
        remotes: [Some((0, 0)), None, Some((1, 1)), None, None, None],
        routers: [Some((0, 2)), None],
    };
    let plan = build(&seed);
    assert!(!plan.ports.is_empty() && !plan.fdb.is_empty() && !plan.routers.is_empty());
    assert!(Delta::between(&plan, &plan).is_empty());
}

#[test]
fn one_new_port_touches_only_that_port_and_its_vpc() {
    let before = Seed {
        vpcs: [Some(0), Some(0), None],
        ports: [Some((0, 0)), Some((1, 0)), None, None, None, None],
        remotes: [Some((0, 0)), Some((1, 0)), None, None, None, None],
        routers: [None, None],
    };
    let mut after = before.clone();
    after.ports[2] = Some((1, 1));
    let (before, after) = (build(&before), build(&after));
    let delta = Delta::between(&before, &after);
    let veth = plan::veth_name(Id(3));
    assert_eq!(
        delta
            .ports_changed
            .iter()
            .map(|p| &p.veth)
            .collect::<Vec<_>>(),
        vec![&veth]
    );
    assert_eq!(
        delta.vpcs_changed.iter().map(|v| v.vni).collect::<Vec<_>>(),
        vec![VNIS[1]]
    );
    assert!(delta.fdb_added.is_empty() && delta.neighbours_added.is_empty());
    assert!(delta.ports_removed.is_empty() && delta.vpcs_removed.is_empty());
}

#[test]
fn a_port_to_retry_counts_as_changed_with_its_vpc_though_the_plans_agree() {
    let seed = Seed {
        vpcs: [Some(0), Some(1), None],
        ports: [Some((0, 0)), Some((1, 1)), None, None, None, None],
        remotes: [None, None, None, None, None, None],
        routers: [None, None],
    };
    let plan = build(&seed);
    let failed = plan::veth_name(Id(2));
    assert!(plan.ports.contains_key(&failed));
    let retry = BTreeSet::from([failed.clone(), "alcp-gone".to_string()]);
    let delta = Delta::between_retrying(&plan, &plan, &retry);
    assert_eq!(
        delta
            .ports_changed
            .iter()
            .map(|p| &p.veth)
            .collect::<Vec<_>>(),
        vec![&failed]
    );
    assert_eq!(
        delta.vpcs_changed.iter().map(|v| v.vni).collect::<Vec<_>>(),
        vec![VNIS[1]]
    );
    assert!(delta.ports_removed.is_empty() && delta.fdb_added.is_empty());
}
