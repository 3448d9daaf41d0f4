//! Neutron's tag sub-resource of every tagged collection:
//! `GET/PUT/DELETE /v2.0/{collection}/{id}/tags` (list, replace all, remove
//! all) and `GET/PUT/DELETE /v2.0/{collection}/{id}/tags/{tag}` (check, add,
//! remove one). Every change is the resource's own update with its `tags`
//! set, so it moves `revision_number` and honours `If-Match`; adding or
//! removing one tag without `If-Match` is a compare-and-set on the revision
//! just read, retried at most [`TAG_CAS_ATTEMPTS_MAX`] times.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Map, Value};

use crate::attrs::Attrs;
use crate::auth::Caller;
use crate::error::RestError;
use crate::limits::TAG_CAS_ATTEMPTS_MAX;
use crate::resource::{expected_revision, path_id, read_json, respond, visible, Item, Resource};
use crate::{json_body, AppState, Svc};

/// The tag routes of `R`.
pub(crate) fn routes<R: Resource>(router: Router<AppState>) -> Router<AppState> {
    let base = format!("/v2.0/{}/{{id}}/tags", R::PATH);
    router
        .route(&base, get(list::<R>).put(replace::<R>).delete(clear::<R>))
        .route(
            &format!("{base}/{{tag}}"),
            get(check::<R>).put(add::<R>).delete(remove::<R>),
        )
}

fn tags_of(item: &Item) -> Vec<String> {
    item.get("tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn revision_of(item: &Item) -> Option<u64> {
    item.get("revision_number").and_then(Value::as_u64)
}

/// Sets every tag of `id` through `R`'s update.
async fn set<R: Resource>(
    svc: &Svc,
    id: &str,
    tags: Vec<String>,
    expected: Option<u64>,
) -> Result<Item, RestError> {
    let mut attrs = Map::new();
    attrs.insert("tags".to_string(), json!(tags));
    R::update(svc, id, Attrs::new(attrs), expected).await
}

fn tags_body(item: &Item) -> Response {
    (StatusCode::OK, json_body(&json!({"tags": tags_of(item)}))).into_response()
}

fn tag_not_found<R: Resource>(id: &str, tag: &str) -> RestError {
    RestError::new(
        StatusCode::NOT_FOUND,
        "TagNotFound",
        format!("Tag {tag} could not be found for {} {id}.", R::SINGULAR),
    )
}

async fn list<R: Resource>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    respond(
        async {
            let id = path_id::<R>(&id)?;
            let item = visible::<R>(&state.svc, &caller, &id).await?;
            Ok(tags_body(&item))
        }
        .await,
    )
}

async fn replace<R: Resource>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        async {
            let id = path_id::<R>(&id)?;
            let expected = expected_revision(&headers)?;
            let mut attrs = Attrs::new(read_json(body).await?);
            let tags = attrs.strings("tags")?.ok_or_else(|| {
                RestError::bad_request(
                    "Failed to parse request. Required attribute 'tags' not specified",
                )
            })?;
            attrs.finish()?;
            visible::<R>(&state.svc, &caller, &id).await?;
            let item = set::<R>(&state.svc, &id, tags, expected).await?;
            Ok(tags_body(&item))
        }
        .await,
    )
}

async fn clear<R: Resource>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            let id = path_id::<R>(&id)?;
            let expected = expected_revision(&headers)?;
            visible::<R>(&state.svc, &caller, &id).await?;
            set::<R>(&state.svc, &id, Vec::new(), expected).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

async fn check<R: Resource>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, tag)): Path<(String, String)>,
) -> Response {
    respond(
        async {
            let id = path_id::<R>(&id)?;
            let item = visible::<R>(&state.svc, &caller, &id).await?;
            if tags_of(&item).contains(&tag) {
                Ok(StatusCode::NO_CONTENT.into_response())
            } else {
                Err(tag_not_found::<R>(&id, &tag))
            }
        }
        .await,
    )
}

/// Adds (`add`) or removes one tag: a compare-and-set on the revision read
/// (or the caller's `If-Match`), retried while another change moved it.
async fn change_one<R: Resource>(
    state: &AppState,
    caller: &Caller,
    id: &str,
    tag: &str,
    add: bool,
    if_match: Option<u64>,
) -> Result<(), RestError> {
    let mut last = None;
    for _ in 0..TAG_CAS_ATTEMPTS_MAX {
        let item = visible::<R>(&state.svc, caller, id).await?;
        let mut tags = tags_of(&item);
        let has = tags.iter().any(|t| t == tag);
        match (add, has) {
            (true, true) if if_match.is_none() => return Ok(()),
            (false, false) => return Err(tag_not_found::<R>(id, tag)),
            (true, false) => tags.push(tag.to_string()),
            (false, true) => tags.retain(|t| t != tag),
            (true, true) => {}
        }
        let expected = if_match.or_else(|| revision_of(&item));
        match set::<R>(&state.svc, id, tags, expected).await {
            Ok(_) => return Ok(()),
            Err(e) if e.status == StatusCode::PRECONDITION_FAILED && if_match.is_none() => {
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last
        .map(|e| RestError {
            status: StatusCode::CONFLICT,
            kind: "Conflict".into(),
            message: format!(
                "{} {id} kept changing ({TAG_CAS_ATTEMPTS_MAX} attempts): {}",
                R::SINGULAR,
                e.message
            ),
            indeterminate: false,
        })
        .unwrap_or_else(|| RestError::new(StatusCode::CONFLICT, "Conflict", "no attempt made")))
}

async fn add<R: Resource>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, tag)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            let id = path_id::<R>(&id)?;
            let if_match = expected_revision(&headers)?;
            change_one::<R>(&state, &caller, &id, &tag, true, if_match).await?;
            Ok(StatusCode::CREATED.into_response())
        }
        .await,
    )
}

async fn remove<R: Resource>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, tag)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            let id = path_id::<R>(&id)?;
            let if_match = expected_revision(&headers)?;
            change_one::<R>(&state, &caller, &id, &tag, false, if_match).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}
