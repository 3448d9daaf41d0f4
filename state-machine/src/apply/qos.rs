//! QoS commands: policies, their rules, and the policy of networks and ports
//! (the format-7 variants of the VPC and port commands).

use crate::apply::port::HostRule;
use crate::apply::Ctx;
use crate::command::{Kind, PortSpecV5, PortUpdateV5, QosRuleUpdate, Rejection, Reply};
use crate::goal::DiffCollector;
use crate::ids::{validate_client_id, Id, ProjectId};
use crate::limits::QOS_KBPS_MAX;
use crate::model::{QosPolicy, QosRule, QosRuleKind, DSCP_MARKS};
use crate::state::State;
use crate::validate;

/// Checks a rule's values: rates within [`QOS_KBPS_MAX`], a DSCP mark of
/// [`DSCP_MARKS`]. The gateways call it too, so both refuse alike.
pub fn validate_qos_rule(kind: &QosRuleKind) -> Result<(), Rejection> {
    match *kind {
        QosRuleKind::BandwidthLimit {
            max_kbps,
            max_burst_kbps,
            ..
        } => {
            for (field, value) in [("max_kbps", max_kbps), ("max_burst_kbps", max_burst_kbps)] {
                if value > QOS_KBPS_MAX {
                    return Err(Rejection::invalid(
                        field,
                        format!("{value} is above {QOS_KBPS_MAX}"),
                    ));
                }
            }
        }
        QosRuleKind::DscpMarking { dscp_mark } => {
            if !DSCP_MARKS.contains(&dscp_mark) {
                return Err(Rejection::invalid(
                    "dscp_mark",
                    format!("{dscp_mark} is not a valid DSCP mark (one of {DSCP_MARKS:?})"),
                ));
            }
        }
    }
    Ok(())
}

/// A rule with an update's fields applied; a field its kind lacks is refused.
fn updated_rule(rule: QosRule, u: &QosRuleUpdate) -> Result<QosRule, Rejection> {
    let kind = match rule.kind {
        QosRuleKind::BandwidthLimit {
            direction,
            max_kbps,
            max_burst_kbps,
        } => {
            if u.dscp_mark.is_some() {
                return Err(Rejection::invalid(
                    "dscp_mark",
                    "not a field of a bandwidth-limit rule",
                ));
            }
            QosRuleKind::BandwidthLimit {
                direction: u.direction.unwrap_or(direction),
                max_kbps: u.max_kbps.unwrap_or(max_kbps),
                max_burst_kbps: u.max_burst_kbps.unwrap_or(max_burst_kbps),
            }
        }
        QosRuleKind::DscpMarking { dscp_mark } => {
            if let Some(field) = [
                ("max_kbps", u.max_kbps.is_some()),
                ("max_burst_kbps", u.max_burst_kbps.is_some()),
                ("direction", u.direction.is_some()),
            ]
            .into_iter()
            .find_map(|(field, given)| given.then_some(field))
            {
                return Err(Rejection::invalid(
                    field,
                    "not a field of a DSCP-marking rule",
                ));
            }
            QosRuleKind::DscpMarking {
                dscp_mark: u.dscp_mark.unwrap_or(dscp_mark),
            }
        }
    };
    Ok(QosRule { id: rule.id, kind })
}

impl State {
    pub(crate) fn create_qos_policy(
        &mut self,
        ctx: Ctx,
        id: Id,
        project: &ProjectId,
        (name, description, shared): (&str, &str, bool),
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        validate_client_id("id", id)?;
        validate::ident("project_id", project)?;
        validate::name("name", name)?;
        validate::name("description", description)?;
        if self.qos_policy(&id).is_some() {
            return Err(Rejection::AlreadyExists {
                kind: Kind::QosPolicy,
                id: id.to_string(),
            });
        }
        let policy = QosPolicy {
            id,
            name: name.to_string(),
            description: description.to_string(),
            shared,
            rules: Vec::new(),
            meta: ctx.meta(project),
        };
        self.commit_qos_policy(id, Some(policy.clone()), d);
        Ok(Reply::QosPolicy(policy))
    }

