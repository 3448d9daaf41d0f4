//! The commit paths: the only code that writes the tables and the indexes.
//!
//! Every table has one function here (`commit_port`, `commit_vpc`, ...) that
//! replaces, inserts or removes one row and, in the same place, records the
//! goal-state diff candidates of the change (before it), keeps every index and
//! the usage counts in step, and marks the resource changed. The fields of
//! [`Tables`](super::Tables) and [`Indexes`] are private to this module tree, so handlers
//! (`apply/`) can only read them and must come through here to write: the
//! compiler enforces the single path.
//!
//! Handlers validate completely before they call a commit path, so a commit
//! never fails; a state it would corrupt (a usage count below zero, a row
//! deleted while others still name it) is a bug and asserts.

use super::{ip_to_int, Indexes, State, TokenRecord};
use crate::changes::ChangeKey;
use crate::command::Kind;
use crate::goal::{DiffCollector, GoalKey, Scope};
use crate::ids::{HostId, Id, ProjectId};
use crate::model::{
    FloatingIp, Host, Meta, Port, Quota, ResourceKind, Router, SecurityGroup, SecurityGroupRule,
    Subnet, Vpc,
};
use crate::tags::Tags;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

impl State {
    /// Sets the index of the entry being applied.
    pub(crate) fn commit_applied_index(&mut self, index: u64) {
        self.t.applied_index = index;
    }

    /// Replaces (`Some`) or deletes (`None`) host `id`.
    pub(crate) fn commit_host(&mut self, id: &str, new: Option<Host>, d: &mut DiffCollector) {
        let old = self.t.hosts.get(id);
        // Every neighbor entry of every port on the host carries its underlay
        // IP; ports bound to the host before it registered get theirs now.
        if let (old, Some(new)) = (old, &new) {
            if old.is_none_or(|old| old.underlay_ip != new.underlay_ip) {
                for port in self.ports_of_host(id) {
                    d.shared_object(
                        self,
                        &Scope::Vpc(port.network_id),
                        GoalKey::Neighbor(port.id),
                    );
                }
            }
        }
        if new.is_none() {
            assert!(
                !self.ix.host_ports.contains_key(id),
                "host {id} deleted with ports bound (the handler checks)"
            );
        }
        self.marks.mark(ChangeKey::Host(id.to_string()));
        match new {
            Some(host) => {
                assert_eq!(host.id, id, "a host is stored under its own ID");
                self.t.hosts.insert(host.id.clone(), host);
            }
            None => {
                self.t.hosts.remove(id);
            }
        }
    }

    /// Replaces, inserts or deletes VPC `id`.
    pub(crate) fn commit_vpc(&mut self, id: Id, new: Option<Vpc>, d: &mut DiffCollector) {
        d.shared_object(self, &Scope::Vpc(id), GoalKey::Vpc(id));
        if new.is_none() {
            self.forget_qos_user(Kind::Vpc, id);
            self.forget_external_network(id);
        }
        let old = self.t.vpcs.get(&id);
        if new.is_none() {
            let (lo, hi) = ((id, Id(0)), (id, Id(u128::MAX)));
            assert!(
                self.ix.net_subnets.range(lo..=hi).next().is_none()
                    && !self.ix.net_ports.has_any(id),
                "VPC {id} deleted while subnets or ports are in it (the handler checks)"
            );
        }
        if let Some(old) = old {
            let freed = self.ix.vni_used.remove(&old.vni);
            assert_eq!(freed, Some(id), "VNI {} was indexed to its VPC", old.vni);
        }
        if let Some(new) = &new {
            let taken = self.ix.vni_used.insert(new.vni, id);
            assert!(taken.is_none(), "VNI {} taken twice", new.vni);
        }
        let new_meta = new.as_ref().map(|v| &v.meta);
        self.ix
            .book(Some(ResourceKind::Network), old.map(|v| &v.meta), new_meta);
        self.ix.retag(Kind::Vpc, id, old.map(|v| &v.meta), new_meta);
        self.marks.mark(ChangeKey::Id(Kind::Vpc, id));
        store(&mut self.t.vpcs, id, new);
    }

