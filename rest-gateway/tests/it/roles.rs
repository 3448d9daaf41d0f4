//! Roles of the token file on the REST API: readers only read, agents have
//! no REST access, and `binding:host_id` is the admin's (Neutron's policy).

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::api::{network_with_subnet, s};
use crate::harness::{expect, Rest, ADMIN, AGENT, ALICE, CAROL};

#[tokio::test]
async fn binding_host_id_is_set_only_by_an_admin() {
    let rest = Rest::start().await;
    rest.hosts(&["h1"]).await;
    let (net, _) = network_with_subnet(&rest, ALICE, "10.7.0.0/24").await;
    let bound = json!({"port": {"network_id": net, "binding:host_id": "h1"}});
    let r = rest.post("/v2.0/ports", ALICE, bound.clone()).await;
    expect(&r, StatusCode::FORBIDDEN, Some("PolicyNotAuthorized"));
    let bulk =
        json!({"ports": [{"network_id": net}, {"network_id": net, "binding:host_id": "h1"}]});
    let r = rest.post("/v2.0/ports", ALICE, bulk).await;
    expect(&r, StatusCode::FORBIDDEN, Some("PolicyNotAuthorized"));
    let r = rest
        .post("/v2.0/ports", ALICE, json!({"port": {"network_id": net}}))
        .await;
    expect(&r, StatusCode::CREATED, None);
    let path = format!("/v2.0/ports/{}", s(&r.body["port"]["id"]));
    let update = json!({"port": {"binding:host_id": "h1"}});
    let r = rest
        .call(Method::PUT, &path, ALICE, Some(update.clone()))
        .await;
    expect(&r, StatusCode::FORBIDDEN, Some("PolicyNotAuthorized"));
    let r = rest.call(Method::PUT, &path, ADMIN, Some(update)).await;
    expect(&r, StatusCode::OK, None);
    assert_eq!(r.body["port"]["binding:host_id"], "h1");
    rest.shutdown().await;
}

#[tokio::test]
async fn a_reader_reads_its_project_and_writes_nothing_and_an_agent_nothing_at_all() {
    let rest = Rest::start().await;
    let (net, _) = network_with_subnet(&rest, ALICE, "10.8.0.0/24").await;
    let r = rest.get(&format!("/v2.0/networks/{net}"), CAROL).await;
    expect(&r, StatusCode::OK, None);
    let r = rest
        .post("/v2.0/networks", CAROL, json!({"network": {"name": "n"}}))
        .await;
    expect(&r, StatusCode::FORBIDDEN, Some("PolicyNotAuthorized"));
    let r = rest
        .call(
            Method::DELETE,
            &format!("/v2.0/networks/{net}"),
            CAROL,
            None,
        )
        .await;
    expect(&r, StatusCode::FORBIDDEN, Some("PolicyNotAuthorized"));
    let r = rest.get(&format!("/v2.0/networks/{net}"), AGENT).await;
    expect(&r, StatusCode::FORBIDDEN, Some("PolicyNotAuthorized"));
    rest.shutdown().await;
}
