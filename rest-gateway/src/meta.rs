//! Discovery documents: versions, the resource index, extensions, OpenAPI.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::floatingips::FloatingIps;
use crate::limits::{BODY_BYTES_MAX, PAGE_MAX};
use crate::networks::Networks;
use crate::ports::Ports;
use crate::qos::QosPolicies;
use crate::resource::Resource;
use crate::routers::Routers;
use crate::security_groups::{SecurityGroupRules, SecurityGroups};
use crate::subnets::Subnets;
use crate::{base_url, json_body};

/// A collection's (singular, plural, URL segment, filters).
type Collection = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

fn collection<R: Resource>() -> Collection {
    (R::SINGULAR, R::PLURAL, R::PATH, R::FILTERS)
}

/// Every collection served.
fn collections() -> [Collection; 8] {
    [
        collection::<Networks>(),
        collection::<Subnets>(),
        collection::<Ports>(),
        collection::<SecurityGroups>(),
        collection::<SecurityGroupRules>(),
        collection::<Routers>(),
        collection::<FloatingIps>(),
        collection::<QosPolicies>(),
    ]
}

/// `GET /`: Neutron's version document.
pub(crate) async fn versions(headers: HeaderMap) -> Response {
    let href = format!("{}/v2.0/", base_url(&headers));
    let body = json!({"versions": [{
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{"href": href, "rel": "self"}],
    }]});
    (StatusCode::OK, json_body(&body)).into_response()
}

/// `GET /v2.0/`: the collections.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    let resources: Vec<Value> = collections()
        .iter()
        .map(|(singular, plural, path, _)| {
            json!({
                "name": singular,
                "collection": plural,
                "links": [{"href": format!("{base}/v2.0/{path}"), "rel": "self"}],
            })
        })
        .collect();
    (StatusCode::OK, json_body(&json!({"resources": resources}))).into_response()
}

/// `(alias, name, description)` of the extensions we implement.
const EXTENSIONS: [(&str, &str, &str); 22] = [
    (
        "security-group",
        "security-group",
        "security groups and their rules",
    ),
    (
        "router",
        "Neutron L3 Router",
        "routers with subnet interfaces",
    ),
    (
        "external-net",
        "Neutron external network",
        "router:external on networks",
    ),
    (
        "ext-gw-mode",
        "Neutron L3 Configurable external gateway mode",
        "external_gateway_info of routers with enable_snat and external_fixed_ips",
    ),
    (
        "extraroute",
        "Neutron Extra Route",
        "static routes of routers",
    ),
    ("quotas", "Quota management support", "per-project quotas"),
    (
        "quota_details",
        "Quota details management support",
        "limit, used and reserved per resource",
    ),
    (
        "binding",
        "Port Binding",
        "binding:host_id and the binding:* attributes of ports",
    ),
    (
        "allowed-address-pairs",
        "Allowed Address Pairs",
        "allowed_address_pairs of ports",
    ),
    (
        "port-security",
        "Port Security",
        "port_security_enabled of networks and ports",
    ),
    ("network-mtu", "Network MTU", "the mtu of networks"),
    (
        "project-id",
        "project_id field enabled",
        "project_id next to tenant_id",
    ),
    (
        "pagination",
        "Pagination support",
        "limit and marker with next links",
    ),
    (
        "filter-validation",
        "Filter parameters validation",
        "unknown filters are refused with 400",
    ),
    (
        "empty-string-filtering",
        "Empty String Filtering",
        "?attr= matches empty values",
    ),
    (
        "standard-attr-revisions",
        "Resource revision numbers",
        "revision_number on every resource",
    ),
    (
        "revision-if-match",
        "If-Match constraints based on revision_number",
        "If-Match: revision_number=N on PUT and DELETE, 412 on mismatch",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "created_at and updated_at",
    ),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute",
        "tags on networks, subnets, ports, security groups, routers and floating IPs",
    ),
    (
        "fields",
        "Field selection",
        "fields= selects the attributes returned",
    ),
    (
        "qos",
        "Quality of Service",
        "QoS policies with bandwidth-limit and DSCP-marking rules, /v2.0/qos/rule-types; qos_policy_id on networks and ports",
    ),
    (
        "qos-bw-limit-direction",
        "Direction for QoS bandwidth limit rule",
        "ingress and egress bandwidth-limit rules",
    ),
];

