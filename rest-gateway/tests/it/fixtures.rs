//! Set-ups the floating-IP and external-network tests share: an external
//! network with a subnet, a project's network behind a router, and a port
//! bound to h1.

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::api::{network_with_subnet, s};
use crate::harness::{expect, Rest, ADMIN, ALICE};

/// The project a test token acts in.
pub(crate) fn project_of(token: &str) -> &'static str {
    if token == ALICE {
        "alice"
    } else {
        "bob"
    }
}

/// The admin's external network (`router:external`) with a subnet on
/// `cidr`: (network, subnet).
pub(crate) async fn external_network(rest: &Rest, cidr: &str) -> (String, String) {
    let net = rest
        .post(
            "/v2.0/networks",
            ADMIN,
            json!({"network": {"name": "public", "router:external": true}}),
        )
        .await;
    expect(&net, StatusCode::CREATED, None);
    assert_eq!(net.body["network"]["router:external"], true);
    let net = s(&net.body["network"]["id"]);
    let sub = rest
        .post(
            "/v2.0/subnets",
            ADMIN,
            json!({"subnet": {"network_id": net, "cidr": cidr, "ip_version": 4}}),
        )
        .await;
    expect(&sub, StatusCode::CREATED, None);
    (net, s(&sub.body["subnet"]["id"]))
}

/// A network of `token`'s project with a subnet on `cidr` and a router (no
/// gateway) with an interface on that subnet: (network, subnet, router).
pub(crate) async fn routed_network(
    rest: &Rest,
    token: &str,
    cidr: &str,
) -> (String, String, String) {
    let (net, sub) = network_with_subnet(rest, token, cidr).await;
    let router = rest
        .post("/v2.0/routers", token, json!({"router": {"name": "r"}}))
        .await;
    expect(&router, StatusCode::CREATED, None);
    assert!(router.body["router"]["external_gateway_info"].is_null());
    let router = s(&router.body["router"]["id"]);
    let r = rest
        .call(
            Method::PUT,
            &format!("/v2.0/routers/{router}/add_router_interface"),
            token,
            Some(json!({ "subnet_id": sub })),
        )
        .await;
    expect(&r, StatusCode::OK, None);
    (net, sub, router)
}

/// A port of `token`'s project on `net` bound to h1 (binding a port is the
/// admin's): (port, its address).
pub(crate) async fn bound_port(rest: &Rest, token: &str, net: &str) -> (String, String) {
    let p = rest
        .post(
            "/v2.0/ports",
            ADMIN,
            json!({"port": {"network_id": net, "binding:host_id": "h1", "project_id": project_of(token)}}),
        )
        .await;
    expect(&p, StatusCode::CREATED, None);
    (
        s(&p.body["port"]["id"]),
        s(&p.body["port"]["fixed_ips"][0]["ip_address"]),
    )
}