    pub(crate) fn update_qos_policy(
        &mut self,
        ctx: Ctx,
        id: Id,
        (name, description, shared): (Option<&str>, Option<&str>, Option<bool>),
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let mut policy = self.policy_for_change(id, expected)?;
        if let Some(name) = name {
            validate::name("name", name)?;
            policy.name = name.to_string();
        }
        if let Some(description) = description {
            validate::name("description", description)?;
            policy.description = description.to_string();
        }
        if let Some(shared) = shared {
            policy.shared = shared;
        }
        ctx.touch(&mut policy.meta);
        self.commit_qos_policy(id, Some(policy.clone()), d);
        Ok(Reply::QosPolicy(policy))
    }

    pub(crate) fn delete_qos_policy(
        &mut self,
        id: Id,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        self.policy_for_change(id, expected)?;
        if let Some((kind, user)) = self.qos_policy_user(id) {
            return Err(Rejection::InUse {
                kind: Kind::QosPolicy,
                id: id.to_string(),
                reason: format!("{kind} {user} uses it"),
            });
        }
        self.commit_qos_policy(id, None, d);
        Ok(Reply::Deleted)
    }

    pub(crate) fn create_qos_rule(
        &mut self,
        ctx: Ctx,
        policy_id: Id,
        rule: QosRule,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        validate_client_id("id", rule.id)?;
        validate_qos_rule(&rule.kind)?;
        let mut policy = self.policy_for_change(policy_id, None)?;
        if policy.rules.iter().any(|r| r.id == rule.id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::QosRule,
                id: rule.id.to_string(),
            });
        }
        if let Some(existing) = policy
            .rules
            .iter()
            .find(|r| r.kind.slot() == rule.kind.slot())
        {
            return Err(Rejection::QosRuleExists {
                policy_id,
                existing_id: existing.id,
            });
        }
        policy.rules.push(rule);
        policy.rules.sort();
        ctx.touch(&mut policy.meta);
        self.commit_qos_policy(policy_id, Some(policy.clone()), d);
        Ok(Reply::QosPolicy(policy))
    }

    pub(crate) fn update_qos_rule(
        &mut self,
        ctx: Ctx,
        policy_id: Id,
        rule_id: Id,
        update: &QosRuleUpdate,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let mut policy = self.policy_for_change(policy_id, None)?;
        let at = policy
            .rules
            .iter()
            .position(|r| r.id == rule_id)
            .ok_or_else(|| Rejection::not_found(Kind::QosRule, rule_id))?;
        let rule = updated_rule(policy.rules[at], update)?;
        validate_qos_rule(&rule.kind)?;
        if let Some(existing) = policy
            .rules
            .iter()
            .find(|r| r.id != rule_id && r.kind.slot() == rule.kind.slot())
        {
            return Err(Rejection::QosRuleExists {
                policy_id,
                existing_id: existing.id,
            });
        }
        policy.rules[at] = rule;
        ctx.touch(&mut policy.meta);
        self.commit_qos_policy(policy_id, Some(policy.clone()), d);
        Ok(Reply::QosPolicy(policy))
    }

    pub(crate) fn delete_qos_rule(
        &mut self,
        ctx: Ctx,
        policy_id: Id,
        rule_id: Id,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let mut policy = self.policy_for_change(policy_id, None)?;
        let before = policy.rules.len();
        policy.rules.retain(|r| r.id != rule_id);
        if policy.rules.len() == before {
            return Err(Rejection::not_found(Kind::QosRule, rule_id));
        }
        ctx.touch(&mut policy.meta);
        self.commit_qos_policy(policy_id, Some(policy.clone()), d);
        Ok(Reply::QosPolicy(policy))
    }

    /// A copy of a policy to change, after the compare-and-set check.
    fn policy_for_change(&self, id: Id, expected: Option<u64>) -> Result<QosPolicy, Rejection> {
        let policy = self
            .qos_policy(&id)
            .ok_or_else(|| Rejection::not_found(Kind::QosPolicy, id))?;
        validate::revision(expected, policy.meta.revision)?;
        Ok(policy.clone())
    }

    /// Checks that a resource of `project` may use policy `id`: it exists
    /// and is the project's own or shared (else it is not found, as in
    /// Neutron, which hides other projects' policies).
    fn check_qos_use(&self, id: Option<Id>, project: &str) -> Result<(), Rejection> {
        let Some(id) = id else { return Ok(()) };
        match self.qos_policy(&id) {
            Some(p) if p.shared || p.meta.project_id == project => Ok(()),
            _ => Err(Rejection::not_found(Kind::QosPolicy, id)),
        }
    }

    /// [`Command::CreateVpcV7`](crate::Command::CreateVpcV7): the VPC, then its policy.
    pub(crate) fn create_vpc_with_qos(
        &mut self,
        project: &ProjectId,
        qos_policy_id: Option<Id>,
        d: &mut DiffCollector,
        create: impl FnOnce(&mut State, &mut DiffCollector) -> Result<Reply, Rejection>,
    ) -> Result<Reply, Rejection> {
        self.check_qos_use(qos_policy_id, project)?;
        let reply = create(self, d)?;
        if let Reply::Vpc(vpc) = &reply {
            self.commit_network_qos(vpc.id, qos_policy_id, d);
        }
        Ok(reply)
    }

    /// [`Command::UpdateVpcV7`](crate::Command::UpdateVpcV7): the update, then the policy.
    pub(crate) fn update_vpc_with_qos(
        &mut self,
        id: Id,
        qos_policy_id: Option<Option<Id>>,
        d: &mut DiffCollector,
        update: impl FnOnce(&mut State, &mut DiffCollector) -> Result<Reply, Rejection>,
    ) -> Result<Reply, Rejection> {
        if let Some(policy) = qos_policy_id {
            let vpc = self
                .vpc(&id)
                .ok_or_else(|| Rejection::not_found(Kind::Vpc, id))?;
            self.check_qos_use(policy, &vpc.meta.project_id.clone())?;
        }
        let reply = update(self, d)?;
        if let Some(policy) = qos_policy_id {
            self.commit_network_qos(id, policy, d);
        }
        Ok(reply)
    }

    /// [`Command::CreatePortV7`](crate::Command::CreatePortV7).
    pub(crate) fn create_port_with_qos(
        &mut self,
        ctx: Ctx,
        spec: &PortSpecV5,
        qos_policy_id: Option<Id>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        self.check_qos_use(qos_policy_id, &spec.project_id)?;
        let reply = self.create_port(ctx, spec.clone(), HostRule::Any, d)?;
        if qos_policy_id.is_some() {
            self.commit_port_qos(spec.id, qos_policy_id, d);
        }
        Ok(reply)
    }

    /// [`Command::UpdatePortV7`](crate::Command::UpdatePortV7).
    pub(crate) fn update_port_with_qos(
        &mut self,
        ctx: Ctx,
        id: Id,
        update: &PortUpdateV5,
        (qos_policy_id, expected): (Option<Option<Id>>, Option<u64>),
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        if let Some(policy) = qos_policy_id {
            let port = self
                .port(&id)
                .ok_or_else(|| Rejection::not_found(Kind::Port, id))?;
            self.check_qos_use(policy, &port.meta.project_id.clone())?;
        }
        let reply = self.update_port(ctx, id, update, expected, HostRule::Any, d)?;
        if let Some(policy) = qos_policy_id {
            self.commit_port_qos(id, policy, d);
        }
        Ok(reply)
    }
}