    /// Replaces, inserts or deletes subnet `id`; a deleted subnet's IPAM cursor
    /// goes with it.
    pub(crate) fn commit_subnet(&mut self, id: Id, new: Option<Subnet>, d: &mut DiffCollector) {
        let old = self.t.subnets.get(&id);
        for net in [
            old.map(|s| s.network_id),
            new.as_ref().map(|s| s.network_id),
        ]
        .into_iter()
        .flatten()
        {
            d.shared_object(self, &Scope::Vpc(net), GoalKey::Subnet(id));
        }
        if let Some(old) = old {
            assert!(
                new.as_ref().is_none_or(|n| n.network_id == old.network_id),
                "a subnet never changes VPC"
            );
            self.ix.net_subnets.remove(&(old.network_id, id));
        }
        if new.is_none() {
            assert!(
                !self.ix.ip_used.has_any(id)
                    && !self.ix.subnet_router.contains_key(&id),
                "subnet {id} deleted with addresses or a router interface in it (the handler checks)"
            );
            self.t.ip_cursors.remove(&id);
        }
        if let Some(new) = &new {
            self.ix.net_subnets.insert((new.network_id, id));
        }
        let new_meta = new.as_ref().map(|s| &s.meta);
        self.ix
            .book(Some(ResourceKind::Subnet), old.map(|s| &s.meta), new_meta);
        self.ix
            .retag(Kind::Subnet, id, old.map(|s| &s.meta), new_meta);
        self.marks.mark(ChangeKey::Id(Kind::Subnet, id));
        store(&mut self.t.subnets, id, new);
    }

    /// Replaces, inserts or deletes port `id`, with diff tracking; returns
    /// the port it replaced or deleted. The stored row is read once before
    /// the change (each probe of a million-port table is a cache miss or more).
    pub(crate) fn commit_port(
        &mut self,
        id: Id,
        new: Option<Arc<Port>>,
        d: &mut DiffCollector,
    ) -> Option<Arc<Port>> {
        let old = self.t.ports.shared(&id).cloned();
        self.record_port_touch(old.as_deref(), new.as_deref(), d);
        if new.is_none() {
            assert!(
                self.ix
                    .port_fips
                    .range((id, Id(0))..=(id, Id(u128::MAX)))
                    .next()
                    .is_none(),
                "port {id} deleted with floating IPs associated (the handler disassociates them)"
            );
            self.forget_qos_user(Kind::Port, id);
        }
        if let Some(old) = &old {
            self.ix.port(old, false);
        }
        if let Some(new) = &new {
            self.ix.port(new, true);
        }
        let old_meta = old.as_ref().map(|p| &p.meta);
        let new_meta = new.as_ref().map(|p| &p.meta);
        self.ix.book(Some(ResourceKind::Port), old_meta, new_meta);
        self.ix.retag(Kind::Port, id, old_meta, new_meta);
        self.marks.mark(ChangeKey::Id(Kind::Port, id));
        match new {
            Some(port) => {
                assert_eq!(port.id, id, "a port is stored under its own ID");
                self.t.ports.insert(port);
            }
            None => {
                self.t.ports.remove(&id);
            }
        }
        old
    }

