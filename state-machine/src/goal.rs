//! Per-host goal state: what each host agent must know, and the diffs that move it.
//!
//! The goal state of a host is a function of the state: its own ports, the VPCs,
//! subnets and routers of those ports, the neighbor entries of every other bound
//! port in those VPCs, the rules of the security groups its ports use, and the
//! members of the groups those rules name as remote groups. [`crate::State::goal_value`]
//! evaluates one key for one host from the indexes in O(log n);
//! [`crate::State::goal_state`] enumerates a whole host. Commands compute diffs by
//! recording a candidate set of objects and subscriptions before each change and
//! evaluating each once after the command ([`DiffCollector`]), so the cost is
//! proportional to what changed and to the hosts that must learn it.

use crate::ids::{HostId, Id, ProjectId};
use crate::model::{AddressPair, Direction, EtherType, FixedIp, Mac, Route, RouterInterface};
use crate::model::{Port, QosPolicy, QosRule, Router, SecurityGroupRule, Subnet, Vpc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The key of one object in a host's goal state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GoalKey {
    /// A VPC the host has ports in.
    Vpc(Id),
    /// A subnet of such a VPC.
    Subnet(Id),
    /// A router attached to such a VPC, once per attached VPC.
    Router {
        /// The VPC it is attached to.
        network_id: Id,
        /// The router.
        router_id: Id,
    },
    /// A rule of a group the host's ports use.
    SgRule(Id),
    /// A member port of a group named as remote group by such a rule.
    SgMember {
        /// The remote group.
        group_id: Id,
        /// The member port.
        port_id: Id,
    },
    /// A port bound to the host.
    Port(Id),
    /// A floating IP associated with a port bound to the host (local DNAT).
    FloatingIp(Id),
    /// A bound port in one of the host's VPCs (the host's own ones included:
    /// every host of a VPC receives the same neighbor set).
    Neighbor(Id),
}

/// What an agent needs of a VPC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcConfig {
    /// ID.
    pub id: Id,
    /// VXLAN identifier.
    pub vni: u32,
    /// MTU.
    pub mtu: u32,
    /// Address space.
    pub cidr: Option<IpNet>,
    /// Administrative state.
    pub admin_state_up: bool,
}

/// What an agent needs of a subnet (DHCP and routing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetConfig {
    /// ID.
    pub id: Id,
    /// VPC.
    pub network_id: Id,
    /// Range.
    pub cidr: IpNet,
    /// Gateway.
    pub gateway_ip: Option<IpAddr>,
    /// DHCP served locally.
    pub enable_dhcp: bool,
    /// DNS servers for DHCP.
    pub dns_nameservers: Vec<IpAddr>,
    /// Host routes for DHCP.
    pub host_routes: Vec<Route>,
}

/// What an agent needs of a router.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterConfig {
    /// ID.
    pub id: Id,
    /// The VPC this copy is delivered for.
    pub network_id: Id,
    /// Administrative state.
    pub admin_state_up: bool,
    /// Attached subnets.
    pub interfaces: Vec<RouterInterface>,
    /// Static routes.
    pub routes: Vec<Route>,
}

/// What an agent needs of one of its own ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortConfig {
    /// ID.
    pub id: Id,
    /// Project.
    pub project_id: ProjectId,
    /// VPC.
    pub network_id: Id,
    /// Addresses.
    pub fixed_ips: Vec<FixedIp>,
    /// MAC.
    pub mac_address: Mac,
    /// Device using it.
    pub device_id: String,
    /// Kind of device.
    pub device_owner: String,
    /// Groups whose rules apply.
    pub security_groups: Vec<Id>,
    /// Extra addresses.
    pub allowed_address_pairs: Vec<AddressPair>,
    /// Administrative state.
    pub admin_state_up: bool,
    /// Port security: when off the agent enforces neither security groups
    /// nor address checks on the port. Not in the `bincode_v1` encoding
    /// (agents of protocol 2 decode the objects as they were): the push
    /// protocol carries it in a field of its own (`GoalObject.port_security_disabled`).
    #[serde(skip, default = "port_security_default")]
    pub port_security_enabled: bool,
    /// The port's effective QoS policy (its own, else its network's). Not in
    /// the `bincode_v1` encoding either: the push protocol carries it in
    /// `GoalObject.qos_bincode_v1`.
    #[serde(skip)]
    pub qos: Option<QosConfig>,
}

/// What an agent needs of a port's effective QoS policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QosConfig {
    /// The policy.
    pub policy_id: Id,
    /// Its rules, sorted by ID.
    pub rules: Vec<QosRule>,
}

