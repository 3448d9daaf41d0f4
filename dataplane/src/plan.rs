//! The plan: the kernel objects one host needs for its goal state, as
//! plain values. Pure (no I/O, no clock, no hash-map iteration into the
//! output): the same goal state, host and underlay address always give the
//! same plan, and what cannot be planned is a per-port reason, not an
//! error.
//!
//! Per VPC with a local port: a Linux bridge and a VXLAN device (the VPC's
//! VNI, learning off, ARP/ND proxy on, UDP port 4789, local address = the
//! underlay address) enslaved to it. Per local port: a veth pair whose host
//! end is on the bridge and whose far end sits in the port's own network
//! namespace with the port's MAC, addresses (prefix from the subnet), the
//! VPC's MTU and a default route via the subnet's gateway. Per remote port
//! of those VPCs: a static FDB entry (MAC → remote underlay address) and a
//! static neighbour entry per address (address → MAC) on the VXLAN device,
//! so ARP is answered locally and nothing floods. Per local port with
//! port security: its security groups and anti-spoofing
//! ([`crate::firewall`]).
//!
//! Per router attached to a planned VPC (distributed: every host of the
//! VPC has its own copy, as Neutron's DVR): a network namespace holding,
//! for each attached subnet of that VPC, a veth pair whose host end is on
//! the VPC's bridge and whose far end carries the subnet's gateway address,
//! with forwarding on and the router's static routes. Traffic between two
//! subnets of a VPC is routed on the sender's host: never through another
//! host's router. Each host's copy answers with MACs of its own
//! ([`router_mac`]: a hash of host, router and subnet), the DVR host MAC's
//! role: a routed frame that crosses the tunnel carries the sending host's
//! router MAC, which no other host uses, so no bridge ever learns a
//! gateway MAC on its VXLAN port and pulls local traffic off the host. A
//! port's ARP for its gateway is never tunnelled (no flood entries, and
//! the VXLAN proxy knows only remote ports), so the local copy answers.
//! A router copy belongs to one VPC: two VPCs stay apart even when one
//! router is attached to both.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use alcor_state_machine::goal::{Neighbor, PortConfig, RouterConfig, SubnetConfig, VpcConfig};
use alcor_state_machine::{GoalObject, GoalState, Id};
use ipnet::IpNet;

use crate::firewall::{plan_firewall, Firewall};
use crate::limits;
use alcor_state_machine::limits as sm_limits;

/// Every name of an object the agent owns starts with this.
pub const OWNED_PREFIX: &str = "alc";
/// Bridge names: `alcb` + the VNI in 6 hex digits.
pub const BRIDGE_PREFIX: &str = "alcb";
/// VXLAN device names: `alcx` + the VNI in 6 hex digits.
pub const VXLAN_PREFIX: &str = "alcx";
/// Host ends of port veth pairs: `alcp` + 11 hex digits of the port ID's hash.
pub const VETH_PREFIX: &str = "alcp";
/// Far ends of port veth pairs (in the port's namespace): `alcq` + the same.
pub const PEER_PREFIX: &str = "alcq";
/// Port namespaces: `alc-` + 8 hex digits of the host ID's hash + `-` +
/// the port ID, so agents of several hosts on one machine (the tests)
/// each own only their own namespaces.
pub const NETNS_PREFIX: &str = "alc-";
/// Router namespaces: `alcr-` + 8 hex digits of the host ID's hash + `-` +
/// the VNI in 6 hex digits + `-` + the router ID.
pub const ROUTER_NETNS_PREFIX: &str = "alcr-";
/// Host ends of router interfaces (on the VPC's bridge): `alcg` + 11 hex
/// digits of the hash of router and subnet.
pub const GATEWAY_PREFIX: &str = "alcg";
/// Router ends of router interfaces (in the router's namespace, with the
/// gateway address): `alch` + the same.
pub const ROUTER_PEER_PREFIX: &str = "alch";

/// The bridge of VNI `vni`.
pub fn bridge_name(vni: u32) -> String {
    format!("{BRIDGE_PREFIX}{vni:06x}")
}