    /// Replaces, inserts or deletes security group `id` (its rules go through
    /// [`State::commit_rule`]; a deleted group has none left and no port).
    pub(crate) fn commit_security_group(&mut self, id: Id, new: Option<SecurityGroup>) {
        let old = self.t.security_groups.get(&id);
        if new.is_none() {
            let (lo, hi) = ((id, Id(0)), (id, Id(u128::MAX)));
            assert!(
                self.ix.sg_rules.range(lo..=hi).next().is_none() && !self.ix.sg_ports.has_any(id),
                "group {id} deleted with rules or ports (the handler removes or refuses them)"
            );
        }
        if let Some(old) = old.filter(|g| g.is_default) {
            let gone = self.ix.default_sg.remove(&old.meta.project_id);
            assert_eq!(gone, Some(id), "a default group is its project's only one");
        }
        if let Some(new) = new.as_ref().filter(|g| g.is_default) {
            let before = self.ix.default_sg.insert(new.meta.project_id.clone(), id);
            assert!(before.is_none(), "a project has one default group");
        }
        let new_meta = new.as_ref().map(|g| &g.meta);
        self.ix.book(
            Some(ResourceKind::SecurityGroup),
            old.map(|g| &g.meta),
            new_meta,
        );
        self.ix
            .retag(Kind::SecurityGroup, id, old.map(|g| &g.meta), new_meta);
        self.marks.mark(ChangeKey::Id(Kind::SecurityGroup, id));
        store(&mut self.t.security_groups, id, new);
    }

    /// Inserts or deletes rule `id` (rules never change in place).
    pub(crate) fn commit_rule(
        &mut self,
        id: Id,
        new: Option<SecurityGroupRule>,
        d: &mut DiffCollector,
    ) {
        let old = self.t.rules.get(&id);
        assert!(
            old.is_none() || new.is_none(),
            "rule {id} replaced in place (rules are created or deleted)"
        );
        for rule in [old, new.as_ref()].into_iter().flatten() {
            d.shared_object(
                self,
                &Scope::Rules(rule.security_group_id),
                GoalKey::SgRule(rule.id),
            );
            if let Some(group_id) = rule.remote_group_id {
                if let Some(hosts) = self.ix.sg_hosts.get(&rule.security_group_id) {
                    for host in hosts.keys() {
                        d.sub(self, host, &Scope::Members(group_id));
                    }
                }
            }
        }
        if let Some(old) = old {
            self.ix.rule(old, false);
        }
        if let Some(new) = &new {
            self.ix.rule(new, true);
        }
        let new_meta = new.as_ref().map(|r| &r.meta);
        self.ix.book(
            Some(ResourceKind::SecurityGroupRule),
            old.map(|r| &r.meta),
            new_meta,
        );
        self.marks.mark(ChangeKey::Id(Kind::SecurityGroupRule, id));
        store(&mut self.t.rules, id, new);
    }

    /// Replaces, inserts or deletes router `id` (a deleted router has no
    /// interfaces left).
    pub(crate) fn commit_router(&mut self, id: Id, new: Option<Router>, d: &mut DiffCollector) {
        let old = self.t.routers.get(&id);
        for router in [old, new.as_ref()].into_iter().flatten() {
            for iface in &router.interfaces {
                if let Some(subnet) = self.t.subnets.get(&iface.subnet_id) {
                    let key = GoalKey::Router {
                        network_id: subnet.network_id,
                        router_id: id,
                    };
                    d.shared_object(self, &Scope::Vpc(subnet.network_id), key);
                }
            }
        }
        assert!(
            new.is_some()
                || (old.is_none_or(|r| r.interfaces.is_empty())
                    && self.router_gateway(id).is_none()),
            "router {id} deleted with interfaces or a gateway (the handler checks)"
        );
        if let Some(old) = old {
            self.ix.router(old, &self.t.subnets, false);
        }
        if let Some(new) = &new {
            self.ix.router(new, &self.t.subnets, true);
        }
        let new_meta = new.as_ref().map(|r| &r.meta);
        self.ix
            .book(Some(ResourceKind::Router), old.map(|r| &r.meta), new_meta);
        self.ix
            .retag(Kind::Router, id, old.map(|r| &r.meta), new_meta);
        self.marks.mark(ChangeKey::Id(Kind::Router, id));
        store(&mut self.t.routers, id, new);
    }

