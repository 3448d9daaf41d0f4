//! Applying a command: validate everything first (reading only), then mutate
//! (infallibly); before each step the diff collector records the goal-state
//! values of the candidate objects and subscriptions it may change, and once the
//! command is done it evaluates each of them once more.
//!
//! One file per resource holds its handlers; this one dispatches commands and
//! holds the wrappers (batches, request tokens) and shared checks.

mod floating_ip;
mod host;
pub(crate) mod port;
mod qos;
mod quota;
mod router;
mod security_group;
mod subnet;
mod vpc;

pub(crate) use floating_ip::FipUpdate;
use port::HostRule;
pub use qos::validate_qos_rule;
use router::HeldAddresses;
pub(crate) use subnet::NewSubnet;

use crate::changes::ResourceChange;
use crate::command::{Command, PortSpecV5, PortUpdateV5, Proposal, Rejection, Reply};
use crate::goal::{DiffCollector, Diffs};
use crate::ids::{HostId, Id, ProjectId};
use crate::model::{Meta, ResourceKind, SecurityGroupRule};
use crate::state::State;
use serde::{Deserialize, Serialize};

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
        self.apply_collecting(log_index, proposal, DiffCollector::default())
    }

    /// [`State::apply`] without computing goal-state diffs (`diffs` is
    /// empty): the same new state, result and changes. For replaying the
    /// log when nobody listens for diffs (a restart), where evaluating
    /// goal objects before and after every command was half the cost.
    pub fn apply_without_diffs(&mut self, log_index: u64, proposal: &Proposal) -> Outcome {
        self.apply_collecting(log_index, proposal, DiffCollector::off())
    }

    fn apply_collecting(
        &mut self,
        log_index: u64,
        proposal: &Proposal,
        mut diffs: DiffCollector,
    ) -> Outcome {
        let derived = std::cell::Cell::new(0);
        let ctx = Ctx {
            index: log_index,
            time_ms: proposal.time_ms,
            derived: &derived,
        };
        self.clear_marks();
        let result = self.dispatch(ctx, &proposal.command, &mut diffs);
        self.commit_applied_index(log_index);
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
            } => self.create_host(ctx, id, project_id, *underlay_ip, d),
            Command::UpdateHost {
                id,
                underlay_ip,
                status,
                expected_revision,
            } => self.update_host(ctx, id, *underlay_ip, *status, *expected_revision, d),
            Command::DeleteHost {
                id,
                expected_revision,
            } => self.delete_host(id, *expected_revision, d),
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
                (*admin_state_up, true),
                d,
            ),
            Command::CreateVpcV5 {
                id,
                project_id,
                name,
                cidr,
                vni,
                mtu,
                admin_state_up,
                port_security_enabled,
            } => self.create_vpc(
                ctx,
                *id,
                project_id,
                name,
                *cidr,
                *vni,
                *mtu,
                (*admin_state_up, *port_security_enabled),
                d,
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
                (*admin_state_up, None),
                *expected_revision,
                d,
            ),
            Command::UpdateVpcV5 {
                id,
                name,
                mtu,
                admin_state_up,
                port_security_enabled,
                expected_revision,
            } => self.update_vpc(
                ctx,
                *id,
                name.as_deref(),
                *mtu,
                (*admin_state_up, *port_security_enabled),
                *expected_revision,
                d,
            ),
            Command::DeleteVpc {
                id,
                expected_revision,
            } => self.delete_vpc(*id, *expected_revision, d),
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
            Command::CreatePort(spec) => {
                let spec = PortSpecV5::from(spec.clone());
                self.create_port(ctx, spec, HostRule::Registered, d)
            }
            Command::CreatePortV5(spec) => {
                self.create_port(ctx, spec.clone(), HostRule::Registered, d)
            }
            Command::CreatePortV6(spec) => self.create_port(ctx, spec.clone(), HostRule::Any, d),
            Command::CreatePorts(specs) => {
                let specs: Vec<PortSpecV5> = specs.iter().cloned().map(PortSpecV5::from).collect();
                self.create_ports(ctx, &specs, HostRule::Registered, d)
                    .map(Reply::Ports)
            }
            Command::CreatePortsV5(specs) => self
                .create_ports(ctx, specs, HostRule::Registered, d)
                .map(Reply::Ports),
            Command::CreatePortsV6(specs) => self
                .create_ports(ctx, specs, HostRule::Any, d)
                .map(Reply::Ports),
            Command::UpdatePort {
                id,
                update,
                expected_revision,
            } => {
                let update = PortUpdateV5::from(update.clone());
                self.update_port(
                    ctx,
                    *id,
                    &update,
                    *expected_revision,
                    HostRule::Registered,
                    d,
                )
            }
            Command::UpdatePortV5 {
                id,
                update,
                expected_revision,
            } => self.update_port(
                ctx,
                *id,
                update,
                *expected_revision,
                HostRule::Registered,
                d,
            ),
            Command::UpdatePortV6 {
                id,
                update,
                expected_revision,
            } => self.update_port(ctx, *id, update, *expected_revision, HostRule::Any, d),
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
            } => self.create_security_group(ctx, *id, project_id, name, description, d),
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
            } => self.delete_security_group(*id, *expected_revision, d),
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
            } => self.create_router(ctx, *id, project_id, name, routes, d),
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
            } => self.delete_router(*id, *expected_revision, d),
            Command::AddRouterInterface {
                router_id,
                subnet_id,
            } => self.router_interface(ctx, *router_id, *subnet_id, true, d),
            Command::RemoveRouterInterface {
                router_id,
                subnet_id,
            } => self.router_interface(ctx, *router_id, *subnet_id, false, d),
            Command::AddRouterInterfaceV6 { router_id, target } => {
                self.add_router_interface(ctx, *router_id, *target, d)
            }
            Command::RemoveRouterInterfaceV6 { router_id, target } => {
                self.remove_router_interface(ctx, *router_id, *target, d)
            }
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
            Command::CreateQosPolicy {
                id,
                project_id,
                name,
                description,
                shared,
            } => self.create_qos_policy(ctx, *id, project_id, (name, description, *shared), d),
            Command::UpdateQosPolicy {
                id,
                name,
                description,
                shared,
                expected_revision,
            } => self.update_qos_policy(
                ctx,
                *id,
                (name.as_deref(), description.as_deref(), *shared),
                *expected_revision,
                d,
            ),
            Command::DeleteQosPolicy {
                id,
                expected_revision,
            } => self.delete_qos_policy(*id, *expected_revision, d),
            Command::CreateQosRule { policy_id, rule } => {
                self.create_qos_rule(ctx, *policy_id, *rule, d)
            }
            Command::UpdateQosRule {
                policy_id,
                rule_id,
                update,
            } => self.update_qos_rule(ctx, *policy_id, *rule_id, update, d),
            Command::DeleteQosRule { policy_id, rule_id } => {
                self.delete_qos_rule(ctx, *policy_id, *rule_id, d)
            }
            Command::CreateVpcV7 {
                id,
                project_id,
                name,
                cidr,
                vni,
                mtu,
                admin_state_up,
                port_security_enabled,
                qos_policy_id,
            } => self.create_vpc_with_qos(project_id, *qos_policy_id, d, |s, d| {
                s.create_vpc(
                    ctx,
                    *id,
                    project_id,
                    name,
                    *cidr,
                    *vni,
                    *mtu,
                    (*admin_state_up, *port_security_enabled),
                    d,
                )
            }),
            Command::UpdateVpcV7 {
                id,
                name,
                mtu,
                admin_state_up,
                port_security_enabled,
                qos_policy_id,
                expected_revision,
            } => self.update_vpc_with_qos(*id, *qos_policy_id, d, |s, d| {
                s.update_vpc(
                    ctx,
                    *id,
                    name.as_deref(),
                    *mtu,
                    (*admin_state_up, *port_security_enabled),
                    *expected_revision,
                    d,
                )
            }),
            Command::CreatePortV7 {
                spec,
                qos_policy_id,
            } => self.create_port_with_qos(ctx, spec, *qos_policy_id, d),
            Command::UpdatePortV7 {
                id,
                update,
                qos_policy_id,
                expected_revision,
            } => {
                self.update_port_with_qos(ctx, *id, update, (*qos_policy_id, *expected_revision), d)
            }
            Command::CreateVpcV8 {
                id,
                project_id,
                name,
                cidr,
                vni,
                mtu,
                admin_state_up,
                port_security_enabled,
                qos_policy_id,
                external,
            } => self.create_vpc_external(*external, |s| {
                s.create_vpc_with_qos(project_id, *qos_policy_id, d, |s, d| {
                    s.create_vpc(
                        ctx,
                        *id,
                        project_id,
                        name,
                        *cidr,
                        *vni,
                        *mtu,
                        (*admin_state_up, *port_security_enabled),
                        d,
                    )
                })
            }),
            Command::UpdateVpcV8 {
                id,
                name,
                mtu,
                admin_state_up,
                port_security_enabled,
                qos_policy_id,
                external,
                expected_revision,
            } => self.update_vpc_external(*id, *external, |s| {
                s.update_vpc_with_qos(*id, *qos_policy_id, d, |s, d| {
                    s.update_vpc(
                        ctx,
                        *id,
                        name.as_deref(),
                        *mtu,
                        (*admin_state_up, *port_security_enabled),
                        *expected_revision,
                        d,
                    )
                })
            }),
            Command::CreateRouterV8 {
                id,
                project_id,
                name,
                routes,
                gateway,
            } => self.create_router_with_gateway(
                ctx,
                (*id, project_id, name, routes),
                gateway.as_ref(),
                d,
            ),
            Command::UpdateRouterV8 {
                id,
                name,
                routes,
                admin_state_up,
                gateway,
                expected_revision,
            } => self.update_router_with_gateway(
                ctx,
                (*id, name.as_deref(), routes.as_deref(), *admin_state_up),
                gateway.as_ref().map(Option::as_ref),
                *expected_revision,
                HeldAddresses::Taken,
                d,
            ),
            Command::UpdateRouterV9 {
                id,
                name,
                routes,
                admin_state_up,
                gateway,
                expected_revision,
            } => self.update_router_with_gateway(
                ctx,
                (*id, name.as_deref(), routes.as_deref(), *admin_state_up),
                gateway.as_ref().map(Option::as_ref),
                *expected_revision,
                HeldAddresses::Free,
                d,
            ),
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
        if let Some(record) = self.t.tokens().get(token) {
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
        self.commit_token(token, record);
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
            .vpc_hosts()
            .get(&net)
            .map(|hosts| hosts.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Hosts with at least one port in the group.
    pub(crate) fn sg_hosts(&self, sg: Id) -> Vec<HostId> {
        self.ix
            .sg_hosts()
            .get(&sg)
            .map(|hosts| hosts.keys().cloned().collect())
            .unwrap_or_default()
    }
}
