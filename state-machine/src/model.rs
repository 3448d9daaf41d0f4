//! The network resources, shaped after Neutron's fields, as stored in the state.
//!
//! Every resource carries `project_id`, `revision` (the log index of its last
//! change) and `created_at`/`updated_at` (milliseconds since the Unix epoch, taken
//! from the leader stamp of the command that changed it).

use crate::ids::{HostId, Id, ProjectId};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Bookkeeping fields every resource carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Meta {
    /// Owning project.
    pub project_id: ProjectId,
    /// Log index of the last change.
    pub revision: u64,
    /// Leader-stamped creation time, ms since the epoch.
    pub created_at: u64,
    /// Leader-stamped time of the last change, ms since the epoch.
    pub updated_at: u64,
    /// Tags (on VPCs, subnets, ports, security groups, routers, floating IPs).
    pub tags: crate::tags::Tags,
}

/// A hypervisor that runs a host agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Operator-chosen identifier (hostname).
    pub id: HostId,
    /// Underlay (tunnel endpoint) address.
    pub underlay_ip: IpAddr,
    /// Administrative status.
    pub status: HostStatus,
    /// Bookkeeping; hosts belong to the operator's project.
    pub meta: Meta,
}

/// Administrative status of a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostStatus {
    /// Accepts ports.
    Up,
    /// Drained by the operator: keeps its ports, accepts no new bindings.
    Maintenance,
}

/// A VPC (Neutron network).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vpc {
    /// ID.
    pub id: Id,
    /// Display name.
    pub name: String,
    /// Address space every subnet must lie in; `None` means any.
    pub cidr: Option<IpNet>,
    /// VXLAN network identifier, unique in the region.
    pub vni: u32,
    /// MTU offered to instances.
    pub mtu: u32,
    /// Administrative state.
    pub admin_state_up: bool,
    /// Whether its new ports get port security unless they say otherwise
    /// (`port_security_enabled`; `true` for VPCs of snapshot format 4).
    pub port_security_enabled: bool,
    /// Bookkeeping.
    pub meta: Meta,
}

/// An inclusive range of addresses handed out by IPAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AllocationPool {
    /// First address.
    pub start: IpAddr,
    /// Last address (inclusive).
    pub end: IpAddr,
}

/// A static route.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Route {
    /// Destination prefix.
    pub destination: IpNet,
    /// Next hop.
    pub nexthop: IpAddr,
}

/// A subnet of a VPC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    /// ID.
    pub id: Id,
    /// Display name.
    pub name: String,
    /// The VPC it belongs to.
    pub network_id: Id,
    /// Address range.
    pub cidr: IpNet,
    /// Gateway address; `None` means no gateway.
    pub gateway_ip: Option<IpAddr>,
    /// Ranges IPAM allocates from, sorted and disjoint.
    pub allocation_pools: Vec<AllocationPool>,
    /// Whether the host agent answers DHCP for it.
    pub enable_dhcp: bool,
    /// DNS servers offered by DHCP.
    pub dns_nameservers: Vec<IpAddr>,
    /// Host routes offered by DHCP.
    pub host_routes: Vec<Route>,
    /// Bookkeeping.
    pub meta: Meta,
}

/// One fixed IP of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FixedIp {
    /// Subnet the address comes from.
    pub subnet_id: Id,
    /// The address.
    pub ip_address: IpAddr,
}

/// An extra address a port may use (VIPs, pods), as a prefix: what
/// commands of snapshot format 4 carry and what host agents receive.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AddressPair {
    /// Address or prefix.
    pub ip_address: IpNet,
    /// MAC; `None` means the port's own.
    pub mac_address: Option<Mac>,
}

/// An allowed address pair as the client gave it (Neutron's
/// `allowed_address_pairs` entry): a plain address stays a plain address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AllowedAddressPair {
    /// An address or a prefix.
    pub ip_address: PairAddress,
    /// MAC; `None` means the port's own.
    pub mac_address: Option<Mac>,
}

/// The address of an [`AllowedAddressPair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PairAddress {
    /// One address, given without a prefix length.
    Ip(IpAddr),
    /// A prefix (a host prefix such as `/32` included).
    Net(IpNet),
}