/// The VXLAN device of VNI `vni`.
pub fn vxlan_name(vni: u32) -> String {
    format!("{VXLAN_PREFIX}{vni:06x}")
}

/// The host end of port `port`'s veth pair.
pub fn veth_name(port: Id) -> String {
    format!("{VETH_PREFIX}{}", short_hash(&port.0.to_be_bytes(), 11))
}

/// The far end of port `port`'s veth pair (inside its namespace).
pub fn peer_name(port: Id) -> String {
    format!("{PEER_PREFIX}{}", short_hash(&port.0.to_be_bytes(), 11))
}

/// The namespace prefix of every port namespace of host `host_id`.
pub fn netns_prefix(host_id: &str) -> String {
    format!("{NETNS_PREFIX}{}-", short_hash(host_id.as_bytes(), 8))
}

/// The network namespace of port `port` on host `host_id`.
pub fn netns_name(host_id: &str, port: Id) -> String {
    format!("{}{port}", netns_prefix(host_id))
}

/// The namespace prefix of every router namespace of host `host_id`.
pub fn router_netns_prefix(host_id: &str) -> String {
    format!(
        "{ROUTER_NETNS_PREFIX}{}-",
        short_hash(host_id.as_bytes(), 8)
    )
}

/// The namespace of router `router`'s copy for VNI `vni` on host `host_id`.
pub fn router_netns_name(host_id: &str, vni: u32, router: Id) -> String {
    format!("{}{vni:06x}-{router}", router_netns_prefix(host_id))
}

fn interface_key(router: Id, subnet: Id) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(&router.0.to_be_bytes());
    key[16..].copy_from_slice(&subnet.0.to_be_bytes());
    key
}

/// The host end of router `router`'s interface on subnet `subnet`.
pub fn gateway_veth_name(router: Id, subnet: Id) -> String {
    format!(
        "{GATEWAY_PREFIX}{}",
        short_hash(&interface_key(router, subnet), 11)
    )
}

/// The router end of router `router`'s interface on subnet `subnet`.
pub fn gateway_peer_name(router: Id, subnet: Id) -> String {
    format!(
        "{ROUTER_PEER_PREFIX}{}",
        short_hash(&interface_key(router, subnet), 11)
    )
}

/// The MAC of router `router`'s interface on subnet `subnet` on host
/// `host_id`: locally administered, unicast, and different on every host
/// (see the module doc).
pub fn router_mac(host_id: &str, router: Id, subnet: Id) -> [u8; 6] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(host_id.as_bytes());
    hasher.update(&[0]);
    hasher.update(&interface_key(router, subnet));
    let hash = hasher.finalize();
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&hash.as_bytes()[..6]);
    mac[0] = (mac[0] & 0xfc) | 0x02;
    mac
}

/// The first `n_digits` hex digits of the BLAKE3 hash of `bytes`.
fn short_hash(bytes: &[u8], n_digits: usize) -> String {
    let hash = blake3::hash(bytes);
    let mut text: String = hash.as_bytes()[..n_digits.div_ceil(2)]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    text.truncate(n_digits);
    text
}

/// The bridge and VXLAN device of one VPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpcPlan {
    /// VXLAN network identifier.
    pub vni: u32,
    /// MTU of the bridge, the VXLAN device and every port of the VPC.
    pub mtu: u32,
    /// The bridge's name.
    pub bridge: String,
    /// The VXLAN device's name.
    pub vxlan: String,
    /// The VXLAN device's local (underlay) address.
    pub local: IpAddr,
}

/// One local port: a veth pair and a network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortPlan {
    /// The port.
    pub port_id: Id,
    /// VNI of its VPC (the bridge its host end is on).
    pub vni: u32,
    /// Host end of the veth pair.
    pub veth: String,
    /// Far end of the veth pair, inside `netns`.
    pub peer: String,
    /// The port's network namespace.
    pub netns: String,
    /// MAC of the far end.
    pub mac: [u8; 6],
    /// MTU of both ends.
    pub mtu: u32,
    /// Addresses of the far end with their subnets' prefix lengths, sorted.
    pub addresses: Vec<IpNet>,
    /// Default routes of the far end: the gateway of the first subnet of
    /// each address family that has one, sorted.
    pub gateways: Vec<IpAddr>,
}

