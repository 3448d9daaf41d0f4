//! Applying a command: validate everything first (reading only), then mutate
//! (infallibly); before each step the diff collector records the goal-state
//! values of the candidate objects and subscriptions it may change, and once the
//! command is done it evaluates each of them once more.

use crate::changes::ResourceChange;
use crate::command::{Command, GatewaySpec, Kind, Proposal, Rejection, Reply, SubnetUpdate};
use crate::fips::FipUpdate;
use crate::goal::{DiffCollector, Diffs, GoalKey, Scope, Touch};
use crate::ids::{validate_client_id, HostId, Id, ProjectId};
use crate::limits::{
    MTU_DEFAULT, MTU_MAX, MTU_MIN, ROUTER_INTERFACES_MAX, ROUTER_ROUTES_MAX, SUBNET_DNS_MAX,
    SUBNET_HOST_ROUTES_MAX, SUBNET_POOLS_MAX, VNI_MAX, VNI_MIN,
};
use crate::model::{
    Direction, EtherType, Host, HostStatus, Meta, Quota, ResourceKind, Route, Router,
    RouterInterface, SecurityGroup, SecurityGroupRule, Subnet, Vpc,
};
use crate::state::{ip_to_int, State};
use crate::validate;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The result of applying one log entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// What the command returned.
    pub result: Result<Reply, Rejection>,
    /// The goal-state changes of the affected hosts; empty on rejection.
    pub diffs: Diffs,
    /// The resources the entry created, changed or deleted, in the order it
    /// first touched them, with their values after it; empty on rejection.
    pub changes: Vec<ResourceChange>,
}

/// Per-command context: the log index and the leader's clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) index: u64,
    pub(crate) time_ms: u64,
    /// Sequence of IDs derived in this entry, shared by every command of a batch.
    derived: &'a std::cell::Cell<u32>,
}

impl Ctx<'_> {
    /// A new ID derived from this entry's index, unique within the entry.
    pub(crate) fn derive_id(&self) -> Id {
        let seq = self.derived.get() + 1;
        self.derived.set(seq);
        Id::derived(self.index, seq)
    }

    pub(crate) fn meta(&self, project_id: &ProjectId) -> Meta {
        Meta {
            project_id: project_id.clone(),
            revision: self.index,
            created_at: self.time_ms,
            updated_at: self.time_ms,
            tags: Default::default(),
        }
    }
    pub(crate) fn touch(&self, meta: &mut Meta) {
        meta.revision = self.index;
        meta.updated_at = self.time_ms;
    }
}

impl State {
    /// Applies one committed log entry. Deterministic: the same state, index and
    /// proposal always give the same outcome and the same new state. A rejected
    /// command changes nothing but the applied index.
    pub fn apply(&mut self, log_index: u64, proposal: &Proposal) -> Outcome {
        let derived = std::cell::Cell::new(0);
        let ctx = Ctx {
            index: log_index,
            time_ms: proposal.time_ms,
            derived: &derived,
        };
        let mut diffs = DiffCollector::default();
        self.clear_marks();
        let result = self.dispatch(ctx, &proposal.command, &mut diffs);
        self.t.applied_index = log_index;
        let (diffs, changes) = if result.is_ok() {
            (diffs.finish(self), self.take_changes())
        } else {
            self.clear_marks();
            (Diffs::default(), Vec::new())
        };
        Outcome {
            result,
            diffs,
            changes,
        }
    }

