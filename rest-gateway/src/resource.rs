//! The generic Neutron collection: one [`Resource`] impl per kind gives
//! list / show / create (single and bulk) / update / delete routes with
//! Neutron's envelopes, filters, `fields`, paging links, `If-Match` and
//! project scoping. A new kind plugs in with an impl and one `routes::<R>()`.
//! The helpers below serve the impls: [`object`] ends a render, [`single`]
//! takes the one item of a create without bulk, `page_request!` builds a
//! list request, [`all_pages`] reads a list to its end and [`fill_each`] sets
//! an attribute that costs a read per item.

use std::collections::BTreeSet;
use std::future::Future;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Map, Value};

use crate::attrs::Attrs;
use crate::auth::Caller;
use crate::error::RestError;
use crate::limits::{BODY_BYTES_MAX, PAGE_MAX, SCAN_PAGE_MAX, SUBNET_LOOKUPS_CONCURRENT_MAX};
use crate::query::Query;
use crate::{base_url, json_body, AppState, Svc};
use alcor_proto::identity::Principal;

/// A rendered resource: Neutron's attributes by name.
pub(crate) type Item = Map<String, Value>;

/// The pushed-down part of a list's filters (served from the state's indexes).
#[derive(Debug, Default, Clone)]
pub(crate) struct Scope {
    /// Empty: every project.
    pub(crate) project_id: String,
    /// Empty: every network.
    pub(crate) network_id: String,
    /// Empty: every host.
    pub(crate) host: String,
    /// Empty: every security group.
    pub(crate) security_group_id: String,
    /// Empty: every port (floating IPs).
    pub(crate) port_id: String,
    /// Empty: every router (floating IPs).
    pub(crate) router_id: String,
    /// A member's or reader's identity, for the kinds with resources every
    /// project reads (networks: [`Resource::public`]); `None` for the admin.
    pub(crate) reader: Option<Principal>,
    /// The tag filters (served from the tag index).
    pub(crate) tags: TagFilters,
}

/// Neutron's tag filters, each a list of tags (empty: no such filter).
#[derive(Debug, Default, Clone)]
pub(crate) struct TagFilters {
    /// `tags`: has every one.
    pub(crate) all: Vec<String>,
    /// `tags-any`: has at least one.
    pub(crate) any: Vec<String>,
    /// `not-tags`: lacks at least one.
    pub(crate) not_all: Vec<String>,
    /// `not-tags-any`: has none.
    pub(crate) not_any: Vec<String>,
}

/// One Neutron collection backed by orchestrator calls.
pub(crate) trait Resource: Send + Sync + 'static {
    /// `port`: the single-object envelope key.
    const SINGULAR: &'static str;
    /// `ports`: the list/bulk envelope key.
    const PLURAL: &'static str;
    /// The URL segment (`security-groups`); by default the envelope key.
    const PATH: &'static str = Self::PLURAL;
    /// Neutron's type for a missing one (`PortNotFound`).
    const NOT_FOUND: &'static str;
    /// Attributes a list may filter on (besides the tag filters).
    const FILTERS: &'static [&'static str];
    /// Whether the kind has tags (and `/{id}/tags` routes).
    const TAGGED: bool = true;
    /// Items in one bulk create; 1: no bulk create. A larger batch is
    /// refused before anything is looked up or written.
    const BULK_MAX: usize = 1;
    /// Attributes only an admin may set in a create or update (Neutron's
    /// policy); anyone else gets 403 `PolicyNotAuthorized`.
    const ADMIN_ONLY: &'static [&'static str] = &[];

    /// Whether every project may read `item` (an external network), not
    /// only its owner's; writes stay the owner's.
    fn public(_item: &Item) -> bool {
        false
    }

    /// Reads one by ID (404 with `NOT_FOUND` when missing).
    fn get(svc: &Svc, id: &str) -> impl Future<Output = Result<Item, RestError>> + Send;

    /// Reads one from the answering node's applied state (may lag behind
    /// the cluster); by default the linearizable [`Resource::get`].
    fn get_stale(svc: &Svc, id: &str) -> impl Future<Output = Result<Item, RestError>> + Send {
        Self::get(svc, id)
    }

    /// One page of the gRPC list after `marker`, and the next marker ("" at the end).
    fn list(
        svc: &Svc,
        scope: &Scope,
        marker: &str,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<Item>, String), RestError>> + Send;

    /// Fills in attributes that cost extra reads (a network's `subnets`),
    /// for the items about to be returned.
    fn complete(
        _svc: &Svc,
        _items: &mut [Item],
        _query: &Query,
    ) -> impl Future<Output = Result<(), RestError>> + Send {
        async { Ok(()) }
    }

    /// Creates every item or none; each has `project_id` set already.
    fn create(
        svc: &Svc,
        items: Vec<Attrs>,
    ) -> impl Future<Output = Result<Vec<Item>, RestError>> + Send;

    /// Updates one.
    fn update(
        _svc: &Svc,
        _id: &str,
        _attrs: Attrs,
        _expected_revision: Option<u64>,
    ) -> impl Future<Output = Result<Item, RestError>> + Send {
        async {
            Err(RestError::new(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                format!("updating {} is not supported yet", Self::PLURAL),
            ))
        }
    }

    /// Deletes one.
    fn delete(
        svc: &Svc,
        id: &str,
        expected_revision: Option<u64>,
    ) -> impl Future<Output = Result<(), RestError>> + Send;
}