/// One interface of a router copy: a veth pair from the VPC's bridge into
/// the router's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterInterfacePlan {
    /// The attached subnet.
    pub subnet_id: Id,
    /// Host end (on the bridge).
    pub veth: String,
    /// Router end (in the namespace).
    pub peer: String,
    /// MAC of the router end ([`router_mac`]).
    pub mac: [u8; 6],
    /// The subnet's gateway address with the subnet's prefix length.
    pub address: IpNet,
}

/// One router's copy on this host for one VPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterPlan {
    /// The router.
    pub router_id: Id,
    /// VNI of the VPC (the bridge its interfaces are on).
    pub vni: u32,
    /// Its namespace.
    pub netns: String,
    /// MTU of its interfaces (the VPC's).
    pub mtu: u32,
    /// Its interfaces, sorted by host end name.
    pub interfaces: Vec<RouterInterfacePlan>,
    /// Static routes (destination, next hop), sorted; only those whose
    /// next hop is on an attached subnet (the kernel refuses the others).
    pub routes: Vec<(IpNet, IpAddr)>,
}

/// Everything one host needs in the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Per VNI.
    pub vpcs: BTreeMap<u32, VpcPlan>,
    /// Per host veth name.
    pub ports: BTreeMap<String, PortPlan>,
    /// Static FDB entries: (VXLAN device, remote MAC) → remote underlay address.
    pub fdb: BTreeMap<(String, [u8; 6]), IpAddr>,
    /// Static neighbour entries: (VXLAN device, remote address) → remote MAC.
    pub neighbours: BTreeMap<(String, IpAddr), [u8; 6]>,
    /// Router copies by namespace name.
    pub routers: BTreeMap<String, RouterPlan>,
    /// Security groups and anti-spoofing of the local ports.
    pub firewall: Firewall,
    /// Local ports that cannot be programmed, with the reason.
    pub failed: BTreeMap<Id, String>,
}

impl Plan {
    /// The IDs of the ports planned on VNI `vni`.
    pub fn ports_of(&self, vni: u32) -> impl Iterator<Item = Id> + '_ {
        self.ports
            .values()
            .filter(move |p| p.vni == vni)
            .map(|p| p.port_id)
    }
}

