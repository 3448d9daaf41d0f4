//! `/v2.0/security-groups` and `/v2.0/security-group-rules`: a group embeds
//! its rules (`security_group_rules`), listed from the group's rules.

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_server::Orchestrator;
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use tonic::Request;

use crate::attrs::{iso8601, nullable, Attrs};
use crate::error::{from_status, RestError};
use crate::limits::{SCAN_PAGE_MAX, SUBNET_LOOKUPS_CONCURRENT_MAX};
use crate::query::Query;
use crate::resource::{Item, Resource, Scope};
use crate::Svc;

/// The security groups collection.
pub(crate) struct SecurityGroups;

/// The security group rules collection.
pub(crate) struct SecurityGroupRules;

fn object(value: Value) -> Item {
    match value {
        Value::Object(map) => map,
        _ => Item::new(),
    }
}

fn render_group(g: &pb::SecurityGroup) -> Item {
    object(json!({
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "tenant_id": g.project_id,
        "project_id": g.project_id,
        "security_group_rules": [],
        "stateful": true,
        "shared": false,
        "revision_number": g.revision,
        "created_at": iso8601(g.created_at_ms),
        "updated_at": iso8601(g.updated_at_ms),
        "tags": [],
    }))
}

/// Neutron's name for a protocol number where it has a common one.
fn protocol_name(number: &str) -> Value {
    match number {
        "" => Value::Null,
        "1" => json!("icmp"),
        "6" => json!("tcp"),
        "17" => json!("udp"),
        "58" => json!("ipv6-icmp"),
        "132" => json!("sctp"),
        other => json!(other),
    }
}

fn render_rule(r: &pb::SecurityGroupRule) -> Item {
    let direction = match pb::Direction::try_from(r.direction) {
        Ok(pb::Direction::Egress) => "egress",
        _ => "ingress",
    };
    let ethertype = match pb::EtherType::try_from(r.ethertype) {
        Ok(pb::EtherType::Ipv6) => "IPv6",
        _ => "IPv4",
    };
    object(json!({
        "id": r.id,
        "tenant_id": r.project_id,
        "project_id": r.project_id,
        "security_group_id": r.security_group_id,
        "direction": direction,
        "ethertype": ethertype,
        "protocol": protocol_name(&r.protocol),
        "port_range_min": r.port_range_min,
        "port_range_max": r.port_range_max,
        "remote_ip_prefix": nullable(&r.remote_ip_prefix),
        "remote_group_id": nullable(&r.remote_group_id),
        "remote_address_group_id": null,
        "normalized_cidr": nullable(&r.remote_ip_prefix),
        "description": "",
        "revision_number": r.revision,
        "created_at": iso8601(r.created_at_ms),
        "updated_at": iso8601(r.updated_at_ms),
        "tags": [],
    }))
}

/// Every rule of a group, rendered, in ID order.
async fn rules_of(svc: &Svc, group_id: String) -> Result<Vec<Value>, RestError> {
    let mut rules = Vec::new();
    let mut marker = String::new();
    loop {
        let page = svc
            .list_security_group_rules(Request::new(pb::ListSecurityGroupRulesRequest {
                security_group_id: group_id.clone(),
                limit: SCAN_PAGE_MAX as u32,
                marker,
                ..Default::default()
            }))
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        rules.extend(
            page.security_group_rules
                .iter()
                .map(|r| Value::Object(render_rule(r))),
        );
        if page.next_marker.is_empty() {
            return Ok(rules);
        }
        marker = page.next_marker;
    }
}