/// The routes of one collection, with and without the `.json` suffix.
pub(crate) fn routes<R: Resource>(router: Router<AppState>) -> Router<AppState> {
    let collection = format!("/v2.0/{}", R::PATH);
    let router = if R::TAGGED {
        crate::tags::routes::<R>(router)
    } else {
        router
    };
    router
        .route(&collection, get(list::<R>).post(create::<R>))
        .route(
            &format!("{collection}.json"),
            get(list::<R>).post(create::<R>),
        )
        .route(
            &format!("{collection}/{{id}}"),
            get(show::<R>).put(update::<R>).delete(delete::<R>),
        )
}

pub(crate) fn respond(result: Result<Response, RestError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Whether `id` has the shape of a UUID (anything else cannot exist).
pub(crate) fn is_uuid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The path ID without a `.json` suffix; malformed IDs are simply not found.
pub(crate) fn path_id<R: Resource>(raw: &str) -> Result<String, RestError> {
    let id = raw.strip_suffix(".json").unwrap_or(raw);
    if is_uuid(id) {
        Ok(id.to_string())
    } else {
        Err(RestError::not_found(R::NOT_FOUND, R::SINGULAR, id))
    }
}

fn project_of(item: &Item) -> &str {
    item.get("project_id").and_then(Value::as_str).unwrap_or("")
}

/// Reads one the caller may see (404 otherwise, like Neutron).
pub(crate) async fn visible<R: Resource>(
    svc: &Svc,
    caller: &Caller,
    id: &str,
) -> Result<Item, RestError> {
    let item = R::get(svc, id).await?;
    if caller.sees(project_of(&item)) {
        Ok(item)
    } else {
        Err(RestError::not_found(R::NOT_FOUND, R::SINGULAR, id))
    }
}

/// Reads one the caller may read: its own and public ones
/// ([`Resource::public`]); 404 otherwise. Writes use [`visible`].
async fn readable<R: Resource>(svc: &Svc, caller: &Caller, id: &str) -> Result<Item, RestError> {
    let item = R::get(svc, id).await?;
    if caller.reads(project_of(&item), R::public(&item)) {
        Ok(item)
    } else {
        Err(RestError::not_found(R::NOT_FOUND, R::SINGULAR, id))
    }
}

/// Checks that the caller may use `id` (a network or security group named
/// in a body) without a linearizable read on the hot path: a resource's
/// project never changes, so a stale read that finds it answers for good;
/// only a miss (it may be too new for this node) falls back to
/// [`visible`]. A resource deleted meanwhile fails the write itself.
pub(crate) async fn usable<R: Resource>(
    svc: &Svc,
    caller: &Caller,
    id: &str,
) -> Result<(), RestError> {
    match R::get_stale(svc, id).await {
        Ok(item) if caller.sees(project_of(&item)) => Ok(()),
        Ok(_) => Err(RestError::not_found(R::NOT_FOUND, R::SINGULAR, id)),
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            visible::<R>(svc, caller, id).await.map(drop)
        }
        Err(e) => Err(e),
    }
}

