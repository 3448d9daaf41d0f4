//! Security groups and anti-spoofing as nftables objects (pure: no I/O).
//!
//! The agent owns two tables named [`TABLE`], one per family, in its own
//! network namespace, and nothing else in nftables:
//!
//! - `bridge alcor` (stateless, sees the bridge port a frame came from):
//!   the base chain `forward` jumps through the map `ports` (host veth →
//!   chain) to one anti-spoofing chain `sp-<port ID>` per local port, which
//!   lets a frame through only from the port's MAC with one of its fixed IPs
//!   or allowed address pairs (IPv4, ARP with a matching sender, IPv6), its
//!   IPv6 link-local addresses and DHCP discovery; everything else from
//!   the port is dropped.
//! - `inet alcor` (stateful): this kernel has no bridge conntrack
//!   (`nf_conntrack_bridge`), so bridged IP traffic is filtered where
//!   `br_netfilter` hands it to the IP hooks (the bridges' default
//!   `nf_call_iptables`), as Neutron's hybrid iptables firewall does. The
//!   base chain `prerouting` (priority -300, before conntrack at -200)
//!   puts each VPC's traffic in a conntrack zone of its own (`ct zone`,
//!   from the bridge; see [`zone`]), so VPCs with one CIDR do not share
//!   connections. The base chain `forward` jumps
//!   through the maps `egress` and `ingress` (bridge . MAC → chain) to the
//!   source port's `eg-<port ID>` chain and the destination port's
//!   `in-<port ID>` chain; a port's MAC identifies it on its bridge
//!   because the bridge table drops every frame a port sends from another
//!   MAC. Each port chain accepts established and related traffic, drops
//!   invalid traffic, lets IPv6 neighbour discovery through, then jumps
//!   to the chain of each of the port's groups for its direction, and
//!   ends in `drop`: default deny both ways, as Neutron's, so a port
//!   without groups sends and receives nothing. A group's chains
//!   `gi-<group ID>` (ingress) and `ge-<group ID>` (egress) hold one rule
//!   per security-group rule of the group (protocol, port range or ICMP
//!   type/code, remote prefix or remote group), shared by every member
//!   port, so a rule change rewrites one chain however many ports the
//!   group has. An ingress rule accepts; an egress rule goes to the chain
//!   `to-ingress` (the destination's ingress chain through the map
//!   `ingress`, then accept), because a `return` would end only the group
//!   chain, not the port's. Remote groups are named sets
//!   `g4-<group ID>`/`g6-<group ID>` of their members' addresses.
//!
//! Traffic to or from a port that is not local (a VXLAN device on the
//! bridge) is judged by the other host's chains for that port; same-host
//! traffic passes both the sender's egress and the receiver's ingress
//! chain here. Routed traffic crosses the bridge twice (port → router
//! copy, router copy → port) in the VPC's zone: router MACs have no
//! chains, so the sender's egress chain judges the first crossing and the
//! receiver's ingress chain the second, the second still `new` to
//! conntrack (no reply seen yet).
//!
//! [`Ruleset`] is the desired content of both tables; [`Existing`] is what
//! a read found; [`diff`] is the smallest batch of `nft -j` commands from
//! one to the other: set and map elements are added and deleted one by
//! one, and only chains whose rules differ are rewritten (flushed and
//! refilled in the same atomic batch). Every rule carries a comment with a
//! hash of its statements, because the kernel gives rules back in a
//! normalised form (`meta l4proto 6 th dport 22` reads back as
//! `tcp dport 22`): rules are compared by comment, never by expression.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use alcor_state_machine::goal::{PortConfig, RuleConfig};
use alcor_state_machine::model::{Direction, EtherType};
use alcor_state_machine::{GoalObject, GoalState, Id};
use ipnet::IpNet;
use serde_json::{json, Value};

use crate::limits;
use crate::plan::PortPlan;

/// ICMPv6 neighbour solicitation and advertisement (RFC 4861), adjacent.
const ND_SOLICIT: u8 = 135;
const ND_ADVERT: u8 = 136;

/// Name of the agent's table in both families.
pub const TABLE: &str = "alcor";
/// Anti-spoofing chains: `sp-` + the port ID (bridge family).
pub const SPOOF_PREFIX: &str = "sp-";
/// Egress chains: `eg-` + the port ID (inet family).
pub const EGRESS_PREFIX: &str = "eg-";
/// Ingress chains: `in-` + the port ID (inet family).
pub const INGRESS_PREFIX: &str = "in-";
/// Egress rules of a security group: `ge-` + the group ID (inet family).
pub const GROUP_EGRESS_PREFIX: &str = "ge-";
/// Ingress rules of a security group: `gi-` + the group ID (inet family).
pub const GROUP_INGRESS_PREFIX: &str = "gi-";
/// Where an egress rule that matched goes: the destination port's
/// ingress chain if it is local and filtered, else accept (inet family).
pub const TO_INGRESS: &str = "to-ingress";
/// The port chain prefixes (one chain each per filtered port).
const PORT_PREFIXES: [&str; 3] = [EGRESS_PREFIX, INGRESS_PREFIX, SPOOF_PREFIX];
/// The group chain prefixes (one chain each per group of a filtered port).
const GROUP_CHAIN_PREFIXES: [&str; 2] = [GROUP_EGRESS_PREFIX, GROUP_INGRESS_PREFIX];
/// IPv4 member sets of remote groups: `g4-` + the group ID.
pub const GROUP4_PREFIX: &str = "g4-";
/// IPv6 member sets of remote groups: `g6-` + the group ID.
pub const GROUP6_PREFIX: &str = "g6-";

