//! The OpenStack Networking (Neutron) API v2.0 of an Alcor node, over HTTP.
//!
//! [`router`] builds an axum router over the node's [`OrchestratorService`]
//! and calls its `alcor.api.v1.Orchestrator` methods in-process, so REST
//! requests get the gRPC path's validation, write coalescing, linearizable
//! reads and typed errors; [`serve`] serves it next to the gRPC port.
//!
//! # Routes
//! - `GET /`: the version document; `GET /v2.0/`: the resource index (both
//!   without authentication). `GET /openapi.json`: the OpenAPI 3 document.
//! - `GET /v2.0/extensions`: the extensions clients may feature-detect.
//! - `/v2.0/networks`, `/v2.0/subnets`, `/v2.0/ports` (also with a `.json`
//!   suffix): `GET` list, `POST` create (`{"port": {...}}`, or bulk
//!   `{"ports": [...]}`, all or nothing; networks and subnets one at a
//!   time), `GET /{id}`, `PUT /{id}` (networks: `name`, `mtu`,
//!   `admin_state_up`, `router:external`; subnets: `name`, `gateway_ip`, `allocation_pools`,
//!   `enable_dhcp`, `dns_nameservers`, `host_routes`; ports: `name`,
//!   `binding:host_id`, `device_id`, `device_owner`, `security_groups`,
//!   `allowed_address_pairs`, `admin_state_up`), `DELETE /{id}` (204).
//! - `/v2.0/security-groups` (list/show/create/update `name`,
//!   `description`/delete; a group embeds its `security_group_rules`),
//!   `/v2.0/security-group-rules` (list/show/create/delete; a duplicate is
//!   409 `SecurityGroupRuleExists`), `/v2.0/routers` (list/show/create/
//!   update `name`, `routes`, `admin_state_up`, `external_gateway_info`/
//!   delete), `PUT
//!   /v2.0/routers/{id}/add_router_interface` and `/remove_router_interface`
//!   with `{"subnet_id": ...}` (`port_id` is not supported yet: 400).
//! - `/v2.0/floatingips` (list/show/create, bulk up to
//!   [`limits::BULK_FLOATING_IPS_MAX`]/update `port_id`, `fixed_ip_address`,
//!   `description`/delete): the caller's own network or an external one
//!   (whose floating IPs need a router path to the port: 404
//!   `ExternalGatewayForFloatingIPNotFound`) can be the `floating_network_id`;
//!   `PUT` with a `port_id` associates or moves the address, with
//!   `"port_id": null` disassociates. A bulk create creates one by one and
//!   deletes what it created when one fails (all or nothing, like Neutron's
//!   emulated bulk; readers may see the partial batch meanwhile).
//! - Tags (every collection but security group rules): `tags` in create
//!   and update bodies (an update replaces them all; not in a multi-port
//!   bulk create) and in responses; `GET/PUT/DELETE /v2.0/{collection}/{id}/tags`
//!   (list; replace all with `{"tags": [...]}`; remove all, 204) and
//!   `GET/PUT/DELETE .../tags/{tag}` (204 if present else 404 `TagNotFound`;
//!   add, 201; remove, 204).
//! - `/v2.0/qos/policies` (list/show/create/update `name`, `description`,
//!   `shared`/delete; 409 `QosPolicyInUse` while a network or port uses
//!   it), `.../{id}/bandwidth_limit_rules` (`max_kbps`, `max_burst_kbps`,
//!   `direction`) and `.../{id}/dscp_marking_rules` (`dscp_mark`): list,
//!   create (a second rule of a type and direction: 409 `QoSRulesConflict`),
//!   show, update, delete; `GET /v2.0/qos/rule-types`. `qos_policy_id` on
//!   networks and ports (create and update; `null` removes it).
//! - `/v2.0/quotas/{project_id}`: `GET`, `PUT` (partial), `DELETE` (reset,
//!   204); `/v2.0/quotas/{project_id}/details`: limit, used, reserved (0).
//!   Changing quotas, and reading another project's, is for admins.
//!
//! # Conventions (Neutron's)
//! - Lists filter on top-level attributes (`?name=a&name=b` ORs, different
//!   keys AND; `?device_id=` finds empty ones; `fixed_ips=ip_address=X`);
//!   an unknown filter is 400. `fields=` selects attributes; `limit` +
//!   `marker` page in ID order with a `<resource>_links` `next` link (pages
//!   are at most [`limits::PAGE_MAX`]). `sort_key=id`/`sort_dir=asc` only.
//!   `tags`, `tags-any`, `not-tags`, `not-tags-any` (comma-separated) are
//!   served from the tag index.
//! - `If-Match: revision_number=N` on `PUT`/`DELETE` is a compare-and-set:
//!   412 when the resource moved.
//! - Errors are `{"NeutronError": {"type", "message", "detail"}}` with
//!   Neutron's type names; [`error::from_status`] is the one mapping from
//!   the gRPC status (and its `x-alcor-reason`) and documents the table.
//! - Every response carries `X-Openstack-Request-Id: req-<uuid>`.
//! - Bodies larger than [`limits::BODY_BYTES_MAX`] are refused with 413.
//!
//! # Authentication: the token file
//! Every `/v2.0/...` route except the index needs an `X-Auth-Token` header
//! naming a token of the member's token file (`alcor server --token-file F`,
//! or the older `--rest-token-file`), the same file the gRPC API reads
//! (`alcor_api_gateway::tokens` documents its format: roles `admin`,
//! `member`, `reader`, `agent`, optionally hashed `sha256:HEX` entries); a
//! missing or unknown token is 401. The file is reloaded when it changes
//! and on SIGHUP: a revoked token stops working without a restart.
//!
//! | role | REST API |
//! |---|---|
//! | `admin` | every project; creates in its own (`project_id` of the grant, default `admin`) unless the body names one; sets `binding:host_id`; changes quotas |
//! | `member` | its project: creates there by default, may not create in another (403 `PolicyNotAuthorized`), sees only its project's resources in lists, gets 404 for another project's resources (and networks, when creating subnets or ports on them); may not set `binding:host_id` (403, as Neutron's policy) |
//! | `reader` | like a member, but `GET` only (other methods 403) |
//! | `agent` | none (403): agents use the push stream |
//!
//! The tokens are secrets (mode 0600). openstacksdk and the `openstack` CLI
//! use it with `auth_type=admin_token`, `endpoint=http://HOST:PORT`,
//! `token=TOKEN`.

