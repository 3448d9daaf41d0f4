//! The replicated state: resources, allocation cursors and the indexes derived
//! from them, plus goal-state evaluation and snapshots.
//!
//! Only the primary tables ([`Tables`]) are written into snapshots; the indexes are
//! rebuilt on restore, so a snapshot cannot carry an index that disagrees with its
//! data. Every map is a `BTreeMap`/`BTreeSet`, so every iteration is in key order.
//!
//! The fields of [`Tables`] and [`Indexes`] are private to this module: the rest
//! of the crate reads them through getters and writes them only through the
//! commit paths of [`commit`], one per table.

use crate::goal::{
    FloatingIpConfig, GoalKey, GoalObject, GoalState, Neighbor, RouterConfig, RuleConfig, Scope,
    SgMember, SubnetConfig, VpcConfig,
};
use crate::ids::{HostId, Id, ProjectId};
use crate::model::RuleMatch;
use crate::model::{
    Host, Mac, Port, Quota, ResourceKind, Router, SecurityGroup, SecurityGroupRule, Subnet, Vpc,
};
use nested::Nested;
use port_table::PortTable;
use serde::{Deserialize, Serialize};

mod commit;
mod external;
mod nested;
mod port_table;
mod qos;
mod rebuild;
mod v4;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

/// Snapshot format version written in the header. [`State::restore`] also
/// reads every version in [`SNAPSHOT_VERSIONS_READ`].
///
/// 5: VPCs and ports carry `port_security_enabled`; allowed address pairs
/// keep whether they were given as an address or a prefix (`state/v4.rs`
/// reads version 4 and documents the defaults).
/// 6 changed commands only (no snapshot was written as 6).
/// 7: QoS policies and the policies of networks and ports, one table
/// appended after format 5's ([`qos::QosTables`]; a format-5 body is read as
/// one with no QoS).
/// 8: external networks and router gateways, one table appended after
/// format 7's ([`external::ExternalTables`]; a format-7 body is read as one
/// with no external network).
pub const SNAPSHOT_VERSION: u32 = 8;
/// Every snapshot version [`State::restore`] reads, oldest first.
pub const SNAPSHOT_VERSIONS_READ: [u32; 4] = [4, 5, 7, SNAPSHOT_VERSION];
/// Magic bytes at the start of every snapshot.
pub(crate) const SNAPSHOT_MAGIC: &[u8; 8] = b"ALCORSM\0";
/// Snapshot bytes per port, to size the output before encoding: a state of
/// 1,000,000 ports on 1,000 hosts encodes to 123 bytes a port, the rest of
/// the tables included (`sm_memory`). Only a capacity hint: a larger state
/// grows the vector as before.
const SNAPSHOT_BYTES_PER_PORT_HINT: usize = 128;
/// Snapshot bytes to reserve besides the ports' share (header and small tables).
const SNAPSHOT_BYTES_BASE_HINT: usize = 64 * 1024;

/// The primary data: everything a snapshot holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tables {
    applied_index: u64,
    hosts: BTreeMap<HostId, Host>,
    vpcs: BTreeMap<Id, Vpc>,
    subnets: BTreeMap<Id, Subnet>,
    /// Hashed by ID with an ordered ID set ([`port_table`]); written as the
    /// map from ID to port earlier versions wrote, and decoded in bulk.
    ports: PortTable,
    security_groups: BTreeMap<Id, SecurityGroup>,
    rules: BTreeMap<Id, SecurityGroupRule>,
    routers: BTreeMap<Id, Router>,
    quotas: BTreeMap<ProjectId, Quota>,
    /// Next MAC suffix (low 24 bits) to try.
    mac_cursor: u32,
    /// Next VNI to try.
    vni_cursor: u32,
    /// Next address (as an integer) to try, per subnet.
    ip_cursors: BTreeMap<Id, u128>,
    /// Remembered request tokens; shared, like the ports, so that a
    /// [`State::freeze`] copies a pointer per token, not its reply.
    tokens: BTreeMap<String, Arc<TokenRecord>>,
    floating_ips: BTreeMap<Id, crate::model::FloatingIp>,
    /// QoS policies and who uses them (format 7, see [`SNAPSHOT_VERSION`]).
    qos: qos::QosTables,
    /// External networks and router gateways (format 8; last).
    ext: external::ExternalTables,
}