/// An nftables family the agent has a table in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// Stateful filtering (IPv4 and IPv6).
    Inet,
    /// Anti-spoofing per bridge port.
    Bridge,
}

impl Family {
    /// The family's name in nft.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Bridge => "bridge",
        }
    }
}

/// What a rule's remote end must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    /// Anything (of the rule's family).
    Any,
    /// An address in this prefix.
    Prefix(IpNet),
    /// A member of this group.
    Group(Id),
}

/// One security-group rule as it applies to one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulePlan {
    /// IPv6 (else IPv4).
    pub ipv6: bool,
    /// IP protocol; `None`: any.
    pub protocol: Option<u8>,
    /// Destination port range (TCP, UDP, SCTP, DCCP, UDP-Lite) or ICMP
    /// type and code (`port_range_min`, `port_range_max`), as Neutron.
    pub range: (Option<u16>, Option<u16>),
    /// The remote end (source of ingress, destination of egress traffic).
    pub remote: Remote,
}

/// The filters of one local port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortFilter {
    /// The port.
    pub port_id: Id,
    /// Host end of its veth pair (a port of `bridge`).
    pub veth: String,
    /// The VPC bridge it is on.
    pub bridge: String,
    /// Its MAC.
    pub mac: [u8; 6],
    /// What it may send from: (MAC, addresses), sorted.
    pub sources: Vec<([u8; 6], IpNet)>,
    /// Its security groups, sorted and without repeats (their rules are
    /// in [`Firewall::rules`]).
    pub groups: Vec<Id>,
}

/// The rules of one security group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupRules {
    /// Rules of traffic towards its members, by rule ID.
    pub ingress: Vec<RulePlan>,
    /// Rules of traffic from its members, by rule ID.
    pub egress: Vec<RulePlan>,
}

/// The whole firewall of one host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Firewall {
    /// Per port with port security.
    pub ports: BTreeMap<Id, PortFilter>,
    /// The groups of those ports → their rules.
    pub rules: BTreeMap<Id, GroupRules>,
    /// Remote groups the local ports' rules name → their members' addresses.
    pub groups: BTreeMap<Id, BTreeSet<IpAddr>>,
    /// VPC bridge → conntrack zone.
    pub zones: BTreeMap<String, u16>,
}

/// Whether a port's traffic is filtered: a port without port security
/// gets no chains and no map elements, so neither anti-spoofing nor its
/// groups apply to it (Neutron's `port_security_enabled` false).
fn port_security_enabled(port: &PortConfig) -> bool {
    port.port_security_enabled
}

/// The conntrack zone of VNI `vni`: zones are 16 bits, VNIs 24, so two
/// VPCs on one host share a zone only when their VNIs are equal modulo
/// 65,535 (then a connection of one with the same addresses and ports as
/// one of the other would be mistaken for it).
pub fn zone(vni: u32) -> u16 {
    u16::try_from(vni % 65_535 + 1).unwrap_or(u16::MAX)
}

/// The firewall of the planned local ports `ports` (by veth) and bridges
/// `bridges` (by VNI), from goal state `goal`; the ports whose filters
/// cannot be planned, with the reason.
pub fn plan_firewall(
    goal: &GoalState,
    ports: &BTreeMap<String, PortPlan>,
    bridges: &BTreeMap<u32, String>,
) -> (Firewall, BTreeMap<Id, String>) {
    let mut configs: BTreeMap<Id, &PortConfig> = BTreeMap::new();
    let mut rules: BTreeMap<Id, Vec<&RuleConfig>> = BTreeMap::new();
    let mut members: BTreeMap<Id, BTreeSet<IpAddr>> = BTreeMap::new();
    for object in goal.values() {
        match object {
            GoalObject::Port(port) => {
                configs.insert(port.id, port);
            }
            GoalObject::SgRule(rule) => rules.entry(rule.security_group_id).or_default().push(rule),
            GoalObject::SgMember(member) => {
                members
                    .entry(member.group_id)
                    .or_default()
                    .extend(member.ips.iter().copied());
            }
            _ => {}
        }
    }
    let mut out = Firewall::default();
    let mut failed = BTreeMap::new();
    for (vni, bridge) in bridges {
        out.zones.insert(bridge.clone(), zone(*vni));
    }
    for planned in ports.values() {
        let Some(config) = configs.get(&planned.port_id) else {
            continue;
        };
        if !port_security_enabled(config) {
            continue;
        }
        let Some(bridge) = bridges.get(&planned.vni) else {
            continue;
        };
        match port_filter(config, planned, bridge, &rules) {
            Ok(filter) => {
                out.ports.insert(planned.port_id, filter);
            }
            Err(reason) => {
                failed.insert(planned.port_id, reason);
            }
        }
    }
    for filter in out.ports.values() {
        for group in &filter.groups {
            out.rules
                .entry(*group)
                .or_insert_with(|| group_rules(rules.get(group)));
        }
    }
    let mut n_members = 0usize;
    for group_rules in out.rules.values() {
        for rule in group_rules.ingress.iter().chain(&group_rules.egress) {
            if let Remote::Group(group) = rule.remote {
                if out.groups.contains_key(&group) {
                    continue;
                }
                // Past the bound a group has fewer members here: its rules
                // allow less, never more.
                let addresses: BTreeSet<IpAddr> = members
                    .get(&group)
                    .into_iter()
                    .flatten()
                    .copied()
                    .take(limits::GROUP_MEMBERS_PER_HOST_MAX.saturating_sub(n_members))
                    .collect();
                n_members += addresses.len();
                out.groups.insert(group, addresses);
            }
        }
    }
    (out, failed)
}

