//! `/v2.0/floatingips`: addresses of a floating network mapped to a port's
//! fixed IPv4 address. `PUT` with `port_id` associates (or moves), with
//! `"port_id": null` disassociates.

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_server::Orchestrator;
use serde_json::{json, Value};
use tonic::Request;

use crate::attrs::{iso8601, nullable, Attrs};
use crate::error::{from_status, Answer, RestError};
use crate::limits::BULK_FLOATING_IPS_MAX;
use crate::resource::{object, page_request, Item, Resource, Scope};
use crate::Svc;

/// The floating IPs collection.
pub(crate) struct FloatingIps;

fn render(f: &pb::FloatingIp) -> Item {
    let status = match pb::FloatingIpStatus::try_from(f.status) {
        Ok(pb::FloatingIpStatus::Active) => "ACTIVE",
        _ => "DOWN",
    };
    object(json!({
        "id": f.id,
        "tenant_id": f.project_id,
        "project_id": f.project_id,
        "floating_network_id": f.floating_network_id,
        "floating_ip_address": f.floating_ip_address,
        "port_id": nullable(&f.port_id),
        "fixed_ip_address": nullable(&f.fixed_ip_address),
        "router_id": nullable(&f.router_id),
        "status": status,
        "description": f.description,
        "dns_domain": "",
        "dns_name": "",
        "port_forwardings": [],
        "qos_policy_id": null,
        "revision_number": f.revision,
        "created_at": iso8601(f.created_at_ms),
        "updated_at": iso8601(f.updated_at_ms),
        "tags": f.tags,
    }))
}

/// Attributes a floating IP accepts only at their default value.
fn defaults_only(a: &mut Attrs) -> Result<(), RestError> {
    a.only_default("dns_domain", &json!(""))?;
    a.only_default("dns_name", &json!(""))?;
    a.only_default("qos_policy_id", &Value::Null)?;
    // The subnet is chosen by the state machine (any with room).
    a.only_default("subnet_id", &Value::Null)?;
    Ok(())
}

fn create_request(mut a: Attrs) -> Result<pb::CreateFloatingIpRequest, RestError> {
    let request = pb::CreateFloatingIpRequest {
        id: a.string("id")?.unwrap_or_default(),
        project_id: a.string("project_id")?.unwrap_or_default(),
        floating_network_id: a.required("floating_network_id")?,
        floating_ip_address: a.nullable_string("floating_ip_address")?,
        port_id: a.nullable_string("port_id")?,
        fixed_ip_address: a.nullable_string("fixed_ip_address")?,
        description: a.nullable_string("description")?,
        request_token: String::new(),
        tags: a.strings("tags")?.unwrap_or_default(),
    };
    defaults_only(&mut a)?;
    a.finish()?;
    Ok(request)
}

impl Resource for FloatingIps {
    const SINGULAR: &'static str = "floatingip";
    const PLURAL: &'static str = "floatingips";
    const NOT_FOUND: &'static str = "FloatingIPNotFound";
    const BULK_MAX: usize = BULK_FLOATING_IPS_MAX;
    const FILTERS: &'static [&'static str] = &[
        "id",
        "tenant_id",
        "project_id",
        "floating_network_id",
        "floating_ip_address",
        "port_id",
        "fixed_ip_address",
        "router_id",
        "status",
        "description",
        "revision_number",
    ];

    async fn get(svc: &Svc, id: &str) -> Result<Item, RestError> {
        let f = svc
            .get_floating_ip(Request::new(pb::GetFloatingIpRequest {
                id: id.to_string(),
                stale: false,
                ..Default::default()
            }))
            .await
            .rest()?;
        Ok(render(&f))
    }

    async fn list(
        svc: &Svc,
        scope: &Scope,
        marker: &str,
        limit: usize,
    ) -> Result<(Vec<Item>, String), RestError> {
        let page = svc
            .list_floating_ips(Request::new(page_request!(
                scope,
                marker,
                limit,
                pb::ListFloatingIpsRequest {
                    port_id: scope.port_id.clone(),
                    floating_network_id: scope.network_id.clone(),
                    router_id: scope.router_id.clone()
                }
            )))
            .await
            .rest()?;
        Ok((
            page.floating_ips.iter().map(render).collect(),
            page.next_marker,
        ))
    }

    async fn create(svc: &Svc, items: Vec<Attrs>) -> Result<Vec<Item>, RestError> {
        let requests = items
            .into_iter()
            .map(create_request)
            .collect::<Result<Vec<_>, _>>()?;
        // One at a time: a failure removes the ones created before it, so a
        // bulk create leaves all or nothing (not atomic to concurrent readers).
        let mut out: Vec<Item> = Vec::with_capacity(requests.len());
        for request in requests {
            match svc.create_floating_ip(Request::new(request)).await {
                Ok(f) => out.push(render(f.get_ref())),
                Err(status) => {
                    for created in &out {
                        let id = created.get("id").and_then(Value::as_str).unwrap_or("");
                        if let Err(e) = Self::delete(svc, id, None).await {
                            tracing::warn!(floating_ip = id, error = %e.message, "undo of a bulk create");
                        }
                    }
                    return Err(from_status(&status));
                }
            }
        }
        Ok(out)
    }

    async fn update(
        svc: &Svc,
        id: &str,
        mut a: Attrs,
        expected_revision: Option<u64>,
    ) -> Result<Item, RestError> {
        let port_id = match a.peek("port_id") {
            Some(Value::Null) => {
                a.take("port_id");
                Some(String::new())
            }
            _ => a.string("port_id")?,
        };
        let fixed_ip_address = match a.peek("fixed_ip_address") {
            Some(Value::Null) => {
                a.take("fixed_ip_address");
                None
            }
            _ => a.string("fixed_ip_address")?,
        };
        let request = pb::UpdateFloatingIpRequest {
            id: id.to_string(),
            port_id,
            fixed_ip_address,
            description: a.string("description")?,
            tags: a.strings("tags")?.map(|tags| pb::TagSet { tags }),
            expected_revision,
        };
        defaults_only(&mut a)?;
        a.finish_update("port_id, fixed_ip_address, description, tags")?;
        let f = svc.update_floating_ip(Request::new(request)).await.rest()?;
        Ok(render(&f))
    }

    async fn delete(svc: &Svc, id: &str, expected_revision: Option<u64>) -> Result<(), RestError> {
        svc.delete_floating_ip(Request::new(pb::DeleteFloatingIpRequest {
            id: id.to_string(),
            expected_revision,
        }))
        .await
        .rest()?;
        Ok(())
    }
}
