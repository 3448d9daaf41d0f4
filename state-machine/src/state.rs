//! The replicated state: resources, allocation cursors and the indexes derived
//! from them, plus goal-state evaluation and snapshots.
//!
//! Only the primary tables ([`Tables`]) are written into snapshots; the indexes are
//! rebuilt on restore, so a snapshot cannot carry an index that disagrees with its
//! data. Every map is a `BTreeMap`/`BTreeSet`, so every iteration is in key order.

use crate::goal::{
    FloatingIpConfig, GoalKey, GoalObject, GoalState, Neighbor, PortConfig, RouterConfig,
    RuleConfig, Scope, SgMember, SubnetConfig, VpcConfig,
};
use crate::ids::{HostId, Id, ProjectId};
use crate::model::RuleMatch;
use crate::model::{
    Host, Mac, Port, Quota, ResourceKind, Router, SecurityGroup, SecurityGroupRule, Subnet, Vpc,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Snapshot format version written in the header.
pub const SNAPSHOT_VERSION: u32 = 3;
/// Magic bytes at the start of every snapshot.
pub(crate) const SNAPSHOT_MAGIC: &[u8; 8] = b"ALCORSM\0";

/// The primary data: everything a snapshot holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tables {
    pub(crate) applied_index: u64,
    pub(crate) hosts: BTreeMap<HostId, Host>,
    pub(crate) vpcs: BTreeMap<Id, Vpc>,
    pub(crate) subnets: BTreeMap<Id, Subnet>,
    pub(crate) ports: BTreeMap<Id, Port>,
    pub(crate) security_groups: BTreeMap<Id, SecurityGroup>,
    pub(crate) rules: BTreeMap<Id, SecurityGroupRule>,
    pub(crate) routers: BTreeMap<Id, Router>,
    pub(crate) quotas: BTreeMap<ProjectId, Quota>,
    /// Next MAC suffix (low 24 bits) to try.
    pub(crate) mac_cursor: u32,
    /// Next VNI to try.
    pub(crate) vni_cursor: u32,
    /// Next address (as an integer) to try, per subnet.
    pub(crate) ip_cursors: BTreeMap<Id, u128>,
    /// Remembered request tokens.
    pub(crate) tokens: BTreeMap<String, TokenRecord>,
    pub(crate) floating_ips: BTreeMap<Id, crate::model::FloatingIp>,
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
    pub(crate) vni_used: BTreeMap<u32, Id>,
    pub(crate) net_subnets: BTreeSet<(Id, Id)>,
    pub(crate) net_ports: BTreeSet<(Id, Id)>,
    pub(crate) ip_used: BTreeMap<(Id, u128), Id>,
    pub(crate) mac_used: BTreeSet<(Id, Mac)>,
    /// host -> its bound ports (nested so a host name is stored once, not per port).
    pub(crate) host_ports: BTreeMap<HostId, BTreeSet<Id>>,
    /// VPC -> host -> number of the host's ports in the VPC.
    pub(crate) vpc_hosts: BTreeMap<Id, BTreeMap<HostId, u32>>,
    pub(crate) sg_ports: BTreeSet<(Id, Id)>,
    /// group -> host -> number of the host's ports in the group.
    pub(crate) sg_hosts: BTreeMap<Id, BTreeMap<HostId, u32>>,
    pub(crate) sg_rules: BTreeSet<(Id, Id)>,
    pub(crate) rule_match: BTreeMap<RuleMatch, Id>,
    /// (remote group, rule) for every rule naming a remote group.
    pub(crate) remote_refs: BTreeSet<(Id, Id)>,
    /// project -> kind -> count (nested so lookups borrow the project name).
    pub(crate) usage: BTreeMap<ProjectId, BTreeMap<ResourceKind, u64>>,
    pub(crate) default_sg: BTreeMap<ProjectId, Id>,
    /// (port, floating IP) for every associated floating IP.
    pub(crate) port_fips: BTreeSet<(Id, Id)>,
    /// (floating network, floating IP) for every floating IP.
    pub(crate) net_fips: BTreeSet<(Id, Id)>,
    /// (port, fixed address) -> the floating IP mapped to it.
    pub(crate) fip_fixed: BTreeMap<(Id, IpAddr), Id>,
    pub(crate) subnet_router: BTreeMap<Id, Id>,
    /// (network, router) -> number of the router's interfaces in that network.
    pub(crate) net_routers: BTreeMap<(Id, Id), u32>,
    /// Remembered tokens by age: (first-use index, token).
    pub(crate) token_ages: BTreeSet<(u64, String)>,
    /// Sum of the remembered tokens' weights.
    pub(crate) token_weight: u64,
    /// tag -> (kind, ID) of every resource carrying it.
    pub(crate) tagged: crate::tags::TagIndex,
}

