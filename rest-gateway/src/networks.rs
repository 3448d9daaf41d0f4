//! `/v2.0/networks`: Alcor VPCs.

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_server::Orchestrator;
use serde_json::{json, Value};
use tonic::Request;

use crate::attrs::{iso8601, nullable, Attrs};
use crate::error::{Answer, RestError};
use crate::limits::SCAN_PAGE_MAX;
use crate::query::Query;
use crate::resource::{all_pages, fill_each, object, page_request, single, Item, Resource, Scope};
use crate::Svc;

/// The networks collection.
pub(crate) struct Networks;

fn render(v: &pb::Vpc) -> Item {
    object(json!({
        "id": v.id,
        "name": v.name,
        "tenant_id": v.project_id,
        "project_id": v.project_id,
        "admin_state_up": v.admin_state_up,
        "status": if v.admin_state_up { "ACTIVE" } else { "DOWN" },
        "mtu": v.mtu,
        "subnets": [],
        "shared": false,
        "router:external": v.external,
        "port_security_enabled": v.port_security_enabled,
        "qos_policy_id": nullable(&v.qos_policy_id),
        "description": "",
        "availability_zone_hints": [],
        "availability_zones": [],
        "ipv4_address_scope": null,
        "ipv6_address_scope": null,
        "revision_number": v.revision,
        "created_at": iso8601(v.created_at_ms),
        "updated_at": iso8601(v.updated_at_ms),
        "tags": v.tags,
    }))
}

/// Every subnet ID of a network, in ID order.
async fn subnet_ids(svc: &Svc, network_id: String) -> Result<Vec<Value>, RestError> {
    all_pages(|marker| async {
        let page = svc
            .list_subnets(Request::new(pb::ListSubnetsRequest {
                network_id: network_id.clone(),
                limit: SCAN_PAGE_MAX as u32,
                marker,
                ..Default::default()
            }))
            .await
            .rest()?;
        let ids = page.subnets.into_iter().map(|s| Value::String(s.id));
        Ok((ids.collect(), page.next_marker))
    })
    .await
}

async fn get(svc: &Svc, id: &str, stale: bool) -> Result<Item, RestError> {
    let vpc = svc
        .get_vpc(Request::new(pb::GetVpcRequest {
            id: id.to_string(),
            stale,
            ..Default::default()
        }))
        .await
        .rest()?;
    Ok(render(&vpc))
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
        "qos_policy_id",
        "description",
        "revision_number",
    ];

    fn public(item: &Item) -> bool {
        item.get("router:external") == Some(&Value::Bool(true))
    }

    async fn get(svc: &Svc, id: &str) -> Result<Item, RestError> {
        get(svc, id, false).await
    }

    async fn get_stale(svc: &Svc, id: &str) -> Result<Item, RestError> {
        get(svc, id, true).await
    }

    async fn list(
        svc: &Svc,
        scope: &Scope,
        marker: &str,
        limit: usize,
    ) -> Result<(Vec<Item>, String), RestError> {
        let mut request = Request::new(page_request!(scope, marker, limit, pb::ListVpcsRequest {}));
        if let Some(reader) = &scope.reader {
            // As the caller, unfiltered: its own networks and every external
            // one, by the gRPC API's one read rule.
            request.get_mut().project_id.clear();
            request.extensions_mut().insert(reader.clone());
        }
        let page = svc.list_vpcs(request).await.rest()?;
        Ok((page.vpcs.iter().map(render).collect(), page.next_marker))
    }

    async fn complete(svc: &Svc, items: &mut [Item], query: &Query) -> Result<(), RestError> {
        if !query.wants("subnets") {
            return Ok(());
        }
        fill_each(items, "subnets", |id| subnet_ids(svc, id)).await
    }

    async fn create(svc: &Svc, items: Vec<Attrs>) -> Result<Vec<Item>, RestError> {
        let mut a = single::<Self>(items)?;
        let request = pb::CreateVpcRequest {
            id: a.string("id")?.unwrap_or_default(),
            project_id: a.string("project_id")?.unwrap_or_default(),
            name: a.string("name")?.unwrap_or_default(),
            cidr: String::new(),
            vni: None,
            mtu: a.u32("mtu")?,
            admin_state_up: a.boolean("admin_state_up")?,
            port_security_enabled: a.boolean("port_security_enabled")?,
            tags: a.strings("tags")?.unwrap_or_default(),
            qos_policy_id: a.nullable_string("qos_policy_id")?,
            external: a.boolean("router:external")?.unwrap_or(false),
            ..Default::default()
        };
        a.only_default("shared", &json!(false))?;
        a.only_default("description", &json!(""))?;
        a.only_default("availability_zone_hints", &json!([]))?;
        a.finish()?;
        let vpc = svc.create_vpc(Request::new(request)).await.rest()?;
        Ok(vec![render(&vpc)])
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
            tags: a.strings("tags")?.map(|tags| pb::TagSet { tags }),
            port_security_enabled: a.boolean("port_security_enabled")?,
            qos_policy_id: a.nullable_update("qos_policy_id")?,
            external: a.boolean("router:external")?,
            expected_revision,
        };
        a.only_default("shared", &json!(false))?;
        a.only_default("description", &json!(""))?;
        a.finish()?;
        let vpc = svc.update_vpc(Request::new(request)).await.rest()?;
        Ok(render(&vpc))
    }

    async fn delete(svc: &Svc, id: &str, expected_revision: Option<u64>) -> Result<(), RestError> {
        svc.delete_vpc(Request::new(pb::DeleteVpcRequest {
            id: id.to_string(),
            expected_revision,
        }))
        .await
        .rest()?;
        Ok(())
    }
}