fn port_filter(
    config: &PortConfig,
    planned: &PortPlan,
    bridge: &str,
    rules: &BTreeMap<Id, Vec<&RuleConfig>>,
) -> Result<PortFilter, String> {
    let mac = config.mac_address.0;
    let mut sources: Vec<([u8; 6], IpNet)> = config
        .fixed_ips
        .iter()
        .map(|f| (mac, IpNet::from(f.ip_address)))
        .collect();
    for pair in &config.allowed_address_pairs {
        let pair_mac = pair.mac_address.map_or(mac, |m| m.0);
        sources.push((pair_mac, pair.ip_address.trunc()));
    }
    sources.sort();
    sources.dedup();
    if sources.len() > limits::SOURCES_PER_PORT_MAX {
        return Err(format!(
            "more than {} fixed IPs and allowed address pairs",
            limits::SOURCES_PER_PORT_MAX
        ));
    }
    let mut groups = config.security_groups.clone();
    groups.sort();
    groups.dedup();
    let n_rules: usize = groups
        .iter()
        .map(|g| rules.get(g).map_or(0, Vec::len))
        .sum();
    if n_rules > limits::RULES_PER_PORT_MAX {
        return Err(format!(
            "more than {} security group rules",
            limits::RULES_PER_PORT_MAX
        ));
    }
    Ok(PortFilter {
        port_id: planned.port_id,
        veth: planned.veth.clone(),
        bridge: bridge.to_string(),
        mac,
        sources,
        groups,
    })
}

/// The rules of one group (`of_group`: its rules in any order).
fn group_rules(of_group: Option<&Vec<&RuleConfig>>) -> GroupRules {
    let mut of_group = of_group.cloned().unwrap_or_default();
    of_group.sort_by_key(|r| r.id);
    let mut out = GroupRules::default();
    for rule in of_group {
        let planned_rule = rule_plan(rule);
        match rule.direction {
            Direction::Ingress => out.ingress.push(planned_rule),
            Direction::Egress => out.egress.push(planned_rule),
        }
    }
    out
}

fn rule_plan(rule: &RuleConfig) -> RulePlan {
    let remote = match (rule.remote_ip_prefix, rule.remote_group_id) {
        (Some(prefix), _) => Remote::Prefix(prefix.trunc()),
        (None, Some(group)) => Remote::Group(group),
        (None, None) => Remote::Any,
    };
    RulePlan {
        ipv6: rule.ethertype == EtherType::Ipv6,
        protocol: rule.protocol,
        range: (rule.port_range_min, rule.port_range_max),
        remote,
    }
}

/// A chain's desired form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSpec {
    /// Base chain: (hook, priority); `None`: a regular chain.
    pub base: Option<(&'static str, i32)>,
    /// Its rules in order: (statements, comment); shared, so a port's
    /// chains memoized by [`PortChains`] cost no copy.
    pub rules: Rules,
}

/// The rules of one chain in order: (statements, comment).
pub type Rules = Arc<[(Value, String)]>;

/// The chains of each port filter from the last [`ruleset_cached`] call,
/// for the next: a port whose filter is unchanged reuses them (building,
/// printing and hashing every rule of 1,000 ports was most of an
/// unchanged pass). Holds only the ports of that last call.
#[derive(Clone, Debug, Default)]
pub struct PortChains {
    by_port: BTreeMap<Id, (PortFilter, [Rules; 3])>,
}

/// A named set or verdict map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetSpec {
    /// Key type (one or more nft type names; more than one: a concatenation).
    pub key: Vec<&'static str>,
    /// Verdict map (elements map to a chain to jump to) or plain set.
    pub map: bool,
    /// Elements: key parts → chain to jump to (empty for a plain set).
    pub elements: BTreeMap<Vec<String>, String>,
}

/// What one family's table holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableSpec {
    /// By name.
    pub chains: BTreeMap<String, ChainSpec>,
    /// Sets and maps by name.
    pub sets: BTreeMap<String, SetSpec>,
}

/// The desired content of both tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Per family.
    pub tables: BTreeMap<Family, TableSpec>,
}