    /// Replaces, inserts or deletes floating IP `id`, with diff tracking.
    pub(crate) fn commit_fip(&mut self, id: Id, new: Option<FloatingIp>, d: &mut DiffCollector) {
        let old = self.t.floating_ips.get(&id);
        for fip in [old, new.as_ref()].into_iter().flatten() {
            let host = fip
                .port_id
                .and_then(|p| self.t.ports.get(&p))
                .and_then(|p| p.binding_host.as_deref());
            if let Some(host) = host {
                d.host_object(self, host, GoalKey::FloatingIp(id));
            }
        }
        if let Some(old) = old {
            self.ix.fip(old, false);
        }
        if let Some(new) = &new {
            self.ix.fip(new, true);
        }
        let new_meta = new.as_ref().map(|f| &f.meta);
        self.ix.book(
            Some(ResourceKind::FloatingIp),
            old.map(|f| &f.meta),
            new_meta,
        );
        self.ix
            .retag(Kind::FloatingIp, id, old.map(|f| &f.meta), new_meta);
        self.marks.mark(ChangeKey::Id(Kind::FloatingIp, id));
        store(&mut self.t.floating_ips, id, new);
    }

    /// Sets (`Some`) or resets a project's quota.
    pub(crate) fn commit_quota(&mut self, project: &ProjectId, quota: Option<Quota>) {
        match quota {
            Some(q) => {
                self.t.quotas.insert(project.clone(), q);
            }
            None => {
                self.t.quotas.remove(project);
            }
        }
    }

    /// Stores an IPAM cursor per subnet, and the MAC and VNI cursors.
    pub(crate) fn commit_cursors(
        &mut self,
        ip: impl IntoIterator<Item = (Id, u128)>,
        mac: Option<u32>,
        vni: Option<u32>,
    ) {
        for (subnet, cursor) in ip {
            assert!(
                self.t.subnets.contains_key(&subnet),
                "a cursor belongs to a stored subnet"
            );
            self.t.ip_cursors.insert(subnet, cursor);
        }
        if let Some(mac) = mac {
            self.t.mac_cursor = mac;
        }
        if let Some(vni) = vni {
            self.t.vni_cursor = vni;
        }
    }

    /// Remembers a request token's first success, forgetting the oldest
    /// tokens beyond [`crate::limits::TOKENS_MAX`] or the reply weight limit.
    pub(crate) fn commit_token(&mut self, token: &str, record: TokenRecord) {
        assert!(
            !self.t.tokens.contains_key(token),
            "a token is remembered once (the handler replays a known one)"
        );
        self.ix.token_weight += record.weight();
        self.ix.token_ages.insert((record.index, token.to_string()));
        self.t.tokens.insert(token.to_string(), Arc::new(record));
        while self.t.tokens.len() > crate::limits::TOKENS_MAX
            || self.ix.token_weight > crate::limits::TOKEN_REPLY_WEIGHT_MAX
        {
            let Some((_, oldest)) = self.ix.token_ages.pop_first() else {
                break;
            };
            let old = self.t.tokens.remove(&oldest);
            let weight = old.map_or(0, |old| old.weight());
            assert!(
                weight > 0 && weight <= self.ix.token_weight,
                "every aged token is remembered and counted in the weight"
            );
            self.ix.token_weight -= weight;
        }
    }

    /// Forgets the marks (a rejected entry changed nothing).
    pub(crate) fn clear_marks(&mut self) {
        self.marks = Default::default();
    }

    /// The marked resources' changes, in first-touch order; clears the marks.
    pub(crate) fn take_changes(&mut self) -> Vec<crate::ResourceChange> {
        let marks = std::mem::take(&mut self.marks);
        marks
            .into_order()
            .into_iter()
            .map(|key| self.change_of(key))
            .collect()
    }
}

