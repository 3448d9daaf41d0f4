//! `/v2.0/qos/policies` (Neutron's `qos` extension) and the rules of a
//! policy: `/v2.0/qos/policies/{id}/bandwidth_limit_rules` (with
//! `qos-bw-limit-direction`) and `/dscp_marking_rules`, plus
//! `/v2.0/qos/rule-types`. A rule lives in its policy: its routes read and
//! write the policy and answer the rule.

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

use crate::attrs::{iso8601, Attrs};
use crate::auth::Caller;
use crate::error::{Answer, RestError};
use crate::resource::{object, path_id, read_json, respond, single, visible};
use crate::resource::{Item, Resource, Scope};
use crate::{json_body, AppState, Svc};

/// The QoS policies collection.
pub(crate) struct QosPolicies;

/// The two rule types, by their Neutron names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RuleType {
    BandwidthLimit,
    DscpMarking,
}

impl RuleType {
    fn name(self) -> &'static str {
        match self {
            RuleType::BandwidthLimit => "bandwidth_limit",
            RuleType::DscpMarking => "dscp_marking",
        }
    }
    fn singular(self) -> &'static str {
        match self {
            RuleType::BandwidthLimit => "bandwidth_limit_rule",
            RuleType::DscpMarking => "dscp_marking_rule",
        }
    }
    fn plural(self) -> &'static str {
        match self {
            RuleType::BandwidthLimit => "bandwidth_limit_rules",
            RuleType::DscpMarking => "dscp_marking_rules",
        }
    }
    fn of(rule: &pb::QosRule) -> Option<RuleType> {
        match rule.kind {
            Some(pb::qos_rule::Kind::BandwidthLimit(_)) => Some(RuleType::BandwidthLimit),
            Some(pb::qos_rule::Kind::DscpMarking(_)) => Some(RuleType::DscpMarking),
            None => None,
        }
    }
}

fn direction_name(direction: i32) -> &'static str {
    match pb::Direction::try_from(direction) {
        Ok(pb::Direction::Ingress) => "ingress",
        _ => "egress",
    }
}

/// A rule as Neutron renders it, with its `type` (as in a policy's `rules`).
fn render_rule(policy_id: &str, rule: &pb::QosRule) -> Item {
    let mut out = Map::new();
    out.insert("id".into(), json!(rule.id));
    out.insert("qos_policy_id".into(), json!(policy_id));
    match &rule.kind {
        Some(pb::qos_rule::Kind::BandwidthLimit(b)) => {
            out.insert("type".into(), json!("bandwidth_limit"));
            out.insert("max_kbps".into(), json!(b.max_kbps));
            out.insert("max_burst_kbps".into(), json!(b.max_burst_kbps));
            out.insert("direction".into(), json!(direction_name(b.direction)));
        }
        Some(pb::qos_rule::Kind::DscpMarking(m)) => {
            out.insert("type".into(), json!("dscp_marking"));
            out.insert("dscp_mark".into(), json!(m.dscp_mark));
        }
        None => {}
    }
    out
}

fn render(q: &pb::QosPolicy) -> Item {
    let rules: Vec<Value> = q
        .rules
        .iter()
        .map(|r| Value::Object(render_rule(&q.id, r)))
        .collect();
    object(json!({
        "id": q.id,
        "name": q.name,
        "description": q.description,
        "shared": q.shared,
        "is_default": false,
        "tenant_id": q.project_id,
        "project_id": q.project_id,
        "rules": rules,
        "revision_number": q.revision,
        "created_at": iso8601(q.created_at_ms),
        "updated_at": iso8601(q.updated_at_ms),
        "tags": [],
    }))
}

async fn get_policy(svc: &Svc, id: &str, stale: bool) -> Result<pb::QosPolicy, RestError> {
    svc.get_qos_policy(Request::new(pb::GetQosPolicyRequest {
        id: id.to_string(),
        stale,
        ..Default::default()
    }))
    .await
    .rest()
}