/// What a read of the kernel found in one of the agent's tables: chains
/// with their rules' comments, sets and maps with their elements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExistingTable {
    /// Chain → comments of its rules in order (`""` for a rule without).
    pub chains: BTreeMap<String, Vec<String>>,
    /// Set or map → its elements (key parts → jump target, `""` for sets).
    pub sets: BTreeMap<String, BTreeMap<Vec<String>, String>>,
}

/// What a read found: the tables that exist.
pub type Existing = BTreeMap<Family, ExistingTable>;

/// What a read finds once `ruleset` was applied in full (the reconciler's
/// memory of its tables between two passes).
pub fn applied(ruleset: &Ruleset) -> Existing {
    ruleset
        .tables
        .iter()
        .map(|(family, spec)| {
            let table = ExistingTable {
                chains: spec
                    .chains
                    .iter()
                    .map(|(n, c)| (n.clone(), c.rules.iter().map(|r| r.1.clone()).collect()))
                    .collect(),
                sets: spec
                    .sets
                    .iter()
                    .map(|(n, s)| (n.clone(), s.elements.clone()))
                    .collect(),
            };
            (*family, table)
        })
        .collect()
}

/// Text of a MAC as nft prints it.
pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn rule(statements: Value) -> (Value, String) {
    let hash = blake3::hash(statements.to_string().as_bytes());
    let comment: String = hash.as_bytes()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (statements, comment)
}

fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn net_value(net: &IpNet) -> Value {
    if net.prefix_len() == net.max_prefix_len() {
        json!(net.addr().to_string())
    } else {
        json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
    }
}

/// Statements of one security-group rule in a group chain; `verdict`
/// ends it. `None` for a rule that can never match (a remote prefix of
/// the other family: Neutron refuses such rules; the plan stays total).
fn rule_statements(rule: &RulePlan, ingress: bool, verdict: &Value) -> Option<Value> {
    let family = if rule.ipv6 { "ip6" } else { "ip" };
    let mut out = vec![matches(
        "==",
        meta("nfproto"),
        json!(if rule.ipv6 { "ipv6" } else { "ipv4" }),
    )];
    let address = if ingress { "saddr" } else { "daddr" };
    match &rule.remote {
        Remote::Any => {}
        Remote::Prefix(net) => {
            if net.addr().is_ipv6() != rule.ipv6 {
                return None;
            }
            out.push(matches("==", payload(family, address), net_value(net)));
        }
        Remote::Group(group) => {
            let prefix = if rule.ipv6 {
                GROUP6_PREFIX
            } else {
                GROUP4_PREFIX
            };
            out.push(matches(
                "==",
                payload(family, address),
                json!(format!("@{prefix}{group}")),
            ));
        }
    }
    if let Some(protocol) = rule.protocol {
        out.push(matches("==", meta("l4proto"), json!(protocol)));
        let (min, max) = rule.range;
        match protocol {
            // TCP, DCCP, UDP, UDP-Lite, SCTP: a destination port range.
            6 | 17 | 33 | 132 | 136 => {
                if let Some(min) = min {
                    let max = max.unwrap_or(min).max(min);
                    let right = if max == min {
                        json!(min)
                    } else {
                        json!({"range": [min, max]})
                    };
                    out.push(matches("==", payload("th", "dport"), right));
                }
            }
            // ICMP and ICMPv6: type, then code.
            1 | 58 => {
                let icmp = if protocol == 1 { "icmp" } else { "icmpv6" };
                if let Some(kind) = min {
                    out.push(matches("==", payload(icmp, "type"), json!(kind)));
                    if let Some(code) = max {
                        out.push(matches("==", payload(icmp, "code"), json!(code)));
                    }
                }
            }
            _ => {}
        }
    }
    out.push(verdict.clone());
    Some(Value::Array(out))
}

/// The rules every port chain starts with: established and related
/// accepted, invalid dropped, IPv6 neighbour discovery (solicitations and
/// advertisements, ICMPv6 types 135 and 136) accepted. The types are a
/// range, not a set: a set literal is an anonymous set in the kernel, one
/// per chain, and 2,000 of them at 1,000 ports made every batch's `nft`
/// load them into its cache (10 of its 18 ms for a port created over
/// 1,000 ports; benches/README).
fn stateful_head() -> Vec<(Value, String)> {
    vec![
        rule(json!([
            matches("in", json!({"ct": {"key": "state"}}), json!(["established", "related"])),
            {"accept": null}
        ])),
        rule(json!([
            matches("in", json!({"ct": {"key": "state"}}), json!("invalid")),
            {"drop": null}
        ])),
        rule(json!([
            matches("==", payload("icmpv6", "type"), json!({"range": [ND_SOLICIT, ND_ADVERT]})),
            {"accept": null}
        ])),
    ]
}