impl Resource for SecurityGroups {
    const SINGULAR: &'static str = "security_group";
    const PLURAL: &'static str = "security_groups";
    const NOT_FOUND: &'static str = "SecurityGroupNotFound";
    const FILTERS: &'static [&'static str] = &[
        "id",
        "name",
        "description",
        "tenant_id",
        "project_id",
        "stateful",
        "shared",
        "revision_number",
    ];
    const PATH: &'static str = "security-groups";

    async fn get(svc: &Svc, id: &str) -> Result<Item, RestError> {
        let g = svc
            .get_security_group(Request::new(pb::GetSecurityGroupRequest {
                id: id.to_string(),
                stale: false,
                ..Default::default()
            }))
            .await
            .map_err(|s| from_status(&s))?;
        Ok(render_group(g.get_ref()))
    }

    async fn list(
        svc: &Svc,
        scope: &Scope,
        marker: &str,
        limit: usize,
    ) -> Result<(Vec<Item>, String), RestError> {
        let page = svc
            .list_security_groups(Request::new(pb::ListSecurityGroupsRequest {
                project_id: scope.project_id.clone(),
                limit: limit as u32,
                marker: marker.to_string(),
                stale: false,
                ..Default::default()
            }))
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        Ok((
            page.security_groups.iter().map(render_group).collect(),
            page.next_marker,
        ))
    }

    async fn complete(svc: &Svc, items: &mut [Item], query: &Query) -> Result<(), RestError> {
        if !query.wants("security_group_rules") {
            return Ok(());
        }
        let ids: Vec<String> = items
            .iter()
            .map(|i| {
                i.get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        let rules: Vec<Vec<Value>> = futures::stream::iter(ids)
            .map(|id| rules_of(svc, id))
            .buffered(SUBNET_LOOKUPS_CONCURRENT_MAX)
            .try_collect()
            .await?;
        for (item, rules) in items.iter_mut().zip(rules) {
            item.insert("security_group_rules".to_string(), Value::Array(rules));
        }
        Ok(())
    }

    async fn create(svc: &Svc, items: Vec<Attrs>) -> Result<Vec<Item>, RestError> {
        if items.len() != 1 {
            return Err(RestError::bad_request(
                "Bulk create of security groups is not supported (create them one by one)",
            ));
        }
        let mut out = Vec::new();
        for mut a in items {
            let request = pb::CreateSecurityGroupRequest {
                id: a.string("id")?.unwrap_or_default(),
                project_id: a.string("project_id")?.unwrap_or_default(),
                name: a.string("name")?.unwrap_or_default(),
                description: a.string("description")?.unwrap_or_default(),
                request_token: String::new(),
                ..Default::default()
            };
            a.only_default("stateful", &json!(true))?;
            a.only_default("shared", &json!(false))?;
            a.finish()?;
            let g = svc
                .create_security_group(Request::new(request))
                .await
                .map_err(|s| from_status(&s))?;
            out.push(render_group(g.get_ref()));
        }
        Ok(out)
    }

    async fn update(
        svc: &Svc,
        id: &str,
        mut a: Attrs,
        expected_revision: Option<u64>,
    ) -> Result<Item, RestError> {
        let request = pb::UpdateSecurityGroupRequest {
            id: id.to_string(),
            name: a.string("name")?,
            description: a.string("description")?,
            expected_revision,
            ..Default::default()
        };
        a.only_default("stateful", &json!(true))?;
        a.finish()?;
        let g = svc
            .update_security_group(Request::new(request))
            .await
            .map_err(|s| from_status(&s))?;
        Ok(render_group(g.get_ref()))
    }

    async fn delete(svc: &Svc, id: &str, expected_revision: Option<u64>) -> Result<(), RestError> {
        svc.delete_security_group(Request::new(pb::DeleteSecurityGroupRequest {
            id: id.to_string(),
            expected_revision,
        }))
        .await
        .map_err(|s| from_status(&s))?;
        Ok(())
    }
}

/// `ingress` / `egress` (required).
fn direction(a: &mut Attrs) -> Result<pb::Direction, RestError> {
    match a.required("direction")?.as_str() {
        "ingress" => Ok(pb::Direction::Ingress),
        "egress" => Ok(pb::Direction::Egress),
        other => Err(RestError::invalid_input(format!(
            "'{other}' is not in ['ingress', 'egress']"
        ))),
    }
}

/// `IPv4` (the default) / `IPv6`.
fn ethertype(a: &mut Attrs) -> Result<pb::EtherType, RestError> {
    match a.string("ethertype")?.as_deref() {
        None | Some("IPv4") => Ok(pb::EtherType::Ipv4),
        Some("IPv6") => Ok(pb::EtherType::Ipv6),
        Some(other) => Err(RestError::invalid_input(format!(
            "'{other}' is not in ['IPv4', 'IPv6']"
        ))),
    }
}

/// A protocol name, a number (JSON or string), or `null` (any).
fn protocol(a: &mut Attrs) -> Result<String, RestError> {
    match a.take("protocol") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= 255) => Ok(n.to_string()),
        Some(other) => Err(RestError::invalid_input(format!(
            "protocol {other} is not a protocol name or a number 0-255"
        ))),
    }
}

