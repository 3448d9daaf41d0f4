//! `/v2.0/quotas/{project_id}` (`GET`, `PUT` partial update, `DELETE` back to
//! the defaults) and `/v2.0/quotas/{project_id}/details` (limit / used /
//! reserved). A member may read its own project's quota; changing a quota
//! and reading another project's is for admins.

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_server::Orchestrator;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Map, Value};
use tonic::Request;

use crate::attrs::Attrs;
use crate::auth::Caller;
use crate::error::{Answer, RestError};
use crate::resource::{respond, wrapped};
use crate::{json_body, AppState};

/// The quota resources, in Neutron's names.
const RESOURCES: [&str; 6] = [
    "network",
    "subnet",
    "port",
    "router",
    "security_group",
    "security_group_rule",
];

/// The quota routes.
pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route(
            "/v2.0/quotas/{project_id}",
            get(show).put(update).delete(reset),
        )
        .route("/v2.0/quotas/{project_id}/details", get(details))
        .route("/v2.0/quotas/{project_id}/details.json", get(details))
}

/// The project of the path, if the caller may act on it.
fn project(caller: &Caller, raw: &str, change: bool) -> Result<String, RestError> {
    let project = raw.strip_suffix(".json").unwrap_or(raw);
    if project.is_empty() {
        return Err(RestError::bad_request("a project ID is required"));
    }
    if change && !caller.admin {
        return Err(RestError::new(
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            "rule:update_quota is disallowed by policy: only an admin may change quotas",
        ));
    }
    if !caller.sees(project) {
        return Err(RestError::new(
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            "rule:get_quota is disallowed by policy: only an admin may read another project's quota",
        ));
    }
    Ok(project.to_string())
}

fn limits_of(q: &pb::Quota) -> [i64; 6] {
    let l = q.limits.unwrap_or_default();
    [
        l.network,
        l.subnet,
        l.port,
        l.router,
        l.security_group,
        l.security_group_rule,
    ]
}

fn usage_of(q: &pb::Quota) -> [u64; 6] {
    let u = q.usage.unwrap_or_default();
    [
        u.network,
        u.subnet,
        u.port,
        u.router,
        u.security_group,
        u.security_group_rule,
    ]
}

fn quota_body(q: &pb::Quota) -> Value {
    let mut out = Map::new();
    for (name, limit) in RESOURCES.iter().zip(limits_of(q)) {
        out.insert((*name).to_string(), json!(limit));
    }
    json!({"quota": out})
}

async fn get_quota(state: &AppState, project_id: String) -> Result<pb::Quota, RestError> {
    state
        .svc
        .get_quota(Request::new(pb::GetQuotaRequest {
            project_id,
            stale: false,
        }))
        .await
        .rest()
}

async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> Response {
    respond(
        async {
            let q = get_quota(&state, project(&caller, &raw, false)?).await?;
            Ok((StatusCode::OK, json_body(&quota_body(&q))).into_response())
        }
        .await,
    )
}

async fn details(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> Response {
    respond(
        async {
            let q = get_quota(&state, project(&caller, &raw, false)?).await?;
            let mut out = Map::new();
            for ((name, limit), used) in RESOURCES.iter().zip(limits_of(&q)).zip(usage_of(&q)) {
                out.insert(
                    (*name).to_string(),
                    json!({"limit": limit, "used": used, "reserved": 0}),
                );
            }
            Ok((StatusCode::OK, json_body(&json!({"quota": out}))).into_response())
        }
        .await,
    )
}

/// A limit: an integer of at least -1 (unlimited).
fn limit(a: &mut Attrs, name: &str) -> Result<Option<i64>, RestError> {
    match a.take(name) {
        None => Ok(None),
        Some(v) => {
            let n = match &v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse::<i64>().ok(),
                _ => None,
            };
            match n {
                Some(n) if n >= -1 => Ok(Some(n)),
                _ => Err(RestError::invalid_input(format!(
                    "'{v}' is not a valid quota for {name} (an integer, -1 for unlimited)"
                ))),
            }
        }
    }
}

async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
    body: Body,
) -> Response {
    respond(
        async {
            let project_id = project(&caller, &raw, true)?;
            let mut a = wrapped(body, "quota").await?;
            // openstacksdk sends the project back in the body.
            for key in ["project_id", "tenant_id"] {
                match a.take(key) {
                    None => {}
                    Some(Value::String(p)) if p == project_id => {}
                    Some(other) => {
                        return Err(RestError::invalid_input(format!(
                            "{key} {other} is not the project of the path"
                        )))
                    }
                }
            }
            let request = pb::SetQuotaRequest {
                project_id,
                network: limit(&mut a, "network")?,
                subnet: limit(&mut a, "subnet")?,
                port: limit(&mut a, "port")?,
                router: limit(&mut a, "router")?,
                security_group: limit(&mut a, "security_group")?,
                security_group_rule: limit(&mut a, "security_group_rule")?,
            };
            a.finish()?;
            let q = state.svc.set_quota(Request::new(request)).await.rest()?;
            Ok((StatusCode::OK, json_body(&quota_body(&q))).into_response())
        }
        .await,
    )
}

async fn reset(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> Response {
    respond(
        async {
            let project_id = project(&caller, &raw, true)?;
            state
                .svc
                .reset_quota(Request::new(pb::ResetQuotaRequest { project_id }))
                .await
                .rest()?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}