impl State {
    /// Records, on the state before, every object and subscription that may
    /// differ between the state with `old` and the state with `new` in its place.
    /// Its size is independent of how many hosts share the port's VPC or groups.
    fn record_port_touch(&self, old: Option<&Port>, new: Option<&Port>, d: &mut DiffCollector) {
        let Some(id) = old.or(new).map(|p| p.id) else {
            return;
        };
        // Each side's values, the new side's only where they differ from the old
        // side's (fixed-size, so the hot path allocates nothing here).
        let nets = distinct(old.map(|p| p.network_id), new.map(|p| p.network_id));
        let hosts = distinct(
            old.and_then(|p| p.binding_host.as_deref()),
            new.and_then(|p| p.binding_host.as_deref()),
        );
        let hosts = || hosts.iter().flatten();
        let old_groups = old.map_or(&[][..], |p| &p.security_groups[..]);
        let new_groups = new.map_or(&[][..], |p| &p.security_groups[..]);
        let groups = old_groups.iter().chain(
            new_groups
                .iter()
                .filter(|g| old_groups.binary_search(g).is_err()),
        );
        // A port being created has no object yet: its keys are recorded as
        // absent without evaluating them (a third of a batch's lookups).
        let created = old.is_none();
        let fips = if created {
            Vec::new()
        } else {
            self.fips_of_port(id)
        };
        for host in hosts() {
            if created {
                d.new_host_object(host, GoalKey::Port(id));
            } else {
                d.host_object(self, host, GoalKey::Port(id));
            }
            // The port's floating IPs follow it from host to host.
            for fip in &fips {
                d.host_object(self, host, GoalKey::FloatingIp(*fip));
            }
        }
        for net in nets.iter().flatten() {
            let scope = Scope::Vpc(*net);
            if created {
                d.new_shared_object(&scope, GoalKey::Neighbor(id));
            } else {
                d.shared_object(self, &scope, GoalKey::Neighbor(id));
            }
            for host in hosts() {
                d.sub(self, host, &scope);
            }
        }
        for sg in groups {
            let member = GoalKey::SgMember {
                group_id: *sg,
                port_id: id,
            };
            if created {
                d.new_shared_object(&Scope::Members(*sg), member);
            } else {
                d.shared_object(self, &Scope::Members(*sg), member);
            }
            if hosts().next().is_none() {
                continue;
            }
            let rules = Scope::Rules(*sg);
            for host in hosts() {
                d.sub(self, host, &rules);
            }
            for (_, rule_id) in self
                .ix
                .sg_rules()
                .range((*sg, Id(0))..=(*sg, Id(u128::MAX)))
            {
                if let Some(remote) = self.t.rules().get(rule_id).and_then(|r| r.remote_group_id) {
                    let members = Scope::Members(remote);
                    for host in hosts() {
                        d.sub(self, host, &members);
                    }
                }
            }
        }
    }
}

/// `a` and `b`, without `b` if it equals `a`.
fn distinct<T: PartialEq>(a: Option<T>, b: Option<T>) -> [Option<T>; 2] {
    let b = b.filter(|b| a.as_ref() != Some(b));
    [a, b]
}

/// Puts `new` under `id`, or removes the row.
fn store<T>(table: &mut BTreeMap<Id, T>, id: Id, new: Option<T>) {
    match new {
        Some(row) => {
            table.insert(id, row);
        }
        None => {
            table.remove(&id);
        }
    }
}

impl Indexes {
    /// Counts a resource in (created) or out (deleted) of its project's usage.
    pub(super) fn book(
        &mut self,
        quota: Option<ResourceKind>,
        old: Option<&Meta>,
        new: Option<&Meta>,
    ) {
        match (old, new) {
            (Some(old), Some(new)) => {
                debug_assert_eq!(old.project_id, new.project_id, "projects never change")
            }
            (None, Some(new)) => {
                if let Some(kind) = quota {
                    self.usage_add(&new.project_id, kind);
                }
            }
            (Some(old), None) => {
                if let Some(kind) = quota {
                    self.usage_sub(&old.project_id, kind);
                }
            }
            (None, None) => {}
        }
    }