/// What a request token was first used for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    /// Digest of the command it came with.
    pub(crate) fingerprint: [u8; 32],
    /// Log index of the first success.
    pub(crate) index: u64,
    /// The reply then.
    pub(crate) reply: crate::command::Reply,
}

impl TokenRecord {
    /// Memory weight: one per token plus one per port in the reply.
    pub(crate) fn weight(&self) -> u64 {
        1 + match &self.reply {
            crate::command::Reply::Ports(ports) => ports.len() as u64,
            _ => 0,
        }
    }
}

/// Secondary indexes, derived from [`Tables`].
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Indexes {
    vni_used: BTreeMap<u32, Id>,
    net_subnets: BTreeSet<(Id, Id)>,
    /// VPC -> its ports.
    net_ports: Nested<Id>,
    /// subnet -> address -> the port or floating IP using it.
    ip_used: Nested<u128, Id>,
    /// VPC -> MACs in use.
    mac_used: Nested<Mac>,
    /// host -> its bound ports (nested so a host name is stored once, not per port).
    host_ports: BTreeMap<HostId, BTreeSet<Id>>,
    /// VPC -> host -> number of the host's ports in the VPC.
    vpc_hosts: BTreeMap<Id, BTreeMap<HostId, u32>>,
    /// group -> its ports.
    sg_ports: Nested<Id>,
    /// group -> host -> number of the host's ports in the group.
    sg_hosts: BTreeMap<Id, BTreeMap<HostId, u32>>,
    sg_rules: BTreeSet<(Id, Id)>,
    rule_match: BTreeMap<RuleMatch, Id>,
    /// (remote group, rule) for every rule naming a remote group.
    remote_refs: BTreeSet<(Id, Id)>,
    /// project -> kind -> count (nested so lookups borrow the project name).
    usage: BTreeMap<ProjectId, BTreeMap<ResourceKind, u64>>,
    default_sg: BTreeMap<ProjectId, Id>,
    /// (port, floating IP) for every associated floating IP.
    port_fips: BTreeSet<(Id, Id)>,
    /// (floating network, floating IP) for every floating IP.
    net_fips: BTreeSet<(Id, Id)>,
    /// (port, fixed address) -> the floating IP mapped to it.
    fip_fixed: BTreeMap<(Id, IpAddr), Id>,
    subnet_router: BTreeMap<Id, Id>,
    /// (network, router) -> number of the router's interfaces in that network.
    net_routers: BTreeMap<(Id, Id), u32>,
    /// Remembered tokens by age: (first-use index, token).
    token_ages: BTreeSet<(u64, String)>,
    /// Sum of the remembered tokens' weights.
    token_weight: u64,
    /// tag -> (kind, ID) of every resource carrying it.
    tagged: crate::tags::TagIndex,
    /// (QoS policy, port) for every port with its own policy.
    qos_ports: BTreeSet<(Id, Id)>,
    /// (QoS policy, network) for every network with a policy.
    qos_networks: BTreeSet<(Id, Id)>,
}

// Read access from outside this module; writes go through `commit`.
impl Tables {
    pub(crate) fn hosts(&self) -> &BTreeMap<HostId, Host> {
        &self.hosts
    }
    pub(crate) fn vpcs(&self) -> &BTreeMap<Id, Vpc> {
        &self.vpcs
    }
    pub(crate) fn subnets(&self) -> &BTreeMap<Id, Subnet> {
        &self.subnets
    }
    pub(crate) fn ports(&self) -> &PortTable {
        &self.ports
    }
    pub(crate) fn security_groups(&self) -> &BTreeMap<Id, SecurityGroup> {
        &self.security_groups
    }
    pub(crate) fn rules(&self) -> &BTreeMap<Id, SecurityGroupRule> {
        &self.rules
    }
    pub(crate) fn routers(&self) -> &BTreeMap<Id, Router> {
        &self.routers
    }
    pub(crate) fn mac_cursor(&self) -> u32 {
        self.mac_cursor
    }
    pub(crate) fn vni_cursor(&self) -> u32 {
        self.vni_cursor
    }
    pub(crate) fn ip_cursors(&self) -> &BTreeMap<Id, u128> {
        &self.ip_cursors
    }
    pub(crate) fn tokens(&self) -> &BTreeMap<String, Arc<TokenRecord>> {
        &self.tokens
    }
    pub(crate) fn floating_ips(&self) -> &BTreeMap<Id, crate::model::FloatingIp> {
        &self.floating_ips
    }
}