impl QosConfig {
    pub(crate) fn of(policy: &QosPolicy) -> QosConfig {
        QosConfig {
            policy_id: policy.id,
            rules: policy.rules.clone(),
        }
    }
}

/// What a `PortConfig` decoded from `bincode_v1` alone has.
fn port_security_default() -> bool {
    true
}

/// A remote port as a neighbor: where to tunnel to reach its addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbor {
    /// The remote port.
    pub port_id: Id,
    /// Its VPC.
    pub network_id: Id,
    /// Its MAC.
    pub mac_address: Mac,
    /// Its fixed addresses.
    pub ips: Vec<IpAddr>,
    /// Its allowed address pairs (VIPs).
    pub allowed_address_pairs: Vec<AddressPair>,
    /// The host it is bound to.
    pub host_id: HostId,
    /// That host's underlay address.
    pub host_ip: IpAddr,
}

/// What an agent needs of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleConfig {
    /// ID.
    pub id: Id,
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

/// One member of a remote group, as address-set entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgMember {
    /// The group.
    pub group_id: Id,
    /// The member port.
    pub port_id: Id,
    /// Its addresses.
    pub ips: Vec<IpAddr>,
}

/// One object of a host's goal state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GoalObject {
    /// See [`GoalKey::Vpc`].
    Vpc(VpcConfig),
    /// See [`GoalKey::Subnet`].
    Subnet(SubnetConfig),
    /// See [`GoalKey::Router`].
    Router(RouterConfig),
    /// See [`GoalKey::SgRule`].
    SgRule(RuleConfig),
    /// See [`GoalKey::SgMember`].
    SgMember(SgMember),
    /// See [`GoalKey::Port`].
    Port(PortConfig),
    /// See [`GoalKey::Neighbor`].
    Neighbor(Neighbor),
    /// See [`GoalKey::FloatingIp`].
    FloatingIp(FloatingIpConfig),
}

/// What an agent needs of a floating IP of one of its ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingIpConfig {
    /// ID.
    pub id: Id,
    /// The external address.
    pub floating_ip_address: IpAddr,
    /// The port it maps to.
    pub port_id: Id,
    /// The port's address it maps to.
    pub fixed_ip_address: IpAddr,
}

impl GoalObject {
    /// The key this object is stored under.
    pub fn key(&self) -> GoalKey {
        match self {
            GoalObject::Vpc(v) => GoalKey::Vpc(v.id),
            GoalObject::Subnet(s) => GoalKey::Subnet(s.id),
            GoalObject::Router(r) => GoalKey::Router {
                network_id: r.network_id,
                router_id: r.id,
            },
            GoalObject::SgRule(r) => GoalKey::SgRule(r.id),
            GoalObject::SgMember(m) => GoalKey::SgMember {
                group_id: m.group_id,
                port_id: m.port_id,
            },
            GoalObject::Port(p) => GoalKey::Port(p.id),
            GoalObject::Neighbor(n) => GoalKey::Neighbor(n.port_id),
            GoalObject::FloatingIp(f) => GoalKey::FloatingIp(f.id),
        }
    }
}

/// One change to a host's goal state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GoalChange {
    /// Add or replace the object under its key.
    Upsert(GoalObject),
    /// Remove the object under the key.
    Remove(GoalKey),
}

impl GoalChange {
    /// The key the change touches.
    pub fn key(&self) -> GoalKey {
        match self {
            GoalChange::Upsert(o) => o.key(),
            GoalChange::Remove(k) => *k,
        }
    }
}

/// The changes one command makes to one host's goal state, in key order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDiff {
    /// The host.
    pub host: HostId,
    /// The changes, at most one per key.
    pub changes: Vec<GoalChange>,
}

/// Who an object of the goal state is for. Objects of a shared scope are the
/// same for every host subscribed to it, so a change is computed once per scope,
/// not once per host; the push layer fans it out to the scope's audience.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Objects of one host only: its own ports.
    Host(HostId),
    /// A VPC, its subnets, attached routers and neighbor entries: for every host
    /// with a port in the VPC.
    Vpc(Id),
    /// The rules of a group: for every host with a port in the group.
    Rules(Id),
    /// The members of a group: for every host using a group whose rules name it.
    Members(Id),
}