    /// Moves a resource's entries in the tag index from its old tags to its new.
    fn retag(&mut self, kind: Kind, id: Id, old: Option<&Meta>, new: Option<&Meta>) {
        let empty = Tags::new();
        let old = old.map_or(&empty, |m| &m.tags);
        let new = new.map_or(&empty, |m| &m.tags);
        if old != new {
            self.tags(kind, id, old, false);
            self.tags(kind, id, new, true);
        }
    }

    fn usage_add(&mut self, project: &ProjectId, kind: ResourceKind) {
        match self.usage.get_mut(project.as_str()) {
            Some(kinds) => *kinds.entry(kind).or_insert(0) += 1,
            None => {
                self.usage
                    .insert(project.clone(), BTreeMap::from([(kind, 1)]));
            }
        }
    }

    fn usage_sub(&mut self, project: &ProjectId, kind: ResourceKind) {
        // Usage counts every stored resource, so a deleted one is always counted.
        let kinds = self
            .usage
            .get_mut(project.as_str())
            .unwrap_or_else(|| panic!("usage of project {project} is missing"));
        let count = kinds
            .get_mut(&kind)
            .filter(|n| **n > 0)
            .unwrap_or_else(|| panic!("{kind:?} usage of project {project} would underflow"));
        *count -= 1;
        if *count == 0 {
            kinds.remove(&kind);
            if kinds.is_empty() {
                self.usage.remove(project.as_str());
            }
        }
    }

    /// Adds (`insert`) or removes a resource's tags from the tag index.
    pub(super) fn tags(&mut self, kind: Kind, id: Id, tags: &Tags, insert: bool) {
        for tag in tags {
            if insert {
                match self.tagged.get_mut(tag.as_str()) {
                    Some(set) => {
                        set.insert((kind, id));
                    }
                    None => {
                        self.tagged
                            .insert(tag.clone(), BTreeSet::from([(kind, id)]));
                    }
                }
            } else {
                let set = self
                    .tagged
                    .get_mut(tag.as_str())
                    .unwrap_or_else(|| panic!("tag {tag:?} of {kind} {id} is indexed"));
                assert!(
                    set.remove(&(kind, id)),
                    "tag {tag:?} of {kind} {id} is indexed"
                );
                if set.is_empty() {
                    self.tagged.remove(tag.as_str());
                }
            }
        }
    }

    /// Adds or removes a rule from the indexes.
    pub(super) fn rule(&mut self, rule: &SecurityGroupRule, insert: bool) {
        if insert {
            self.sg_rules.insert((rule.security_group_id, rule.id));
            self.rule_match.insert(rule.match_key(), rule.id);
            if let Some(g) = rule.remote_group_id {
                self.remote_refs.insert((g, rule.id));
            }
        } else {
            self.sg_rules.remove(&(rule.security_group_id, rule.id));
            self.rule_match.remove(&rule.match_key());
            if let Some(g) = rule.remote_group_id {
                self.remote_refs.remove(&(g, rule.id));
            }
        }
    }

    /// Adds or removes a router's interfaces from the indexes.
    pub(super) fn router(&mut self, router: &Router, subnets: &BTreeMap<Id, Subnet>, insert: bool) {
        for iface in &router.interfaces {
            let Some(net) = subnets.get(&iface.subnet_id).map(|s| s.network_id) else {
                continue;
            };
            let key = (net, router.id);
            if insert {
                self.subnet_router.insert(iface.subnet_id, router.id);
                *self.net_routers.entry(key).or_insert(0) += 1;
            } else {
                self.subnet_router.remove(&iface.subnet_id);
                let n = self
                    .net_routers
                    .get_mut(&key)
                    .filter(|n| **n > 0)
                    .unwrap_or_else(|| {
                        panic!("router {} interfaces in {net} are counted", router.id)
                    });
                *n -= 1;
                if *n == 0 {
                    self.net_routers.remove(&key);
                }
            }
        }
    }