    pub(crate) fn dispatch(
        &mut self,
        ctx: Ctx,
        cmd: &Command,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        match cmd {
            Command::CreateHost {
                id,
                project_id,
                underlay_ip,
            } => self.create_host(ctx, id, project_id, *underlay_ip),
            Command::UpdateHost {
                id,
                underlay_ip,
                status,
                expected_revision,
            } => self.update_host(ctx, id, *underlay_ip, *status, *expected_revision, d),
            Command::DeleteHost {
                id,
                expected_revision,
            } => self.delete_host(id, *expected_revision),
            Command::CreateVpc {
                id,
                project_id,
                name,
                cidr,
                vni,
                mtu,
                admin_state_up,
            } => self.create_vpc(
                ctx,
                *id,
                project_id,
                name,
                *cidr,
                *vni,
                *mtu,
                *admin_state_up,
            ),
            Command::UpdateVpc {
                id,
                name,
                mtu,
                admin_state_up,
                expected_revision,
            } => self.update_vpc(
                ctx,
                *id,
                name.as_deref(),
                *mtu,
                *admin_state_up,
                *expected_revision,
                d,
            ),
            Command::DeleteVpc {
                id,
                expected_revision,
            } => self.delete_vpc(*id, *expected_revision),
            Command::CreateSubnet {
                id,
                project_id,
                network_id,
                name,
                cidr,
                gateway,
                allocation_pools,
                enable_dhcp,
                dns_nameservers,
                host_routes,
            } => {
                let spec = NewSubnet {
                    id: *id,
                    project_id,
                    network_id: *network_id,
                    name,
                    cidr: *cidr,
                    gateway: *gateway,
                    allocation_pools: allocation_pools.as_deref(),
                    enable_dhcp: *enable_dhcp,
                    dns_nameservers,
                    host_routes,
                };
                self.create_subnet(ctx, &spec, d)
            }
            Command::UpdateSubnet {
                id,
                update,
                expected_revision,
            } => self.update_subnet(ctx, *id, update, *expected_revision, d),
            Command::DeleteSubnet {
                id,
                expected_revision,
            } => self.delete_subnet(*id, *expected_revision, d),
            Command::CreatePort(spec) => self
                .create_ports(ctx, std::slice::from_ref(spec), d)
                .map(|mut ports| match ports.pop() {
                    Some(port) => Reply::Port(Box::new(port)),
                    None => Reply::Ports(Vec::new()),
                })
                .map_err(|e| match e {
                    Rejection::BatchEntry { cause, .. } => *cause,
                    other => other,
                }),
            Command::CreatePorts(specs) => self.create_ports(ctx, specs, d).map(Reply::Ports),
            Command::UpdatePort {
                id,
                update,
                expected_revision,
            } => self.update_port(ctx, *id, update, *expected_revision, d),
            Command::SetPortStatus {
                id,
                status,
                if_bound_to,
                if_revision_at_most,
            } => self.set_port_status(
                ctx,
                *id,
                status,
                (if_bound_to.as_deref(), *if_revision_at_most),
                d,
            ),
            Command::DeletePort {
                id,
                expected_revision,
            } => self.delete_port(ctx, *id, *expected_revision, d),
            Command::CreateSecurityGroup {
                id,
                project_id,
                name,
                description,
            } => self.create_security_group(ctx, *id, project_id, name, description),
            Command::UpdateSecurityGroup {
                id,
                name,
                description,
                expected_revision,
            } => self.update_security_group(
                ctx,
                *id,
                name.as_deref(),
                description.as_deref(),
                *expected_revision,
            ),
            Command::DeleteSecurityGroup {
                id,
                expected_revision,
            } => self.delete_security_group(*id, *expected_revision),
            Command::CreateSecurityGroupRule {
                id,
                project_id,
                security_group_id,
                direction,
                ethertype,
                protocol,
                port_range_min,
                port_range_max,
                remote_ip_prefix,
                remote_group_id,
            } => {
                let rule = SecurityGroupRule {
                    id: *id,
                    security_group_id: *security_group_id,
                    direction: *direction,
                    ethertype: *ethertype,
                    protocol: *protocol,
                    port_range_min: *port_range_min,
                    port_range_max: *port_range_max,
                    remote_ip_prefix: *remote_ip_prefix,
                    remote_group_id: *remote_group_id,
                    meta: ctx.meta(project_id),
                };
                self.create_rule(rule, d)
            }
            Command::DeleteSecurityGroupRule {
                id,
                expected_revision,
            } => self.delete_rule(*id, *expected_revision, d),
            Command::CreateRouter {
                id,
                project_id,
                name,
                routes,
            } => self.create_router(ctx, *id, project_id, name, routes),
            Command::UpdateRouter {
                id,
                name,
                routes,
                admin_state_up,
                expected_revision,
            } => self.update_router(
                ctx,
                *id,
                name.as_deref(),
                routes.as_deref(),
                *admin_state_up,
                *expected_revision,
                d,
            ),
            Command::DeleteRouter {
                id,
                expected_revision,
            } => self.delete_router(*id, *expected_revision),
            Command::AddRouterInterface {
                router_id,
                subnet_id,
            } => self.router_interface(ctx, *router_id, *subnet_id, true, d),
            Command::RemoveRouterInterface {
                router_id,
                subnet_id,
            } => self.router_interface(ctx, *router_id, *subnet_id, false, d),
            Command::CreateFloatingIp {
                id,
                project_id,
                floating_network_id,
                floating_ip_address,
                port_id,
                fixed_ip_address,
                description,
            } => self.create_floating_ip(
                ctx,
                *id,
                project_id,
                *floating_network_id,
                *floating_ip_address,
                port_id.map(|p| (p, *fixed_ip_address)),
                description,
                d,
            ),
            Command::UpdateFloatingIp {
                id,
                port_id,
                fixed_ip_address,
                description,
                expected_revision,
            } => self.update_floating_ip(
                ctx,
                *id,
                FipUpdate {
                    port_id: *port_id,
                    fixed_ip_address: *fixed_ip_address,
                    description: description.as_deref(),
                },
                *expected_revision,
                d,
            ),
            Command::DeleteFloatingIp {
                id,
                expected_revision,
            } => self.delete_floating_ip(ctx, *id, *expected_revision, d),
            Command::SetQuota { project_id, quota } => self.set_quota(project_id, Some(*quota)),
            Command::ResetQuota { project_id } => self.set_quota(project_id, None),
            Command::Batch(commands) => self.batch(ctx, commands, d),
            Command::Idempotent { token, command } => self.idempotent(ctx, token, command, d),
            Command::WithTags { tags, command } => self.with_tags(ctx, tags, command, d),
        }
    }

    /// Applies independent commands in order; each rejection stays with its command
    /// (a rejected command changed nothing, so the others are unaffected).
    fn batch(
        &mut self,
        ctx: Ctx,
        commands: &[Command],
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        if commands.len() > crate::limits::BATCH_COMMANDS_MAX {
            return Err(Rejection::BatchTooLarge {
                len: commands.len(),
                max: crate::limits::BATCH_COMMANDS_MAX,
            });
        }
        if commands.iter().any(|c| matches!(c, Command::Batch(_))) {
            return Err(Rejection::invalid("command", "batches may not nest"));
        }
        let results = commands
            .iter()
            .map(|command| self.dispatch(ctx, command, d))
            .collect();
        Ok(Reply::Batch(results))
    }

    /// Applies `command` once per token; see [`Command::Idempotent`].
    fn idempotent(
        &mut self,
        ctx: Ctx,
        token: &str,
        command: &Command,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        if token.is_empty()
            || token.len() > crate::limits::TOKEN_BYTES_MAX
            || token.chars().any(char::is_control)
        {
            return Err(Rejection::invalid(
                "request_token",
                format!(
                    "must be 1 to {} bytes without control characters",
                    crate::limits::TOKEN_BYTES_MAX
                ),
            ));
        }
        if matches!(command, Command::Batch(_) | Command::Idempotent { .. }) {
            return Err(Rejection::invalid(
                "command",
                "a request token wraps one plain command",
            ));
        }
        let encoded = bincode::serde::encode_to_vec(command, bincode::config::standard())
            .map_err(|e| Rejection::invalid("command", e.to_string()))?;
        let fingerprint = *blake3::hash(&encoded).as_bytes();
        if let Some(record) = self.t.tokens.get(token) {
            return if record.fingerprint == fingerprint {
                Ok(record.reply.clone())
            } else {
                Err(Rejection::TokenConflict {
                    token: token.to_string(),
                })
            };
        }
        let reply = self.dispatch(ctx, command, d)?;
        let record = crate::state::TokenRecord {
            fingerprint,
            index: ctx.index,
            reply: reply.clone(),
        };
        self.ix.token_weight += record.weight();
        self.ix.token_ages.insert((ctx.index, token.to_string()));
        self.t.tokens.insert(token.to_string(), record);
        while self.t.tokens.len() > crate::limits::TOKENS_MAX
            || self.ix.token_weight > crate::limits::TOKEN_REPLY_WEIGHT_MAX
        {
            let Some((_, oldest)) = self.ix.token_ages.pop_first() else {
                break;
            };
            if let Some(old) = self.t.tokens.remove(&oldest) {
                self.ix.token_weight = self.ix.token_weight.saturating_sub(old.weight());
            }
        }
        Ok(reply)
    }