/// A member may only name its own networks, ports and security groups in a
/// create body (404 like Neutron otherwise). `checked` remembers the IDs
/// already allowed in this request (a bulk create names one network often).
async fn check_references(
    svc: &Svc,
    caller: &Caller,
    attrs: &Attrs,
    checked: &mut BTreeSet<String>,
) -> Result<(), RestError> {
    use crate::networks::Networks;
    use crate::ports::Ports;
    use crate::security_groups::SecurityGroups;
    if let Some(Value::String(net)) = attrs.peek("network_id") {
        if !is_uuid(&net) {
            return Err(RestError::not_found("NetworkNotFound", "network", &net));
        }
        if !checked.contains(&net) {
            usable::<Networks>(svc, caller, &net).await?;
            checked.insert(net);
        }
    }
    if let Some(Value::String(port)) = attrs.peek("port_id") {
        // A port's owner is checked linearizably: ports come and go often.
        let port = path_id::<Ports>(&port)?;
        visible::<Ports>(svc, caller, &port).await?;
    }
    let mut groups: Vec<String> = ["security_group_id", "remote_group_id"]
        .iter()
        .filter_map(|key| match attrs.peek(key) {
            Some(Value::String(g)) => Some(g),
            _ => None,
        })
        .collect();
    if let Some(Value::Array(list)) = attrs.peek("security_groups") {
        groups.extend(list.iter().filter_map(|g| g.as_str().map(str::to_string)));
    }
    for group in groups {
        if !checked.contains(&group) {
            let id = path_id::<SecurityGroups>(&group)?;
            usable::<SecurityGroups>(svc, caller, &id).await?;
            checked.insert(group);
        }
    }
    Ok(())
}

/// 403 when a non-admin `caller` sets one of `R::ADMIN_ONLY` in `attrs`.
fn check_admin_only<R: Resource>(caller: &Caller, attrs: &Attrs) -> Result<(), RestError> {
    if caller.admin {
        return Ok(());
    }
    match R::ADMIN_ONLY.iter().find(|key| attrs.peek(key).is_some()) {
        None => Ok(()),
        Some(key) => Err(RestError::new(
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            format!(
                "(rule:{}:{key}) is disallowed by policy: only an admin may set it",
                R::SINGULAR
            ),
        )),
    }
}

/// `If-Match: revision_number=N` → N.
pub(crate) fn expected_revision(headers: &HeaderMap) -> Result<Option<u64>, RestError> {
    for value in headers.get_all("if-match") {
        let text = value
            .to_str()
            .map_err(|_| RestError::bad_request("If-Match is not ASCII"))?;
        for part in text.split(',') {
            if let Some(n) = part
                .trim()
                .trim_matches('"')
                .strip_prefix("revision_number=")
            {
                let n = n.parse::<u64>().map_err(|_| {
                    RestError::bad_request(format!(
                        "If-Match revision_number {n:?} is not an integer"
                    ))
                })?;
                return Ok(Some(n));
            }
        }
    }
    Ok(None)
}

pub(crate) async fn read_json(body: Body) -> Result<Map<String, Value>, RestError> {
    let bytes = axum::body::to_bytes(body, BODY_BYTES_MAX)
        .await
        .map_err(|_| {
            RestError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!("Request body is larger than {BODY_BYTES_MAX} bytes"),
            )
        })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RestError::bad_request("Body must be a JSON object")),
        Err(e) => Err(RestError::bad_request(format!(
            "Malformed request body: {e}"
        ))),
    }
}

/// 400 for a bulk create of more than `R::BULK_MAX` items.
fn bulk_too_large<R: Resource>(items: usize) -> RestError {
    if R::BULK_MAX == 1 {
        RestError::bad_request(format!(
            "Bulk create of {} is not supported (create them one by one)",
            R::PLURAL
        ))
    } else {
        RestError::new(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            format!(
                "Invalid input for {}. Reason: {items} items are more than a bulk create takes ({}).",
                R::PLURAL,
                R::BULK_MAX
            ),
        )
    }
}