/// Changes to one shared scope for an audience: either the delta for the hosts
/// subscribed before and after the command, or the scope's whole content (or its
/// removal) for the hosts that joined (or left) it. A scope may appear twice,
/// with disjoint audiences.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopedDiff {
    /// The scope.
    pub scope: Scope,
    /// Hosts that must apply the changes, sorted.
    pub audience: Vec<HostId>,
    /// The changes, in key order.
    pub changes: Vec<GoalChange>,
}

/// All goal-state changes of one command.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diffs {
    /// Changes for single hosts (their own ports), in host order.
    pub host: Vec<HostDiff>,
    /// Changes to shared scopes, in scope order.
    pub scoped: Vec<ScopedDiff>,
}

impl Diffs {
    /// Whether no host must learn anything.
    pub fn is_empty(&self) -> bool {
        self.host.is_empty() && self.scoped.is_empty()
    }

    /// Every host with at least one change, sorted.
    pub fn hosts(&self) -> Vec<HostId> {
        let mut out: Vec<HostId> = self.host.iter().map(|d| d.host.clone()).collect();
        for scoped in &self.scoped {
            out.extend(scoped.audience.iter().cloned());
        }
        out.sort();
        out.dedup();
        out
    }

    /// One host's changes, in key order (keys of different parts are disjoint).
    pub fn changes_for(&self, host: &str) -> Vec<GoalChange> {
        let mut out = Vec::new();
        if let Ok(i) = self.host.binary_search_by(|d| d.host.as_str().cmp(host)) {
            out.extend(self.host[i].changes.iter().cloned());
        }
        for scoped in &self.scoped {
            if scoped
                .audience
                .binary_search_by(|h| h.as_str().cmp(host))
                .is_ok()
            {
                out.extend(scoped.changes.iter().cloned());
            }
        }
        out.sort_by_key(GoalChange::key);
        out
    }

    /// The changes expanded per host (what each agent receives).
    pub fn per_host(&self) -> Vec<HostDiff> {
        self.hosts()
            .into_iter()
            .map(|host| {
                let changes = self.changes_for(&host);
                HostDiff { host, changes }
            })
            .collect()
    }
}

/// Collects the value before the command of every object and subscription the
/// command may touch; [`DiffCollector::finish`] evaluates each once against the
/// state after the command and emits the net changes. Values after are never
/// recorded step by step: a later step that changes a recorded key names it among
/// its own candidates, so the final state holds its last value.
#[derive(Default)]
pub(crate) struct DiffCollector {
    /// Objects of hosts' own scopes: host -> key -> value before (boxed, since
    /// most are absent and B-tree nodes move their values on insert). Hashed by
    /// host name (a batch touches hundreds of hosts, and comparing names in a
    /// tree was a tenth of a batch's apply); sorted by name in `finish`, so
    /// the hash order never reaches the diffs.
    host_objects: HostMap<BTreeMap<GoalKey, Option<Box<GoalObject>>>>,
    /// Objects of shared scopes: scope -> key -> value before.
    shared_objects: BTreeMap<Scope, BTreeMap<GoalKey, Option<Box<GoalObject>>>>,
    /// Subscriptions to shared scopes: scope -> host -> subscribed before
    /// (hashed by host name, sorted in `finish`, as `host_objects`).
    subs: BTreeMap<Scope, HostMap<bool>>,
    /// Records nothing and finishes empty ([`DiffCollector::off`]).
    off: bool,
}

impl DiffCollector {
    /// A collector that records nothing: [`DiffCollector::finish`] returns
    /// no diffs.
    pub(crate) fn off() -> DiffCollector {
        DiffCollector {
            off: true,
            ..DiffCollector::default()
        }
    }

    /// Records the current value of an object of `host`'s own scope.
    pub(crate) fn host_object(&mut self, state: &crate::State, host: &str, key: GoalKey) {
        self.host_object_with(host, key, || state.host_value(host, &key));
    }

    /// Records an object of `host`'s own scope that cannot exist before the
    /// command (its resource is being created), without evaluating it.
    pub(crate) fn new_host_object(&mut self, host: &str, key: GoalKey) {
        self.host_object_with(host, key, || None);
    }

    fn host_object_with(
        &mut self,
        host: &str,
        key: GoalKey,
        value: impl FnOnce() -> Option<GoalObject>,
    ) {
        if self.off {
            return;
        }
        let keys = self.host_objects.entry_ref(host).or_default();
        if let std::collections::btree_map::Entry::Vacant(slot) = keys.entry(key) {
            slot.insert(value().map(Box::new));
        }
    }