/// The anti-spoofing rules of one port (each ends in `return`, the last
/// drops).
fn spoof_rules(filter: &PortFilter) -> Vec<(Value, String)> {
    let own = json!(mac_text(&filter.mac));
    let mut out = Vec::new();
    for (mac, net) in &filter.sources {
        let mac = json!(mac_text(mac));
        let from_mac = matches("==", payload("ether", "saddr"), mac.clone());
        if net.addr().is_ipv4() {
            out.push(rule(json!([
                from_mac.clone(),
                matches("==", payload("ip", "saddr"), net_value(net)),
                {"return": null}
            ])));
            out.push(rule(json!([
                from_mac,
                matches("==", payload("arp", "saddr ether"), mac),
                matches("==", payload("arp", "saddr ip"), net_value(net)),
                {"return": null}
            ])));
        } else {
            out.push(rule(json!([
                from_mac,
                matches("==", payload("ip6", "saddr"), net_value(net)),
                {"return": null}
            ])));
        }
    }
    let from_own = matches("==", payload("ether", "saddr"), own);
    // Link-local IPv6 (neighbour discovery) and DHCP discovery.
    out.push(rule(json!([
        from_own.clone(),
        matches("==", payload("ip6", "saddr"), json!({"prefix": {"addr": "fe80::", "len": 10}})),
        {"return": null}
    ])));
    out.push(rule(json!([
        from_own,
        matches("==", payload("ip", "saddr"), json!("0.0.0.0")),
        matches("==", payload("udp", "dport"), json!(67)),
        {"return": null}
    ])));
    out.push(rule(json!([{"drop": null}])));
    out
}

/// The desired content of the agent's tables for `firewall`.
pub fn ruleset(firewall: &Firewall) -> Ruleset {
    ruleset_cached(firewall, &mut PortChains::default())
}

/// The egress, ingress and anti-spoofing chains of one port: the
/// stateful head, a jump to each of its groups' chains, `drop`.
fn port_rules(filter: &PortFilter) -> [Rules; 3] {
    let chain = |group_prefix: &str| -> Rules {
        let mut rules = stateful_head();
        rules.extend(
            filter
                .groups
                .iter()
                .map(|g| rule(json!([{"jump": {"target": format!("{group_prefix}{g}")}}]))),
        );
        rules.push(rule(json!([{"drop": null}])));
        rules.into()
    };
    [
        chain(GROUP_EGRESS_PREFIX),
        chain(GROUP_INGRESS_PREFIX),
        spoof_rules(filter).into(),
    ]
}

/// The egress and ingress chains of one group: a rule per security-group
/// rule (egress ones go on to the destination's ingress chain, ingress
/// ones accept).
fn group_chains(rules: &GroupRules) -> [Rules; 2] {
    let to_ingress = json!({"goto": {"target": TO_INGRESS}});
    let accept = json!({"accept": null});
    let eg: Vec<_> = rules
        .egress
        .iter()
        .filter_map(|r| rule_statements(r, false, &to_ingress).map(rule))
        .collect();
    let ing: Vec<_> = rules
        .ingress
        .iter()
        .filter_map(|r| rule_statements(r, true, &accept).map(rule))
        .collect();
    [eg.into(), ing.into()]
}

/// [`ruleset`], reusing the chains `cache` holds for ports whose filter
/// did not change, and leaving in it this call's.
pub fn ruleset_cached(firewall: &Firewall, cache: &mut PortChains) -> Ruleset {
    ruleset_of(firewall, cache, None)
}

/// The part of the agent's tables a change from one [`Firewall`] to the
/// next touches: the base chains, the chains of the ports whose filter
/// differs (and the map elements that jump to them), the chains of the
/// groups whose rules differ, and the member sets of the groups whose
/// members differ. An incremental pass builds, reads back from its
/// memory and diffs only this part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Ports whose filter was added, changed or removed.
    pub ports: BTreeSet<Id>,
    /// Groups whose rules were added, changed or removed.
    pub rules: BTreeSet<Id>,
    /// Remote groups whose members were added, changed or removed.
    pub groups: BTreeSet<Id>,
}

impl Scope {
    /// What differs from `last` to `next`.
    pub fn between(last: &Firewall, next: &Firewall) -> Scope {
        fn changed<V: PartialEq>(a: &BTreeMap<Id, V>, b: &BTreeMap<Id, V>) -> BTreeSet<Id> {
            let gone = a.keys().filter(|k| !b.contains_key(k));
            let differ = b
                .iter()
                .filter(|(k, v)| a.get(k) != Some(*v))
                .map(|(k, _)| k);
            gone.chain(differ).copied().collect()
        }
        Scope {
            ports: changed(&last.ports, &next.ports),
            rules: changed(&last.rules, &next.rules),
            groups: changed(&last.groups, &next.groups),
        }
    }

    /// The names of the port and group chains in scope.
    fn chains(&self) -> BTreeSet<String> {
        let ports = self
            .ports
            .iter()
            .flat_map(|id| PORT_PREFIXES.map(|p| format!("{p}{id}")));
        let groups = self
            .rules
            .iter()
            .flat_map(|id| GROUP_CHAIN_PREFIXES.map(|p| format!("{p}{id}")));
        ports.chain(groups).collect()
    }

    /// The names of the group sets in scope.
    fn sets(&self) -> BTreeSet<String> {
        self.groups
            .iter()
            .flat_map(|id| [GROUP4_PREFIX, GROUP6_PREFIX].map(|p| format!("{p}{id}")))
            .collect()
    }
}