/// A port range end: an integer or `null`.
fn port(a: &mut Attrs, name: &str) -> Result<Option<u32>, RestError> {
    match a.peek(name) {
        Some(Value::Null) => {
            a.take(name);
            Ok(None)
        }
        _ => a.u32(name),
    }
}

/// A string attribute where `null` means empty.
fn optional_string(a: &mut Attrs, name: &str) -> Result<String, RestError> {
    match a.peek(name) {
        Some(Value::Null) => {
            a.take(name);
            Ok(String::new())
        }
        _ => Ok(a.string(name)?.unwrap_or_default()),
    }
}

impl Resource for SecurityGroupRules {
    const SINGULAR: &'static str = "security_group_rule";
    const PLURAL: &'static str = "security_group_rules";
    const NOT_FOUND: &'static str = "SecurityGroupRuleNotFound";
    const FILTERS: &'static [&'static str] = &[
        "id",
        "tenant_id",
        "project_id",
        "security_group_id",
        "direction",
        "ethertype",
        "protocol",
        "port_range_min",
        "port_range_max",
        "remote_ip_prefix",
        "remote_group_id",
        "description",
        "revision_number",
    ];
    const PATH: &'static str = "security-group-rules";

    async fn get(svc: &Svc, id: &str) -> Result<Item, RestError> {
        let r = svc
            .get_security_group_rule(Request::new(pb::GetSecurityGroupRuleRequest {
                id: id.to_string(),
                stale: false,
                ..Default::default()
            }))
            .await
            .map_err(|s| from_status(&s))?;
        Ok(render_rule(r.get_ref()))
    }

    async fn list(
        svc: &Svc,
        scope: &Scope,
        marker: &str,
        limit: usize,
    ) -> Result<(Vec<Item>, String), RestError> {
        let page = svc
            .list_security_group_rules(Request::new(pb::ListSecurityGroupRulesRequest {
                project_id: scope.project_id.clone(),
                security_group_id: scope.security_group_id.clone(),
                limit: limit as u32,
                marker: marker.to_string(),
                stale: false,
                ..Default::default()
            }))
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        Ok((
            page.security_group_rules.iter().map(render_rule).collect(),
            page.next_marker,
        ))
    }

    async fn create(svc: &Svc, items: Vec<Attrs>) -> Result<Vec<Item>, RestError> {
        if items.len() != 1 {
            return Err(RestError::bad_request(
                "Bulk create of security group rules is not supported (create them one by one)",
            ));
        }
        let mut out = Vec::new();
        for mut a in items {
            let request = pb::CreateSecurityGroupRuleRequest {
                id: a.string("id")?.unwrap_or_default(),
                project_id: a.string("project_id")?.unwrap_or_default(),
                security_group_id: a.required("security_group_id")?,
                direction: direction(&mut a)? as i32,
                ethertype: ethertype(&mut a)? as i32,
                protocol: protocol(&mut a)?,
                port_range_min: port(&mut a, "port_range_min")?,
                port_range_max: port(&mut a, "port_range_max")?,
                remote_ip_prefix: optional_string(&mut a, "remote_ip_prefix")?,
                remote_group_id: optional_string(&mut a, "remote_group_id")?,
                request_token: String::new(),
            };
            a.only_default("description", &json!(""))?;
            a.only_default("remote_address_group_id", &Value::Null)?;
            a.finish()?;
            let r = svc
                .create_security_group_rule(Request::new(request))
                .await
                .map_err(|s| from_status(&s))?;
            out.push(render_rule(r.get_ref()));
        }
        Ok(out)
    }

    async fn delete(svc: &Svc, id: &str, expected_revision: Option<u64>) -> Result<(), RestError> {
        svc.delete_security_group_rule(Request::new(pb::DeleteSecurityGroupRuleRequest {
            id: id.to_string(),
            expected_revision,
        }))
        .await
        .map_err(|s| from_status(&s))?;
        Ok(())
    }
}