    // ---- helpers ------------------------------------------------------------------

    /// Rejects if adding `n` resources of `kind` would exceed the project's quota.
    pub(crate) fn check_quota(
        &self,
        project: &str,
        kind: ResourceKind,
        n: u64,
    ) -> Result<(), Rejection> {
        let limit = self.quota(project).limit(kind);
        if limit < 0 {
            return Ok(());
        }
        let used = self.usage(project, kind);
        if used.saturating_add(n) > limit.unsigned_abs() {
            return Err(Rejection::QuotaExceeded {
                resource: kind,
                limit,
            });
        }
        Ok(())
    }

    /// Hosts with at least one port in the VPC.
    pub(crate) fn vpc_hosts(&self, net: Id) -> Vec<HostId> {
        self.ix
            .vpc_hosts
            .get(&net)
            .map(|hosts| hosts.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Hosts with at least one port in the group.
    pub(crate) fn sg_hosts(&self, sg: Id) -> Vec<HostId> {
        self.ix
            .sg_hosts
            .get(&sg)
            .map(|hosts| hosts.keys().cloned().collect())
            .unwrap_or_default()
    }

    // ---- hosts --------------------------------------------------------------------

    fn create_host(
        &mut self,
        ctx: Ctx,
        id: &str,
        project: &ProjectId,
        ip: IpAddr,
    ) -> Result<Reply, Rejection> {
        validate::ident("id", id)?;
        validate::ident("project_id", project)?;
        if self.t.hosts.contains_key(id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::Host,
                id: id.to_string(),
            });
        }
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(Rejection::invalid(
                "underlay_ip",
                "must be a unicast address",
            ));
        }
        let host = Host {
            id: id.to_string(),
            underlay_ip: ip,
            status: HostStatus::Up,
            meta: ctx.meta(project),
        };
        self.changed_host(&host.id);
        self.t.hosts.insert(host.id.clone(), host.clone());
        Ok(Reply::Host(host))
    }

    fn update_host(
        &mut self,
        ctx: Ctx,
        id: &str,
        ip: Option<IpAddr>,
        status: Option<HostStatus>,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let host = self
            .t
            .hosts
            .get(id)
            .ok_or_else(|| Rejection::not_found(Kind::Host, id))?;
        validate::revision(expected, host.meta.revision)?;
        if ip.is_some_and(|ip| ip.is_unspecified() || ip.is_multicast()) {
            return Err(Rejection::invalid(
                "underlay_ip",
                "must be a unicast address",
            ));
        }
        // Every neighbor entry of every port on the host carries its underlay IP.
        let mut candidates = Touch::default();
        if ip.is_some_and(|ip| ip != host.underlay_ip) {
            for port in self.ports_of_host(id) {
                candidates
                    .objects
                    .push((Scope::Vpc(port.network_id), GoalKey::Neighbor(port.id)));
            }
        }
        d.before(self, &candidates);
        self.changed_host(id);
        if let Some(host) = self.t.hosts.get_mut(id) {
            if let Some(ip) = ip {
                host.underlay_ip = ip;
            }
            if let Some(status) = status {
                host.status = status;
            }
            ctx.touch(&mut host.meta);
        }
        self.t
            .hosts
            .get(id)
            .cloned()
            .map(Reply::Host)
            .ok_or_else(|| Rejection::not_found(Kind::Host, id))
    }

    fn delete_host(&mut self, id: &str, expected: Option<u64>) -> Result<Reply, Rejection> {
        let host = self
            .t
            .hosts
            .get(id)
            .ok_or_else(|| Rejection::not_found(Kind::Host, id))?;
        validate::revision(expected, host.meta.revision)?;
        if let Some(port) = self.ports_of_host(id).next() {
            return Err(Rejection::InUse {
                kind: Kind::Host,
                id: id.to_string(),
                reason: format!("port {} is bound to it", port.id),
            });
        }
        self.changed_host(id);
        self.t.hosts.remove(id);
        Ok(Reply::Deleted)
    }

    // ---- VPCs ---------------------------------------------------------------------

    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the command's fields one to one"
    )]
    fn create_vpc(
        &mut self,
        ctx: Ctx,
        id: Id,
        project: &ProjectId,
        name: &str,
        cidr: Option<IpNet>,
        vni: Option<u32>,
        mtu: Option<u32>,
        admin_state_up: bool,
    ) -> Result<Reply, Rejection> {
        validate_client_id("id", id)?;
        validate::ident("project_id", project)?;
        validate::name("name", name)?;
        if self.t.vpcs.contains_key(&id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::Vpc,
                id: id.to_string(),
            });
        }
        if let Some(cidr) = &cidr {
            validate::canonical_cidr(cidr)?;
        }
        let mtu = mtu.unwrap_or(MTU_DEFAULT);
        if !(MTU_MIN..=MTU_MAX).contains(&mtu) {
            return Err(Rejection::invalid(
                "mtu",
                format!("must be in {MTU_MIN}..={MTU_MAX}"),
            ));
        }
        self.check_quota(project, ResourceKind::Network, 1)?;
        let vni = match vni {
            Some(v) if !(VNI_MIN..=VNI_MAX).contains(&v) => {
                return Err(Rejection::invalid(
                    "vni",
                    format!("must be in {VNI_MIN}..={VNI_MAX}"),
                ));
            }
            Some(v) if self.ix.vni_used.contains_key(&v) => {
                return Err(Rejection::InUse {
                    kind: Kind::Vpc,
                    id: id.to_string(),
                    reason: format!("VNI {v} is taken"),
                });
            }
            Some(v) => v,
            None => self.next_free_vni().ok_or(Rejection::PoolExhausted {
                scope: "VNI range".to_string(),
            })?,
        };
        let vpc = Vpc {
            id,
            name: name.to_string(),
            cidr,
            vni,
            mtu,
            admin_state_up,
            meta: ctx.meta(project),
        };
        self.t.vni_cursor = if vni >= VNI_MAX { VNI_MIN } else { vni + 1 };
        self.ix.vni_used.insert(vni, id);
        self.usage_add(project, ResourceKind::Network, 1);
        self.changed(Kind::Vpc, id);
        self.t.vpcs.insert(id, vpc.clone());
        Ok(Reply::Vpc(vpc))
    }

    fn next_free_vni(&self) -> Option<u32> {
        let start = self.t.vni_cursor.clamp(VNI_MIN, VNI_MAX);
        let free_from = |lo: u32, hi: u32| {
            let mut cand = lo;
            for (&used, _) in self.ix.vni_used.range(lo..=hi) {
                if used != cand {
                    break;
                }
                cand = cand.checked_add(1)?;
            }
            (cand <= hi).then_some(cand)
        };
        free_from(start, VNI_MAX)
            .or_else(|| free_from(VNI_MIN, start.saturating_sub(1).max(VNI_MIN)))
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the command's fields one to one"
    )]
    fn update_vpc(
        &mut self,
        ctx: Ctx,
        id: Id,
        name: Option<&str>,
        mtu: Option<u32>,
        admin_state_up: Option<bool>,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let vpc = self
            .t
            .vpcs
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Vpc, id))?;
        validate::revision(expected, vpc.meta.revision)?;
        if let Some(name) = name {
            validate::name("name", name)?;
        }
        if mtu.is_some_and(|m| !(MTU_MIN..=MTU_MAX).contains(&m)) {
            return Err(Rejection::invalid(
                "mtu",
                format!("must be in {MTU_MIN}..={MTU_MAX}"),
            ));
        }
        let candidates = Touch {
            objects: vec![(Scope::Vpc(id), GoalKey::Vpc(id))],
            subs: Vec::new(),
        };
        d.before(self, &candidates);
        self.changed(Kind::Vpc, id);
        if let Some(vpc) = self.t.vpcs.get_mut(&id) {
            if let Some(name) = name {
                vpc.name = name.to_string();
            }
            if let Some(mtu) = mtu {
                vpc.mtu = mtu;
            }
            if let Some(up) = admin_state_up {
                vpc.admin_state_up = up;
            }
            ctx.touch(&mut vpc.meta);
        }
        self.t
            .vpcs
            .get(&id)
            .cloned()
            .map(Reply::Vpc)
            .ok_or_else(|| Rejection::not_found(Kind::Vpc, id))
    }

    fn delete_vpc(&mut self, id: Id, expected: Option<u64>) -> Result<Reply, Rejection> {
        let vpc = self
            .t
            .vpcs
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Vpc, id))?;
        validate::revision(expected, vpc.meta.revision)?;
        if let Some(port) = self.ports_of_network(id).next() {
            return Err(Rejection::InUse {
                kind: Kind::Vpc,
                id: id.to_string(),
                reason: format!("port {} is in it", port.id),
            });
        }
        if let Some(subnet) = self.subnets_of(id).next() {
            return Err(Rejection::InUse {
                kind: Kind::Vpc,
                id: id.to_string(),
                reason: format!("subnet {} is in it", subnet.id),
            });
        }
        let project = vpc.meta.project_id.clone();
        let vni = vpc.vni;
        self.changed(Kind::Vpc, id);
        if let Some(gone) = self.t.vpcs.remove(&id) {
            self.index_tags(Kind::Vpc, id, &gone.meta.tags, false);
        }
        self.ix.vni_used.remove(&vni);
        self.usage_sub(&project, ResourceKind::Network, 1);
        Ok(Reply::Deleted)
    }

    // ---- subnets ------------------------------------------------------------------

    fn create_subnet(
        &mut self,
        ctx: Ctx,
        s: &NewSubnet<'_>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        validate_client_id("id", s.id)?;
        validate::ident("project_id", s.project_id)?;
        validate::name("name", s.name)?;
        if self.t.subnets.contains_key(&s.id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::Subnet,
                id: s.id.to_string(),
            });
        }
        let vpc = self
            .t
            .vpcs
            .get(&s.network_id)
            .ok_or_else(|| Rejection::not_found(Kind::Vpc, s.network_id))?;
        validate::subnet_cidr(&s.cidr)?;
        if let Some(vpc_cidr) = &vpc.cidr {
            if !vpc_cidr.contains(&s.cidr) {
                return Err(Rejection::InvalidCidr {
                    cidr: s.cidr.to_string(),
                    reason: format!("not inside the network's CIDR {vpc_cidr}"),
                });
            }
        }
        for other in self.subnets_of(s.network_id) {
            if validate::overlaps(&other.cidr, &s.cidr) {
                return Err(Rejection::OverlappingSubnet {
                    cidr: s.cidr.to_string(),
                    existing_id: other.id,
                    existing_cidr: other.cidr.to_string(),
                });
            }
        }
        let gateway_ip = match s.gateway {
            GatewaySpec::Default => Some(s.cidr.network())
                .map(|n| crate::state::int_to_ip(n.is_ipv4(), ip_to_int(n) + 1)),
            GatewaySpec::Disabled => None,
            GatewaySpec::Ip(ip) => {
                check_gateway(&s.cidr, ip)?;
                Some(ip)
            }
        };
        let allocation_pools = match s.allocation_pools {
            Some(p) if p.len() > SUBNET_POOLS_MAX => {
                return Err(Rejection::invalid(
                    "allocation_pools",
                    format!("more than {SUBNET_POOLS_MAX} pools"),
                ));
            }
            Some(p) => validate::pools(&s.cidr, gateway_ip, p)?,
            None => validate::default_pools(&s.cidr, gateway_ip),
        };
        let (dns, routes) = check_dhcp_options(&s.cidr, s.dns_nameservers, s.host_routes)?;
        self.check_quota(s.project_id, ResourceKind::Subnet, 1)?;
        let subnet = Subnet {
            id: s.id,
            name: s.name.to_string(),
            network_id: s.network_id,
            cidr: s.cidr,
            gateway_ip,
            allocation_pools,
            enable_dhcp: s.enable_dhcp,
            dns_nameservers: dns,
            host_routes: routes,
            meta: ctx.meta(s.project_id),
        };
        let candidates = Touch {
            objects: vec![(Scope::Vpc(s.network_id), GoalKey::Subnet(s.id))],
            subs: Vec::new(),
        };
        d.before(self, &candidates);
        self.ix.net_subnets.insert((s.network_id, s.id));
        self.usage_add(s.project_id, ResourceKind::Subnet, 1);
        self.changed(Kind::Subnet, s.id);
        self.t.subnets.insert(s.id, subnet.clone());
        Ok(Reply::Subnet(subnet))
    }

    fn update_subnet(
        &mut self,
        ctx: Ctx,
        id: Id,
        u: &SubnetUpdate,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let old = self
            .t
            .subnets
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Subnet, id))?;
        validate::revision(expected, old.meta.revision)?;
        let mut new = old.clone();
        if let Some(name) = &u.name {
            validate::name("name", name)?;
            new.name = name.clone();
        }
        if let Some(gateway) = u.gateway_ip {
            if self.ix.subnet_router.contains_key(&id) && gateway != old.gateway_ip {
                return Err(Rejection::InUse {
                    kind: Kind::Subnet,
                    id: id.to_string(),
                    reason: "a router interface uses the gateway address".to_string(),
                });
            }
            if let Some(ip) = gateway {
                check_gateway(&new.cidr, ip)?;
                if let Some(port) = self.ix.ip_used.get(&(id, ip_to_int(ip))) {
                    return Err(Rejection::InUse {
                        kind: Kind::Subnet,
                        id: id.to_string(),
                        reason: format!("gateway address {ip} is used by port {port}"),
                    });
                }
            }
            new.gateway_ip = gateway;
        }
        if let Some(pools) = &u.allocation_pools {
            if pools.len() > SUBNET_POOLS_MAX {
                return Err(Rejection::invalid(
                    "allocation_pools",
                    format!("more than {SUBNET_POOLS_MAX} pools"),
                ));
            }
            new.allocation_pools = validate::pools(&new.cidr, new.gateway_ip, pools)?;
        } else if u.gateway_ip.is_some() {
            // The gateway moved: pools must still exclude it.
            new.allocation_pools =
                validate::pools(&new.cidr, new.gateway_ip, &new.allocation_pools)?;
        }
        if let Some(dhcp) = u.enable_dhcp {
            new.enable_dhcp = dhcp;
        }
        let dns = u
            .dns_nameservers
            .as_deref()
            .unwrap_or(&new.dns_nameservers)
            .to_vec();
        let routes = u
            .host_routes
            .as_deref()
            .unwrap_or(&new.host_routes)
            .to_vec();
        let (dns, routes) = check_dhcp_options(&new.cidr, &dns, &routes)?;
        new.dns_nameservers = dns;
        new.host_routes = routes;
        ctx.touch(&mut new.meta);
        let candidates = Touch {
            objects: vec![(Scope::Vpc(new.network_id), GoalKey::Subnet(id))],
            subs: Vec::new(),
        };
        d.before(self, &candidates);
        self.changed(Kind::Subnet, id);
        self.t.subnets.insert(id, new.clone());
        Ok(Reply::Subnet(new))
    }

    fn delete_subnet(
        &mut self,
        id: Id,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let subnet = self
            .t
            .subnets
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Subnet, id))?;
        validate::revision(expected, subnet.meta.revision)?;
        if let Some(((_, _), port)) = self.ix.ip_used.range((id, 0)..=(id, u128::MAX)).next() {
            return Err(Rejection::InUse {
                kind: Kind::Subnet,
                id: id.to_string(),
                reason: format!("port {port} has an address in it"),
            });
        }
        if let Some(router) = self.ix.subnet_router.get(&id) {
            return Err(Rejection::InUse {
                kind: Kind::Subnet,
                id: id.to_string(),
                reason: format!("router {router} has an interface on it"),
            });
        }
        let (net, project) = (subnet.network_id, subnet.meta.project_id.clone());
        let candidates = Touch {
            objects: vec![(Scope::Vpc(net), GoalKey::Subnet(id))],
            subs: Vec::new(),
        };
        d.before(self, &candidates);
        self.changed(Kind::Subnet, id);
        if let Some(gone) = self.t.subnets.remove(&id) {
            self.index_tags(Kind::Subnet, id, &gone.meta.tags, false);
        }
        self.t.ip_cursors.remove(&id);
        self.ix.net_subnets.remove(&(net, id));
        self.usage_sub(&project, ResourceKind::Subnet, 1);
        Ok(Reply::Deleted)
    }

    // ---- security groups ------------------------------------------------------------

    /// Inserts a group and Neutron's two default egress rules (IPv4 and IPv6 to
    /// anywhere); the project's default group also allows ingress from itself.
    ///
    /// The callers have checked that neither the group's nor the rules' IDs
    /// are taken; overwriting a resource would leave indexes that a rebuild
    /// from the tables does not reproduce.
    pub(crate) fn insert_security_group(&mut self, ctx: Ctx, sg: SecurityGroup, rule_ids: [Id; 4]) {
        assert!(
            !self.t.security_groups.contains_key(&sg.id),
            "security group {} would be overwritten",
            sg.id
        );
        for rule_id in &rule_ids {
            assert!(
                !self.t.rules.contains_key(rule_id),
                "security group rule {rule_id} would be overwritten"
            );
        }
        let project = sg.meta.project_id.clone();
        let mut rules = Vec::new();
        for (ethertype, rule_id) in [
            (EtherType::Ipv4, rule_ids[0]),
            (EtherType::Ipv6, rule_ids[1]),
        ] {
            rules.push((rule_id, Direction::Egress, ethertype, None));
        }
        if sg.is_default {
            for (ethertype, rule_id) in [
                (EtherType::Ipv4, rule_ids[2]),
                (EtherType::Ipv6, rule_ids[3]),
            ] {
                rules.push((rule_id, Direction::Ingress, ethertype, Some(sg.id)));
            }
            self.ix.default_sg.insert(project.clone(), sg.id);
        }
        for (rule_id, direction, ethertype, remote_group_id) in rules {
            let rule = SecurityGroupRule {
                id: rule_id,
                security_group_id: sg.id,
                direction,
                ethertype,
                protocol: None,
                port_range_min: None,
                port_range_max: None,
                remote_ip_prefix: None,
                remote_group_id,
                meta: ctx.meta(&project),
            };
            self.index_rule(&rule, true);
            self.changed(Kind::SecurityGroupRule, rule.id);
            self.t.rules.insert(rule.id, rule);
        }
        self.usage_add(&project, ResourceKind::SecurityGroup, 1);
        self.changed(Kind::SecurityGroup, sg.id);
        self.t.security_groups.insert(sg.id, sg);
    }

    fn create_security_group(
        &mut self,
        ctx: Ctx,
        id: Id,
        project: &ProjectId,
        name: &str,
        description: &str,
    ) -> Result<Reply, Rejection> {
        validate_client_id("id", id)?;
        validate::ident("project_id", project)?;
        validate::name("name", name)?;
        validate::name("description", description)?;
        if self.t.security_groups.contains_key(&id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::SecurityGroup,
                id: id.to_string(),
            });
        }
        let rule_ids = [
            ctx.derive_id(),
            ctx.derive_id(),
            ctx.derive_id(),
            ctx.derive_id(),
        ];
        if rule_ids.iter().any(|r| self.t.rules.contains_key(r)) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::SecurityGroupRule,
                id: rule_ids[0].to_string(),
            });
        }
        self.check_quota(project, ResourceKind::SecurityGroup, 1)?;
        self.check_quota(project, ResourceKind::SecurityGroupRule, 2)?;
        let sg = SecurityGroup {
            id,
            name: name.to_string(),
            description: description.to_string(),
            is_default: false,
            meta: ctx.meta(project),
        };
        self.insert_security_group(ctx, sg.clone(), rule_ids);
        Ok(Reply::SecurityGroup(sg))
    }

    fn update_security_group(
        &mut self,
        ctx: Ctx,
        id: Id,
        name: Option<&str>,
        description: Option<&str>,
        expected: Option<u64>,
    ) -> Result<Reply, Rejection> {
        let sg = self
            .t
            .security_groups
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::SecurityGroup, id))?;
        validate::revision(expected, sg.meta.revision)?;
        if let Some(name) = name {
            validate::name("name", name)?;
            if sg.is_default && name != sg.name {
                return Err(Rejection::invalid(
                    "name",
                    "the default group cannot be renamed",
                ));
            }
        }
        if let Some(description) = description {
            validate::name("description", description)?;
        }
        self.changed(Kind::SecurityGroup, id);
        let Some(sg) = self.t.security_groups.get_mut(&id) else {
            return Err(Rejection::not_found(Kind::SecurityGroup, id));
        };
        if let Some(name) = name {
            sg.name = name.to_string();
        }
        if let Some(description) = description {
            sg.description = description.to_string();
        }
        ctx.touch(&mut sg.meta);
        Ok(Reply::SecurityGroup(sg.clone()))
    }

    fn delete_security_group(&mut self, id: Id, expected: Option<u64>) -> Result<Reply, Rejection> {
        let sg = self
            .t
            .security_groups
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::SecurityGroup, id))?;
        validate::revision(expected, sg.meta.revision)?;
        if let Some((_, port)) = self
            .ix
            .sg_ports
            .range((id, Id(0))..=(id, Id(u128::MAX)))
            .next()
        {
            return Err(Rejection::InUse {
                kind: Kind::SecurityGroup,
                id: id.to_string(),
                reason: format!("port {port} uses it"),
            });
        }
        for (_, rule_id) in self.ix.remote_refs.range((id, Id(0))..=(id, Id(u128::MAX))) {
            if let Some(rule) = self.t.rules.get(rule_id) {
                if rule.security_group_id != id {
                    return Err(Rejection::InUse {
                        kind: Kind::SecurityGroup,
                        id: id.to_string(),
                        reason: format!(
                            "rule {rule_id} of group {} names it as remote group",
                            rule.security_group_id
                        ),
                    });
                }
            }
        }
        let project = sg.meta.project_id.clone();
        let is_default = sg.is_default;
        let rule_ids: Vec<Id> = self
            .ix
            .sg_rules
            .range((id, Id(0))..=(id, Id(u128::MAX)))
            .map(|(_, r)| *r)
            .collect();
        for rule_id in rule_ids {
            self.changed(Kind::SecurityGroupRule, rule_id);
            if let Some(rule) = self.t.rules.remove(&rule_id) {
                self.index_rule(&rule, false);
            }
        }
        if is_default {
            self.ix.default_sg.remove(&project);
        }
        self.changed(Kind::SecurityGroup, id);
        if let Some(gone) = self.t.security_groups.remove(&id) {
            self.index_tags(Kind::SecurityGroup, id, &gone.meta.tags, false);
        }
        self.usage_sub(&project, ResourceKind::SecurityGroup, 1);
        Ok(Reply::Deleted)
    }

    fn rule_candidates(&self, rule: &SecurityGroupRule) -> Touch {
        let mut out = Touch::default();
        out.objects.push((
            Scope::Rules(rule.security_group_id),
            GoalKey::SgRule(rule.id),
        ));
        if let Some(group_id) = rule.remote_group_id {
            for host in self.sg_hosts(rule.security_group_id) {
                out.subs.push((host, Scope::Members(group_id)));
            }
        }
        out
    }

    fn create_rule(
        &mut self,
        rule: SecurityGroupRule,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        validate_client_id("id", rule.id)?;
        validate::ident("project_id", &rule.meta.project_id)?;
        if self.t.rules.contains_key(&rule.id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::SecurityGroupRule,
                id: rule.id.to_string(),
            });
        }
        if !self.t.security_groups.contains_key(&rule.security_group_id) {
            return Err(Rejection::not_found(
                Kind::SecurityGroup,
                rule.security_group_id,
            ));
        }
        if let Some(g) = rule.remote_group_id {
            if !self.t.security_groups.contains_key(&g) {
                return Err(Rejection::not_found(Kind::SecurityGroup, g));
            }
        }
        check_rule(&rule)?;
        if let Some(existing) = self.ix.rule_match.get(&rule.match_key()) {
            return Err(Rejection::RuleExists {
                existing_id: *existing,
            });
        }
        self.check_quota(&rule.meta.project_id, ResourceKind::SecurityGroupRule, 1)?;
        let candidates = self.rule_candidates(&rule);
        d.before(self, &candidates);
        self.index_rule(&rule, true);
        self.changed(Kind::SecurityGroupRule, rule.id);
        self.t.rules.insert(rule.id, rule.clone());
        Ok(Reply::SecurityGroupRule(rule))
    }

    fn delete_rule(
        &mut self,
        id: Id,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let rule = self
            .t
            .rules
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::SecurityGroupRule, id))?
            .clone();
        validate::revision(expected, rule.meta.revision)?;
        let candidates = self.rule_candidates(&rule);
        d.before(self, &candidates);
        self.index_rule(&rule, false);
        self.changed(Kind::SecurityGroupRule, id);
        self.t.rules.remove(&id);
        Ok(Reply::Deleted)
    }

    // ---- routers --------------------------------------------------------------------

    fn create_router(
        &mut self,
        ctx: Ctx,
        id: Id,
        project: &ProjectId,
        name: &str,
        routes: &[Route],
    ) -> Result<Reply, Rejection> {
        validate_client_id("id", id)?;
        validate::ident("project_id", project)?;
        validate::name("name", name)?;
        if self.t.routers.contains_key(&id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::Router,
                id: id.to_string(),
            });
        }
        let routes = validate::routes("routes", routes, ROUTER_ROUTES_MAX)?;
        self.check_quota(project, ResourceKind::Router, 1)?;
        let router = Router {
            id,
            name: name.to_string(),
            admin_state_up: true,
            interfaces: Vec::new(),
            routes,
            meta: ctx.meta(project),
        };
        self.usage_add(project, ResourceKind::Router, 1);
        self.changed(Kind::Router, id);
        self.t.routers.insert(id, router.clone());
        Ok(Reply::Router(router))
    }

    fn router_candidates(&self, router: &Router, out: &mut Touch) {
        for iface in &router.interfaces {
            if let Some(subnet) = self.t.subnets.get(&iface.subnet_id) {
                let key = GoalKey::Router {
                    network_id: subnet.network_id,
                    router_id: router.id,
                };
                out.objects.push((Scope::Vpc(subnet.network_id), key));
            }
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the command's fields one to one"
    )]
    fn update_router(
        &mut self,
        ctx: Ctx,
        id: Id,
        name: Option<&str>,
        routes: Option<&[Route]>,
        admin_state_up: Option<bool>,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let router = self
            .t
            .routers
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Router, id))?;
        validate::revision(expected, router.meta.revision)?;
        let mut new = router.clone();
        if let Some(name) = name {
            validate::name("name", name)?;
            new.name = name.to_string();
        }
        if let Some(routes) = routes {
            new.routes = validate::routes("routes", routes, ROUTER_ROUTES_MAX)?;
        }
        if let Some(up) = admin_state_up {
            new.admin_state_up = up;
        }
        ctx.touch(&mut new.meta);
        let mut candidates = Touch::default();
        self.router_candidates(&new, &mut candidates);
        d.before(self, &candidates);
        self.changed(Kind::Router, id);
        self.t.routers.insert(id, new.clone());
        Ok(Reply::Router(new))
    }

    fn delete_router(&mut self, id: Id, expected: Option<u64>) -> Result<Reply, Rejection> {
        let router = self
            .t
            .routers
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Router, id))?;
        validate::revision(expected, router.meta.revision)?;
        if let Some(iface) = router.interfaces.first() {
            return Err(Rejection::InUse {
                kind: Kind::Router,
                id: id.to_string(),
                reason: format!("it has an interface on subnet {}", iface.subnet_id),
            });
        }
        let project = router.meta.project_id.clone();
        self.changed(Kind::Router, id);
        if let Some(gone) = self.t.routers.remove(&id) {
            self.index_tags(Kind::Router, id, &gone.meta.tags, false);
        }
        self.usage_sub(&project, ResourceKind::Router, 1);
        Ok(Reply::Deleted)
    }

    fn router_interface(
        &mut self,
        ctx: Ctx,
        router_id: Id,
        subnet_id: Id,
        add: bool,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let router = self
            .t
            .routers
            .get(&router_id)
            .ok_or_else(|| Rejection::not_found(Kind::Router, router_id))?;
        let subnet = self
            .t
            .subnets
            .get(&subnet_id)
            .ok_or_else(|| Rejection::not_found(Kind::Subnet, subnet_id))?;
        let mut new = router.clone();
        if add {
            if let Some(owner) = self.ix.subnet_router.get(&subnet_id) {
                return Err(Rejection::InUse {
                    kind: Kind::Subnet,
                    id: subnet_id.to_string(),
                    reason: format!("router {owner} already has an interface on it"),
                });
            }
            let Some(gateway) = subnet.gateway_ip else {
                return Err(Rejection::invalid(
                    "subnet_id",
                    "the subnet has no gateway address",
                ));
            };
            if new.interfaces.len() >= ROUTER_INTERFACES_MAX {
                return Err(Rejection::invalid(
                    "subnet_id",
                    format!("router has {ROUTER_INTERFACES_MAX} interfaces already"),
                ));
            }
            let same_net = new
                .interfaces
                .iter()
                .filter_map(|i| self.t.subnets.get(&i.subnet_id))
                .find(|s| {
                    s.network_id == subnet.network_id && validate::overlaps(&s.cidr, &subnet.cidr)
                });
            if let Some(other) = same_net {
                return Err(Rejection::OverlappingSubnet {
                    cidr: subnet.cidr.to_string(),
                    existing_id: other.id,
                    existing_cidr: other.cidr.to_string(),
                });
            }
            new.interfaces.push(RouterInterface {
                subnet_id,
                ip_address: gateway,
            });
            new.interfaces.sort();
        } else {
            let before = new.interfaces.len();
            new.interfaces.retain(|i| i.subnet_id != subnet_id);
            if new.interfaces.len() == before {
                return Err(Rejection::invalid(
                    "subnet_id",
                    format!("router {router_id} has no interface on subnet {subnet_id}"),
                ));
            }
        }
        ctx.touch(&mut new.meta);
        let old = router.clone();
        let mut candidates = Touch::default();
        self.router_candidates(&old, &mut candidates);
        self.router_candidates(&new, &mut candidates);
        d.before(self, &candidates);
        self.index_router(&old, false);
        self.index_router(&new, true);
        self.changed(Kind::Router, router_id);
        self.t.routers.insert(router_id, new.clone());
        Ok(Reply::Router(new))
    }

    // ---- quotas -------------------------------------------------------------------

    fn set_quota(&mut self, project: &ProjectId, quota: Option<Quota>) -> Result<Reply, Rejection> {
        validate::ident("project_id", project)?;
        match quota {
            Some(q) => {
                let values = [
                    q.network,
                    q.subnet,
                    q.port,
                    q.router,
                    q.security_group,
                    q.security_group_rule,
                ];
                if values.iter().any(|v| *v < -1) {
                    return Err(Rejection::invalid(
                        "quota",
                        "limits must be -1 (unlimited) or non-negative",
                    ));
                }
                self.t.quotas.insert(project.clone(), q);
            }
            None => {
                self.t.quotas.remove(project);
            }
        }
        Ok(Reply::Quota(self.quota(project)))
    }
}