/// Whether chain `name` is one of the fixed chains (base chains and
/// [`TO_INGRESS`], always in a scope).
fn is_base_chain(name: &str) -> bool {
    !PORT_PREFIXES
        .iter()
        .chain(&GROUP_CHAIN_PREFIXES)
        .any(|p| name.starts_with(p))
}

/// Whether set `name` is a group's member set (else a dispatch map).
fn is_group_set(name: &str) -> bool {
    name.starts_with(GROUP4_PREFIX) || name.starts_with(GROUP6_PREFIX)
}

/// The desired content of the part of the tables `scope` names (see
/// [`Scope`]), reusing and updating `cache` for those ports only.
pub fn ruleset_scoped(firewall: &Firewall, cache: &mut PortChains, scope: &Scope) -> Ruleset {
    ruleset_of(firewall, cache, Some(scope))
}

/// The part of `existing` that `scope` names: base chains, the scope's
/// port chains, the dispatch maps with only the elements that jump to
/// them, and the scope's group sets.
pub fn restrict(existing: &Existing, scope: &Scope) -> Existing {
    let chains = scope.chains();
    let sets = scope.sets();
    existing
        .iter()
        .map(|(family, table)| {
            let part = ExistingTable {
                chains: table
                    .chains
                    .iter()
                    .filter(|(n, _)| is_base_chain(n) || chains.contains(*n))
                    .map(|(n, c)| (n.clone(), c.clone()))
                    .collect(),
                sets: table
                    .sets
                    .iter()
                    .filter(|(n, _)| !is_group_set(n) || sets.contains(*n))
                    .map(|(n, elements)| {
                        let kept = elements
                            .iter()
                            .filter(|(_, t)| is_group_set(n) || chains.contains(*t))
                            .map(|(k, t)| (k.clone(), t.clone()))
                            .collect();
                        (n.clone(), kept)
                    })
                    .collect(),
            };
            (*family, part)
        })
        .collect()
}

/// Replaces in `memory` the part `scope` names with `part` (what a read
/// of that part finds once the scoped batch is applied).
pub fn merge(memory: &mut Existing, scope: &Scope, part: Existing) {
    let chains = scope.chains();
    let sets = scope.sets();
    for table in memory.values_mut() {
        table
            .chains
            .retain(|n, _| !(is_base_chain(n) || chains.contains(n)));
        table
            .sets
            .retain(|n, _| !is_group_set(n) || !sets.contains(n));
        for (n, elements) in table.sets.iter_mut() {
            if !is_group_set(n) {
                elements.retain(|_, t| !chains.contains(t));
            }
        }
    }
    for (family, part) in part {
        let table = memory.entry(family).or_default();
        table.chains.extend(part.chains);
        for (n, elements) in part.sets {
            table.sets.entry(n).or_default().extend(elements);
        }
    }
}