    /// Adds or removes a port from every index.
    pub(super) fn port(&mut self, port: &Port, insert: bool) {
        let net = port.network_id;
        if insert {
            self.net_ports.insert(net, port.id, ());
            for ip in &port.fixed_ips {
                let holder = self
                    .ip_used
                    .insert(ip.subnet_id, ip_to_int(ip.ip_address), port.id);
                assert!(
                    holder.is_none(),
                    "{} in subnet {} is held by {holder:?} when port {} is indexed",
                    ip.ip_address,
                    ip.subnet_id,
                    port.id
                );
            }
            self.mac_used.insert(net, port.mac_address, ());
            for sg in &port.security_groups {
                self.sg_ports.insert(*sg, port.id, ());
            }
            if let Some(host) = &port.binding_host {
                match self.host_ports.get_mut(&**host) {
                    Some(set) => {
                        set.insert(port.id);
                    }
                    None => {
                        self.host_ports
                            .insert(host.to_string(), BTreeSet::from([port.id]));
                    }
                }
                bump(self.vpc_hosts.entry(net).or_default(), host);
                for sg in &port.security_groups {
                    bump(self.sg_hosts.entry(*sg).or_default(), host);
                }
            }
        } else {
            self.net_ports.remove(net, &port.id);
            for ip in &port.fixed_ips {
                self.ip_used.remove(ip.subnet_id, &ip_to_int(ip.ip_address));
            }
            self.mac_used.remove(net, &port.mac_address);
            for sg in &port.security_groups {
                self.sg_ports.remove(*sg, &port.id);
            }
            if let Some(host) = &port.binding_host {
                let set = self
                    .host_ports
                    .get_mut(&**host)
                    .unwrap_or_else(|| panic!("bound port {} is indexed under {host}", port.id));
                assert!(
                    set.remove(&port.id),
                    "bound port {} is indexed under {host}",
                    port.id
                );
                if set.is_empty() {
                    self.host_ports.remove(&**host);
                }
                unbump(&mut self.vpc_hosts, net, host);
                for sg in &port.security_groups {
                    unbump(&mut self.sg_hosts, *sg, host);
                }
            }
        }
    }

    /// Adds or removes a floating IP from the indexes.
    pub(super) fn fip(&mut self, fip: &FloatingIp, insert: bool) {
        let addr = (fip.floating_subnet_id, ip_to_int(fip.floating_ip_address));
        let assoc = fip.port_id.zip(fip.fixed_ip_address);
        if insert {
            let holder = self.ip_used.insert(addr.0, addr.1, fip.id);
            assert!(
                holder.is_none(),
                "{} in subnet {} is held by {holder:?} when floating IP {} is indexed",
                fip.floating_ip_address,
                fip.floating_subnet_id,
                fip.id
            );
            self.net_fips.insert((fip.floating_network_id, fip.id));
            if let Some((port, fixed)) = assoc {
                self.port_fips.insert((port, fip.id));
                self.fip_fixed.insert((port, fixed), fip.id);
            }
        } else {
            self.ip_used.remove(addr.0, &addr.1);
            self.net_fips.remove(&(fip.floating_network_id, fip.id));
            if let Some((port, fixed)) = assoc {
                self.port_fips.remove(&(port, fip.id));
                self.fip_fixed.remove(&(port, fixed));
            }
        }
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

/// Counts one port of `host` less, dropping empty entries. The port was
/// counted when it was indexed, so the count is there and positive.
fn unbump(map: &mut BTreeMap<Id, BTreeMap<HostId, u32>>, outer: Id, host: &str) {
    let hosts = map
        .get_mut(&outer)
        .unwrap_or_else(|| panic!("{outer} has counted hosts"));
    let n = hosts
        .get_mut(host)
        .filter(|n| **n > 0)
        .unwrap_or_else(|| panic!("ports of {host} in {outer} would underflow"));
    *n -= 1;
    if *n == 0 {
        hosts.remove(host);
        if hosts.is_empty() {
            map.remove(&outer);
        }
    }
}