impl Indexes {
    pub(crate) fn vni_used(&self) -> &BTreeMap<u32, Id> {
        &self.vni_used
    }
    pub(crate) fn ip_used(&self) -> &Nested<u128, Id> {
        &self.ip_used
    }
    pub(crate) fn mac_used(&self) -> &Nested<Mac> {
        &self.mac_used
    }
    pub(crate) fn vpc_hosts(&self) -> &BTreeMap<Id, BTreeMap<HostId, u32>> {
        &self.vpc_hosts
    }
    pub(crate) fn sg_ports(&self) -> &Nested<Id> {
        &self.sg_ports
    }
    pub(crate) fn sg_hosts(&self) -> &BTreeMap<Id, BTreeMap<HostId, u32>> {
        &self.sg_hosts
    }
    pub(crate) fn sg_rules(&self) -> &BTreeSet<(Id, Id)> {
        &self.sg_rules
    }
    pub(crate) fn rule_match(&self) -> &BTreeMap<RuleMatch, Id> {
        &self.rule_match
    }
    pub(crate) fn remote_refs(&self) -> &BTreeSet<(Id, Id)> {
        &self.remote_refs
    }
    pub(crate) fn default_sg(&self) -> &BTreeMap<ProjectId, Id> {
        &self.default_sg
    }
    pub(crate) fn fip_fixed(&self) -> &BTreeMap<(Id, IpAddr), Id> {
        &self.fip_fixed
    }
    pub(crate) fn subnet_router(&self) -> &BTreeMap<Id, Id> {
        &self.subnet_router
    }
    pub(crate) fn tagged(&self) -> &crate::tags::TagIndex {
        &self.tagged
    }
}

/// The whole replicated network state.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// The primary tables: read anywhere (`self.t.ports()`), written only by
    /// the commit paths (`commit.rs`).
    pub(crate) t: Tables,
    /// Derived indexes: read anywhere, kept by the commit paths only.
    pub(crate) ix: Indexes,
    /// Resources touched by the entry being applied (transient).
    marks: crate::changes::Marks,
}

/// A snapshot could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes do not start with the snapshot magic.
    #[error("not an Alcor state snapshot")]
    BadMagic,
    /// Written by a format this build does not know.
    #[error("unsupported snapshot version {0}")]
    UnsupportedVersion(u32),
    /// The body did not decode.
    #[error("corrupt snapshot: {0}")]
    Corrupt(String),
}

/// Decodes a whole snapshot body (bounded), refusing trailing bytes.
fn decode_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, SnapshotError> {
    let (t, used): (T, usize) =
        crate::decode::decode_bounded(body).map_err(|e| SnapshotError::Corrupt(e.to_string()))?;
    if used != body.len() {
        return Err(SnapshotError::Corrupt("trailing bytes".to_string()));
    }
    Ok(t)
}

pub(crate) fn ip_to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

pub(crate) fn int_to_ip(v4: bool, n: u128) -> IpAddr {
    if v4 {
        // Callers only pass values that came from IPv4 ranges.
        IpAddr::V4(std::net::Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(n))
    }
}

/// The tables of a state at one applied index, from [`State::freeze`].
pub struct Frozen {
    t: Tables,
}

impl Frozen {
    /// The log index of the last command applied to the frozen state.
    pub fn applied_index(&self) -> u64 {
        self.t.applied_index
    }

    /// The same bytes as [`State::snapshot`] of the state it was taken from,
    /// at the time it was taken.
    pub fn snapshot(&self) -> Vec<u8> {
        encode_snapshot(&self.t)
    }
}

/// The versioned binary snapshot format of `t`.
///
/// The body is encoded straight into the output, sized up front from the
/// port count: encoding into a vector of its own and copying that behind
/// the header moved the whole snapshot twice more (a third of the encode
/// time at 1,000,000 ports, benches/README.md).
fn encode_snapshot(t: &Tables) -> Vec<u8> {
    let capacity = SNAPSHOT_BYTES_PER_PORT_HINT
        .saturating_mul(t.ports.len())
        .saturating_add(SNAPSHOT_BYTES_BASE_HINT);
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    // Encoding plain data into a Vec has no failure mode other than OOM.
    let encoded = bincode::serde::encode_into_std_write(t, &mut out, bincode::config::standard());
    debug_assert!(encoded.is_ok(), "encoding into a Vec failed: {encoded:?}");
    out
}

