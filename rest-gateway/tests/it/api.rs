//! Envelopes, bulk all-or-nothing, error bodies, If-Match, request IDs,
//! authentication and project scoping.

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{expect, Rest, ADMIN, ALICE, BOB};

pub(crate) fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// A network with one /24 subnet in `token`'s project: (network, subnet).
pub(crate) async fn network_with_subnet(rest: &Rest, token: &str, cidr: &str) -> (String, String) {
    let net = rest
        .post("/v2.0/networks", token, json!({"network": {"name": "net"}}))
        .await;
    expect(&net, StatusCode::CREATED, None);
    let net_id = s(&net.body["network"]["id"]);
    let sub = rest
        .post(
            "/v2.0/subnets",
            token,
            json!({"subnet": {"network_id": net_id, "cidr": cidr, "ip_version": 4, "name": "sub"}}),
        )
        .await;
    expect(&sub, StatusCode::CREATED, None);
    (net_id, s(&sub.body["subnet"]["id"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_fields_filters_and_paging() {
    let rest = Rest::start().await;

    let versions = rest.call_raw(Method::GET, "/", None, Vec::new(), &[]).await;
    expect(&versions, StatusCode::OK, None);
    assert_eq!(versions.body["versions"][0]["id"], "v2.0");
    assert_eq!(versions.body["versions"][0]["status"], "CURRENT");
    let ext = rest.get("/v2.0/extensions", ADMIN).await;
    expect(&ext, StatusCode::OK, None);
    assert!(ext.body["extensions"]
        .as_array()
        .is_some_and(|e| !e.is_empty()));
    let openapi = rest
        .call_raw(Method::GET, "/openapi.json", None, Vec::new(), &[])
        .await;
    assert!(openapi.body["paths"]["/v2.0/ports"].is_object());

    rest.hosts(&["h1", "h2"]).await;
    let (net, subnet) = network_with_subnet(&rest, ALICE, "10.0.0.0/24").await;
    let shown = rest.get(&format!("/v2.0/networks/{net}"), ALICE).await;
    expect(&shown, StatusCode::OK, None);
    let n = &shown.body["network"];
    assert_eq!(n["subnets"], json!([subnet]));
    assert_eq!(
        (n["project_id"].clone(), n["tenant_id"].clone()),
        (json!("alice"), json!("alice"))
    );
    assert_eq!(
        (n["shared"].clone(), n["router:external"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(n["status"], "ACTIVE");
    assert!(n["mtu"].as_u64().is_some_and(|m| m > 0));
    assert!(n["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z') && t.len() == 20));

    let sub = rest
        .get(&format!("/v2.0/subnets/{subnet}.json"), ALICE)
        .await;
    expect(&sub, StatusCode::OK, None);
    assert_eq!(sub.body["subnet"]["gateway_ip"], "10.0.0.1");
    assert_eq!(sub.body["subnet"]["ip_version"], 4);
    assert!(sub.body["subnet"]["allocation_pools"][0]["start"].is_string());

    let port = rest
        .post(
            "/v2.0/ports",
            ADMIN,
            json!({"port": {"network_id": net, "name": "p0", "binding:host_id": "h1", "project_id": "alice",
                            "device_id": "vm-0", "fixed_ips": [{"ip_address": "10.0.0.50"}]}}),
        )
        .await;
    expect(&port, StatusCode::CREATED, None);
    let p = &port.body["port"];
    assert_eq!(
        p["fixed_ips"],
        json!([{"subnet_id": subnet, "ip_address": "10.0.0.50"}])
    );
    assert_eq!(p["binding:host_id"], "h1");
    assert_eq!(p["status"], "DOWN");
    assert_eq!(p["tags"], json!([]));
    assert!(p["mac_address"]
        .as_str()
        .is_some_and(|m| m.starts_with("fa:16:3e")));
    assert!(p["revision_number"].as_u64().is_some());

    let bulk = rest
        .post(
            "/v2.0/ports.json",
            ADMIN,
            json!({"ports": [
                {"network_id": net, "name": "p1", "device_id": "vm-1", "project_id": "alice"},
                {"network_id": net, "name": "p2", "project_id": "alice"},
                {"network_id": net, "name": "p3", "binding:host_id": "h2", "project_id": "alice"},
            ]}),
        )
        .await;
    expect(&bulk, StatusCode::CREATED, None);
    assert_eq!(bulk.body["ports"].as_array().map(Vec::len), Some(3));

    // Filters: repeated keys OR, different keys AND, empty value = unset.
    let names = |r: &crate::harness::Reply| -> Vec<String> {
        let mut v: Vec<String> = r.body["ports"]
            .as_array()
            .map(|a| a.iter().map(|p| s(&p["name"])).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let r = rest.get("/v2.0/ports?name=p1&name=p3", ALICE).await;
    assert_eq!(names(&r), ["p1", "p3"]);
    let r = rest.get("/v2.0/ports?binding:host_id=h1", ALICE).await;
    assert_eq!(names(&r), ["p0"]);
    let r = rest
        .get(&format!("/v2.0/ports?network_id={net}&device_id="), ALICE)
        .await;
    assert_eq!(names(&r), ["p2", "p3"]);
    let r = rest
        .get("/v2.0/ports?fixed_ips=ip_address%3D10.0.0.50", ALICE)
        .await;
    assert_eq!(names(&r), ["p0"]);
    let p0 = s(&p["id"]);
    let r = rest
        .get(&format!("/v2.0/ports?id={p0}&tenant_id=alice"), ALICE)
        .await;
    assert_eq!(names(&r), ["p0"]);
    let r = rest.get("/v2.0/ports?colour=red", ALICE).await;
    expect(&r, StatusCode::BAD_REQUEST, Some("BadRequest"));

    // fields=
    let r = rest.get("/v2.0/ports?fields=id&fields=name", ALICE).await;
    let first = r.body["ports"][0].as_object().cloned().unwrap_or_default();
    assert_eq!(first.keys().collect::<Vec<_>>(), ["id", "name"]);

    // limit + marker with a next link, followed to the end.
    let mut seen = Vec::new();
    let mut url = "/v2.0/ports?limit=3".to_string();
    for _ in 0..5 {
        let page = rest.get(&url, ALICE).await;
        expect(&page, StatusCode::OK, None);
        let items = page.body["ports"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|p| s(&p["id"])));
        match page.body["ports_links"][0]["href"].as_str() {
            Some(next) => {
                assert_eq!(page.body["ports_links"][0]["rel"], "next");
                url = next.to_string();
            }
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!((seen.len(), &seen), (4, &sorted));

    rest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_create_is_all_or_nothing() {
    let rest = Rest::start().await;
    let (net, _) = network_with_subnet(&rest, ADMIN, "10.1.0.0/24").await;
    let r = rest
        .post(
            "/v2.0/ports",
            ADMIN,
            json!({"ports": [
                {"network_id": net, "name": "a", "fixed_ips": [{"ip_address": "10.1.0.10"}]},
                {"network_id": net, "name": "b", "fixed_ips": [{"ip_address": "10.1.0.10"}]},
            ]}),
        )
        .await;
    expect(&r, StatusCode::CONFLICT, Some("IpAddressInUse"));
    let list = rest
        .get(&format!("/v2.0/ports?network_id={net}"), ADMIN)
        .await;
    assert_eq!(
        list.body["ports"],
        json!([]),
        "nothing of the batch was created"
    );
    rest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_and_revision_preconditions() {
    let rest = Rest::start().await;
    let missing = "00000000-0000-4000-8000-000000000001";
    let r = rest.get(&format!("/v2.0/ports/{missing}"), ADMIN).await;
    expect(&r, StatusCode::NOT_FOUND, Some("PortNotFound"));
    let r = rest.get("/v2.0/networks/not-a-uuid", ADMIN).await;
    expect(&r, StatusCode::NOT_FOUND, Some("NetworkNotFound"));
    let r = rest
        .post(
            "/v2.0/ports",
            ADMIN,
            json!({"port": {"network_id": missing}}),
        )
        .await;
    expect(&r, StatusCode::NOT_FOUND, Some("NetworkNotFound"));
    let r = rest.get("/v2.0/nothing-here", ADMIN).await;
    expect(&r, StatusCode::NOT_FOUND, None);

    rest.hosts(&["h9"]).await;
    let (net, subnet) = network_with_subnet(&rest, ADMIN, "10.2.0.0/24").await;
    let r = rest
        .post(
            "/v2.0/ports",
            ADMIN,
            json!({"port": {"network_id": net, "colour": "red"}}),
        )
        .await;
    expect(&r, StatusCode::BAD_REQUEST, Some("BadRequest"));
    let r = rest
        .post(
            "/v2.0/ports",
            ADMIN,
            json!({"port": {"network_id": net, "admin_state_up": 3}}),
        )
        .await;
    expect(&r, StatusCode::BAD_REQUEST, Some("InvalidInput"));
    let r = rest
        .call_raw(
            Method::POST,
            "/v2.0/ports",
            Some(ADMIN),
            b"{not json".to_vec(),
            &[],
        )
        .await;
    expect(&r, StatusCode::BAD_REQUEST, Some("BadRequest"));
    let huge = vec![b' '; alcor_rest_gateway::limits::BODY_BYTES_MAX + 1];
    let r = rest
        .call_raw(Method::POST, "/v2.0/ports", Some(ADMIN), huge, &[])
        .await;
    expect(
        &r,
        StatusCode::PAYLOAD_TOO_LARGE,
        Some("RequestEntityTooLarge"),
    );

    let port = rest
        .post(
            "/v2.0/ports",
            ADMIN,
            json!({"port": {"network_id": net, "fixed_ips": [{"subnet_id": subnet, "ip_address": "10.2.0.9"}]}}),
        )
        .await;
    expect(&port, StatusCode::CREATED, None);
    let port_id = s(&port.body["port"]["id"]);
    let revision = port.body["port"]["revision_number"].as_u64().unwrap_or(0);
    let mac = s(&port.body["port"]["mac_address"]);
    let r = rest
        .post(
            "/v2.0/ports",
            ADMIN,
            json!({"port": {"network_id": net, "fixed_ips": [{"ip_address": "10.2.0.9"}]}}),
        )
        .await;
    expect(&r, StatusCode::CONFLICT, Some("IpAddressInUse"));
    let r = rest
        .post(
            "/v2.0/ports",
            ADMIN,
            json!({"port": {"network_id": net, "mac_address": mac}}),
        )
        .await;
    expect(&r, StatusCode::CONFLICT, Some("MacAddressInUse"));

    // If-Match: a stale revision is 412, the current one goes through.
    let path = format!("/v2.0/ports/{port_id}");
    let update = json!({"port": {"name": "renamed", "binding:host_id": "h9"}}).to_string();
    let stale = format!("revision_number={}", revision + 100);
    let r = rest
        .call_raw(
            Method::PUT,
            &path,
            Some(ADMIN),
            update.clone().into_bytes(),
            &[("if-match", &stale)],
        )
        .await;
    expect(
        &r,
        StatusCode::PRECONDITION_FAILED,
        Some("RevisionNumberConstraintFailed"),
    );
    let current = format!("revision_number={revision}");
    let r = rest
        .call_raw(
            Method::PUT,
            &path,
            Some(ADMIN),
            update.into_bytes(),
            &[("if-match", &current)],
        )
        .await;
    expect(&r, StatusCode::OK, None);
    assert_eq!(r.body["port"]["name"], "renamed");
    assert_eq!(r.body["port"]["binding:host_id"], "h9");
    let new_revision = r.body["port"]["revision_number"].as_u64().unwrap_or(0);
    assert!(new_revision > revision);
    let r = rest
        .call(
            Method::PUT,
            &path,
            ADMIN,
            Some(json!({"port": {"mac_address": "fa:16:3e:00:00:01"}})),
        )
        .await;
    expect(&r, StatusCode::BAD_REQUEST, Some("BadRequest"));

    // Networks and subnets update too, with the same precondition.
    let net_path = format!("/v2.0/networks/{net}");
    let shown = rest.get(&net_path, ADMIN).await;
    let net_revision = format!(
        "revision_number={}",
        shown.body["network"]["revision_number"]
            .as_u64()
            .unwrap_or(0)
    );
    let body = json!({"network": {"name": "renamed-net", "mtu": 1400}}).to_string();
    let r = rest
        .call_raw(
            Method::PUT,
            &net_path,
            Some(ADMIN),
            body.clone().into_bytes(),
            &[("if-match", &net_revision)],
        )
        .await;
    expect(&r, StatusCode::OK, None);
    assert_eq!(
        (
            r.body["network"]["name"].clone(),
            r.body["network"]["mtu"].clone()
        ),
        (json!("renamed-net"), json!(1400))
    );
    assert_eq!(r.body["network"]["subnets"], json!([subnet]));
    let r = rest
        .call_raw(
            Method::PUT,
            &net_path,
            Some(ADMIN),
            body.into_bytes(),
            &[("if-match", &net_revision)],
        )
        .await;
    expect(
        &r,
        StatusCode::PRECONDITION_FAILED,
        Some("RevisionNumberConstraintFailed"),
    );
    let r = rest
        .call(
            Method::PUT,
            &format!("/v2.0/subnets/{subnet}"),
            ADMIN,
            Some(json!({"subnet": {"gateway_ip": null, "dns_nameservers": ["192.0.2.53"]}})),
        )
        .await;
    expect(&r, StatusCode::OK, None);
    assert_eq!(r.body["subnet"]["gateway_ip"], Value::Null);
    assert_eq!(r.body["subnet"]["dns_nameservers"], json!(["192.0.2.53"]));

    // In use: the subnet and the network still hold the port.
    let r = rest
        .call(
            Method::DELETE,
            &format!("/v2.0/subnets/{subnet}"),
            ADMIN,
            None,
        )
        .await;
    expect(&r, StatusCode::CONFLICT, Some("SubnetInUse"));
    let r = rest
        .call(
            Method::DELETE,
            &format!("/v2.0/networks/{net}"),
            ADMIN,
            None,
        )
        .await;
    expect(&r, StatusCode::CONFLICT, Some("NetworkInUse"));

    let r = rest
        .call_raw(
            Method::DELETE,
            &path,
            Some(ADMIN),
            Vec::new(),
            &[("if-match", &current)],
        )
        .await;
    expect(
        &r,
        StatusCode::PRECONDITION_FAILED,
        Some("RevisionNumberConstraintFailed"),
    );
    let r = rest.call(Method::DELETE, &path, ADMIN, None).await;
    expect(&r, StatusCode::NO_CONTENT, None);
    assert_eq!(r.body, Value::Null);
    let r = rest.call(Method::DELETE, &path, ADMIN, None).await;
    expect(&r, StatusCode::NOT_FOUND, Some("PortNotFound"));
    let r = rest
        .call(
            Method::DELETE,
            &format!("/v2.0/subnets/{subnet}"),
            ADMIN,
            None,
        )
        .await;
    expect(&r, StatusCode::NO_CONTENT, None);
    let r = rest
        .call(
            Method::DELETE,
            &format!("/v2.0/networks/{net}"),
            ADMIN,
            None,
        )
        .await;
    expect(&r, StatusCode::NO_CONTENT, None);
    rest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_scope_requests_to_their_project() {
    let rest = Rest::start().await;
    let r = rest
        .call_raw(Method::GET, "/v2.0/networks", None, Vec::new(), &[])
        .await;
    expect(&r, StatusCode::UNAUTHORIZED, Some("NotAuthorized"));
    let r = rest.get("/v2.0/networks", "wrong-token").await;
    expect(&r, StatusCode::UNAUTHORIZED, Some("NotAuthorized"));

    let (alice_net, _) = network_with_subnet(&rest, ALICE, "10.3.0.0/24").await;
    let (bob_net, _) = network_with_subnet(&rest, BOB, "10.3.0.0/24").await;

    let r = rest.get("/v2.0/networks", BOB).await;
    let ids: Vec<String> = r.body["networks"]
        .as_array()
        .map(|a| a.iter().map(|n| s(&n["id"])).collect())
        .unwrap_or_default();
    assert_eq!(ids, std::slice::from_ref(&bob_net));
    let r = rest.get("/v2.0/networks?tenant_id=alice", BOB).await;
    assert_eq!(r.body["networks"], json!([]));

    let path = format!("/v2.0/networks/{alice_net}");
    expect(
        &rest.get(&path, BOB).await,
        StatusCode::NOT_FOUND,
        Some("NetworkNotFound"),
    );
    let r = rest.call(Method::DELETE, &path, BOB, None).await;
    expect(&r, StatusCode::NOT_FOUND, Some("NetworkNotFound"));
    let r = rest
        .post(
            "/v2.0/ports",
            BOB,
            json!({"port": {"network_id": alice_net}}),
        )
        .await;
    expect(&r, StatusCode::NOT_FOUND, Some("NetworkNotFound"));
    let r = rest
        .post(
            "/v2.0/networks",
            BOB,
            json!({"network": {"name": "x", "project_id": "alice"}}),
        )
        .await;
    expect(&r, StatusCode::FORBIDDEN, Some("PolicyNotAuthorized"));

    // The admin sees every project and may create in any.
    let r = rest.get("/v2.0/networks", ADMIN).await;
    assert_eq!(r.body["networks"].as_array().map(Vec::len), Some(2));
    let r = rest.get("/v2.0/networks?project_id=alice", ADMIN).await;
    assert_eq!(r.body["networks"][0]["id"], json!(alice_net));
    let r = rest
        .post(
            "/v2.0/ports",
            ADMIN,
            json!({"port": {"network_id": alice_net, "project_id": "alice"}}),
        )
        .await;
    expect(&r, StatusCode::CREATED, None);
    let r = rest.get("/v2.0/ports", ALICE).await;
    assert_eq!(r.body["ports"].as_array().map(Vec::len), Some(1));
    expect(&rest.get(&path, ADMIN).await, StatusCode::OK, None);
    rest.shutdown().await;
}