    /// Records the current value of an object of a shared scope.
    pub(crate) fn shared_object(&mut self, state: &crate::State, scope: &Scope, key: GoalKey) {
        self.shared_object_with(scope, key, || state.scope_value(scope, &key));
    }

    /// Records an object of a shared scope that cannot exist before the
    /// command (its resource is being created), without evaluating it.
    pub(crate) fn new_shared_object(&mut self, scope: &Scope, key: GoalKey) {
        self.shared_object_with(scope, key, || None);
    }

    fn shared_object_with(
        &mut self,
        scope: &Scope,
        key: GoalKey,
        value: impl FnOnce() -> Option<GoalObject>,
    ) {
        assert!(
            !matches!(scope, Scope::Host(_)),
            "host objects go through host_object"
        );
        if self.off {
            return;
        }
        if !self.shared_objects.contains_key(scope) {
            self.shared_objects.insert(scope.clone(), BTreeMap::new());
        }
        let Some(keys) = self.shared_objects.get_mut(scope) else {
            unreachable!("inserted above");
        };
        if let std::collections::btree_map::Entry::Vacant(slot) = keys.entry(key) {
            slot.insert(value().map(Box::new));
        }
    }

    /// Records whether `host` is subscribed to a shared scope now.
    pub(crate) fn sub(&mut self, state: &crate::State, host: &str, scope: &Scope) {
        if self.off {
            return;
        }
        if !self.subs.contains_key(scope) {
            self.subs.insert(scope.clone(), HostMap::default());
        }
        let Some(hosts) = self.subs.get_mut(scope) else {
            unreachable!("inserted above");
        };
        hosts
            .entry_ref(host)
            .or_insert_with(|| state.subscribed(host, scope));
    }

    /// The net changes, evaluated against the state after the command.
    pub(crate) fn finish(self, state: &crate::State) -> Diffs {
        if self.off {
            return Diffs::default();
        }
        // Hosts that joined or left each shared scope: the scope's content (or its
        // removal) is computed once per scope and shared by them, not once per host.
        let mut joined: BTreeMap<&Scope, Vec<HostId>> = BTreeMap::new();
        let mut left: BTreeMap<&Scope, Vec<HostId>> = BTreeMap::new();
        for (scope, hosts) in &self.subs {
            for (host, before) in by_name(hosts) {
                let after = state.subscribed(host, scope);
                if *before == after {
                    continue;
                }
                let side = if after { &mut joined } else { &mut left };
                // Hosts come in order within a scope, so each list is sorted.
                side.entry(scope).or_default().push(host.clone());
            }
        }
        let mut membership = Vec::new();
        for (scope, hosts) in &joined {
            let changes = state
                .scope_content(scope)
                .into_iter()
                .map(GoalChange::Upsert)
                .collect();
            membership.push(ScopedDiff {
                scope: (*scope).clone(),
                audience: hosts.clone(),
                changes,
            });
        }
        for (scope, hosts) in left {
            let changes = self
                .keys_before(state, scope)
                .into_iter()
                .map(GoalChange::Remove)
                .collect();
            membership.push(ScopedDiff {
                scope: scope.clone(),
                audience: hosts,
                changes,
            });
        }
        let mut scoped = Vec::new();
        for (scope, keys) in &self.shared_objects {
            let changes: Vec<GoalChange> = keys
                .iter()
                .filter_map(|(key, before)| net_change(key, before, state.scope_value(scope, key)))
                .collect();
            if changes.is_empty() {
                continue;
            }
            let joiners = joined.get(scope);
            let audience: Vec<HostId> = state
                .subscribers(scope)
                .into_iter()
                .filter(|h| joiners.is_none_or(|j| j.binary_search(h).is_err()))
                .collect();
            if !audience.is_empty() {
                scoped.push(ScopedDiff {
                    scope: scope.clone(),
                    audience,
                    changes,
                });
            }
        }
        scoped.extend(membership.into_iter().filter(|d| !d.changes.is_empty()));
        let host = self
            .host_objects
            .into_iter()
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .filter_map(|(host, keys)| {
                let changes: Vec<GoalChange> = keys
                    .iter()
                    .filter_map(|(key, before)| {
                        net_change(key, before, state.host_value(&host, key))
                    })
                    .collect();
                (!changes.is_empty()).then_some(HostDiff { host, changes })
            })
            .collect();
        Diffs { host, scoped }
    }