impl State {
    /// An empty state at log index 0.
    pub fn new() -> State {
        State::default()
    }

    /// The log index of the last applied command.
    pub fn applied_index(&self) -> u64 {
        self.t.applied_index
    }

    /// The state in the versioned binary snapshot format.
    pub fn snapshot(&self) -> Vec<u8> {
        encode_snapshot(&self.t)
    }

    /// A copy of the tables to encode later, taken in a small fraction of the
    /// encode's time: ports and request tokens are shared rows (a pointer and
    /// a reference count each), the other tables (hosts, VPCs, subnets,
    /// groups, rules, routers: thousands of rows, not millions) are copied.
    /// A caller holding a lock around the state takes this under it and
    /// encodes after letting go, so writes wait for the copy, not the encode.
    pub fn freeze(&self) -> Frozen {
        Frozen { t: self.t.clone() }
    }

    /// Rebuilds a state from [`State::snapshot`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<State, SnapshotError> {
        let header_len = SNAPSHOT_MAGIC.len() + 4;
        if bytes.len() < header_len || &bytes[..SNAPSHOT_MAGIC.len()] != SNAPSHOT_MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let mut version = [0u8; 4];
        version.copy_from_slice(&bytes[SNAPSHOT_MAGIC.len()..header_len]);
        let version = u32::from_le_bytes(version);
        let body = &bytes[header_len..];
        let t = match version {
            4 => decode_body::<v4::TablesV4>(body)?.into(),
            5 => decode_body::<Tables>(&external::format7_body_as_current(
                &qos::format5_body_as_format7(body),
            ))?,
            7 => decode_body::<Tables>(&external::format7_body_as_current(body))?,
            SNAPSHOT_VERSION => decode_body::<Tables>(body)?,
            other => return Err(SnapshotError::UnsupportedVersion(other)),
        };
        let mut state = State {
            t,
            ix: Indexes::default(),
            marks: Default::default(),
        };
        state.rebuild_indexes();
        Ok(state)
    }

    /// Whether two states hold the same resources, cursors and quotas, ignoring
    /// the applied index (which every command, even a rejected one, advances).
    pub fn same_content(&self, other: &State) -> bool {
        let mut a = self.t.clone();
        a.applied_index = other.t.applied_index;
        a == other.t
    }

    /// A digest of the whole state: equal on replicas that applied the same log.
    pub fn digest(&self) -> [u8; 32] {
        *blake3::hash(&self.snapshot()).as_bytes()
    }

    /// Whether the tag index equals one rebuilt from the tables (for tests).
    pub fn tag_index_is_consistent(&self) -> bool {
        let mut fresh = State {
            t: self.t.clone(),
            ix: Indexes::default(),
            marks: Default::default(),
        };
        fresh.rebuild_indexes();
        fresh.ix.tagged == self.ix.tagged
    }

    /// Whether every index equals one rebuilt from the tables (for tests).
    pub fn indexes_are_consistent(&self) -> bool {
        let mut fresh = State {
            t: self.t.clone(),
            ix: Indexes::default(),
            marks: Default::default(),
        };
        fresh.rebuild_indexes();
        fresh.ix == self.ix
    }

    /// How many resources of a kind a project has.
    pub fn usage(&self, project: &str, kind: ResourceKind) -> u64 {
        self.ix
            .usage
            .get(project)
            .and_then(|kinds| kinds.get(&kind))
            .copied()
            .unwrap_or(0)
    }

    // ---- read accessors -------------------------------------------------------

    /// A host by ID.
    pub fn host(&self, id: &str) -> Option<&Host> {
        self.t.hosts.get(id)
    }
    /// All hosts in ID order.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.t.hosts.values()
    }
    /// A VPC by ID.
    pub fn vpc(&self, id: &Id) -> Option<&Vpc> {
        self.t.vpcs.get(id)
    }
    /// All VPCs in ID order.
    pub fn vpcs(&self) -> impl Iterator<Item = &Vpc> {
        self.t.vpcs.values()
    }
    /// A subnet by ID.
    pub fn subnet(&self, id: &Id) -> Option<&Subnet> {
        self.t.subnets.get(id)
    }
    /// All subnets in ID order.
    pub fn subnets(&self) -> impl Iterator<Item = &Subnet> {
        self.t.subnets.values()
    }
    /// Subnets of one VPC in ID order (from the index).
    pub fn subnets_of(&self, network_id: Id) -> impl Iterator<Item = &Subnet> {
        self.ix
            .net_subnets
            .range((network_id, Id(0))..=(network_id, Id(u128::MAX)))
            .filter_map(|(_, s)| self.t.subnets.get(s))
    }
    /// A port by ID.
    pub fn port(&self, id: &Id) -> Option<&Port> {
        self.t.ports.get(id)
    }
    /// All ports in ID order.
    pub fn ports(&self) -> impl Iterator<Item = &Port> {
        self.t.ports.values()
    }
    /// Number of ports.
    pub fn port_count(&self) -> usize {
        self.t.ports.len()
    }
    /// Ports of one VPC in ID order (from the index).
    pub fn ports_of_network(&self, network_id: Id) -> impl Iterator<Item = &Port> {
        self.ix
            .net_ports
            .keys_of(network_id)
            .filter_map(|p| self.t.ports.get(p))
    }
    /// Ports bound to one host in ID order (from the index).
    pub fn ports_of_host<'a>(&'a self, host: &str) -> impl Iterator<Item = &'a Port> + 'a {
        self.ix
            .host_ports
            .get(host)
            .into_iter()
            .flatten()
            .filter_map(|p| self.t.ports.get(p))
    }
    /// A security group by ID.
    pub fn security_group(&self, id: &Id) -> Option<&SecurityGroup> {
        self.t.security_groups.get(id)
    }
    /// All security groups in ID order.
    pub fn security_groups(&self) -> impl Iterator<Item = &SecurityGroup> {
        self.t.security_groups.values()
    }
    /// A rule by ID.
    pub fn security_group_rule(&self, id: &Id) -> Option<&SecurityGroupRule> {
        self.t.rules.get(id)
    }
    /// All rules in ID order.
    pub fn security_group_rules(&self) -> impl Iterator<Item = &SecurityGroupRule> {
        self.t.rules.values()
    }
    /// Rules of one group in ID order (from the index).
    pub fn rules_of(&self, group: Id) -> impl Iterator<Item = &SecurityGroupRule> {
        self.ix
            .sg_rules
            .range((group, Id(0))..=(group, Id(u128::MAX)))
            .filter_map(|(_, r)| self.t.rules.get(r))
    }
    /// A floating IP by ID.
    pub fn floating_ip(&self, id: &Id) -> Option<&crate::model::FloatingIp> {
        self.t.floating_ips.get(id)
    }
    /// All floating IPs in ID order.
    pub fn floating_ips(&self) -> impl Iterator<Item = &crate::model::FloatingIp> {
        self.t.floating_ips.values()
    }
    /// Floating IPs associated with one port, in ID order (from the index).
    pub fn floating_ips_of_port(
        &self,
        port: Id,
    ) -> impl Iterator<Item = &crate::model::FloatingIp> {
        self.ix
            .port_fips
            .range((port, Id(0))..=(port, Id(u128::MAX)))
            .filter_map(|(_, f)| self.t.floating_ips.get(f))
    }
    /// Floating IPs allocated from one (floating) VPC, in ID order (from the index).
    pub fn floating_ips_of_network(
        &self,
        network: Id,
    ) -> impl Iterator<Item = &crate::model::FloatingIp> {
        self.ix
            .net_fips
            .range((network, Id(0))..=(network, Id(u128::MAX)))
            .filter_map(|(_, f)| self.t.floating_ips.get(f))
    }
    /// The router that serves an associated floating IP: the one with an
    /// interface on the subnet of the fixed address it maps to.
    pub fn floating_ip_router(&self, fip: &crate::model::FloatingIp) -> Option<Id> {
        let port = self.t.ports.get(&fip.port_id?)?;
        let fixed = fip.fixed_ip_address?;
        let subnet = port.fixed_ips.iter().find(|f| f.ip_address == fixed)?;
        self.ix.subnet_router.get(&subnet.subnet_id).copied()
    }
    /// The port of a router's interface: the port holding the interface's
    /// address that names the router as its device (`None` for an interface
    /// added by a format-4 command, which made no port).
    pub fn interface_port(
        &self,
        router_id: Id,
        iface: &crate::model::RouterInterface,
    ) -> Option<&Port> {
        let used = self
            .ix
            .ip_used
            .get(iface.subnet_id, &ip_to_int(iface.ip_address))?;
        let port = self.t.ports.get(used)?;
        (self.interface_router(port) == Some(router_id)).then_some(port)
    }
    /// The router a port is an interface of: its device owner is
    /// [`DEVICE_OWNER_ROUTER_INTERFACE`](crate::model::DEVICE_OWNER_ROUTER_INTERFACE),
    /// its device the router, and the router has an interface on one of its
    /// addresses.
    pub fn interface_router(&self, port: &Port) -> Option<Id> {
        if &*port.device_owner != crate::model::DEVICE_OWNER_ROUTER_INTERFACE {
            return None;
        }
        let router_id: Id = port.device_id.parse().ok()?;
        let router = self.t.routers.get(&router_id)?;
        let on_it = router.interfaces.iter().any(|i| {
            port.fixed_ips
                .iter()
                .any(|f| f.subnet_id == i.subnet_id && f.ip_address == i.ip_address)
        });
        on_it.then_some(router_id)
    }
    /// How far a port's binding got (Neutron's `binding:vif_type`): no host,
    /// a host the controller does not know (yet), or a known host.
    pub fn binding(&self, port: &Port) -> crate::model::Binding {
        match &port.binding_host {
            None => crate::model::Binding::Unbound,
            Some(host) if self.t.hosts.contains_key(&**host) => crate::model::Binding::Bound,
            Some(_) => crate::model::Binding::HostUnknown,
        }
    }
    /// Floating IPs associated with one port.
    pub(crate) fn fips_of_port(&self, port: Id) -> Vec<Id> {
        self.ix
            .port_fips
            .range((port, Id(0))..=(port, Id(u128::MAX)))
            .map(|(_, f)| *f)
            .collect()
    }
    /// The project's default security group, if created yet.
    pub fn default_security_group(&self, project: &str) -> Option<Id> {
        self.ix.default_sg.get(project).copied()
    }
    /// A router by ID.
    pub fn router(&self, id: &Id) -> Option<&Router> {
        self.t.routers.get(id)
    }
    /// All routers in ID order.
    pub fn routers(&self) -> impl Iterator<Item = &Router> {
        self.t.routers.values()
    }
    /// A project's quota (the defaults unless set).
    pub fn quota(&self, project: &str) -> Quota {
        self.t.quotas.get(project).copied().unwrap_or_default()
    }

    // ---- goal state ------------------------------------------------------------

    fn host_in_vpc(&self, net: Id, host: &str) -> bool {
        self.ix
            .vpc_hosts
            .get(&net)
            .is_some_and(|hosts| hosts.contains_key(host))
    }

    /// Whether some group used by the host's ports has a rule naming `group` as remote.
    pub(crate) fn host_needs_members(&self, host: &str, group: Id) -> bool {
        self.ix
            .remote_refs
            .range((group, Id(0))..=(group, Id(u128::MAX)))
            .filter_map(|(_, rule)| self.t.rules.get(rule))
            .any(|rule| self.host_uses_group(host, rule.security_group_id))
    }

    /// The scope an object key belongs to, if the object exists.
    pub fn scope_of(&self, key: &GoalKey) -> Option<Scope> {
        Some(match *key {
            GoalKey::Vpc(id) => Scope::Vpc(id),
            GoalKey::Subnet(id) => Scope::Vpc(self.t.subnets.get(&id)?.network_id),
            GoalKey::Router { network_id, .. } => Scope::Vpc(network_id),
            GoalKey::Neighbor(id) => Scope::Vpc(self.t.ports.get(&id)?.network_id),
            GoalKey::SgRule(id) => Scope::Rules(self.t.rules.get(&id)?.security_group_id),
            GoalKey::SgMember { group_id, .. } => Scope::Members(group_id),
            GoalKey::Port(id) => {
                Scope::Host(self.t.ports.get(&id)?.binding_host.as_deref()?.into())
            }
            GoalKey::FloatingIp(id) => {
                let port = self.t.floating_ips.get(&id)?.port_id?;
                Scope::Host(self.t.ports.get(&port)?.binding_host.as_deref()?.into())
            }
        })
    }

    /// The value of one goal-state key for one host, from the indexes.
    pub fn goal_value(&self, host: &str, key: &GoalKey) -> Option<GoalObject> {
        let scope = self.scope_of(key)?;
        if self.subscribed(host, &scope) {
            self.scope_value(&scope, key)
        } else {
            None
        }
    }

    /// Whether a host receives the objects of a scope.
    pub fn subscribed(&self, host: &str, scope: &Scope) -> bool {
        match scope {
            Scope::Host(h) => h == host,
            Scope::Vpc(net) => self.host_in_vpc(*net, host),
            Scope::Rules(sg) => self.host_uses_group(host, *sg),
            Scope::Members(group) => self.host_needs_members(host, *group),
        }
    }

    /// The hosts subscribed to a scope, sorted.
    pub fn subscribers(&self, scope: &Scope) -> Vec<HostId> {
        match scope {
            Scope::Host(h) => vec![h.clone()],
            Scope::Vpc(net) => self.vpc_hosts(*net),
            Scope::Rules(sg) => self.sg_hosts(*sg),
            Scope::Members(group) => {
                let mut out = BTreeSet::new();
                for (_, rule_id) in self
                    .ix
                    .remote_refs
                    .range((*group, Id(0))..=(*group, Id(u128::MAX)))
                {
                    if let Some(rule) = self.t.rules.get(rule_id) {
                        out.extend(self.sg_hosts(rule.security_group_id));
                    }
                }
                out.into_iter().collect()
            }
        }
    }

    /// The value of an object of a host's own scope ([`Scope::Host`]).
    pub(crate) fn host_value(&self, host: &str, key: &GoalKey) -> Option<GoalObject> {
        match *key {
            GoalKey::Port(id) => {
                let port = self.t.ports.get(&id)?;
                (port.binding_host.as_deref() == Some(host))
                    .then(|| GoalObject::Port(self.port_config(port)))
            }
            GoalKey::FloatingIp(id) => {
                let fip = self.t.floating_ips.get(&id)?;
                let port = self.t.ports.get(&fip.port_id?)?;
                (port.binding_host.as_deref() == Some(host)).then_some(())?;
                Some(GoalObject::FloatingIp(FloatingIpConfig {
                    id,
                    floating_ip_address: fip.floating_ip_address,
                    port_id: port.id,
                    fixed_ip_address: fip.fixed_ip_address?,
                }))
            }
            _ => None,
        }
    }

    /// The value of an object within its scope, regardless of who subscribes.
    pub fn scope_value(&self, scope: &Scope, key: &GoalKey) -> Option<GoalObject> {
        match (scope, *key) {
            (Scope::Host(host), key) => self.host_value(host, &key),
            (Scope::Vpc(net), GoalKey::Vpc(id)) if *net == id => self
                .t
                .vpcs
                .get(&id)
                .map(|v| GoalObject::Vpc(VpcConfig::of(v))),
            (Scope::Vpc(net), GoalKey::Subnet(id)) => {
                let subnet = self.t.subnets.get(&id)?;
                (subnet.network_id == *net).then(|| GoalObject::Subnet(SubnetConfig::of(subnet)))
            }
            (
                Scope::Vpc(net),
                GoalKey::Router {
                    network_id,
                    router_id,
                },
            ) if *net == network_id => {
                let router = self.t.routers.get(&router_id)?;
                self.ix
                    .net_routers
                    .contains_key(&(network_id, router_id))
                    .then(|| GoalObject::Router(RouterConfig::of(router, network_id)))
            }
            (Scope::Vpc(net), GoalKey::Neighbor(id)) => {
                let port = self.t.ports.get(&id)?;
                if port.network_id != *net {
                    return None;
                }
                self.neighbor_of(port).map(GoalObject::Neighbor)
            }
            (Scope::Rules(sg), GoalKey::SgRule(id)) => {
                let rule = self.t.rules.get(&id)?;
                (rule.security_group_id == *sg).then(|| GoalObject::SgRule(RuleConfig::of(rule)))
            }
            (Scope::Members(group), GoalKey::SgMember { group_id, port_id })
                if *group == group_id =>
            {
                let port = self.t.ports.get(&port_id)?;
                self.ix.sg_ports.contains(group_id, &port_id).then(|| {
                    GoalObject::SgMember(SgMember {
                        group_id,
                        port_id,
                        ips: port.fixed_ips.iter().map(|f| f.ip_address).collect(),
                    })
                })
            }
            _ => None,
        }
    }

    /// Every object of a scope, in key order.
    pub fn scope_content(&self, scope: &Scope) -> Vec<GoalObject> {
        let mut out = Vec::new();
        match scope {
            Scope::Host(host) => {
                let mut fips = Vec::new();
                for port in self.ports_of_host(host) {
                    out.push(GoalObject::Port(self.port_config(port)));
                    for (_, fip) in self
                        .ix
                        .port_fips
                        .range((port.id, Id(0))..=(port.id, Id(u128::MAX)))
                    {
                        fips.extend(self.scope_value(scope, &GoalKey::FloatingIp(*fip)));
                    }
                }
                out.extend(fips);
            }
            Scope::Vpc(net) => {
                if let Some(vpc) = self.t.vpcs.get(net) {
                    out.push(GoalObject::Vpc(VpcConfig::of(vpc)));
                }
                out.extend(
                    self.subnets_of(*net)
                        .map(|s| GoalObject::Subnet(SubnetConfig::of(s))),
                );
                for ((_, router_id), _) in self
                    .ix
                    .net_routers
                    .range((*net, Id(0))..=(*net, Id(u128::MAX)))
                {
                    if let Some(router) = self.t.routers.get(router_id) {
                        out.push(GoalObject::Router(RouterConfig::of(router, *net)));
                    }
                }
                out.extend(
                    self.ports_of_network(*net)
                        .filter_map(|p| self.neighbor_of(p))
                        .map(GoalObject::Neighbor),
                );
            }
            Scope::Rules(sg) => {
                for (_, rule_id) in self.ix.sg_rules.range((*sg, Id(0))..=(*sg, Id(u128::MAX))) {
                    if let Some(rule) = self.t.rules.get(rule_id) {
                        out.push(GoalObject::SgRule(RuleConfig::of(rule)));
                    }
                }
            }
            Scope::Members(group) => {
                for port_id in self.ix.sg_ports.keys_of(*group) {
                    if let Some(port) = self.t.ports.get(port_id) {
                        let ips = port.fixed_ips.iter().map(|f| f.ip_address).collect();
                        out.push(GoalObject::SgMember(SgMember {
                            group_id: *group,
                            port_id: *port_id,
                            ips,
                        }));
                    }
                }
            }
        }
        out
    }

    /// The scopes a host subscribes to, in scope order.
    pub fn host_scopes(&self, host: &str) -> Vec<Scope> {
        let mut vpcs = BTreeSet::new();
        let mut groups = BTreeSet::new();
        for port in self.ports_of_host(host) {
            vpcs.insert(port.network_id);
            groups.extend(port.security_groups.iter().copied());
        }
        let mut remote = BTreeSet::new();
        for group in &groups {
            for (_, rule_id) in self
                .ix
                .sg_rules
                .range((*group, Id(0))..=(*group, Id(u128::MAX)))
            {
                if let Some(g) = self.t.rules.get(rule_id).and_then(|r| r.remote_group_id) {
                    remote.insert(g);
                }
            }
        }
        let mut out = vec![Scope::Host(host.to_string())];
        out.extend(vpcs.into_iter().map(Scope::Vpc));
        out.extend(groups.into_iter().map(Scope::Rules));
        out.extend(remote.into_iter().map(Scope::Members));
        out
    }

    fn neighbor_of(&self, port: &Port) -> Option<Neighbor> {
        let host = self.t.hosts.get(port.binding_host.as_deref()?)?;
        Some(Neighbor {
            port_id: port.id,
            network_id: port.network_id,
            mac_address: port.mac_address,
            ips: port.fixed_ips.iter().map(|f| f.ip_address).collect(),
            allowed_address_pairs: port
                .allowed_address_pairs
                .iter()
                .map(|pair| (*pair).into())
                .collect(),
            host_id: host.id.clone(),
            host_ip: host.underlay_ip,
        })
    }

    /// The whole goal state of one host at the current revision: the union of
    /// the contents of the scopes it subscribes to.
    pub fn goal_state(&self, host: &str) -> GoalState {
        let mut out = GoalState::new();
        for scope in self.host_scopes(host) {
            for object in self.scope_content(&scope) {
                out.insert(object.key(), object);
            }
        }
        out
    }

    /// Every host that has a non-empty goal state, in ID order.
    pub fn hosts_with_ports(&self) -> Vec<HostId> {
        self.ix.host_ports.keys().cloned().collect()
    }

    /// Whether one of the host's ports is in the group.
    pub(crate) fn host_uses_group(&self, host: &str, sg: Id) -> bool {
        self.ix
            .sg_hosts
            .get(&sg)
            .is_some_and(|hosts| hosts.contains_key(host))
    }
}