/// The plan of host `host_id`, whose underlay address is `underlay_ip`,
/// for its goal state `goal`.
pub fn plan(goal: &GoalState, host_id: &str, underlay_ip: IpAddr) -> Plan {
    let mut vpcs_by_id: BTreeMap<Id, &VpcConfig> = BTreeMap::new();
    let mut subnets: BTreeMap<Id, &SubnetConfig> = BTreeMap::new();
    let mut ports: Vec<&PortConfig> = Vec::new();
    let mut neighbours: Vec<&Neighbor> = Vec::new();
    let mut routers: Vec<&RouterConfig> = Vec::new();
    for object in goal.values() {
        match object {
            GoalObject::Vpc(vpc) => {
                vpcs_by_id.insert(vpc.id, vpc);
            }
            GoalObject::Subnet(subnet) => {
                subnets.insert(subnet.id, subnet);
            }
            GoalObject::Port(port) => ports.push(port),
            GoalObject::Neighbor(neighbour) => neighbours.push(neighbour),
            GoalObject::Router(router) => routers.push(router),
            _ => {}
        }
    }
    let mut out = Plan::default();
    for port in ports {
        match plan_port(port, &vpcs_by_id, &subnets, host_id) {
            Ok(planned) => {
                if let Err(reason) = admit_port(&mut out, planned, underlay_ip, &vpcs_by_id) {
                    out.failed.insert(port.id, reason);
                }
            }
            Err(reason) => {
                out.failed.insert(port.id, reason);
            }
        }
    }
    let mut n_entries = 0usize;
    for neighbour in neighbours {
        if neighbour.host_id == host_id
            || neighbour.host_ip.is_ipv4() != underlay_ip.is_ipv4()
            || neighbour.host_ip.is_unspecified()
        {
            // Local ports are on the bridge; a remote host of another
            // address family (or without an address) cannot be tunnelled to.
            continue;
        }
        let Some(vpc) = vpcs_by_id.get(&neighbour.network_id) else {
            continue;
        };
        let Some(vpc_plan) = out.vpcs.get(&vpc.vni) else {
            continue;
        };
        if n_entries + 1 + neighbour.ips.len() > limits::REMOTE_ENTRIES_PER_HOST_MAX {
            break;
        }
        let mac = neighbour.mac_address.0;
        let vxlan = vpc_plan.vxlan.clone();
        if out.fdb.contains_key(&(vxlan.clone(), mac)) {
            // Two remote ports with one MAC in a VPC: the first (by port
            // ID) keeps it; the kernel holds one destination per MAC.
            continue;
        }
        out.fdb.insert((vxlan.clone(), mac), neighbour.host_ip);
        n_entries += 1;
        for ip in &neighbour.ips {
            if let std::collections::btree_map::Entry::Vacant(entry) =
                out.neighbours.entry((vxlan.clone(), *ip))
            {
                entry.insert(mac);
                n_entries += 1;
            }
        }
    }
    // A subnet is on one router (the controller's rule); should two claim
    // it, the first by (VPC, router ID) keeps it, never two gateways.
    let mut claimed: BTreeSet<Id> = BTreeSet::new();
    for router in routers {
        if out.routers.len() >= limits::ROUTERS_PER_HOST_MAX {
            break;
        }
        let planned = plan_router(
            router,
            &vpcs_by_id,
            &subnets,
            &out.vpcs,
            host_id,
            &mut claimed,
        );
        if let Some(planned) = planned {
            out.routers.insert(planned.netns.clone(), planned);
        }
    }
    let bridges = out
        .vpcs
        .iter()
        .map(|(vni, v)| (*vni, v.bridge.clone()))
        .collect();
    let (firewall, unfiltered) = plan_firewall(goal, &out.ports, &bridges);
    out.firewall = firewall;
    for (port, reason) in unfiltered {
        // A port whose filters cannot be planned is not programmed at all.
        out.ports.retain(|_, p| p.port_id != port);
        out.failed.insert(port, reason);
    }
    debug_assert!(out.ports.values().all(|p| out.vpcs.contains_key(&p.vni)));
    debug_assert!(out.routers.values().all(|r| out.vpcs.contains_key(&r.vni)));
    debug_assert!(out
        .ports
        .values()
        .all(|p| !out.failed.contains_key(&p.port_id)));
    out
}