/// The gRPC list request of one page of a tagged kind: `marker`, `limit`,
/// the scope's project and tag filters, and the kind's own filters given as
/// `Request { field: value }` (every other field at its default, so `stale`
/// is false).
macro_rules! page_request {
    ($scope:expr, $marker:expr, $limit:expr, $($request:ident)::+ { $($field:ident: $value:expr),* $(,)? }) => {
        $($request)::+ {
            $($field: $value,)*
            project_id: $scope.project_id.clone(),
            limit: $limit as u32,
            marker: $marker.to_string(),
            tags: $scope.tags.all.clone(),
            tags_any: $scope.tags.any.clone(),
            not_tags: $scope.tags.not_all.clone(),
            not_tags_any: $scope.tags.not_any.clone(),
            ..Default::default()
        }
    };
}
pub(crate) use page_request;

/// The map of a rendered `json!({...})` (anything else: empty).
pub(crate) fn object(value: Value) -> Item {
    match value {
        Value::Object(map) => map,
        _ => Item::new(),
    }
}

/// The one item of a create of a kind without bulk create (`R::BULK_MAX`
/// is 1: [`create`] refused more already).
pub(crate) fn single<R: Resource>(items: Vec<Attrs>) -> Result<Attrs, RestError> {
    let count = items.len();
    let mut items = items.into_iter();
    match (items.next(), items.next()) {
        (Some(one), None) => Ok(one),
        _ => Err(bulk_too_large::<R>(count)),
    }
}

/// Every item of a paged gRPC list: `page(marker)` answers one page and the
/// next marker ("" at the end).
pub(crate) async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, RestError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), RestError>>,
{
    let mut all = Vec::new();
    let mut marker = String::new();
    loop {
        let (items, next) = page(marker).await?;
        all.extend(items);
        if next.is_empty() {
            return Ok(all);
        }
        marker = next;
    }
}