mod attrs;
pub mod auth;
pub mod error;
mod floatingips;
pub mod limits;
mod meta;
pub mod metrics;
mod networks;
mod ports;
mod qos;
mod query;
mod quotas;
mod resource;
mod routers;
mod security_groups;
mod subnets;
mod tags;

use std::future::Future;
use std::sync::Arc;

use alcor_api_gateway::OrchestratorService;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tracing::Instrument;

pub use alcor_api_gateway::tokens::{Grant, Role, TokenFileError, TokenTable, Tokens};
pub use auth::Caller;
pub use error::{from_status, RestError};
pub use metrics::RestMetrics;

/// Header naming the request in every response.
pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";
/// Header carrying the caller's token.
pub const AUTH_TOKEN_HEADER: &str = "x-auth-token";

/// The orchestrator the routes call in-process.
pub(crate) type Svc = OrchestratorService;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) svc: Arc<Svc>,
    pub(crate) tokens: TokenTable,
}

/// The REST API over `svc`, authenticating with `tokens` (read at each
/// request: a reloaded table applies at once).
pub fn router(svc: Arc<OrchestratorService>, tokens: TokenTable) -> Router {
    let state = AppState { svc, tokens };
    let mut protected =
        Router::new().route("/v2.0/extensions", axum::routing::get(meta::extensions));
    protected = protected.route(
        "/v2.0/extensions.json",
        axum::routing::get(meta::extensions),
    );
    protected = resource::routes::<networks::Networks>(protected);
    protected = resource::routes::<subnets::Subnets>(protected);
    protected = resource::routes::<ports::Ports>(protected);
    protected = resource::routes::<security_groups::SecurityGroups>(protected);
    protected = resource::routes::<security_groups::SecurityGroupRules>(protected);
    protected = resource::routes::<routers::Routers>(protected);
    protected = routers::interface_routes(protected);
    protected = resource::routes::<floatingips::FloatingIps>(protected);
    protected = resource::routes::<qos::QosPolicies>(protected);
    protected = qos::rule_routes(protected);
    protected = quotas::routes(protected);
    let protected = protected.layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/", axum::routing::get(meta::versions))
        .route("/v2.0", axum::routing::get(meta::index))
        .route("/v2.0/", axum::routing::get(meta::index))
        .route("/openapi.json", axum::routing::get(meta::openapi))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` resolves (then finishes
/// the requests in flight), measuring every request into `metrics`.
pub async fn serve(
    listener: TcpListener,
    svc: Arc<OrchestratorService>,
    tokens: TokenTable,
    metrics: RestMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        // Small JSON answers must not wait for the peer's delayed ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "set TCP_NODELAY");
        }
    });
    serve_on(listener, svc, tokens, Scheme::Http, metrics, shutdown).await
}

/// How the listener's connections arrive, for the links the API returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain text: links say `http://`, or what a TLS-terminating proxy's
    /// `x-forwarded-proto` says.
    Http,
    /// TLS connections: links always say `https://`.
    Https,
}

