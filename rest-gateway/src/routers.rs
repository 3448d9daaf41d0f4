//! `/v2.0/routers`, with `PUT /v2.0/routers/{id}/add_router_interface` and
//! `/remove_router_interface`, by `subnet_id` (a new port with device owner
//! `network:router_interface` takes the subnet's gateway address) or by
//! `port_id` (that port becomes the interface); removing an interface
//! deletes its port, as in Neutron.
//!
//! `external_gateway_info` (`network_id` of an external network,
//! `enable_snat` default true, `external_fixed_ips`) on create and update
//! sets the router's gateway, a port with device owner
//! `network:router_gateway`; `null` or `{}` clears it (409
//! `RouterExternalGatewayInUseByFloatingIp` while floating IPs use it).

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_server::Orchestrator;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Extension, Router};
use serde_json::{json, Value};
use tonic::Request;

use crate::attrs::{iso8601, Attrs};
use crate::auth::Caller;
use crate::error::{Answer, RestError};
use crate::ports::Ports;
use crate::resource::{
    object, page_request, path_id, read_json, respond, single, visible, Item, Resource, Scope,
};
use crate::subnets::{routes, Subnets};
use crate::{json_body, AppState, Svc};

/// The routers collection.
pub(crate) struct Routers;

fn render(r: &pb::Router) -> Item {
    let routes: Vec<Value> = r
        .routes
        .iter()
        .map(|r| json!({"destination": r.destination, "nexthop": r.nexthop}))
        .collect();
    object(json!({
        "id": r.id,
        "name": r.name,
        "tenant_id": r.project_id,
        "project_id": r.project_id,
        "admin_state_up": r.admin_state_up,
        "status": if r.admin_state_up { "ACTIVE" } else { "DOWN" },
        "external_gateway_info": r.external_gateway.as_ref().map(gateway_info),
        "routes": routes,
        "distributed": true,
        "ha": false,
        "description": "",
        "availability_zone_hints": [],
        "availability_zones": [],
        "flavor_id": null,
        "revision_number": r.revision,
        "created_at": iso8601(r.created_at_ms),
        "updated_at": iso8601(r.updated_at_ms),
        "tags": r.tags,
    }))
}

/// Neutron's `external_gateway_info` of a gateway.
fn gateway_info(g: &pb::RouterGateway) -> Value {
    let ips: Vec<Value> = g
        .external_fixed_ips
        .iter()
        .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address}))
        .collect();
    json!({
        "network_id": g.network_id,
        "enable_snat": g.enable_snat,
        "external_fixed_ips": ips,
    })
}

/// `external_gateway_info` of a request: `None` absent, `Some(None)` cleared.
fn gateway(a: &mut Attrs) -> Result<Option<Option<pb::RouterGatewayRequest>>, RestError> {
    a.object("external_gateway_info", |g| {
        let external_fixed_ips = g
            .objects("external_fixed_ips", |f| {
                Ok(pb::FixedIpRequest {
                    subnet_id: f.string("subnet_id")?.unwrap_or_default(),
                    ip_address: f.string("ip_address")?.unwrap_or_default(),
                })
            })?
            .unwrap_or_default();
        Ok(pb::RouterGatewayRequest {
            network_id: g.required("network_id")?,
            enable_snat: g.boolean("enable_snat")?,
            external_fixed_ips,
        })
    })
}

/// Attributes a router accepts only at their default value.
fn defaults_only(a: &mut Attrs) -> Result<(), RestError> {
    a.only_default("description", &json!(""))?;
    a.only_default("availability_zone_hints", &json!([]))?;
    Ok(())
}

