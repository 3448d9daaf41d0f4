//! Building every index from the tables in one pass per table, after a
//! restore (and in tests, to check the commit paths kept them in step).
//!
//! The commit paths ([`super::commit`]) keep the indexes one key at a time.
//! A restore has all the keys at once, so the port indexes (five entries per
//! port, most of a member's restart) are collected into vectors, sorted and
//! bulk-built (`BTreeSet::from_iter` on sorted input builds the tree bottom up
//! without a search per key, and fills its nodes). Host names are compared
//! once per port (to find the host's number), not once per index entry. The
//! small tables still go through the commit paths' per-key helpers.
//!
//! The result is equal to what the commit paths build: the unit tests here
//! compare it with a per-key build, and the property test compares the
//! indexes after every command with a rebuild.

use super::{ip_to_int, Indexes, State, Tables};
use crate::command::Kind;
use crate::ids::{HostId, Id, ProjectId};
use crate::model::{Mac, Port, ResourceKind};
use std::collections::{BTreeMap, BTreeSet};

impl State {
    /// Builds every index from the tables (after a restore, and in tests).
    pub(super) fn rebuild_indexes(&mut self) {
        let (t, ix) = (&self.t, &mut self.ix);
        for vpc in t.vpcs.values() {
            ix.tags(Kind::Vpc, vpc.id, &vpc.meta.tags, true);
            ix.vni_used.insert(vpc.vni, vpc.id);
            ix.book(Some(ResourceKind::Network), None, Some(&vpc.meta));
        }
        for subnet in t.subnets.values() {
            ix.tags(Kind::Subnet, subnet.id, &subnet.meta.tags, true);
            ix.net_subnets.insert((subnet.network_id, subnet.id));
            ix.book(Some(ResourceKind::Subnet), None, Some(&subnet.meta));
        }
        for sg in t.security_groups.values() {
            ix.tags(Kind::SecurityGroup, sg.id, &sg.meta.tags, true);
            if sg.is_default {
                ix.default_sg.insert(sg.meta.project_id.clone(), sg.id);
            }
            ix.book(Some(ResourceKind::SecurityGroup), None, Some(&sg.meta));
        }
        for rule in t.rules.values() {
            ix.rule(rule, true);
            ix.book(
                Some(ResourceKind::SecurityGroupRule),
                None,
                Some(&rule.meta),
            );
        }
        for router in t.routers.values() {
            ix.tags(Kind::Router, router.id, &router.meta.tags, true);
            ix.router(router, &t.subnets, true);
            ix.book(Some(ResourceKind::Router), None, Some(&router.meta));
        }
        ix.bulk_ports(t);
        for fip in t.floating_ips.values() {
            ix.tags(Kind::FloatingIp, fip.id, &fip.meta.tags, true);
            ix.fip(fip, true);
            ix.book(Some(ResourceKind::FloatingIp), None, Some(&fip.meta));
        }
        for (token, record) in &t.tokens {
            ix.token_ages.insert((record.index, token.clone()));
            ix.token_weight += record.weight();
        }
        ix.qos_users(&t.qos);
    }

    /// Builds every index with the commit paths' per-key helpers only, one
    /// key at a time (the reference the bulk build is tested against).
    #[cfg(test)]
    pub(super) fn rebuild_indexes_per_key(&mut self) {
        let (t, ix) = (&self.t, &mut self.ix);
        for vpc in t.vpcs.values() {
            ix.tags(Kind::Vpc, vpc.id, &vpc.meta.tags, true);
            ix.vni_used.insert(vpc.vni, vpc.id);
            ix.book(Some(ResourceKind::Network), None, Some(&vpc.meta));
        }
        for subnet in t.subnets.values() {
            ix.tags(Kind::Subnet, subnet.id, &subnet.meta.tags, true);
            ix.net_subnets.insert((subnet.network_id, subnet.id));
            ix.book(Some(ResourceKind::Subnet), None, Some(&subnet.meta));
        }
        for sg in t.security_groups.values() {
            ix.tags(Kind::SecurityGroup, sg.id, &sg.meta.tags, true);
            if sg.is_default {
                ix.default_sg.insert(sg.meta.project_id.clone(), sg.id);
            }
            ix.book(Some(ResourceKind::SecurityGroup), None, Some(&sg.meta));
        }
        for rule in t.rules.values() {
            ix.rule(rule, true);
            let meta = Some(&rule.meta);
            ix.book(Some(ResourceKind::SecurityGroupRule), None, meta);
        }
        for router in t.routers.values() {
            ix.tags(Kind::Router, router.id, &router.meta.tags, true);
            ix.router(router, &t.subnets, true);
            ix.book(Some(ResourceKind::Router), None, Some(&router.meta));
        }
        for port in t.ports.values() {
            ix.tags(Kind::Port, port.id, &port.meta.tags, true);
            ix.port(port, true);
            ix.book(Some(ResourceKind::Port), None, Some(&port.meta));
        }
        for fip in t.floating_ips.values() {
            ix.tags(Kind::FloatingIp, fip.id, &fip.meta.tags, true);
            ix.fip(fip, true);
            ix.book(Some(ResourceKind::FloatingIp), None, Some(&fip.meta));
        }
        for (token, record) in &t.tokens {
            ix.token_ages.insert((record.index, token.clone()));
            ix.token_weight += record.weight();
        }
        ix.qos_users(&t.qos);
    }
}

