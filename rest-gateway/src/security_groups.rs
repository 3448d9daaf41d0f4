//! `/v2.0/security-groups` and `/v2.0/security-group-rules`: a group embeds
//! its rules (`security_group_rules`), listed from the group's rules.

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_server::Orchestrator;
use serde_json::{json, Value};
use tonic::Request;

use crate::attrs::{iso8601, nullable, wrong_type, Attrs};
use crate::error::{Answer, RestError};
use crate::limits::SCAN_PAGE_MAX;
use crate::query::Query;
use crate::resource::{all_pages, fill_each, object, page_request, single, Item, Resource, Scope};
use crate::Svc;

/// The security groups collection.
pub(crate) struct SecurityGroups;

/// The security group rules collection.
pub(crate) struct SecurityGroupRules;

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
        "tags": g.tags,
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
    all_pages(|marker| async {
        let page = svc
            .list_security_group_rules(Request::new(pb::ListSecurityGroupRulesRequest {
                security_group_id: group_id.clone(),
                limit: SCAN_PAGE_MAX as u32,
                marker,
                ..Default::default()
            }))
            .await
            .rest()?;
        let rules = page.security_group_rules.iter();
        let rules = rules.map(|r| Value::Object(render_rule(r)));
        Ok((rules.collect(), page.next_marker))
    })
    .await
}

async fn get_group(svc: &Svc, id: &str, stale: bool) -> Result<Item, RestError> {
    let g = svc
        .get_security_group(Request::new(pb::GetSecurityGroupRequest {
            id: id.to_string(),
            stale,
            ..Default::default()
        }))
        .await
        .rest()?;
    Ok(render_group(&g))
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
        get_group(svc, id, false).await
    }

    async fn get_stale(svc: &Svc, id: &str) -> Result<Item, RestError> {
        get_group(svc, id, true).await
    }

    async fn list(
        svc: &Svc,
        scope: &Scope,
        marker: &str,
        limit: usize,
    ) -> Result<(Vec<Item>, String), RestError> {
        let page = svc
            .list_security_groups(Request::new(page_request!(
                scope,
                marker,
                limit,
                pb::ListSecurityGroupsRequest {}
            )))
            .await
            .rest()?;
        Ok((
            page.security_groups.iter().map(render_group).collect(),
            page.next_marker,
        ))
    }

    async fn complete(svc: &Svc, items: &mut [Item], query: &Query) -> Result<(), RestError> {
        if !query.wants("security_group_rules") {
            return Ok(());
        }
        fill_each(items, "security_group_rules", |id| rules_of(svc, id)).await
    }

    async fn create(svc: &Svc, items: Vec<Attrs>) -> Result<Vec<Item>, RestError> {
        let mut a = single::<Self>(items)?;
        let request = pb::CreateSecurityGroupRequest {
            id: a.string("id")?.unwrap_or_default(),
            project_id: a.string("project_id")?.unwrap_or_default(),
            name: a.string("name")?.unwrap_or_default(),
            description: a.string("description")?.unwrap_or_default(),
            request_token: String::new(),
            tags: a.strings("tags")?.unwrap_or_default(),
        };
        a.only_default("stateful", &json!(true))?;
        a.only_default("shared", &json!(false))?;
        a.finish()?;
        let g = svc
            .create_security_group(Request::new(request))
            .await
            .rest()?;
        Ok(vec![render_group(&g)])
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
            tags: a.strings("tags")?.map(|tags| pb::TagSet { tags }),
            expected_revision,
        };
        a.only_default("stateful", &json!(true))?;
        a.finish()?;
        let g = svc
            .update_security_group(Request::new(request))
            .await
            .rest()?;
        Ok(render_group(&g))
    }

    async fn delete(svc: &Svc, id: &str, expected_revision: Option<u64>) -> Result<(), RestError> {
        svc.delete_security_group(Request::new(pb::DeleteSecurityGroupRequest {
            id: id.to_string(),
            expected_revision,
        }))
        .await
        .rest()?;
        Ok(())
    }
}

/// `ingress` / `egress` (required).
fn direction(a: &mut Attrs) -> Result<pb::Direction, RestError> {
    match a.required("direction")?.as_str() {
        "ingress" => Ok(pb::Direction::Ingress),
        "egress" => Ok(pb::Direction::Egress),
        other => Err(wrong_type(
            "direction",
            &Value::String(other.to_string()),
            "in ['ingress', 'egress']",
        )),
    }
}

/// `IPv4` (the default) / `IPv6`.
fn ethertype(a: &mut Attrs) -> Result<pb::EtherType, RestError> {
    match a.string("ethertype")?.as_deref() {
        None | Some("IPv4") => Ok(pb::EtherType::Ipv4),
        Some("IPv6") => Ok(pb::EtherType::Ipv6),
        Some(other) => Err(wrong_type(
            "ethertype",
            &Value::String(other.to_string()),
            "in ['IPv4', 'IPv6']",
        )),
    }
}

/// A protocol name, a number (JSON or string), or `null` (any).
fn protocol(a: &mut Attrs) -> Result<String, RestError> {
    match a.take("protocol") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= 255) => Ok(n.to_string()),
        Some(other) => Err(wrong_type(
            "protocol",
            &other,
            "a protocol name or a number 0-255",
        )),
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

impl Resource for SecurityGroupRules {
    const SINGULAR: &'static str = "security_group_rule";
    const PLURAL: &'static str = "security_group_rules";
    const NOT_FOUND: &'static str = "SecurityGroupRuleNotFound";
    const TAGGED: bool = false;
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
            .rest()?;
        Ok(render_rule(&r))
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
            .rest()?;
        Ok((
            page.security_group_rules.iter().map(render_rule).collect(),
            page.next_marker,
        ))
    }

    async fn create(svc: &Svc, items: Vec<Attrs>) -> Result<Vec<Item>, RestError> {
        let mut a = single::<Self>(items)?;
        let request = pb::CreateSecurityGroupRuleRequest {
            id: a.string("id")?.unwrap_or_default(),
            project_id: a.string("project_id")?.unwrap_or_default(),
            security_group_id: a.required("security_group_id")?,
            direction: direction(&mut a)? as i32,
            ethertype: ethertype(&mut a)? as i32,
            protocol: protocol(&mut a)?,
            port_range_min: port(&mut a, "port_range_min")?,
            port_range_max: port(&mut a, "port_range_max")?,
            remote_ip_prefix: a.nullable_string("remote_ip_prefix")?,
            remote_group_id: a.nullable_string("remote_group_id")?,
            request_token: String::new(),
        };
        a.only_default("description", &json!(""))?;
        a.only_default("remote_address_group_id", &Value::Null)?;
        a.finish()?;
        let r = svc
            .create_security_group_rule(Request::new(request))
            .await
            .rest()?;
        Ok(vec![render_rule(&r)])
    }

    async fn delete(svc: &Svc, id: &str, expected_revision: Option<u64>) -> Result<(), RestError> {
        svc.delete_security_group_rule(Request::new(pb::DeleteSecurityGroupRuleRequest {
            id: id.to_string(),
            expected_revision,
        }))
        .await
        .rest()?;
        Ok(())
    }
}