/// Like [`serve`], on any axum listener (e.g. TLS connections, `Https`).
pub async fn serve_on<L>(
    listener: L,
    svc: Arc<OrchestratorService>,
    tokens: TokenTable,
    scheme: Scheme,
    metrics: RestMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    // A `Router::layer` sees the matched route template of each request.
    let mut app =
        router(svc, tokens).layer(middleware::from_fn_with_state(metrics, metrics::measure));
    if scheme == Scheme::Https {
        // Served over TLS the scheme is known: a client's header cannot
        // turn the links into plain text ones.
        app = app.layer(middleware::from_fn(
            |mut request: axum::extract::Request, next: middleware::Next| async move {
                request
                    .headers_mut()
                    .insert(FORWARDED_PROTO, HeaderValue::from_static("https"));
                next.run(request).await
            },
        ));
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The header a TLS-terminating proxy names the client's scheme in.
const FORWARDED_PROTO: &str = "x-forwarded-proto";

/// A JSON body with its content type.
pub(crate) fn json_body(value: &Value) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        value.to_string(),
    )
}

/// `http://host:port` or `https://host:port` as the client reached us (for
/// links).
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get(FORWARDED_PROTO)
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// Names the request (`req-<uuid v4>`) in its response and in every line
/// it logs: the handlers run inside its span.
async fn request_id(request: Request, next: Next) -> Response {
    let id = alcor_api_gateway::request_id::new_request_id();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let span = alcor_api_gateway::request_id::request_span(&id, &format!("{method} {path}"));
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "rest"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let grant = request
        .headers()
        .get(AUTH_TOKEN_HEADER)
        .and_then(|t| t.to_str().ok())
        .and_then(|t| state.tokens.grant(t));
    let Some(grant) = grant else {
        return RestError::new(
            StatusCode::UNAUTHORIZED,
            "NotAuthorized",
            "The request you have made requires authentication (X-Auth-Token).",
        )
        .into_response();
    };
    let caller = match Caller::of(&grant) {
        Some(caller) if !caller.reads_only() || request.method() == axum::http::Method::GET => {
            caller
        }
        _ => {
            return RestError::new(
                StatusCode::FORBIDDEN,
                "PolicyNotAuthorized",
                format!(
                    "{} may not {} this resource",
                    grant.principal(),
                    request.method()
                ),
            )
            .into_response()
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

async fn not_found() -> Response {
    RestError::new(
        StatusCode::NOT_FOUND,
        "HTTPNotFound",
        "The resource could not be found.",
    )
    .into_response()
}

async fn method_not_allowed() -> Response {
    RestError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTPMethodNotAllowed",
        "The method is not allowed for this resource.",
    )
    .into_response()
}