/// Fields of a new subnet, borrowed from the command.
pub(crate) struct NewSubnet<'a> {
    id: Id,
    project_id: &'a ProjectId,
    network_id: Id,
    name: &'a str,
    cidr: IpNet,
    gateway: GatewaySpec,
    allocation_pools: Option<&'a [crate::model::AllocationPool]>,
    enable_dhcp: bool,
    dns_nameservers: &'a [IpAddr],
    host_routes: &'a [Route],
}

fn check_gateway(cidr: &IpNet, ip: IpAddr) -> Result<(), Rejection> {
    if !validate::same_family(&ip, cidr) || !cidr.contains(&ip) {
        return Err(Rejection::invalid(
            "gateway_ip",
            format!("{ip} is not inside {cidr}"),
        ));
    }
    if validate::is_reserved(cidr, &ip) {
        return Err(Rejection::invalid(
            "gateway_ip",
            "network and broadcast addresses cannot be the gateway",
        ));
    }
    Ok(())
}

fn check_dhcp_options(
    cidr: &IpNet,
    dns: &[IpAddr],
    routes: &[Route],
) -> Result<(Vec<IpAddr>, Vec<Route>), Rejection> {
    if dns.len() > SUBNET_DNS_MAX {
        return Err(Rejection::invalid(
            "dns_nameservers",
            format!("more than {SUBNET_DNS_MAX} servers"),
        ));
    }
    let mut seen = BTreeSet::new();
    for ip in dns {
        if !seen.insert(*ip) {
            return Err(Rejection::invalid(
                "dns_nameservers",
                format!("duplicate server {ip}"),
            ));
        }
    }
    let routes = validate::routes("host_routes", routes, SUBNET_HOST_ROUTES_MAX)?;
    if routes
        .iter()
        .any(|r| !validate::same_family(&r.nexthop, cidr))
    {
        return Err(Rejection::invalid(
            "host_routes",
            "next hop family differs from the subnet",
        ));
    }
    Ok((dns.to_vec(), routes))
}