/// Router `router`'s copy for its VPC on this host, if the VPC is planned
/// here, the router is up and it has an interface on a subnet of the VPC.
fn plan_router(
    router: &RouterConfig,
    vpcs_by_id: &BTreeMap<Id, &VpcConfig>,
    subnets: &BTreeMap<Id, &SubnetConfig>,
    planned_vpcs: &BTreeMap<u32, VpcPlan>,
    host_id: &str,
    claimed: &mut BTreeSet<Id>,
) -> Option<RouterPlan> {
    let vpc = vpcs_by_id.get(&router.network_id)?;
    let vpc_plan = planned_vpcs.get(&vpc.vni)?;
    if !router.admin_state_up {
        return None;
    }
    let mut interfaces = Vec::new();
    for interface in router
        .interfaces
        .iter()
        .take(limits::INTERFACES_PER_ROUTER_MAX)
    {
        // Interfaces on subnets of other VPCs belong to those VPCs' copies.
        let Some(subnet) = subnets
            .get(&interface.subnet_id)
            .filter(|s| s.network_id == router.network_id)
        else {
            continue;
        };
        if !subnet.cidr.contains(&interface.ip_address) || !claimed.insert(subnet.id) {
            continue;
        }
        let Ok(address) = IpNet::new(interface.ip_address, subnet.cidr.prefix_len()) else {
            continue;
        };
        interfaces.push(RouterInterfacePlan {
            subnet_id: subnet.id,
            veth: gateway_veth_name(router.id, subnet.id),
            peer: gateway_peer_name(router.id, subnet.id),
            mac: router_mac(host_id, router.id, subnet.id),
            address,
        });
    }
    if interfaces.is_empty() {
        return None;
    }
    interfaces.sort_by(|a, b| a.veth.cmp(&b.veth));
    interfaces.dedup_by(|a, b| a.veth == b.veth);
    let mut routes: Vec<(IpNet, IpAddr)> = router
        .routes
        .iter()
        .take(limits::ROUTES_PER_ROUTER_MAX)
        .filter(|r| r.destination.addr().is_ipv4() == r.nexthop.is_ipv4())
        .filter(|r| interfaces.iter().any(|i| i.address.contains(&r.nexthop)))
        .map(|r| (r.destination.trunc(), r.nexthop))
        .collect();
    routes.sort();
    // One next hop per destination (the kernel's main table holds one).
    routes.dedup_by(|a, b| a.0 == b.0);
    Some(RouterPlan {
        router_id: router.id,
        vni: vpc.vni,
        netns: router_netns_name(host_id, vpc.vni, router.id),
        mtu: vpc_plan.mtu,
        interfaces,
        routes,
    })
}

/// Adds `planned` and its VPC to `out` unless a limit or a name collision
/// forbids it.
fn admit_port(
    out: &mut Plan,
    planned: PortPlan,
    underlay_ip: IpAddr,
    vpcs_by_id: &BTreeMap<Id, &VpcConfig>,
) -> Result<(), String> {
    if out.ports.len() >= limits::PORTS_PER_HOST_MAX {
        return Err(format!(
            "more than {} ports on this host",
            limits::PORTS_PER_HOST_MAX
        ));
    }
    if let Some(other) = out.ports.get(&planned.veth) {
        return Err(format!(
            "interface name {} is taken by port {}",
            planned.veth, other.port_id
        ));
    }
    if !out.vpcs.contains_key(&planned.vni) {
        if out.vpcs.len() >= limits::VPCS_PER_HOST_MAX {
            return Err(format!(
                "more than {} VPCs on this host",
                limits::VPCS_PER_HOST_MAX
            ));
        }
        // The VPC exists: `plan_port` found it.
        let mtu = vpcs_by_id
            .values()
            .find(|v| v.vni == planned.vni)
            .map_or(planned.mtu, |v| v.mtu);
        out.vpcs.insert(
            planned.vni,
            VpcPlan {
                vni: planned.vni,
                mtu,
                bridge: bridge_name(planned.vni),
                vxlan: vxlan_name(planned.vni),
                local: underlay_ip,
            },
        );
    }
    out.ports.insert(planned.veth.clone(), planned);
    Ok(())
}