impl PairAddress {
    /// The prefix it covers (a plain address is its host prefix).
    pub fn net(self) -> IpNet {
        match self {
            PairAddress::Ip(ip) => IpNet::from(ip),
            PairAddress::Net(net) => net,
        }
    }
}

impl std::fmt::Display for PairAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PairAddress::Ip(ip) => ip.fmt(f),
            PairAddress::Net(net) => net.fmt(f),
        }
    }
}

impl std::str::FromStr for PairAddress {
    type Err = String;
    /// `10.0.0.5` is an address, `10.0.0.5/32` a prefix.
    fn from_str(s: &str) -> Result<PairAddress, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(PairAddress::Ip(ip));
        }
        s.parse::<IpNet>()
            .map(PairAddress::Net)
            .map_err(|_| format!("not an address or a prefix: {s:?}"))
    }
}

impl From<AddressPair> for AllowedAddressPair {
    /// A format-4 pair: it always was a prefix.
    fn from(pair: AddressPair) -> AllowedAddressPair {
        AllowedAddressPair {
            ip_address: PairAddress::Net(pair.ip_address),
            mac_address: pair.mac_address,
        }
    }
}

impl From<AllowedAddressPair> for AddressPair {
    fn from(pair: AllowedAddressPair) -> AddressPair {
        AddressPair {
            ip_address: pair.ip_address.net(),
            mac_address: pair.mac_address,
        }
    }
}

/// A MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Mac(pub [u8; 6]);

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl std::str::FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Mac, String> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(format!("not a MAC address: {s:?}"));
        }
        let mut out = [0u8; 6];
        for (slot, part) in out.iter_mut().zip(parts) {
            if part.len() != 2 {
                return Err(format!("not a MAC address: {s:?}"));
            }
            *slot =
                u8::from_str_radix(part, 16).map_err(|_| format!("not a MAC address: {s:?}"))?;
        }
        Ok(Mac(out))
    }
}

/// Operational status of a port, driven by host-agent acks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortStatus {
    /// Not (yet) programmed on its host.
    Down,
    /// Programmed by the agent of its binding host.
    Active,
    /// The agent failed to program it; the reason it gave. Boxed (the same
    /// encoding as a `String`): 16 bytes for the whole status instead of 24,
    /// see [`Port`].
    Error(Box<String>),
}

/// A port: a virtual NIC in a VPC.
///
/// Its strings and lists are boxed slices, not `String`/`Vec` (the same
/// encoding: serde writes both as a string or a sequence): 16 bytes each
/// instead of 24 keeps a `Port` with the two counts of the `Arc` the ports
/// table holds it in at 256 bytes, one allocator size class below 320, which
/// is 64 bytes of every port a member holds (a test pins the size).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// ID.
    pub id: Id,
    /// Display name.
    pub name: Box<str>,
    /// The VPC.
    pub network_id: Id,
    /// Addresses, in the order they were requested.
    pub fixed_ips: Box<[FixedIp]>,
    /// MAC address, unique within the VPC.
    pub mac_address: Mac,
    /// The host whose agent programs it (`binding:host_id`).
    pub binding_host: Option<Box<str>>,
    /// The instance or device using it.
    pub device_id: Box<str>,
    /// What kind of device owns it, e.g. `compute:nova`.
    pub device_owner: Box<str>,
    /// Security groups applied to it, sorted.
    pub security_groups: Box<[Id]>,
    /// Extra addresses it may use, as given, sorted.
    pub allowed_address_pairs: Box<[AllowedAddressPair]>,
    /// Administrative state.
    pub admin_state_up: bool,
    /// Port security (`port_security_enabled`): when off, the port has no
    /// security groups and its agent enforces no address checks.
    pub port_security_enabled: bool,
    /// Operational status.
    pub status: PortStatus,
    /// Bookkeeping.
    pub meta: Meta,
}

/// A security group: a named set of allow rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    /// ID.
    pub id: Id,
    /// Display name; `default` for the project's default group.
    pub name: String,
    /// Description.
    pub description: String,
    /// Whether this is the project's default group.
    pub is_default: bool,
    /// Bookkeeping.
    pub meta: Meta,
}