impl Resource for Routers {
    const SINGULAR: &'static str = "router";
    const PLURAL: &'static str = "routers";
    const NOT_FOUND: &'static str = "RouterNotFound";
    const FILTERS: &'static [&'static str] = &[
        "id",
        "name",
        "tenant_id",
        "project_id",
        "admin_state_up",
        "status",
        "distributed",
        "ha",
        "description",
        "revision_number",
    ];

    async fn get(svc: &Svc, id: &str) -> Result<Item, RestError> {
        let r = svc
            .get_router(Request::new(pb::GetRouterRequest {
                id: id.to_string(),
                stale: false,
                ..Default::default()
            }))
            .await
            .rest()?;
        Ok(render(&r))
    }

    async fn list(
        svc: &Svc,
        scope: &Scope,
        marker: &str,
        limit: usize,
    ) -> Result<(Vec<Item>, String), RestError> {
        let page = svc
            .list_routers(Request::new(page_request!(
                scope,
                marker,
                limit,
                pb::ListRoutersRequest {}
            )))
            .await
            .rest()?;
        Ok((page.routers.iter().map(render).collect(), page.next_marker))
    }

    async fn create(svc: &Svc, items: Vec<Attrs>) -> Result<Vec<Item>, RestError> {
        let mut a = single::<Self>(items)?;
        let request = pb::CreateRouterRequest {
            id: a.string("id")?.unwrap_or_default(),
            project_id: a.string("project_id")?.unwrap_or_default(),
            name: a.string("name")?.unwrap_or_default(),
            routes: routes(&mut a, "routes")?.unwrap_or_default(),
            request_token: String::new(),
            tags: a.strings("tags")?.unwrap_or_default(),
            external_gateway: gateway(&mut a)?.flatten(),
        };
        a.only_default("admin_state_up", &json!(true))?;
        a.only_default("distributed", &json!(true))?;
        a.only_default("ha", &json!(false))?;
        defaults_only(&mut a)?;
        a.finish()?;
        let r = svc.create_router(Request::new(request)).await.rest()?;
        Ok(vec![render(&r)])
    }

    async fn update(
        svc: &Svc,
        id: &str,
        mut a: Attrs,
        expected_revision: Option<u64>,
    ) -> Result<Item, RestError> {
        let request = pb::UpdateRouterRequest {
            id: id.to_string(),
            name: a.string("name")?,
            routes: routes(&mut a, "routes")?.map(|routes| pb::RouteList { routes }),
            admin_state_up: a.boolean("admin_state_up")?,
            tags: a.strings("tags")?.map(|tags| pb::TagSet { tags }),
            external_gateway: gateway(&mut a)?.map(|gateway| pb::RouterGatewayChange { gateway }),
            expected_revision,
        };
        defaults_only(&mut a)?;
        a.finish_update("name, routes, admin_state_up, tags, external_gateway_info")?;
        let r = svc.update_router(Request::new(request)).await.rest()?;
        Ok(render(&r))
    }

    async fn delete(svc: &Svc, id: &str, expected_revision: Option<u64>) -> Result<(), RestError> {
        svc.delete_router(Request::new(pb::DeleteRouterRequest {
            id: id.to_string(),
            expected_revision,
        }))
        .await
        .rest()?;
        Ok(())
    }
}

/// The interface routes of routers.
pub(crate) fn interface_routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route(
            "/v2.0/routers/{id}/add_router_interface",
            put(add_interface),
        )
        .route(
            "/v2.0/routers/{id}/remove_router_interface",
            put(remove_interface),
        )
}

async fn add_interface(
    state: State<AppState>,
    caller: Extension<Caller>,
    id: Path<String>,
    body: Body,
) -> Response {
    respond(interface(state, caller, id, body, true).await)
}

async fn remove_interface(
    state: State<AppState>,
    caller: Extension<Caller>,
    id: Path<String>,
    body: Body,
) -> Response {
    respond(interface(state, caller, id, body, false).await)
}

/// Adds or removes the interface named by `{"subnet_id": ...}` or
/// `{"port_id": ...}` (exactly one); answers Neutron's interface info, whose
/// `port_id` is the interface's port.
async fn interface(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Body,
    add: bool,
) -> Result<Response, RestError> {
    let id = path_id::<Routers>(&id)?;
    let mut a = Attrs::new(read_json(body).await?);
    let subnet_id = a.nullable_string("subnet_id")?;
    let port_id = a.nullable_string("port_id")?;
    a.finish()?;
    if subnet_id.is_empty() == port_id.is_empty() {
        return Err(RestError::bad_request(
            "Bad router request: give exactly one of subnet_id and port_id",
        ));
    }
    let svc = &*state.svc;
    let router = visible::<Routers>(svc, &caller, &id).await?;
    if !caller.admin {
        if !subnet_id.is_empty() {
            visible::<Subnets>(svc, &caller, &path_id::<Subnets>(&subnet_id)?).await?;
        }
        if !port_id.is_empty() {
            visible::<Ports>(svc, &caller, &path_id::<Ports>(&port_id)?).await?;
        }
    }
    let named = |i: &&pb::RouterInterface| {
        (!subnet_id.is_empty() && i.subnet_id == subnet_id)
            || (!port_id.is_empty() && i.port_id == port_id)
    };
    // A removed interface is no longer in the answer: read it first.
    let before = if add {
        None
    } else {
        let current = svc
            .get_router(Request::new(pb::GetRouterRequest {
                id: id.clone(),
                stale: false,
                ..Default::default()
            }))
            .await
            .rest()?;
        current.interfaces.iter().find(named).cloned()
    };
    let request = Request::new(pb::RouterInterfaceRequest {
        router_id: id.clone(),
        subnet_id: subnet_id.clone(),
        port_id: port_id.clone(),
        ..Default::default()
    });
    let after = if add {
        svc.add_router_interface(request).await
    } else {
        svc.remove_router_interface(request).await
    }
    .rest()?;
    let iface = match before {
        Some(iface) => Some(iface),
        None => after.interfaces.iter().find(named).cloned(),
    }
    .unwrap_or_else(|| pb::RouterInterface {
        subnet_id: subnet_id.clone(),
        port_id: port_id.clone(),
        ..Default::default()
    });
    let project = router.get("project_id").cloned().unwrap_or(Value::Null);
    let body = json!({
        "id": id,
        "subnet_id": iface.subnet_id,
        "subnet_ids": [iface.subnet_id],
        "port_id": iface.port_id,
        "tenant_id": project,
        "project_id": project,
    });
    Ok((StatusCode::OK, json_body(&body)).into_response())
}