/// One port's plan, or why it cannot be programmed.
fn plan_port(
    port: &PortConfig,
    vpcs_by_id: &BTreeMap<Id, &VpcConfig>,
    subnets: &BTreeMap<Id, &SubnetConfig>,
    host_id: &str,
) -> Result<PortPlan, String> {
    let vpc = vpcs_by_id
        .get(&port.network_id)
        .ok_or_else(|| format!("VPC {} is not in the goal state", port.network_id))?;
    if !(sm_limits::VNI_MIN..=sm_limits::VNI_MAX).contains(&vpc.vni) {
        return Err(format!(
            "VNI {} of VPC {} is outside {}..={}",
            vpc.vni,
            vpc.id,
            sm_limits::VNI_MIN,
            sm_limits::VNI_MAX
        ));
    }
    if !(sm_limits::MTU_MIN..=sm_limits::MTU_MAX).contains(&vpc.mtu) {
        return Err(format!(
            "MTU {} of VPC {} is outside {}..={}",
            vpc.mtu,
            vpc.id,
            sm_limits::MTU_MIN,
            sm_limits::MTU_MAX
        ));
    }
    if port.fixed_ips.len() > limits::ADDRESSES_PER_PORT_MAX {
        return Err(format!(
            "more than {} fixed IPs",
            limits::ADDRESSES_PER_PORT_MAX
        ));
    }
    let mut addresses = Vec::new();
    let mut gateways: BTreeMap<bool, IpAddr> = BTreeMap::new();
    for fixed in &port.fixed_ips {
        let subnet = subnets
            .get(&fixed.subnet_id)
            .ok_or_else(|| format!("subnet {} is not in the goal state", fixed.subnet_id))?;
        if !subnet.cidr.contains(&fixed.ip_address) {
            return Err(format!(
                "address {} is outside subnet {} ({})",
                fixed.ip_address, subnet.id, subnet.cidr
            ));
        }
        let address = IpNet::new(fixed.ip_address, subnet.cidr.prefix_len())
            .map_err(|e| format!("address {}: {e}", fixed.ip_address))?;
        addresses.push(address);
        if let Some(gateway) = subnet.gateway_ip.filter(|g| *g != fixed.ip_address) {
            gateways.entry(gateway.is_ipv4()).or_insert(gateway);
        }
    }
    addresses.sort();
    addresses.dedup();
    let mut gateways: Vec<IpAddr> = gateways.into_values().collect();
    gateways.sort();
    Ok(PortPlan {
        port_id: port.id,
        vni: vpc.vni,
        veth: veth_name(port.id),
        peer: peer_name(port.id),
        netns: netns_name(host_id, port.id),
        mac: port.mac_address.0,
        mtu: vpc.mtu,
        addresses,
        gateways,
    })
}

/// The digest of what a pass programmed from `plan` when the ports in
/// `failed` could not be programmed (`DigestReport.programmed_digest`):
/// BLAKE3 of the plan's `Debug` rendering without those ports (their veth
/// pair and namespace, their filter) and without `plan.failed`. Every
/// collection of a plan is ordered (`BTreeMap`, sorted `Vec`s), so one
/// plan and one failure set always give one digest; the rendering is this
/// crate's, so a checker must use the agent's version of this function.
/// Equal to `programmed_digest(plan, &BTreeMap::new())` exactly when every
/// planned port was programmed.
pub fn programmed_digest(plan: &Plan, failed: &BTreeMap<Id, String>) -> [u8; 32] {
    use std::io::Write;
    // Buffered: the rendering comes in thousands of short pieces, and a
    // hasher update per piece cost most of the digest's time.
    let mut hasher = std::io::BufWriter::with_capacity(DIGEST_BUFFER_BYTES, blake3::Hasher::new());
    let ports = plan
        .ports
        .values()
        .filter(|p| !failed.contains_key(&p.port_id));
    let filters = plan
        .firewall
        .ports
        .iter()
        .filter(|(id, _)| !failed.contains_key(id));
    // Writing into a hasher cannot fail.
    let _ = write!(hasher, "vpcs {:?}\nports ", plan.vpcs);
    for port in ports {
        let _ = writeln!(hasher, "{port:?}");
    }
    let _ = write!(
        hasher,
        "fdb {:?}\nneighbours {:?}\nrouters {:?}\nfilters ",
        plan.fdb, plan.neighbours, plan.routers
    );
    for filter in filters {
        let _ = writeln!(hasher, "{filter:?}");
    }
    let _ = write!(
        hasher,
        "rules {:?}\ngroups {:?}\nzones {:?}",
        plan.firewall.rules, plan.firewall.groups, plan.firewall.zones
    );
    match hasher.into_inner() {
        Ok(hasher) => *hasher.finalize().as_bytes(),
        // Flushing into a hasher cannot fail.
        Err(e) => *e.into_inner().get_ref().finalize().as_bytes(),
    }
}

/// The buffer between the digest's rendering and its hasher.
const DIGEST_BUFFER_BYTES: usize = 64 * 1024;

#[cfg(test)]
mod tests;