/// Traffic direction of a rule, seen from the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Direction {
    /// Towards the port.
    Ingress,
    /// From the port.
    Egress,
}

/// IP version a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EtherType {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

/// An allow rule of a security group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupRule {
    /// ID.
    pub id: Id,
    /// Owning group.
    pub security_group_id: Id,
    /// Direction.
    pub direction: Direction,
    /// IP version.
    pub ethertype: EtherType,
    /// IP protocol number; `None` means any.
    pub protocol: Option<u8>,
    /// Lowest port (or ICMP type).
    pub port_range_min: Option<u16>,
    /// Highest port (or ICMP code).
    pub port_range_max: Option<u16>,
    /// Remote prefix (exclusive with `remote_group_id`).
    pub remote_ip_prefix: Option<IpNet>,
    /// Remote group whose members' addresses match (exclusive with the prefix).
    pub remote_group_id: Option<Id>,
    /// Bookkeeping.
    pub meta: Meta,
}

impl SecurityGroupRule {
    /// The fields that make two rules duplicates of each other.
    pub fn match_key(&self) -> RuleMatch {
        RuleMatch {
            security_group_id: self.security_group_id,
            direction: self.direction,
            ethertype: self.ethertype,
            protocol: self.protocol,
            port_range_min: self.port_range_min,
            port_range_max: self.port_range_max,
            remote_ip_prefix: self.remote_ip_prefix,
            remote_group_id: self.remote_group_id,
        }
    }
}

/// What a rule matches: equal keys in one group are duplicates.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleMatch {
    /// Owning group.
    pub security_group_id: Id,
    /// Direction.
    pub direction: Direction,
    /// IP version.
    pub ethertype: EtherType,
    /// Protocol.
    pub protocol: Option<u8>,
    /// Lowest port.
    pub port_range_min: Option<u16>,
    /// Highest port.
    pub port_range_max: Option<u16>,
    /// Remote prefix.
    pub remote_ip_prefix: Option<IpNet>,
    /// Remote group.
    pub remote_group_id: Option<Id>,
}

/// The `device_owner` of a port that is a router's interface (Neutron's).
pub const DEVICE_OWNER_ROUTER_INTERFACE: &str = "network:router_interface";

/// The `device_owner` of the port holding a router's external gateway
/// address (Neutron's).
pub const DEVICE_OWNER_ROUTER_GATEWAY: &str = "network:router_gateway";

/// A router's external gateway (Neutron's `external_gateway_info`): its port
/// on an external network (device owner [`DEVICE_OWNER_ROUTER_GATEWAY`],
/// device the router) and whether traffic leaving through it is
/// source-NATed. Floating IPs of that network reach the subnets the router
/// has interfaces on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterGateway {
    /// The external network.
    pub network_id: Id,
    /// Source NAT of traffic leaving through the gateway (`enable_snat`).
    pub enable_snat: bool,
    /// The gateway port.
    pub port_id: Id,
    /// The port's addresses (`external_fixed_ips`); the gateway port's
    /// addresses never change while it is one.
    pub external_fixed_ips: Vec<FixedIp>,
}

/// How far a port's binding got, derived from the state (never stored):
/// Neutron's `binding:vif_type` `unbound`, `binding_failed` and a bound type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// No binding host.
    Unbound,
    /// Bound to a host the controller does not know (yet): the port stays
    /// down and binds when the host registers.
    HostUnknown,
    /// Bound to a registered host.
    Bound,
}

/// A router interface on a subnet: the subnet's gateway address (by subnet)
/// or the given port's address (by port), held by its port (see
/// [`crate::State::interface_port`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RouterInterface {
    /// Subnet attached.
    pub subnet_id: Id,
    /// Address the router answers on.
    pub ip_address: IpAddr,
}

/// A distributed router between subnets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Router {
    /// ID.
    pub id: Id,
    /// Display name.
    pub name: String,
    /// Administrative state.
    pub admin_state_up: bool,
    /// Attached subnets, sorted by subnet ID.
    pub interfaces: Vec<RouterInterface>,
    /// Static routes, sorted.
    pub routes: Vec<Route>,
    /// Bookkeeping.
    pub meta: Meta,
}