/// Per-port index entries collected before the trees are built; hosts and
/// projects by their number in the host table and in `projects`.
#[derive(Default)]
struct PortEntries<'a> {
    net_ports: Vec<(Id, Id, ())>,
    ip_used: Vec<(Id, u128, Id)>,
    mac_used: Vec<(Id, Mac, ())>,
    sg_ports: Vec<(Id, Id, ())>,
    /// Per host number, its bound ports (in port ID order, as the table).
    host_ports: Vec<Vec<Id>>,
    /// (VPC, host number) once per bound port.
    vpc_hosts: Vec<(Id, usize)>,
    /// (group, host number) once per group of a bound port.
    sg_hosts: Vec<(Id, usize)>,
    /// Ports per project.
    projects: BTreeMap<&'a str, u64>,
}

impl Indexes {
    /// Adds every port of `t` to the port indexes and the usage counts, in
    /// bulk. The port indexes may already hold other keys (floating IPs'
    /// addresses in `ip_used`): the built trees are merged in.
    fn bulk_ports(&mut self, t: &Tables) {
        let hosts: Vec<&HostId> = t.hosts.keys().collect();
        let mut e = PortEntries {
            host_ports: vec![Vec::new(); hosts.len()],
            ..PortEntries::default()
        };
        // Bound ports whose host is not in the table (waiting for it to
        // register; the host numbering below covers registered ones): per key.
        let mut unknown_host: Vec<&Port> = Vec::new();
        for port in t.ports.values() {
            let net = port.network_id;
            e.net_ports.push((net, port.id, ()));
            for ip in &port.fixed_ips {
                e.ip_used
                    .push((ip.subnet_id, ip_to_int(ip.ip_address), port.id));
            }
            e.mac_used.push((net, port.mac_address, ()));
            for sg in &port.security_groups {
                e.sg_ports.push((*sg, port.id, ()));
            }
            if let Some(host) = &port.binding_host {
                match hosts.binary_search_by(|h| h.as_str().cmp(host)) {
                    Ok(h) => {
                        e.host_ports[h].push(port.id);
                        e.vpc_hosts.push((net, h));
                        e.sg_hosts
                            .extend(port.security_groups.iter().map(|sg| (*sg, h)));
                    }
                    Err(_) => unknown_host.push(port),
                }
            }
            match e.projects.get_mut(port.meta.project_id.as_str()) {
                Some(n) => *n += 1,
                None => {
                    e.projects.insert(&port.meta.project_id, 1);
                }
            }
            self.tags(Kind::Port, port.id, &port.meta.tags, true);
        }
        self.net_ports.extend_bulk(e.net_ports);
        self.ip_used.extend_bulk(e.ip_used);
        self.mac_used.extend_bulk(e.mac_used);
        self.sg_ports.extend_bulk(e.sg_ports);
        for (h, ports) in e.host_ports.into_iter().enumerate() {
            if !ports.is_empty() {
                let mut set: BTreeSet<Id> = ports.into_iter().collect();
                self.host_ports
                    .entry(hosts[h].clone())
                    .or_default()
                    .append(&mut set);
            }
        }
        add_counts(&mut self.vpc_hosts, e.vpc_hosts, &hosts);
        add_counts(&mut self.sg_hosts, e.sg_hosts, &hosts);
        for (project, n) in e.projects {
            let kinds = self.usage.entry(ProjectId::from(project)).or_default();
            *kinds.entry(ResourceKind::Port).or_insert(0) += n;
        }
        for port in unknown_host {
            self.unknown_host_port(port);
        }
    }