impl Resource for QosPolicies {
    const SINGULAR: &'static str = "policy";
    const PLURAL: &'static str = "policies";
    const PATH: &'static str = "qos/policies";
    const NOT_FOUND: &'static str = "QosPolicyNotFound";
    const TAGGED: bool = false;
    const FILTERS: &'static [&'static str] = &[
        "id",
        "name",
        "tenant_id",
        "project_id",
        "shared",
        "is_default",
        "description",
        "revision_number",
    ];

    async fn get(svc: &Svc, id: &str) -> Result<Item, RestError> {
        Ok(render(&get_policy(svc, id, false).await?))
    }

    async fn get_stale(svc: &Svc, id: &str) -> Result<Item, RestError> {
        Ok(render(&get_policy(svc, id, true).await?))
    }

    async fn list(
        svc: &Svc,
        scope: &Scope,
        marker: &str,
        limit: usize,
    ) -> Result<(Vec<Item>, String), RestError> {
        let request = pb::ListQosPoliciesRequest {
            project_id: scope.project_id.clone(),
            marker: marker.to_string(),
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            ..Default::default()
        };
        let page = svc.list_qos_policies(Request::new(request)).await.rest()?;
        Ok((
            page.qos_policies.iter().map(render).collect(),
            page.next_marker,
        ))
    }

    async fn create(svc: &Svc, items: Vec<Attrs>) -> Result<Vec<Item>, RestError> {
        let mut a = single::<Self>(items)?;
        let request = pb::CreateQosPolicyRequest {
            id: a.string("id")?.unwrap_or_default(),
            project_id: a.string("project_id")?.unwrap_or_default(),
            name: a.string("name")?.unwrap_or_default(),
            description: a.nullable_string("description")?,
            shared: a.boolean("shared")?.unwrap_or(false),
            ..Default::default()
        };
        a.only_default("is_default", &json!(false))?;
        a.finish()?;
        let policy = svc.create_qos_policy(Request::new(request)).await.rest()?;
        Ok(vec![render(&policy)])
    }

    async fn update(
        svc: &Svc,
        id: &str,
        mut a: Attrs,
        expected_revision: Option<u64>,
    ) -> Result<Item, RestError> {
        let request = pb::UpdateQosPolicyRequest {
            id: id.to_string(),
            name: a.string("name")?,
            description: a.nullable_update("description")?,
            shared: a.boolean("shared")?,
            expected_revision,
        };
        a.only_default("is_default", &json!(false))?;
        a.finish_update("name, description, shared")?;
        let policy = svc.update_qos_policy(Request::new(request)).await.rest()?;
        Ok(render(&policy))
    }

    async fn delete(svc: &Svc, id: &str, expected_revision: Option<u64>) -> Result<(), RestError> {
        svc.delete_qos_policy(Request::new(pb::DeleteQosPolicyRequest {
            id: id.to_string(),
            expected_revision,
        }))
        .await
        .rest()?;
        Ok(())
    }
}

/// The rule routes of policies and the rule types.
pub(crate) fn rule_routes(mut router: Router<AppState>) -> Router<AppState> {
    router = router.route("/v2.0/qos/rule-types", get(rule_types));
    for (rule_type, collection, one) in [
        (
            RuleType::BandwidthLimit,
            "/v2.0/qos/policies/{id}/bandwidth_limit_rules",
            "/v2.0/qos/policies/{id}/bandwidth_limit_rules/{rule_id}",
        ),
        (
            RuleType::DscpMarking,
            "/v2.0/qos/policies/{id}/dscp_marking_rules",
            "/v2.0/qos/policies/{id}/dscp_marking_rules/{rule_id}",
        ),
    ] {
        router =
            router
                .route(
                    collection,
                    get(
                        move |state: State<AppState>,
                              caller: Extension<Caller>,
                              id: Path<String>| async move {
                            respond(list_rules(state, caller, id, rule_type).await)
                        },
                    )
                    .post(
                        move |state: State<AppState>,
                              caller: Extension<Caller>,
                              id: Path<String>,
                              body: Body| async move {
                            respond(create_rule(state, caller, id, body, rule_type).await)
                        },
                    ),
                )
                .route(
                    one,
                    get(
                        move |state: State<AppState>,
                              caller: Extension<Caller>,
                              ids: Path<(String, String)>| async move {
                            respond(show_rule(state, caller, ids, rule_type).await)
                        },
                    )
                    .put(
                        move |state: State<AppState>,
                              caller: Extension<Caller>,
                              ids: Path<(String, String)>,
                              body: Body| async move {
                            respond(update_rule(state, caller, ids, body, rule_type).await)
                        },
                    )
                    .delete(
                        move |state: State<AppState>,
                              caller: Extension<Caller>,
                              ids: Path<(String, String)>| async move {
                            respond(delete_rule(state, caller, ids, rule_type).await)
                        },
                    ),
                );
    }
    router
}