/// Per-project limits; `-1` means unlimited (Neutron's convention).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// VPCs.
    pub network: i64,
    /// Subnets.
    pub subnet: i64,
    /// Ports.
    pub port: i64,
    /// Routers.
    pub router: i64,
    /// Security groups.
    pub security_group: i64,
    /// Security-group rules.
    pub security_group_rule: i64,
    /// Floating IPs.
    pub floating_ip: i64,
}

impl Default for Quota {
    /// Neutron's defaults.
    fn default() -> Quota {
        Quota {
            network: 100,
            subnet: 100,
            port: 500,
            router: 10,
            security_group: 10,
            security_group_rule: 100,
            floating_ip: 50,
        }
    }
}

/// A kind of quota-limited resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceKind {
    /// VPC.
    Network,
    /// Subnet.
    Subnet,
    /// Port.
    Port,
    /// Router.
    Router,
    /// Security group.
    SecurityGroup,
    /// Security-group rule.
    SecurityGroupRule,
    /// Floating IP.
    FloatingIp,
}

impl ResourceKind {
    /// The Neutron name of the kind, as used in quota errors.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Network => "network",
            ResourceKind::Subnet => "subnet",
            ResourceKind::Port => "port",
            ResourceKind::Router => "router",
            ResourceKind::SecurityGroup => "security_group",
            ResourceKind::SecurityGroupRule => "security_group_rule",
            ResourceKind::FloatingIp => "floatingip",
        }
    }
}

impl Quota {
    /// The limit for one kind.
    pub fn limit(&self, kind: ResourceKind) -> i64 {
        match kind {
            ResourceKind::Network => self.network,
            ResourceKind::Subnet => self.subnet,
            ResourceKind::Port => self.port,
            ResourceKind::Router => self.router,
            ResourceKind::SecurityGroup => self.security_group,
            ResourceKind::SecurityGroupRule => self.security_group_rule,
            ResourceKind::FloatingIp => self.floating_ip,
        }
    }
}

/// A floating IP: an address of an external VPC, NATed to a port's fixed IP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingIp {
    /// ID.
    pub id: Id,
    /// The VPC the address comes from.
    pub floating_network_id: Id,
    /// The subnet of that VPC the address comes from.
    pub floating_subnet_id: Id,
    /// The address.
    pub floating_ip_address: IpAddr,
    /// The associated port, if any.
    pub port_id: Option<Id>,
    /// The port's fixed address it maps to.
    pub fixed_ip_address: Option<IpAddr>,
    /// Free text.
    pub description: String,
    /// Bookkeeping.
    pub meta: Meta,
}

/// A QoS policy (Neutron's `qos` extension): rules applied to the ports
/// that use it, directly (`qos_policy_id` on the port) or through their
/// network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QosPolicy {
    /// ID.
    pub id: Id,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Whether other projects' networks and ports may use it.
    pub shared: bool,
    /// Its rules, sorted by ID; at most one of each [`QosRuleKind::slot`].
    pub rules: Vec<QosRule>,
    /// Bookkeeping.
    pub meta: Meta,
}

/// One rule of a [`QosPolicy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QosRule {
    /// ID.
    pub id: Id,
    /// What it does.
    pub kind: QosRuleKind,
}

/// What a [`QosRule`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum QosRuleKind {
    /// Limit the port's bandwidth in one direction (`qos-bw-limit-direction`:
    /// egress is traffic from the port, ingress traffic to it).
    BandwidthLimit {
        /// Which way.
        direction: Direction,
        /// Rate, kbit/s.
        max_kbps: u32,
        /// Burst, kbit (0: the agent's default).
        max_burst_kbps: u32,
    },
    /// Mark the DSCP field of the port's egress packets.
    DscpMarking {
        /// The mark, one of [`DSCP_MARKS`].
        dscp_mark: u8,
    },
}

/// Which rules of a policy exclude each other: a policy has at most one rule
/// per slot (one bandwidth limit per direction, one DSCP mark), as in Neutron.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum QosRuleSlot {
    /// A bandwidth limit in this direction.
    BandwidthLimit(Direction),
    /// The DSCP mark.
    DscpMarking,
}