/// The whole replicated network state.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub(crate) t: Tables,
    pub(crate) ix: Indexes,
    /// Resources touched by the entry being applied (transient).
    pub(crate) marks: crate::changes::Marks,
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
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        // Encoding plain data into a Vec has no failure mode other than OOM.
        if let Ok(body) = bincode::serde::encode_to_vec(&self.t, bincode::config::standard()) {
            out.extend_from_slice(&body);
        }
        out
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
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let (t, used): (Tables, usize) = crate::decode::decode_bounded(&bytes[header_len..])
            .map_err(|e| SnapshotError::Corrupt(e.to_string()))?;
        if used != bytes.len() - header_len {
            return Err(SnapshotError::Corrupt("trailing bytes".to_string()));
        }
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

    fn rebuild_indexes(&mut self) {
        let t = std::mem::take(&mut self.t);
        for vpc in t.vpcs.values() {
            self.ix.vni_used.insert(vpc.vni, vpc.id);
            self.usage_add(&vpc.meta.project_id, ResourceKind::Network, 1);
        }
        for subnet in t.subnets.values() {
            self.ix.net_subnets.insert((subnet.network_id, subnet.id));
            self.usage_add(&subnet.meta.project_id, ResourceKind::Subnet, 1);
        }
        for sg in t.security_groups.values() {
            if sg.is_default {
                self.ix.default_sg.insert(sg.meta.project_id.clone(), sg.id);
            }
            self.usage_add(&sg.meta.project_id, ResourceKind::SecurityGroup, 1);
        }
        for rule in t.rules.values() {
            self.index_rule(rule, true);
        }
        for router in t.routers.values() {
            self.usage_add(&router.meta.project_id, ResourceKind::Router, 1);
        }
        self.t = t;
        let routers: Vec<Router> = self.t.routers.values().cloned().collect();
        for router in &routers {
            self.index_router(router, true);
        }
        let ports: Vec<Port> = self.t.ports.values().cloned().collect();
        for port in &ports {
            self.index_port(port, true);
        }
        let fips: Vec<crate::model::FloatingIp> = self.t.floating_ips.values().cloned().collect();
        for fip in &fips {
            self.index_fip(fip, true);
        }
        for (token, record) in &self.t.tokens {
            self.ix.token_ages.insert((record.index, token.clone()));
            self.ix.token_weight += record.weight();
        }
        let mut tagged = crate::tags::TagIndex::new();
        for (kind, id, tags) in self.all_tags() {
            for tag in tags {
                tagged.entry(tag.clone()).or_default().insert((kind, id));
            }
        }
        self.ix.tagged = tagged;
    }

    pub(crate) fn usage_add(&mut self, project: &ProjectId, kind: ResourceKind, n: u64) {
        match self.ix.usage.get_mut(project.as_str()) {
            Some(kinds) => *kinds.entry(kind).or_insert(0) += n,
            None => {
                self.ix
                    .usage
                    .insert(project.clone(), BTreeMap::from([(kind, n)]));
            }
        }
    }

    pub(crate) fn usage_sub(&mut self, project: &ProjectId, kind: ResourceKind, n: u64) {
        if let Some(kinds) = self.ix.usage.get_mut(project.as_str()) {
            if let Some(count) = kinds.get_mut(&kind) {
                *count = count.saturating_sub(n);
                if *count == 0 {
                    kinds.remove(&kind);
                }
            }
            if kinds.is_empty() {
                self.ix.usage.remove(project.as_str());
            }
        }
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

    /// Adds (`insert`) or removes a rule from the indexes.
    pub(crate) fn index_rule(&mut self, rule: &SecurityGroupRule, insert: bool) {
        let project = rule.meta.project_id.clone();
        if insert {
            self.ix.sg_rules.insert((rule.security_group_id, rule.id));
            self.ix.rule_match.insert(rule.match_key(), rule.id);
            if let Some(g) = rule.remote_group_id {
                self.ix.remote_refs.insert((g, rule.id));
            }
            self.usage_add(&project, ResourceKind::SecurityGroupRule, 1);
        } else {
            self.ix.sg_rules.remove(&(rule.security_group_id, rule.id));
            self.ix.rule_match.remove(&rule.match_key());
            if let Some(g) = rule.remote_group_id {
                self.ix.remote_refs.remove(&(g, rule.id));
            }
            self.usage_sub(&project, ResourceKind::SecurityGroupRule, 1);
        }
    }

    /// Adds or removes a router's interfaces from the indexes.
    pub(crate) fn index_router(&mut self, router: &Router, insert: bool) {
        for iface in &router.interfaces {
            let Some(net) = self.t.subnets.get(&iface.subnet_id).map(|s| s.network_id) else {
                continue;
            };
            let key = (net, router.id);
            if insert {
                self.ix.subnet_router.insert(iface.subnet_id, router.id);
                *self.ix.net_routers.entry(key).or_insert(0) += 1;
            } else {
                self.ix.subnet_router.remove(&iface.subnet_id);
                if let Some(n) = self.ix.net_routers.get_mut(&key) {
                    *n -= 1;
                    if *n == 0 {
                        self.ix.net_routers.remove(&key);
                    }
                }
            }
        }
    }

    /// Adds or removes a port from every index (not from the table).
    pub(crate) fn index_port(&mut self, port: &Port, insert: bool) {
        let project = &port.meta.project_id;
        let net = port.network_id;
        if insert {
            self.ix.net_ports.insert((net, port.id));
            for ip in &port.fixed_ips {
                self.ix
                    .ip_used
                    .insert((ip.subnet_id, ip_to_int(ip.ip_address)), port.id);
            }
            self.ix.mac_used.insert((net, port.mac_address));
            for sg in &port.security_groups {
                self.ix.sg_ports.insert((*sg, port.id));
            }
            if let Some(host) = &port.binding_host {
                match self.ix.host_ports.get_mut(host.as_str()) {
                    Some(set) => {
                        set.insert(port.id);
                    }
                    None => {
                        self.ix
                            .host_ports
                            .insert(host.clone(), BTreeSet::from([port.id]));
                    }
                }
                bump(self.ix.vpc_hosts.entry(net).or_default(), host);
                for sg in &port.security_groups {
                    bump(self.ix.sg_hosts.entry(*sg).or_default(), host);
                }
            }
            self.usage_add(project, ResourceKind::Port, 1);
        } else {
            self.ix.net_ports.remove(&(net, port.id));
            for ip in &port.fixed_ips {
                self.ix
                    .ip_used
                    .remove(&(ip.subnet_id, ip_to_int(ip.ip_address)));
            }
            self.ix.mac_used.remove(&(net, port.mac_address));
            for sg in &port.security_groups {
                self.ix.sg_ports.remove(&(*sg, port.id));
            }
            if let Some(host) = &port.binding_host {
                if let Some(set) = self.ix.host_ports.get_mut(host.as_str()) {
                    set.remove(&port.id);
                    if set.is_empty() {
                        self.ix.host_ports.remove(host.as_str());
                    }
                }
                unbump(&mut self.ix.vpc_hosts, net, host);
                for sg in &port.security_groups {
                    unbump(&mut self.ix.sg_hosts, *sg, host);
                }
            }
            self.usage_sub(project, ResourceKind::Port, 1);
        }
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
            .range((network_id, Id(0))..=(network_id, Id(u128::MAX)))
            .filter_map(|(_, p)| self.t.ports.get(p))
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
    /// Floating IPs associated with one port.
    pub(crate) fn fips_of_port(&self, port: Id) -> Vec<Id> {
        self.ix
            .port_fips
            .range((port, Id(0))..=(port, Id(u128::MAX)))
            .map(|(_, f)| *f)
            .collect()
    }
    /// Adds or removes a floating IP from the indexes.
    pub(crate) fn index_fip(&mut self, fip: &crate::model::FloatingIp, insert: bool) {
        let addr = (fip.floating_subnet_id, ip_to_int(fip.floating_ip_address));
        let assoc = fip.port_id.zip(fip.fixed_ip_address);
        if insert {
            self.ix.ip_used.insert(addr, fip.id);
            self.ix.net_fips.insert((fip.floating_network_id, fip.id));
            if let Some((port, fixed)) = assoc {
                self.ix.port_fips.insert((port, fip.id));
                self.ix.fip_fixed.insert((port, fixed), fip.id);
            }
        } else {
            self.ix.ip_used.remove(&addr);
            self.ix.net_fips.remove(&(fip.floating_network_id, fip.id));
            if let Some((port, fixed)) = assoc {
                self.ix.port_fips.remove(&(port, fip.id));
                self.ix.fip_fixed.remove(&(port, fixed));
            }
        }
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
            GoalKey::Port(id) => Scope::Host(self.t.ports.get(&id)?.binding_host.clone()?),
            GoalKey::FloatingIp(id) => {
                let port = self.t.floating_ips.get(&id)?.port_id?;
                Scope::Host(self.t.ports.get(&port)?.binding_host.clone()?)
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
                    .then(|| GoalObject::Port(PortConfig::of(port)))
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
                self.ix.sg_ports.contains(&(group_id, port_id)).then(|| {
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
                    out.push(GoalObject::Port(PortConfig::of(port)));
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
                for (_, port_id) in self
                    .ix
                    .sg_ports
                    .range((*group, Id(0))..=(*group, Id(u128::MAX)))
                {
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
        let host_id = port.binding_host.as_ref()?;
        let host = self.t.hosts.get(host_id)?;
        Some(Neighbor {
            port_id: port.id,
            network_id: port.network_id,
            mac_address: port.mac_address,
            ips: port.fixed_ips.iter().map(|f| f.ip_address).collect(),
            allowed_address_pairs: port.allowed_address_pairs.clone(),
            host_id: host_id.clone(),
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

/// Counts one more port of `host` under an outer key (clones the name only once).
fn bump(hosts: &mut BTreeMap<HostId, u32>, host: &str) {
    match hosts.get_mut(host) {
        Some(n) => *n += 1,
        None => {
            hosts.insert(host.to_string(), 1);
        }
    }
}

/// Counts one port of `host` less, dropping empty entries.
fn unbump(map: &mut BTreeMap<Id, BTreeMap<HostId, u32>>, outer: Id, host: &str) {
    if let Some(hosts) = map.get_mut(&outer) {
        if let Some(n) = hosts.get_mut(host) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                hosts.remove(host);
            }
        }
        if hosts.is_empty() {
            map.remove(&outer);
        }
    }
}