async fn rule_types() -> Response {
    let types: Vec<Value> = [RuleType::BandwidthLimit, RuleType::DscpMarking]
        .iter()
        .map(|t| json!({"type": t.name()}))
        .collect();
    (StatusCode::OK, json_body(&json!({"rule_types": types}))).into_response()
}

/// The policy named by the path, if the caller sees it.
async fn policy_of(svc: &Svc, caller: &Caller, raw: &str) -> Result<pb::QosPolicy, RestError> {
    let id = path_id::<QosPolicies>(raw)?;
    visible::<QosPolicies>(svc, caller, &id).await?;
    get_policy(svc, &id, false).await
}

fn rule_not_found(rule_type: RuleType, id: &str) -> RestError {
    RestError::not_found("QosRuleNotFound", rule_type.singular(), id)
}

/// The rule of `rule_type` with `rule_id` in `policy`, rendered.
fn find_rule(
    policy: &pb::QosPolicy,
    rule_type: RuleType,
    rule_id: &str,
) -> Result<Item, RestError> {
    policy
        .rules
        .iter()
        .find(|r| r.id == rule_id && RuleType::of(r) == Some(rule_type))
        .map(|r| rule_body(&policy.id, r))
        .ok_or_else(|| rule_not_found(rule_type, rule_id))
}

/// A rule as its own collection renders it (no `type`).
fn rule_body(policy_id: &str, rule: &pb::QosRule) -> Item {
    let mut item = render_rule(policy_id, rule);
    item.remove("type");
    item
}

fn one(rule_type: RuleType, status: StatusCode, item: Item) -> Response {
    let mut body = Map::new();
    body.insert(rule_type.singular().to_string(), Value::Object(item));
    (status, json_body(&Value::Object(body))).into_response()
}

async fn list_rules(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    rule_type: RuleType,
) -> Result<Response, RestError> {
    let policy = policy_of(&state.svc, &caller, &id).await?;
    let rules: Vec<Value> = policy
        .rules
        .iter()
        .filter(|r| RuleType::of(r) == Some(rule_type))
        .map(|r| Value::Object(rule_body(&policy.id, r)))
        .collect();
    let mut body = Map::new();
    body.insert(rule_type.plural().to_string(), Value::Array(rules));
    Ok((StatusCode::OK, json_body(&Value::Object(body))).into_response())
}

/// The body's rule object, without the attributes Neutron allows but that
/// the path already says (`qos_policy_id`, the project, `type`).
async fn rule_attrs(body: Body, rule_type: RuleType) -> Result<Attrs, RestError> {
    let mut body = read_json(body).await?;
    let rule = match body.remove(rule_type.singular()) {
        Some(Value::Object(rule)) if body.is_empty() => rule,
        _ => {
            return Err(RestError::bad_request(format!(
                "Bad request: expected {{\"{}\": {{...}}}}",
                rule_type.singular()
            )))
        }
    };
    let mut a = Attrs::new(rule);
    for ignored in ["qos_policy_id", "tenant_id", "project_id", "type"] {
        a.take(ignored);
    }
    Ok(a)
}

fn direction(a: &mut Attrs) -> Result<Option<i32>, RestError> {
    match a.string("direction")?.as_deref() {
        None => Ok(None),
        Some("egress") => Ok(Some(pb::Direction::Egress as i32)),
        Some("ingress") => Ok(Some(pb::Direction::Ingress as i32)),
        Some(other) => Err(RestError::invalid_input(format!(
            "Invalid input for direction. Reason: {other:?} is not in ['egress', 'ingress']."
        ))),
    }
}