impl QosRuleKind {
    /// The slot the rule occupies in its policy.
    pub fn slot(&self) -> QosRuleSlot {
        match self {
            QosRuleKind::BandwidthLimit { direction, .. } => {
                QosRuleSlot::BandwidthLimit(*direction)
            }
            QosRuleKind::DscpMarking { .. } => QosRuleSlot::DscpMarking,
        }
    }
}

/// The DSCP marks a rule may set (Neutron's `VALID_DSCP_MARKS`: 0, the class
/// selectors, the assured-forwarding classes and expedited forwarding).
pub const DSCP_MARKS: [u8; 21] = [
    0, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 46, 48, 56,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// `PortStatus` with the error's `String` unboxed.
    #[derive(Serialize)]
    enum PortStatusWithString {
        Down,
        Active,
        Error(String),
    }

    /// `Port` with `String` and `Vec` fields (as format 4 had them, the
    /// format-5 fields added).
    #[derive(Serialize)]
    struct PortWithVecs {
        id: Id,
        name: String,
        network_id: Id,
        fixed_ips: Vec<FixedIp>,
        mac_address: Mac,
        binding_host: Option<HostId>,
        device_id: String,
        device_owner: String,
        security_groups: Vec<Id>,
        allowed_address_pairs: Vec<AllowedAddressPair>,
        admin_state_up: bool,
        port_security_enabled: bool,
        status: PortStatusWithString,
        meta: Meta,
    }

    fn sample() -> Port {
        Port {
            id: Id(7),
            name: "vm-7-eth0".into(),
            network_id: Id(1),
            fixed_ips: vec![FixedIp {
                subnet_id: Id(2),
                ip_address: "10.0.0.7".parse().expect("literal"),
            }]
            .into(),
            mac_address: Mac([0xfa, 0x16, 0x3e, 0, 0, 7]),
            binding_host: Some("host-1".into()),
            device_id: "vm-7".into(),
            device_owner: "compute:nova".into(),
            security_groups: vec![Id(3), Id(4)].into(),
            allowed_address_pairs: vec![AllowedAddressPair {
                ip_address: "10.0.1.0/24".parse().expect("literal"),
                mac_address: None,
            }]
            .into(),
            admin_state_up: true,
            port_security_enabled: false,
            status: PortStatus::Error(Box::new("unplugged".to_string())),
            meta: Meta {
                project_id: "p1".to_string(),
                revision: 9,
                created_at: 10,
                updated_at: 11,
                tags: ["a".to_string()].into_iter().collect(),
            },
        }
    }

    #[test]
    fn a_port_encodes_to_the_same_bytes_as_with_strings_and_vectors() {
        let p = sample();
        let old = PortWithVecs {
            id: p.id,
            name: p.name.to_string(),
            network_id: p.network_id,
            fixed_ips: p.fixed_ips.to_vec(),
            mac_address: p.mac_address,
            binding_host: p.binding_host.as_deref().map(str::to_string),
            device_id: p.device_id.to_string(),
            device_owner: p.device_owner.to_string(),
            security_groups: p.security_groups.to_vec(),
            allowed_address_pairs: p.allowed_address_pairs.to_vec(),
            admin_state_up: p.admin_state_up,
            port_security_enabled: p.port_security_enabled,
            status: match &p.status {
                PortStatus::Down => PortStatusWithString::Down,
                PortStatus::Active => PortStatusWithString::Active,
                PortStatus::Error(reason) => PortStatusWithString::Error(reason.to_string()),
            },
            meta: p.meta.clone(),
        };
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&p, config).expect("encode");
        let old_bytes = bincode::serde::encode_to_vec(&old, config).expect("encode");
        assert_eq!(bytes, old_bytes);
        let (back, _): (Port, usize) =
            bincode::serde::decode_from_slice(&old_bytes, config).expect("decode");
        assert_eq!(back, p);
    }

    #[test]
    fn a_port_in_its_arc_fits_the_256_byte_allocation_class() {
        // In an `Arc` (two counts before it) in the ports table: 257 bytes
        // would take jemalloc's 320-byte class, 64 bytes more per port.
        let in_arc = std::mem::size_of::<Port>() + 2 * std::mem::size_of::<usize>();
        assert!(in_arc <= 256, "{in_arc}");
    }
}