    /// Indexes a bound port whose host is not in the host table by host
    /// name (what the bulk build does with host numbers).
    fn unknown_host_port(&mut self, port: &Port) {
        let Some(host) = &port.binding_host else {
            return;
        };
        self.host_ports
            .entry(host.to_string())
            .or_default()
            .insert(port.id);
        *self
            .vpc_hosts
            .entry(port.network_id)
            .or_default()
            .entry(host.to_string())
            .or_insert(0) += 1;
        for sg in &port.security_groups {
            *self
                .sg_hosts
                .entry(*sg)
                .or_default()
                .entry(host.to_string())
                .or_insert(0) += 1;
        }
    }
}

/// A map built from `entries`; of entries with equal keys the last one
/// wins, as with one `insert` after another.
fn sorted_map<K: Ord, V>(mut entries: Vec<(K, V)>) -> BTreeMap<K, V> {
    // Stable, so equal keys keep their order and `collect` keeps the last.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

/// Adds one to `map[outer][host]` for every `(outer, host number)` pair.
fn add_counts(
    map: &mut BTreeMap<Id, BTreeMap<HostId, u32>>,
    mut pairs: Vec<(Id, usize)>,
    hosts: &[&HostId],
) {
    pairs.sort_unstable();
    let mut runs = pairs.chunk_by(|a, b| a.0 == b.0);
    for group in runs.by_ref() {
        let outer = group[0].0;
        let inner = map.entry(outer).or_default();
        for same in group.chunk_by(|a, b| a.1 == b.1) {
            let n = u32::try_from(same.len()).unwrap_or(u32::MAX);
            *inner.entry(hosts[same[0].1].clone()).or_insert(0) += n;
        }
    }
}

/// Decodes a map as serde's `BTreeMap` does (same encoding, the same map,
/// the last of equal keys wins), but collects the entries first and builds
/// the tree from them in one pass: a snapshot's keys arrive sorted, so this
/// is linear and fills the nodes, where one insert per key at the right edge
/// leaves them half full.
pub(super) fn bulk_map<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    K: serde::Deserialize<'de> + Ord,
    V: serde::Deserialize<'de>,
{
    struct Entries<K, V>(std::marker::PhantomData<(K, V)>);
    impl<'de, K, V> serde::de::Visitor<'de> for Entries<K, V>
    where
        K: serde::Deserialize<'de> + Ord,
        V: serde::Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            // No capacity from the claimed length: it is not trusted
            // (`decode`); the vector grows as entries actually decode.
            let mut entries = Vec::new();
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(sorted_map(entries))
        }
    }
    deserializer.deserialize_map(Entries(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, PortSpec, Proposal};
    use crate::model::Quota;
    use std::net::{IpAddr, Ipv4Addr};

    fn apply(state: &mut State, command: Command) {
        let index = state.applied_index() + 1;
        let outcome = state.apply(
            index,
            &Proposal {
                time_ms: index,
                command,
            },
        );
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    }

    fn port(n: u128, project: &str, host: Option<&str>) -> PortSpec {
        PortSpec {
            id: Id(
                (n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) & !(0xF << 76))
                    | (0x4 << 76),
            ),
            project_id: project.to_string(),
            network_id: Id(1 + n % 2),
            name: String::new(),
            fixed_ips: Vec::new(),
            mac_address: None,
            binding_host: host.map(str::to_string),
            device_id: format!("vm-{n}"),
            device_owner: "compute:nova".to_string(),
            security_groups: None,
            allowed_address_pairs: Vec::new(),
            admin_state_up: true,
        }
    }

    /// Two VPCs with a subnet each (and two empty ones of another project),
    /// three hosts, 200 ports in both VPCs, some unbound, some deleted again.
    fn state_with_ports() -> State {
        let mut s = State::new();
        for project in ["p1", "p2"] {
            apply(
                &mut s,
                Command::SetQuota {
                    project_id: project.to_string(),
                    quota: Quota {
                        port: -1,
                        ..Quota::default()
                    },
                },
            );
        }
        for h in 0..3u8 {
            apply(
                &mut s,
                Command::CreateHost {
                    id: format!("host-{h}"),
                    project_id: "admin".to_string(),
                    underlay_ip: IpAddr::V4(Ipv4Addr::new(192, 168, 0, h + 1)),
                },
            );
        }
        for (net, cidr) in [(1u128, "10.1.0.0/16"), (2, "10.2.0.0/16")] {
            for project in ["p1", "p2"] {
                let id = Id(net * 100 + u128::from(project == "p2"));
                apply(
                    &mut s,
                    Command::CreateVpc {
                        id: if project == "p1" { Id(net) } else { id },
                        project_id: project.to_string(),
                        name: String::new(),
                        cidr: None,
                        vni: None,
                        mtu: None,
                        admin_state_up: true,
                    },
                );
            }
            apply(
                &mut s,
                Command::CreateSubnet {
                    id: Id(net + 10),
                    project_id: "p1".to_string(),
                    network_id: Id(net),
                    name: String::new(),
                    cidr: cidr.parse().expect("literal"),
                    gateway: crate::command::GatewaySpec::Default,
                    allocation_pools: None,
                    enable_dhcp: true,
                    dns_nameservers: Vec::new(),
                    host_routes: Vec::new(),
                },
            );
        }
        let hosts = [Some("host-0"), Some("host-1"), Some("host-2"), None];
        let specs: Vec<PortSpec> = (0..200u128)
            .map(|n| port(n, "p1", hosts[(n % 4) as usize]))
            .collect();
        apply(&mut s, Command::CreatePorts(specs));
        for n in (0..200u128).step_by(7) {
            apply(
                &mut s,
                Command::DeletePort {
                    id: port(n, "p1", None).id,
                    expected_revision: None,
                },
            );
        }
        s
    }

    fn indexes(state: &State, per_key: bool) -> Indexes {
        let mut fresh = State {
            t: state.t.clone(),
            ix: Indexes::default(),
            marks: Default::default(),
        };
        if per_key {
            fresh.rebuild_indexes_per_key();
        } else {
            fresh.rebuild_indexes();
        }
        fresh.ix
    }

    #[test]
    fn bulk_built_port_indexes_equal_per_key_built_ones() {
        let state = state_with_ports();
        assert!(state.port_count() > 150, "the fixture has ports");
        let bulk = indexes(&state, false);
        assert!(!bulk.host_ports.is_empty() && !bulk.sg_hosts.is_empty());
        assert_eq!(bulk, indexes(&state, true));
        // And both equal the indexes the commit paths kept while applying.
        assert_eq!(bulk, state.ix);
    }

    #[test]
    fn bulk_build_keeps_a_port_whose_host_is_not_in_the_table() {
        let mut state = state_with_ports();
        let mut ghost = state.t.ports.values().next().cloned().expect("a port");
        ghost.id = Id((0x4 << 76) | 77);
        ghost.binding_host = Some("host-gone".into());
        // Another port's addresses would be an impossible state of its own.
        ghost.fixed_ips = Vec::new().into();
        state.t.ports.insert(std::sync::Arc::new(ghost));
        let bulk = indexes(&state, false);
        assert!(bulk.host_ports["host-gone"].contains(&Id((0x4 << 76) | 77)));
        assert_eq!(bulk, indexes(&state, true));
    }

    #[test]
    #[should_panic(expected = "is held by")]
    fn indexing_a_port_at_an_address_another_port_holds_panics() {
        let mut state = state_with_ports();
        let mut twin = state.t.ports.values().next().cloned().expect("a port");
        assert!(
            !twin.fixed_ips.is_empty(),
            "the fixture's ports have addresses"
        );
        twin.id = Id((0x4 << 76) | 78);
        state.ix.port(&twin, true);
    }

    #[test]
    fn restore_gives_back_the_state_and_indexes_before_the_snapshot() {
        let state = state_with_ports();
        let restored = match State::restore(&state.snapshot()) {
            Ok(restored) => restored,
            Err(e) => panic!("restore: {e}"),
        };
        assert_eq!(restored.t, state.t);
        assert_eq!(restored.ix, state.ix);
        assert_eq!(restored.snapshot(), state.snapshot());
    }

    #[test]
    fn a_bulk_decoded_map_equals_serdes_map_with_the_last_duplicate_winning() {
        #[derive(serde::Deserialize)]
        struct Bulk(#[serde(deserialize_with = "bulk_map")] BTreeMap<u32, String>);
        // Unsorted, with a duplicate key: what `insert` one by one would make.
        let entries = [(5u32, "a"), (1, "b"), (5, "c"), (3, "d"), (9, "e")];
        let mut bytes = Vec::new();
        bytes.extend(
            bincode::serde::encode_to_vec(entries.len() as u64, bincode::config::standard())
                .expect("encode"),
        );
        for (k, v) in entries {
            bytes.extend(
                bincode::serde::encode_to_vec((k, v), bincode::config::standard()).expect("encode"),
            );
        }
        let plain: BTreeMap<u32, String> =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                .expect("decode")
                .0;
        let bulk: Bulk = bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
            .expect("decode")
            .0;
        assert_eq!(bulk.0, plain);
        assert_eq!(bulk.0[&5], "c");
    }
}