async fn create_rule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Body,
    rule_type: RuleType,
) -> Result<Response, RestError> {
    let svc = &*state.svc;
    let policy = policy_of(svc, &caller, &id).await?;
    let mut a = rule_attrs(body, rule_type).await?;
    let rule_id = a.string("id")?.unwrap_or_default();
    let kind = match rule_type {
        RuleType::BandwidthLimit => pb::qos_rule::Kind::BandwidthLimit(pb::QosBandwidthLimit {
            max_kbps: a
                .u32("max_kbps")?
                .ok_or_else(|| RestError::invalid_input("Invalid input: max_kbps is required"))?,
            max_burst_kbps: a.u32("max_burst_kbps")?.unwrap_or(0),
            direction: direction(&mut a)?.unwrap_or(pb::Direction::Egress as i32),
        }),
        RuleType::DscpMarking => pb::qos_rule::Kind::DscpMarking(pb::QosDscpMarking {
            dscp_mark: a
                .u32("dscp_mark")?
                .ok_or_else(|| RestError::invalid_input("Invalid input: dscp_mark is required"))?,
        }),
    };
    a.finish()?;
    let slot = |r: &pb::QosRule| match (&r.kind, &kind) {
        (
            Some(pb::qos_rule::Kind::BandwidthLimit(have)),
            pb::qos_rule::Kind::BandwidthLimit(want),
        ) => have.direction == want.direction,
        (Some(pb::qos_rule::Kind::DscpMarking(_)), pb::qos_rule::Kind::DscpMarking(_)) => true,
        _ => false,
    };
    let after = svc
        .create_qos_rule(Request::new(pb::CreateQosRuleRequest {
            policy_id: policy.id.clone(),
            rule: Some(pb::QosRule {
                id: rule_id,
                kind: Some(kind),
            }),
            ..Default::default()
        }))
        .await
        .rest()?;
    // The new rule is the one in its slot (a policy has one per slot).
    let rule = after.rules.iter().find(|r| slot(r)).ok_or_else(|| {
        RestError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "the new rule is missing from its policy",
        )
    })?;
    Ok(one(
        rule_type,
        StatusCode::CREATED,
        rule_body(&after.id, rule),
    ))
}

async fn show_rule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, rule_id)): Path<(String, String)>,
    rule_type: RuleType,
) -> Result<Response, RestError> {
    let policy = policy_of(&state.svc, &caller, &id).await?;
    let rule_id = rule_id.strip_suffix(".json").unwrap_or(&rule_id);
    Ok(one(
        rule_type,
        StatusCode::OK,
        find_rule(&policy, rule_type, rule_id)?,
    ))
}

async fn update_rule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, rule_id)): Path<(String, String)>,
    body: Body,
    rule_type: RuleType,
) -> Result<Response, RestError> {
    let svc = &*state.svc;
    let policy = policy_of(svc, &caller, &id).await?;
    find_rule(&policy, rule_type, &rule_id)?;
    let mut a = rule_attrs(body, rule_type).await?;
    // Some clients repeat the rule's ID in the body.
    if a.string("id")?.is_some_and(|id| id != rule_id) {
        return Err(RestError::bad_request(
            "Bad request: the body names another rule",
        ));
    }
    let request = match rule_type {
        RuleType::BandwidthLimit => pb::UpdateQosRuleRequest {
            max_kbps: a.u32("max_kbps")?,
            max_burst_kbps: a.u32("max_burst_kbps")?,
            direction: direction(&mut a)?,
            ..Default::default()
        },
        RuleType::DscpMarking => pb::UpdateQosRuleRequest {
            dscp_mark: a.u32("dscp_mark")?,
            ..Default::default()
        },
    };
    a.finish()?;
    let after = svc
        .update_qos_rule(Request::new(pb::UpdateQosRuleRequest {
            policy_id: policy.id.clone(),
            rule_id: rule_id.clone(),
            ..request
        }))
        .await
        .rest()?;
    Ok(one(
        rule_type,
        StatusCode::OK,
        find_rule(&after, rule_type, &rule_id)?,
    ))
}

async fn delete_rule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, rule_id)): Path<(String, String)>,
    rule_type: RuleType,
) -> Result<Response, RestError> {
    let svc = &*state.svc;
    let policy = policy_of(svc, &caller, &id).await?;
    find_rule(&policy, rule_type, &rule_id)?;
    svc.delete_qos_rule(Request::new(pb::DeleteQosRuleRequest {
        policy_id: policy.id.clone(),
        rule_id,
    }))
    .await
    .rest()?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
