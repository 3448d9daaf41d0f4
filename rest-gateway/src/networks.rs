//! `/v2.0/networks`: Alcor VPCs.

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_server::Orchestrator;
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use tonic::Request;

use crate::attrs::{iso8601, Attrs};
use crate::error::{from_status, RestError};
use crate::limits::{SCAN_PAGE_MAX, SUBNET_LOOKUPS_CONCURRENT_MAX};
use crate::query::Query;
use crate::resource::{Item, Resource, Scope};
use crate::Svc;

/// The networks collection.
pub(crate) struct Networks;

fn render(v: &pb::Vpc) -> Item {
    let item = json!({
        "id": v.id,
        "name": v.name,
        "tenant_id": v.project_id,
        "project_id": v.project_id,
        "admin_state_up": v.admin_state_up,
        "status": if v.admin_state_up { "ACTIVE" } else { "DOWN" },
        "mtu": v.mtu,
        "subnets": [],
        "shared": false,
        "router:external": false,
        "port_security_enabled": true,
        "description": "",
        "availability_zone_hints": [],
        "availability_zones": [],
        "ipv4_address_scope": null,
        "ipv6_address_scope": null,
        "revision_number": v.revision,
        "created_at": iso8601(v.created_at_ms),
        "updated_at": iso8601(v.updated_at_ms),
        "tags": [],
    });
    match item {
        Value::Object(map) => map,
        _ => Item::new(),
    }
}

/// Every subnet ID of a network, in ID order.
async fn subnet_ids(svc: &Svc, network_id: String) -> Result<Vec<Value>, RestError> {
    let mut ids = Vec::new();
    let mut marker = String::new();
    loop {
        let page = svc
            .list_subnets(Request::new(pb::ListSubnetsRequest {
                network_id: network_id.clone(),
                limit: SCAN_PAGE_MAX as u32,
                marker,
                ..Default::default()
            }))
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        ids.extend(page.subnets.into_iter().map(|s| Value::String(s.id)));
        if page.next_marker.is_empty() {
            return Ok(ids);
        }
        marker = page.next_marker;
    }
}

impl Resource for Networks {
    const SINGULAR: &'static str = "network";
    const PLURAL: &'static str = "networks";
    const NOT_FOUND: &'static str = "NetworkNotFound";
    const FILTERS: &'static [&'static str] = &[
        "id",
        "name",
        "tenant_id",
        "project_id",
        "admin_state_up",
        "status",
        "mtu",
        "shared",
        "router:external",
        "port_security_enabled",
        "description",
        "revision_number",
    ];

    async fn get(svc: &Svc, id: &str) -> Result<Item, RestError> {
        let vpc = svc
            .get_vpc(Request::new(pb::GetVpcRequest {
                id: id.to_string(),
                stale: false,
                ..Default::default()
            }))
            .await
            .map_err(|s| from_status(&s))?;
        Ok(render(vpc.get_ref()))
    }

    async fn list(
        svc: &Svc,
        scope: &Scope,
        marker: &str,
        limit: usize,
    ) -> Result<(Vec<Item>, String), RestError> {
        let page = svc
            .list_vpcs(Request::new(pb::ListVpcsRequest {
                project_id: scope.project_id.clone(),
                limit: limit as u32,
                marker: marker.to_string(),
                stale: false,
                ..Default::default()
            }))
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        Ok((page.vpcs.iter().map(render).collect(), page.next_marker))
    }

    async fn complete(svc: &Svc, items: &mut [Item], query: &Query) -> Result<(), RestError> {
        if !query.wants("subnets") {
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
        let subnets: Vec<Vec<Value>> = futures::stream::iter(ids)
            .map(|id| subnet_ids(svc, id))
            .buffered(SUBNET_LOOKUPS_CONCURRENT_MAX)
            .try_collect()
            .await?;
        for (item, subnets) in items.iter_mut().zip(subnets) {
            item.insert("subnets".to_string(), Value::Array(subnets));
        }
        Ok(())
    }

    async fn create(svc: &Svc, items: Vec<Attrs>) -> Result<Vec<Item>, RestError> {
        if items.len() != 1 {
            return Err(RestError::bad_request(
                "Bulk create of networks is not supported (create them one by one)",
            ));
        }
        let mut out = Vec::new();
        for mut a in items {
            let request = pb::CreateVpcRequest {
                id: a.string("id")?.unwrap_or_default(),
                project_id: a.string("project_id")?.unwrap_or_default(),
                name: a.string("name")?.unwrap_or_default(),
                cidr: String::new(),
                vni: None,
                mtu: a.u32("mtu")?,
                admin_state_up: a.boolean("admin_state_up")?,
                ..Default::default()
            };
            a.only_default("shared", &json!(false))?;
            a.only_default("router:external", &json!(false))?;
            a.only_default("port_security_enabled", &json!(true))?;
            a.only_default("description", &json!(""))?;
            a.only_default("availability_zone_hints", &json!([]))?;
            a.finish()?;
            let vpc = svc
                .create_vpc(Request::new(request))
                .await
                .map_err(|s| from_status(&s))?;
            out.push(render(vpc.get_ref()));
        }
        Ok(out)
    }

    async fn update(
        svc: &Svc,
        id: &str,
        mut a: Attrs,
        expected_revision: Option<u64>,
    ) -> Result<Item, RestError> {
        let request = pb::UpdateVpcRequest {
            id: id.to_string(),
            name: a.string("name")?,
            mtu: a.u32("mtu")?,
            admin_state_up: a.boolean("admin_state_up")?,
            expected_revision,
            ..Default::default()
        };
        a.only_default("shared", &json!(false))?;
        a.only_default("router:external", &json!(false))?;
        a.only_default("port_security_enabled", &json!(true))?;
        a.only_default("description", &json!(""))?;
        a.finish()?;
        let vpc = svc
            .update_vpc(Request::new(request))
            .await
            .map_err(|s| from_status(&s))?;
        Ok(render(vpc.get_ref()))
    }

    async fn delete(svc: &Svc, id: &str, expected_revision: Option<u64>) -> Result<(), RestError> {
        svc.delete_vpc(Request::new(pb::DeleteVpcRequest {
            id: id.to_string(),
            expected_revision,
        }))
        .await
        .map_err(|s| from_status(&s))?;
        Ok(())
    }
}