/// Sets `key` of every item to `fetch(id)`, at most
/// [`SUBNET_LOOKUPS_CONCURRENT_MAX`] reads at a time.
pub(crate) async fn fill_each<F, Fut>(
    items: &mut [Item],
    key: &str,
    fetch: F,
) -> Result<(), RestError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<Vec<Value>, RestError>>,
{
    let ids: Vec<String> = items
        .iter()
        .map(|i| {
            i.get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let values: Vec<Vec<Value>> = futures::stream::iter(ids)
        .map(fetch)
        .buffered(SUBNET_LOOKUPS_CONCURRENT_MAX)
        .try_collect()
        .await?;
    for (item, value) in items.iter_mut().zip(values) {
        item.insert(key.to_string(), Value::Array(value));
    }
    Ok(())
}

/// The attributes of `{"<key>": {...}}`, the body of an update.
pub(crate) async fn wrapped(body: Body, key: &str) -> Result<Attrs, RestError> {
    let mut body = read_json(body).await?;
    match body.remove(key) {
        Some(Value::Object(map)) if body.is_empty() => Ok(Attrs::new(map)),
        _ => Err(RestError::bad_request(format!(
            "Resource body required: {{\"{key}\": {{...}}}}"
        ))),
    }
}

fn envelope_one(key: &str, item: Item) -> Value {
    let mut out = Map::new();
    out.insert(key.to_string(), Value::Object(item));
    Value::Object(out)
}

async fn list<R: Resource>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    respond(list_inner::<R>(&state, &caller, &headers, &uri, raw.as_deref()).await)
}

async fn list_inner<R: Resource>(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    uri: &Uri,
    raw: Option<&str>,
) -> Result<Response, RestError> {
    let svc = &*state.svc;
    let query = Query::parse(raw, R::FILTERS)?;
    let limit = query.limit.unwrap_or(PAGE_MAX).min(PAGE_MAX);
    let marker = query.marker.clone().unwrap_or_default();
    if !marker.is_empty() && !is_uuid(&marker) {
        return Err(RestError::bad_request(format!(
            "marker {marker:?} is not an ID"
        )));
    }
    let keep = |item: &Item| caller.reads(project_of(item), R::public(item)) && query.matches(item);
    let mut out: Vec<Item> = Vec::new();
    if let Some(ids) = query.filters.get("id") {
        // Direct lookups instead of a scan.
        let mut ids: Vec<&String> = ids.iter().filter(|id| is_uuid(id)).collect();
        ids.sort();
        ids.dedup();
        for id in ids.into_iter().filter(|id| **id > marker) {
            match R::get(svc, id).await {
                Ok(item) if keep(&item) => out.push(item),
                Ok(_) => {}
                Err(e) if e.status == StatusCode::NOT_FOUND => {}
                Err(e) => return Err(e),
            }
            if out.len() > limit {
                break;
            }
        }
    } else {
        let single = |key: &str| query.single(key).unwrap_or("").to_string();
        let scope = Scope {
            project_id: if caller.admin {
                query
                    .single("project_id")
                    .or_else(|| query.single("tenant_id"))
                    .unwrap_or("")
                    .to_string()
            } else {
                caller.project_id.clone()
            },
            network_id: query
                .single("network_id")
                .or_else(|| query.single("floating_network_id"))
                .unwrap_or("")
                .to_string(),
            host: single("binding:host_id"),
            security_group_id: single("security_group_id"),
            port_id: single("port_id"),
            router_id: single("router_id"),
            reader: (!caller.admin).then(|| caller.principal.clone()),
            tags: TagFilters {
                all: query.tags("tags"),
                any: query.tags("tags-any"),
                not_all: query.tags("not-tags"),
                not_any: query.tags("not-tags-any"),
            },
        };
        let ids = [
            &scope.network_id,
            &scope.security_group_id,
            &scope.port_id,
            &scope.router_id,
        ];
        if ids.iter().any(|id| !id.is_empty() && !is_uuid(id)) {
            // Nothing has that ID.
            return Ok(list_response::<R>(headers, uri, &query, Vec::new(), None));
        }
        let mut cursor = marker;
        loop {
            let want = (limit + 1 - out.len()).min(SCAN_PAGE_MAX);
            let (items, next) = R::list(svc, &scope, &cursor, want).await?;
            for item in items {
                if keep(&item) {
                    out.push(item);
                    if out.len() > limit {
                        break;
                    }
                }
            }
            if out.len() > limit || next.is_empty() {
                break;
            }
            cursor = next;
        }
    }
    let more = out.len() > limit;
    out.truncate(limit);
    R::complete(svc, &mut out, &query).await?;
    let next = if more {
        out.last()
            .and_then(|i| i.get("id"))
            .and_then(Value::as_str)
            .map(|id| query.next_query(limit, id))
    } else {
        None
    };
    Ok(list_response::<R>(headers, uri, &query, out, next))
}

fn list_response<R: Resource>(
    headers: &HeaderMap,
    uri: &Uri,
    query: &Query,
    items: Vec<Item>,
    next_query: Option<String>,
) -> Response {
    let items: Vec<Value> = items
        .into_iter()
        .map(|i| Value::Object(query.select(i)))
        .collect();
    let mut body = Map::new();
    body.insert(R::PLURAL.to_string(), Value::Array(items));
    if let Some(q) = next_query {
        let href = format!("{}{}?{q}", base_url(headers), uri.path());
        body.insert(
            format!("{}_links", R::PLURAL),
            json!([{"rel": "next", "href": href}]),
        );
    }
    (StatusCode::OK, json_body(&Value::Object(body))).into_response()
}

async fn show<R: Resource>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    respond(
        async {
            let id = path_id::<R>(&id)?;
            let query = Query::parse(raw.as_deref(), &[])?;
            let svc = &*state.svc;
            let mut items = [readable::<R>(svc, &caller, &id).await?];
            R::complete(svc, &mut items, &query).await?;
            let [item] = items;
            let body = envelope_one(R::SINGULAR, query.select(item));
            Ok((StatusCode::OK, json_body(&body)).into_response())
        }
        .await,
    )
}