    /// Keys of a scope's content before the command: its content now, minus what
    /// the command added, plus what it removed.
    fn keys_before(&self, state: &crate::State, scope: &Scope) -> Vec<GoalKey> {
        let mut keys: std::collections::BTreeSet<GoalKey> = state
            .scope_content(scope)
            .iter()
            .map(GoalObject::key)
            .collect();
        for (key, before) in self.shared_objects.get(scope).into_iter().flatten() {
            if before.is_some() {
                keys.insert(*key);
            } else {
                keys.remove(key);
            }
        }
        keys.into_iter().collect()
    }
}

/// A map keyed by host name for one command's collection: hashed with a
/// per-process seed (host names come from clients), never iterated unsorted.
#[expect(
    clippy::disallowed_types,
    reason = "probed while collecting; walked only through `by_name` or a sort"
)]
type HostMap<V> = hashbrown::HashMap<HostId, V, std::hash::RandomState>;

/// The entries of a [`HostMap`] in host-name order.
fn by_name<V>(map: &HostMap<V>) -> Vec<(&HostId, &V)> {
    let mut entries: Vec<(&HostId, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    entries
}

/// The change that moves `key` from `before` to `after`, if they differ.
fn net_change(
    key: &GoalKey,
    before: &Option<Box<GoalObject>>,
    after: Option<GoalObject>,
) -> Option<GoalChange> {
    if before.as_deref() == after.as_ref() {
        return None;
    }
    Some(match after {
        Some(object) => GoalChange::Upsert(object),
        None => GoalChange::Remove(*key),
    })
}

/// A host's whole goal state.
pub type GoalState = BTreeMap<GoalKey, GoalObject>;

/// Applies changes to a goal-state table, as an agent would.
pub fn apply_changes(table: &mut GoalState, changes: &[GoalChange]) {
    for change in changes {
        match change {
            GoalChange::Upsert(object) => {
                table.insert(object.key(), object.clone());
            }
            GoalChange::Remove(key) => {
                table.remove(key);
            }
        }
    }
}

/// A digest of a goal-state table, equal on every replica and agent holding it.
pub fn goal_digest(table: &GoalState) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for object in table.values() {
        // Encoding a plain data enum cannot fail; an empty slice would only weaken
        // the digest, never make two different tables equal by construction.
        let bytes =
            bincode::serde::encode_to_vec(object, bincode::config::standard()).unwrap_or_default();
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    *hasher.finalize().as_bytes()
}

impl VpcConfig {
    pub(crate) fn of(v: &Vpc) -> VpcConfig {
        VpcConfig {
            id: v.id,
            vni: v.vni,
            mtu: v.mtu,
            cidr: v.cidr,
            admin_state_up: v.admin_state_up,
        }
    }
}

impl SubnetConfig {
    pub(crate) fn of(s: &Subnet) -> SubnetConfig {
        SubnetConfig {
            id: s.id,
            network_id: s.network_id,
            cidr: s.cidr,
            gateway_ip: s.gateway_ip,
            enable_dhcp: s.enable_dhcp,
            dns_nameservers: s.dns_nameservers.clone(),
            host_routes: s.host_routes.clone(),
        }
    }
}

impl RouterConfig {
    pub(crate) fn of(r: &Router, network_id: Id) -> RouterConfig {
        RouterConfig {
            id: r.id,
            network_id,
            admin_state_up: r.admin_state_up,
            interfaces: r.interfaces.clone(),
            routes: r.routes.clone(),
        }
    }
}

impl PortConfig {
    pub(crate) fn of(p: &Port) -> PortConfig {
        PortConfig {
            id: p.id,
            project_id: p.meta.project_id.clone(),
            network_id: p.network_id,
            fixed_ips: p.fixed_ips.to_vec(),
            mac_address: p.mac_address,
            device_id: p.device_id.to_string(),
            device_owner: p.device_owner.to_string(),
            security_groups: p.security_groups.to_vec(),
            allowed_address_pairs: p
                .allowed_address_pairs
                .iter()
                .map(|pair| AddressPair::from(*pair))
                .collect(),
            admin_state_up: p.admin_state_up,
            port_security_enabled: p.port_security_enabled,
            qos: None,
        }
    }
}

impl RuleConfig {
    pub(crate) fn of(r: &SecurityGroupRule) -> RuleConfig {
        RuleConfig {
            id: r.id,
            security_group_id: r.security_group_id,
            direction: r.direction,
            ethertype: r.ethertype,
            protocol: r.protocol,
            port_range_min: r.port_range_min,
            port_range_max: r.port_range_max,
            remote_ip_prefix: r.remote_ip_prefix,
            remote_group_id: r.remote_group_id,
        }
    }
}
