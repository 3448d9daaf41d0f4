//! Security group and rule commands: groups with their default rules, rule
//! create and delete, and the diff candidates of a rule change.

use crate::apply::Ctx;
use crate::command::{Kind, Rejection, Reply};
use crate::goal::DiffCollector;
use crate::ids::{validate_client_id, Id, ProjectId};
use crate::model::{Direction, EtherType, ResourceKind, SecurityGroup, SecurityGroupRule};
use crate::state::State;
use crate::validate;
use ipnet::IpNet;

impl State {
    /// Inserts a group and Neutron's two default egress rules (IPv4 and IPv6 to
    /// anywhere); the project's default group also allows ingress from itself.
    ///
    /// The callers have checked that neither the group's nor the rules' IDs
    /// are taken; overwriting a resource would leave indexes that a rebuild
    /// from the tables does not reproduce.
    pub(crate) fn insert_security_group(
        &mut self,
        ctx: Ctx,
        sg: SecurityGroup,
        rule_ids: [Id; 4],
        d: &mut DiffCollector,
    ) {
        assert!(
            !self.t.security_groups().contains_key(&sg.id),
            "security group {} would be overwritten",
            sg.id
        );
        for rule_id in &rule_ids {
            assert!(
                !self.t.rules().contains_key(rule_id),
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
            self.commit_rule(rule.id, Some(rule), d);
        }
        self.commit_security_group(sg.id, Some(sg));
    }

    pub(crate) fn create_security_group(
        &mut self,
        ctx: Ctx,
        id: Id,
        project: &ProjectId,
        name: &str,
        description: &str,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        validate_client_id("id", id)?;
        validate::ident("project_id", project)?;
        validate::name("name", name)?;
        validate::name("description", description)?;
        if self.t.security_groups().contains_key(&id) {
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
        if rule_ids.iter().any(|r| self.t.rules().contains_key(r)) {
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
        self.insert_security_group(ctx, sg.clone(), rule_ids, d);
        Ok(Reply::SecurityGroup(sg))
    }

    pub(crate) fn update_security_group(
        &mut self,
        ctx: Ctx,
        id: Id,
        name: Option<&str>,
        description: Option<&str>,
        expected: Option<u64>,
    ) -> Result<Reply, Rejection> {
        let sg = self
            .t
            .security_groups()
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
        let mut new = sg.clone();
        if let Some(name) = name {
            new.name = name.to_string();
        }
        if let Some(description) = description {
            new.description = description.to_string();
        }
        ctx.touch(&mut new.meta);
        self.commit_security_group(id, Some(new.clone()));
        Ok(Reply::SecurityGroup(new))
    }

    pub(crate) fn delete_security_group(
        &mut self,
        id: Id,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let sg = self
            .t
            .security_groups()
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::SecurityGroup, id))?;
        validate::revision(expected, sg.meta.revision)?;
        if let Some(port) = self.ix.sg_ports().keys_of(id).next() {
            return Err(Rejection::InUse {
                kind: Kind::SecurityGroup,
                id: id.to_string(),
                reason: format!("port {port} uses it"),
            });
        }
        for (_, rule_id) in self
            .ix
            .remote_refs()
            .range((id, Id(0))..=(id, Id(u128::MAX)))
        {
            if let Some(rule) = self.t.rules().get(rule_id) {
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
        let rule_ids: Vec<Id> = self
            .ix
            .sg_rules()
            .range((id, Id(0))..=(id, Id(u128::MAX)))
            .map(|(_, r)| *r)
            .collect();
        for rule_id in rule_ids {
            self.commit_rule(rule_id, None, d);
        }
        self.commit_security_group(id, None);
        Ok(Reply::Deleted)
    }

    pub(crate) fn create_rule(
        &mut self,
        rule: SecurityGroupRule,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        validate_client_id("id", rule.id)?;
        validate::ident("project_id", &rule.meta.project_id)?;
        if self.t.rules().contains_key(&rule.id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::SecurityGroupRule,
                id: rule.id.to_string(),
            });
        }
        if !self
            .t
            .security_groups()
            .contains_key(&rule.security_group_id)
        {
            return Err(Rejection::not_found(
                Kind::SecurityGroup,
                rule.security_group_id,
            ));
        }
        if let Some(g) = rule.remote_group_id {
            if !self.t.security_groups().contains_key(&g) {
                return Err(Rejection::not_found(Kind::SecurityGroup, g));
            }
        }
        check_rule(&rule)?;
        if let Some(existing) = self.ix.rule_match().get(&rule.match_key()) {
            return Err(Rejection::RuleExists {
                existing_id: *existing,
            });
        }
        self.check_quota(&rule.meta.project_id, ResourceKind::SecurityGroupRule, 1)?;
        self.commit_rule(rule.id, Some(rule.clone()), d);
        Ok(Reply::SecurityGroupRule(rule))
    }

    pub(crate) fn delete_rule(
        &mut self,
        id: Id,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let rule = self
            .t
            .rules()
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::SecurityGroupRule, id))?;
        validate::revision(expected, rule.meta.revision)?;
        self.commit_rule(id, None, d);
        Ok(Reply::Deleted)
    }
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