fn ruleset_of(firewall: &Firewall, cache: &mut PortChains, scope: Option<&Scope>) -> Ruleset {
    let mut inet = TableSpec::default();
    let mut bridge = TableSpec::default();
    let zone_rules = firewall
        .zones
        .iter()
        .map(|(bridge, zone)| {
            rule(json!([
                matches("==", meta("iifname"), json!(bridge)),
                {"mangle": {"key": {"ct": {"key": "zone"}}, "value": zone}}
            ]))
        })
        .collect();
    inet.chains.insert(
        "prerouting".to_string(),
        ChainSpec {
            base: Some(("prerouting", -300)),
            rules: zone_rules,
        },
    );
    let dispatch = |address: &str, map: &str| {
        rule(json!([{"vmap": {
            "key": {"concat": [meta("iifname"), payload("ether", address)]},
            "data": format!("@{map}")
        }}]))
    };
    inet.chains.insert(
        "forward".to_string(),
        ChainSpec {
            base: Some(("forward", 0)),
            rules: vec![dispatch("saddr", "egress"), dispatch("daddr", "ingress")].into(),
        },
    );
    inet.chains.insert(
        TO_INGRESS.to_string(),
        ChainSpec {
            base: None,
            rules: vec![
                dispatch("daddr", "ingress"),
                rule(json!([{"accept": null}])),
            ]
            .into(),
        },
    );
    let group_rules = firewall
        .rules
        .iter()
        .filter(|(g, _)| scope.is_none_or(|s| s.rules.contains(g)));
    for (group, rules) in group_rules {
        let [eg, ing] = group_chains(rules);
        for (prefix, rules) in [(GROUP_EGRESS_PREFIX, eg), (GROUP_INGRESS_PREFIX, ing)] {
            inet.chains
                .insert(format!("{prefix}{group}"), ChainSpec { base: None, rules });
        }
    }
    bridge.chains.insert(
        "forward".to_string(),
        ChainSpec {
            base: Some(("forward", -200)),
            rules: vec![rule(
                json!([{"vmap": {"key": meta("iifname"), "data": "@ports"}}]),
            )]
            .into(),
        },
    );
    let mut egress = BTreeMap::new();
    let mut ingress = BTreeMap::new();
    let mut ports = BTreeMap::new();
    let mut chains_by_port = BTreeMap::new();
    let filters = firewall
        .ports
        .values()
        .filter(|f| scope.is_none_or(|s| s.ports.contains(&f.port_id)));
    for filter in filters {
        let key = vec![filter.bridge.clone(), mac_text(&filter.mac)];
        let chain = |prefix: &str| format!("{prefix}{}", filter.port_id);
        let [eg, ing, spoof] = match cache.by_port.get(&filter.port_id) {
            Some((cached, rules)) if cached == filter => rules.clone(),
            _ => port_rules(filter),
        };
        chains_by_port.insert(
            filter.port_id,
            (filter.clone(), [eg.clone(), ing.clone(), spoof.clone()]),
        );
        inet.chains.insert(
            chain(EGRESS_PREFIX),
            ChainSpec {
                base: None,
                rules: eg,
            },
        );
        inet.chains.insert(
            chain(INGRESS_PREFIX),
            ChainSpec {
                base: None,
                rules: ing,
            },
        );
        bridge.chains.insert(
            chain(SPOOF_PREFIX),
            ChainSpec {
                base: None,
                rules: spoof,
            },
        );
        egress.insert(key.clone(), chain(EGRESS_PREFIX));
        ingress.insert(key, chain(INGRESS_PREFIX));
        ports.insert(vec![filter.veth.clone()], chain(SPOOF_PREFIX));
    }
    match scope {
        None => cache.by_port = chains_by_port,
        Some(scope) => {
            for id in &scope.ports {
                cache.by_port.remove(id);
            }
            cache.by_port.extend(chains_by_port);
        }
    }
    let concat = vec!["ifname", "ether_addr"];
    for (name, elements) in [("egress", egress), ("ingress", ingress)] {
        inet.sets.insert(
            name.to_string(),
            SetSpec {
                key: concat.clone(),
                map: true,
                elements,
            },
        );
    }
    bridge.sets.insert(
        "ports".to_string(),
        SetSpec {
            key: vec!["ifname"],
            map: true,
            elements: ports,
        },
    );
    let groups = firewall
        .groups
        .iter()
        .filter(|(g, _)| scope.is_none_or(|s| s.groups.contains(g)));
    for (group, addresses) in groups {
        for (prefix, key, v6) in [
            (GROUP4_PREFIX, "ipv4_addr", false),
            (GROUP6_PREFIX, "ipv6_addr", true),
        ] {
            let elements = addresses
                .iter()
                .filter(|a| a.is_ipv6() == v6)
                .map(|a| (vec![a.to_string()], String::new()))
                .collect();
            inet.sets.insert(
                format!("{prefix}{group}"),
                SetSpec {
                    key: vec![key],
                    map: false,
                    elements,
                },
            );
        }
    }
    let mut out = Ruleset::default();
    out.tables.insert(Family::Inet, inet);
    out.tables.insert(Family::Bridge, bridge);
    out
}

/// Reads one table from `nft -j list table FAMILY alcor` output.
pub fn parse_table(output: &Value) -> ExistingTable {
    let mut out = ExistingTable::default();
    let Some(objects) = output.get("nftables").and_then(Value::as_array) else {
        return out;
    };
    for object in objects {
        if let Some(chain) = object.get("chain") {
            if let Some(name) = chain.get("name").and_then(Value::as_str) {
                out.chains.entry(name.to_string()).or_default();
            }
        } else if let Some(rule) = object.get("rule") {
            if let Some(chain) = rule.get("chain").and_then(Value::as_str) {
                let comment = rule.get("comment").and_then(Value::as_str).unwrap_or("");
                out.chains
                    .entry(chain.to_string())
                    .or_default()
                    .push(comment.to_string());
            }
        } else if let Some(set) = object.get("set").or_else(|| object.get("map")) {
            let Some(name) = set.get("name").and_then(Value::as_str) else {
                continue;
            };
            let elements = set
                .get("elem")
                .and_then(Value::as_array)
                .map(|elements| elements.iter().filter_map(parse_element).collect())
                .unwrap_or_default();
            out.sets.insert(name.to_string(), elements);
        }
    }
    out
}

/// One element: a key (a string or a concatenation) or `[key, {"jump":
/// {"target": chain}}]`; addresses are normalised through `IpAddr`.
fn parse_element(element: &Value) -> Option<(Vec<String>, String)> {
    let (key, target) = match element.as_array() {
        Some(pair) if pair.len() == 2 => {
            let target = pair[1].get("jump")?.get("target")?.as_str()?.to_string();
            (&pair[0], target)
        }
        _ => (element, String::new()),
    };
    let part = |v: &Value| -> Option<String> {
        let text = v.as_str()?;
        Some(match text.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => text.to_lowercase(),
        })
    };
    let parts = match key.get("concat").and_then(Value::as_array) {
        Some(parts) => parts.iter().map(part).collect::<Option<Vec<_>>>()?,
        None => vec![part(key)?],
    };
    Some((parts, target))
}

/// A batch of `nft -j` commands and how many objects it changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// The commands, in order.
    pub commands: Vec<Value>,
    /// Objects created, changed or deleted (tables, chains, sets, elements).
    pub n_changes: u64,
}