async fn create<R: Resource>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Response {
    respond(
        async {
            let mut body = read_json(body).await?;
            let (bulk, raw_items) = match (body.remove(R::SINGULAR), body.remove(R::PLURAL)) {
                (Some(Value::Object(one)), None) if body.is_empty() => (false, vec![one]),
                (None, Some(Value::Array(many))) if body.is_empty() && !many.is_empty() => {
                    let mut items = Vec::with_capacity(many.len());
                    for item in many {
                        match item {
                            Value::Object(map) => items.push(map),
                            _ => {
                                return Err(RestError::bad_request(format!(
                                    "every item of '{}' must be an object",
                                    R::PLURAL
                                )))
                            }
                        }
                    }
                    (true, items)
                }
                _ => {
                    return Err(RestError::bad_request(format!(
                        "Resource body required: {{\"{}\": {{...}}}} or {{\"{}\": [...]}}",
                        R::SINGULAR,
                        R::PLURAL
                    )))
                }
            };
            if raw_items.len() > R::BULK_MAX {
                return Err(bulk_too_large::<R>(raw_items.len()));
            }
            let svc = &*state.svc;
            let mut checked = BTreeSet::new();
            let mut items = Vec::with_capacity(raw_items.len());
            for map in raw_items {
                let mut attrs = Attrs::new(map);
                check_admin_only::<R>(&caller, &attrs)?;
                let project = match attrs.project()? {
                    None => caller.project_id.clone(),
                    Some(p) if caller.sees(&p) => p,
                    Some(_) => {
                        return Err(RestError::new(
                            StatusCode::FORBIDDEN,
                            "PolicyNotAuthorized",
                            format!(
                                "rule:create_{} is disallowed by policy: only an admin may create for another project",
                                R::SINGULAR
                            ),
                        ))
                    }
                };
                if !caller.admin {
                    check_references(svc, &caller, &attrs, &mut checked).await?;
                }
                attrs.set("project_id", Value::String(project));
                items.push(attrs);
            }
            let mut created = R::create(svc, items).await?;
            let query = Query::default();
            R::complete(svc, &mut created, &query).await?;
            let body = if bulk {
                let mut out = Map::new();
                out.insert(
                    R::PLURAL.to_string(),
                    Value::Array(created.into_iter().map(Value::Object).collect()),
                );
                Value::Object(out)
            } else {
                let item = created.into_iter().next().ok_or_else(|| {
                    RestError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalServerError",
                        "create returned nothing",
                    )
                })?;
                envelope_one(R::SINGULAR, item)
            };
            Ok((StatusCode::CREATED, json_body(&body)).into_response())
        }
        .await,
    )
}

async fn update<R: Resource>(
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
            let attrs = wrapped(body, R::SINGULAR).await?;
            check_admin_only::<R>(&caller, &attrs)?;
            let svc = &*state.svc;
            if !caller.admin {
                visible::<R>(svc, &caller, &id).await?;
                if let Some(Value::String(port)) = attrs.peek("port_id") {
                    let port = path_id::<crate::ports::Ports>(&port)?;
                    visible::<crate::ports::Ports>(svc, &caller, &port).await?;
                }
            }
            let mut items = [R::update(svc, &id, attrs, expected).await?];
            R::complete(svc, &mut items, &Query::default()).await?;
            let [item] = items;
            Ok((StatusCode::OK, json_body(&envelope_one(R::SINGULAR, item))).into_response())
        }
        .await,
    )
}

async fn delete<R: Resource>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            let id = path_id::<R>(&id)?;
            let expected = expected_revision(&headers)?;
            let svc = &*state.svc;
            if !caller.admin {
                visible::<R>(svc, &caller, &id).await?;
            }
            R::delete(svc, &id, expected).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn if_match_takes_the_revision_number() {
        let mut h = HeaderMap::new();
        assert_eq!(expected_revision(&h).ok(), Some(None));
        h.insert("if-match", HeaderValue::from_static("revision_number=7"));
        assert_eq!(expected_revision(&h).ok(), Some(Some(7)));
        h.insert("if-match", HeaderValue::from_static("revision_number=x"));
        assert!(expected_revision(&h).is_err());
    }

    #[test]
    fn uuid_shape() {
        assert!(is_uuid("0b1c2d3e-0000-4000-8000-00000000000a"));
        assert!(!is_uuid("0b1c2d3e-0000-4000-8000-00000000000"));
        assert!(!is_uuid("not-an-id"));
    }
}