/// `GET /v2.0/extensions`.
pub(crate) async fn extensions() -> Response {
    let list: Vec<Value> = EXTENSIONS
        .iter()
        .map(|(alias, name, description)| {
            json!({
                "alias": alias,
                "name": name,
                "description": description,
                "updated": "2024-01-01T00:00:00-00:00",
                "links": [],
            })
        })
        .collect();
    (StatusCode::OK, json_body(&json!({"extensions": list}))).into_response()
}

/// `GET /openapi.json`: an OpenAPI 3.0 description of the routes.
pub(crate) async fn openapi() -> Response {
    (StatusCode::OK, json_body(&openapi_document())).into_response()
}

fn error_responses(codes: &[&str]) -> Map<String, Value> {
    codes
        .iter()
        .map(|code| {
            (
                (*code).to_string(),
                json!({
                    "description": "NeutronError",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NeutronError"}}},
                }),
            )
        })
        .collect()
}

fn with_errors(ok_code: &str, ok: Value, errors: &[&str]) -> Value {
    let mut responses = error_responses(errors);
    responses.insert(ok_code.to_string(), ok);
    Value::Object(responses)
}

pub(crate) fn openapi_document() -> Value {
    let token = json!([{"AuthToken": []}]);
    let if_match = json!({
        "name": "If-Match", "in": "header", "required": false,
        "description": "revision_number=N: fail with 412 unless the resource's revision_number is N",
        "schema": {"type": "string"},
    });
    let id_param = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}});
    let mut paths = Map::new();
    for (singular, plural, path, filters) in collections() {
        let obj = json!({"type": "object", "additionalProperties": true});
        let one = json!({"type": "object", "properties": {singular: obj}, "required": [singular]});
        let many = json!({"type": "object", "properties": {
            plural: {"type": "array", "items": obj},
            format!("{plural}_links"): {"type": "array", "items": {"$ref": "#/components/schemas/Link"}},
        }, "required": [plural]});
        let bulk =
            json!({"type": "object", "properties": {plural: {"type": "array", "items": obj}}});
        let mut params: Vec<Value> = filters
            .iter()
            .chain(crate::query::TAG_FILTERS.iter())
            .map(|f| json!({"name": f, "in": "query", "required": false, "description": "filter (repeat to OR)", "schema": {"type": "array", "items": {"type": "string"}}, "style": "form", "explode": true}))
            .collect();
        params.extend([
            json!({"name": "fields", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}, "style": "form", "explode": true}),
            json!({"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": PAGE_MAX}}),
            json!({"name": "marker", "in": "query", "schema": {"type": "string", "format": "uuid"}}),
        ]);
        let body = |schema: Value| json!({"required": true, "content": {"application/json": {"schema": schema}}});
        let ok = |schema: &Value, what: &str| json!({"description": what, "content": {"application/json": {"schema": schema}}});
        paths.insert(
            format!("/v2.0/{path}"),
            json!({
                "get": {
                    "summary": format!("List {plural}"), "security": token, "parameters": params,
                    "responses": with_errors("200", ok(&many, "a page"), &["400", "401", "503"]),
                },
                "post": {
                    "summary": format!("Create one {singular} or many (all or nothing)"), "security": token,
                    "requestBody": body(json!({"oneOf": [one, bulk]})),
                    "responses": with_errors("201", ok(&json!({"oneOf": [one, bulk]}), "created"), &["400", "401", "403", "404", "409", "413", "503"]),
                },
            }),
        );
        paths.insert(
            format!("/v2.0/{path}/{{id}}"),
            json!({
                "parameters": [id_param],
                "get": {
                    "summary": format!("Show a {singular}"), "security": token,
                    "responses": with_errors("200", ok(&one, "the resource"), &["401", "404", "503"]),
                },
                "put": {
                    "summary": format!("Update a {singular}"), "security": token, "parameters": [if_match],
                    "requestBody": body(one.clone()),
                    "responses": with_errors("200", ok(&one, "updated"), &["400", "401", "404", "409", "412", "413", "501", "503"]),
                },
                "delete": {
                    "summary": format!("Delete a {singular}"), "security": token, "parameters": [if_match],
                    "responses": with_errors("204", json!({"description": "deleted"}), &["401", "404", "409", "412", "503"]),
                },
            }),
        );
    }
    for (_, plural, path, _) in collections() {
        if plural == "security_group_rules" {
            continue;
        }
        let tags = json!({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}, "required": ["tags"]});
        let tag_param =
            json!({"name": "tag", "in": "path", "required": true, "schema": {"type": "string"}});
        paths.insert(
            format!("/v2.0/{path}/{{id}}/tags"),
            json!({"parameters": [id_param],
                "get": {"summary": format!("Tags of one of {plural}"), "security": token,
                    "responses": with_errors("200", json!({"description": "the tags", "content": {"application/json": {"schema": tags}}}), &["401", "404", "503"])},
                "put": {"summary": "Replace every tag", "security": token, "parameters": [if_match],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": tags}}},
                    "responses": with_errors("200", json!({"description": "the tags", "content": {"application/json": {"schema": tags}}}), &["400", "401", "404", "412", "503"])},
                "delete": {"summary": "Remove every tag", "security": token, "parameters": [if_match],
                    "responses": with_errors("204", json!({"description": "removed"}), &["401", "404", "412", "503"])},
            }),
        );
        paths.insert(
            format!("/v2.0/{path}/{{id}}/tags/{{tag}}"),
            json!({"parameters": [id_param, tag_param],
                "get": {"summary": "Whether the tag is set (204) or not (404)", "security": token,
                    "responses": with_errors("204", json!({"description": "set"}), &["401", "404", "503"])},
                "put": {"summary": "Add the tag", "security": token, "parameters": [if_match],
                    "responses": with_errors("201", json!({"description": "added"}), &["400", "401", "404", "409", "412", "503"])},
                "delete": {"summary": "Remove the tag", "security": token, "parameters": [if_match],
                    "responses": with_errors("204", json!({"description": "removed"}), &["401", "404", "409", "412", "503"])},
            }),
        );
    }
    for action in ["add_router_interface", "remove_router_interface"] {
        paths.insert(
            format!("/v2.0/routers/{{id}}/{action}"),
            json!({"parameters": [id_param], "put": {
                "summary": format!("{action} (body {{\"subnet_id\": ...}})"), "security": token,
                "responses": with_errors("200", json!({"description": "the interface info"}), &["400", "401", "404", "409", "503"]),
            }}),
        );
    }
    let project_param =
        json!({"name": "project_id", "in": "path", "required": true, "schema": {"type": "string"}});
    paths.insert(
        "/v2.0/quotas/{project_id}".to_string(),
        json!({"parameters": [project_param], "get": {
            "summary": "A project's quota", "security": token,
            "responses": with_errors("200", json!({"description": "the limits"}), &["401", "403", "503"]),
        }, "put": {
            "summary": "Set some limits (admin)", "security": token,
            "responses": with_errors("200", json!({"description": "the limits"}), &["400", "401", "403", "503"]),
        }, "delete": {
            "summary": "Reset to the defaults (admin)", "security": token,
            "responses": with_errors("204", json!({"description": "reset"}), &["401", "403", "503"]),
        }}),
    );
    paths.insert(
        "/v2.0/quotas/{project_id}/details".to_string(),
        json!({"parameters": [project_param], "get": {
            "summary": "A project's limits and usage", "security": token,
            "responses": with_errors("200", json!({"description": "limit, used, reserved"}), &["401", "403", "503"]),
        }}),
    );
    paths.insert(
        "/".to_string(),
        json!({"get": {"summary": "API versions", "responses": {"200": {"description": "versions"}}}}),
    );
    paths.insert(
        "/v2.0/".to_string(),
        json!({"get": {"summary": "Resource index", "responses": {"200": {"description": "collections"}}}}),
    );
    paths.insert(
        "/v2.0/extensions".to_string(),
        json!({"get": {"summary": "Extensions", "security": token, "responses": with_errors("200", json!({"description": "extensions"}), &["401"])}}),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Alcor-RS Networking API (OpenStack Neutron v2.0 compatible)",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("Request bodies are limited to {BODY_BYTES_MAX} bytes (413). Every response carries X-Openstack-Request-Id."),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"AuthToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}},
            "schemas": {
                "NeutronError": {"type": "object", "required": ["NeutronError"], "properties": {"NeutronError": {
                    "type": "object", "required": ["type", "message", "detail"],
                    "properties": {"type": {"type": "string"}, "message": {"type": "string"}, "detail": {"type": "string"}},
                }}},
                "Link": {"type": "object", "properties": {"href": {"type": "string"}, "rel": {"type": "string"}}},
            },
        },
    })
}