fn element_value(key: &[String], target: &str) -> Value {
    let key = if key.len() == 1 {
        json!(key[0])
    } else {
        json!({"concat": key})
    };
    if target.is_empty() {
        key
    } else {
        json!([key, {"jump": {"target": target}}])
    }
}

/// The smallest batch that turns `existing` into `desired`. Order: tables,
/// sets, chains, set elements added, chains rewritten, map elements
/// deleted then added, set elements deleted, chains and sets no longer
/// wanted deleted (a chain is flushed first: the kernel deletes only empty
/// chains, and only once no map element jumps to it).
pub fn diff(desired: &Ruleset, existing: &Existing) -> Batch {
    let mut out = Batch::default();
    let mut late = Vec::new();
    for (family, spec) in &desired.tables {
        let empty = ExistingTable::default();
        let found = existing.get(family);
        let have = found.unwrap_or(&empty);
        let f = family.as_str();
        let object =
            |kind: &str, name: &str| json!({kind: {"family": f, "table": TABLE, "name": name}});
        if found.is_none() {
            out.commands
                .push(json!({"add": {"table": {"family": f, "name": TABLE}}}));
            out.n_changes += 1;
        }
        for (name, set) in &spec.sets {
            if have.sets.contains_key(name) {
                continue;
            }
            let key = if set.key.len() == 1 {
                json!(set.key[0])
            } else {
                json!(set.key)
            };
            let mut body = json!({"family": f, "table": TABLE, "name": name, "type": key});
            let kind = if set.map {
                body["map"] = json!("verdict");
                "map"
            } else {
                "set"
            };
            out.commands.push(json!({"add": {kind: body}}));
            out.n_changes += 1;
        }
        for (name, chain) in &spec.chains {
            if have.chains.contains_key(name) {
                continue;
            }
            let mut body = json!({"family": f, "table": TABLE, "name": name});
            if let Some((hook, prio)) = chain.base {
                body["type"] = json!("filter");
                body["hook"] = json!(hook);
                body["prio"] = json!(prio);
                body["policy"] = json!("accept");
            }
            out.commands.push(json!({"add": {"chain": body}}));
            out.n_changes += 1;
        }
        let no_elements = BTreeMap::new();
        let element_changes = |maps: bool, add: bool, commands: &mut Vec<Value>| {
            let mut n = 0;
            for (name, set) in spec.sets.iter().filter(|(_, s)| s.map == maps) {
                let present = have.sets.get(name).unwrap_or(&no_elements);
                let (from, against) = if add {
                    (&set.elements, present)
                } else {
                    (present, &set.elements)
                };
                let elements: Vec<Value> = from
                    .iter()
                    .filter(|(k, t)| against.get(*k) != Some(*t))
                    .map(|(k, t)| element_value(k, t))
                    .collect();
                if elements.is_empty() {
                    continue;
                }
                n += elements.len() as u64;
                let verb = if add { "add" } else { "delete" };
                let mut body = object("element", name);
                body["element"]["elem"] = json!(elements);
                commands.push(json!({verb: body}));
            }
            n
        };
        out.n_changes += element_changes(false, true, &mut out.commands);
        for (name, chain) in &spec.chains {
            let present = have.chains.get(name);
            let comments = chain.rules.iter().map(|(_, c)| c);
            if present.is_some_and(|p| p.iter().eq(comments)) {
                continue;
            }
            if present.is_some_and(|p| !p.is_empty()) {
                out.commands.push(json!({"flush": object("chain", name)}));
            }
            for (statements, comment) in chain.rules.iter() {
                out.commands.push(json!({"add": {"rule": {
                    "family": f, "table": TABLE, "chain": name,
                    "expr": statements, "comment": comment
                }}}));
            }
            out.n_changes += 1;
        }
        out.n_changes += element_changes(true, false, &mut out.commands);
        out.n_changes += element_changes(true, true, &mut out.commands);
        out.n_changes += element_changes(false, false, &mut out.commands);
        for (name, rules) in &have.chains {
            if !spec.chains.contains_key(name) {
                if !rules.is_empty() {
                    late.push(json!({"flush": object("chain", name)}));
                }
                late.push(json!({"delete": object("chain", name)}));
                out.n_changes += 1;
            }
        }
        for name in have.sets.keys() {
            if !spec.sets.contains_key(name) {
                // Sets are deleted after every chain rewrite and removal.
                let kind = if name.starts_with(GROUP4_PREFIX) || name.starts_with(GROUP6_PREFIX) {
                    "set"
                } else {
                    "map"
                };
                late.push(json!({"delete": object(kind, name)}));
                out.n_changes += 1;
            }
        }
    }
    // Chain flushes, then chain deletes (rules of a port chain jump to
    // group chains), then set deletes (rules reference sets).
    late.sort_by_key(|c| match c.get("delete") {
        None => 0,
        Some(d) if d.get("chain").is_some() => 1,
        Some(_) => 2,
    });
    out.commands.extend(late);
    out
}

#[cfg(test)]
mod tests;