fn check_rule(rule: &SecurityGroupRule) -> Result<(), Rejection> {
    if rule.remote_ip_prefix.is_some() && rule.remote_group_id.is_some() {
        return Err(Rejection::invalid(
            "remote_ip_prefix",
            "remote_ip_prefix and remote_group_id are exclusive",
        ));
    }
    if let Some(prefix) = &rule.remote_ip_prefix {
        validate::canonical_cidr(prefix)?;
        let family_ok = matches!(
            (prefix, rule.ethertype),
            (IpNet::V4(_), EtherType::Ipv4) | (IpNet::V6(_), EtherType::Ipv6)
        );
        if !family_ok {
            return Err(Rejection::invalid(
                "remote_ip_prefix",
                "family differs from ethertype",
            ));
        }
    }
    let has_ports = matches!(rule.protocol, Some(6) | Some(17) | Some(132));
    match (rule.port_range_min, rule.port_range_max) {
        (None, None) => {}
        (Some(lo), Some(hi)) if has_ports && lo <= hi && lo > 0 => {}
        (Some(_), Some(_)) if has_ports => {
            return Err(Rejection::invalid(
                "port_range_min",
                "need 1 <= port_range_min <= port_range_max",
            ));
        }
        (Some(t), code) if matches!(rule.protocol, Some(1) | Some(58)) => {
            if t > 255 || code.is_some_and(|c| c > 255) {
                return Err(Rejection::invalid(
                    "port_range_min",
                    "ICMP type and code are at most 255",
                ));
            }
        }
        _ => {
            return Err(Rejection::invalid(
                "port_range_min",
                "port ranges need protocol tcp, udp or sctp (or ICMP type/code)",
            ));
        }
    }
    Ok(())
}
