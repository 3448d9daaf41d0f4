//! Bad input (issue #4): unknown attributes, wrong types, out-of-range
//! ports and protocols, a prefix of the wrong family, a remote prefix with a
//! remote group, oversized bodies and batches, unknown filters and sort keys.
//! Each is a 400 (413 for the body) whose NeutronError names the field, and
//! none of them changes anything.

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api::{network_with_subnet, s};
use crate::harness::{expect, Rest, ADMIN, ALICE};

/// Every collection as the admin sees it: compared before and after.
async fn snapshot(rest: &Rest) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        "networks",
        "subnets",
        "ports",
        "security-groups",
        "security-group-rules",
        "routers",
    ] {
        let r = rest.get(&format!("/v2.0/{path}"), ADMIN).await;
        expect(&r, StatusCode::OK, None);
        out.push(r.body);
    }
    let q = rest.get("/v2.0/quotas/alice", ADMIN).await;
    expect(&q, StatusCode::OK, None);
    out.push(q.body);
    out
}

/// A 400 of `error_type` whose message mentions `field`.
#[track_caller]
fn refused(reply: &crate::harness::Reply, error_type: &str, field: &str) {
    expect(reply, StatusCode::BAD_REQUEST, Some(error_type));
    let message = reply.body["NeutronError"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(field),
        "message {message:?} does not name {field:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_naming_the_field_and_change_nothing() {
    let rest = Rest::start().await;
    rest.hosts(&["h1"]).await;
    let (net, subnet) = network_with_subnet(&rest, ALICE, "10.7.0.0/24").await;
    let group = rest
        .post(
            "/v2.0/security-groups",
            ALICE,
            json!({"security_group": {"name": "g"}}),
        )
        .await;
    expect(&group, StatusCode::CREATED, None);
    let sg = s(&group.body["security_group"]["id"]);
    let router = rest
        .post("/v2.0/routers", ALICE, json!({"router": {"name": "r"}}))
        .await;
    expect(&router, StatusCode::CREATED, None);
    let router = s(&router.body["router"]["id"]);
    let port = rest
        .post(
            "/v2.0/ports",
            ALICE,
            json!({"port": {"network_id": net, "name": "p"}}),
        )
        .await;
    expect(&port, StatusCode::CREATED, None);
    let port = s(&port.body["port"]["id"]);
    let before = snapshot(&rest).await;

    // Unknown attributes, at the top level and nested, on create and update.
    let unknown: [(&str, Value); 9] = [
        (
            "/v2.0/networks",
            json!({"network": {"name": "n", "colour": 1}}),
        ),
        (
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net, "cidr": "10.8.0.0/24", "ip_version": 4, "colour": 1}}),
        ),
        (
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net, "cidr": "10.8.0.0/24", "ip_version": 4,
                "allocation_pools": [{"start": "10.8.0.5", "end": "10.8.0.9", "colour": 1}]}}),
        ),
        (
            "/v2.0/ports",
            json!({"port": {"network_id": net, "colour": 1}}),
        ),
        (
            "/v2.0/ports",
            json!({"port": {"network_id": net, "fixed_ips": [{"subnet_id": subnet, "colour": 1}]}}),
        ),
        (
            "/v2.0/security-groups",
            json!({"security_group": {"name": "g2", "colour": 1}}),
        ),
        (
            "/v2.0/security-group-rules",
            json!({"security_group_rule": {"security_group_id": sg, "direction": "ingress", "colour": 1}}),
        ),
        (
            "/v2.0/routers",
            json!({"router": {"name": "r2", "colour": 1}}),
        ),
        (
            "/v2.0/routers",
            json!({"router": {"name": "r2", "routes": [{"destination": "10.9.0.0/24", "nexthop": "10.7.0.9", "colour": 1}]}}),
        ),
    ];
    for (path, body) in unknown {
        let r = rest.post(path, ALICE, body).await;
        refused(&r, "BadRequest", "colour");
    }
    for (path, body) in [
        (
            format!("/v2.0/networks/{net}"),
            json!({"network": {"colour": 1}}),
        ),
        (
            format!("/v2.0/ports/{port}"),
            json!({"port": {"colour": 1}}),
        ),
        (
            format!("/v2.0/security-groups/{sg}"),
            json!({"security_group": {"colour": 1}}),
        ),
        (
            format!("/v2.0/routers/{router}/add_router_interface"),
            json!({"subnet_id": subnet, "colour": 1}),
        ),
        (
            "/v2.0/quotas/alice".to_string(),
            json!({"quota": {"colour": 1}}),
        ),
    ] {
        let r = rest.call(Method::PUT, &path, ADMIN, Some(body)).await;
        refused(&r, "BadRequest", "colour");
    }

    // Wrong types.
    let wrong: [(&str, Value, &str); 7] = [
        ("/v2.0/networks", json!({"network": {"name": 5}}), "name"),
        ("/v2.0/networks", json!({"network": {"mtu": "big"}}), "mtu"),
        (
            "/v2.0/networks",
            json!({"network": {"admin_state_up": "maybe"}}),
            "admin_state_up",
        ),
        (
            "/v2.0/ports",
            json!({"port": {"network_id": net, "security_groups": sg}}),
            "security_groups",
        ),
        (
            "/v2.0/ports",
            json!({"port": {"network_id": net, "fixed_ips": {"subnet_id": subnet}}}),
            "fixed_ips",
        ),
        (
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net, "cidr": "10.8.0.0/24", "ip_version": "four"}}),
            "ip_version",
        ),
        (
            "/v2.0/security-group-rules",
            json!({"security_group_rule": {"security_group_id": sg, "direction": "sideways"}}),
            "direction",
        ),
    ];
    for (path, body, field) in wrong {
        let r = rest.post(path, ALICE, body).await;
        refused(&r, "InvalidInput", field);
    }
    let r = rest
        .call(
            Method::PUT,
            "/v2.0/quotas/alice",
            ADMIN,
            Some(json!({"quota": {"port": "many"}})),
        )
        .await;
    refused(&r, "InvalidInput", "port");

    // Security group rules: ranges, protocols, families, exclusive remotes.
    let rule = |extra: Value| {
        let mut r = json!({"security_group_id": sg, "direction": "ingress", "ethertype": "IPv4"});
        if let (Some(r), Value::Object(extra)) = (r.as_object_mut(), extra) {
            r.extend(extra);
        }
        json!({ "security_group_rule": r })
    };
    let rules: [(Value, &str); 9] = [
        (
            json!({"protocol": "tcp", "port_range_min": 1, "port_range_max": 65536}),
            "port_range_max",
        ),
        (
            json!({"protocol": "tcp", "port_range_min": 0, "port_range_max": 80}),
            "port_range_min",
        ),
        (
            json!({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80}),
            "port_range_min",
        ),
        (
            json!({"protocol": "tcp", "port_range_min": -1, "port_range_max": 80}),
            "port_range_min",
        ),
        (
            json!({"protocol": "icmp", "port_range_min": 8, "port_range_max": 256}),
            "port_range_max",
        ),
        (json!({"protocol": 256}), "protocol"),
        (json!({"protocol": "teleport"}), "protocol"),
        (
            json!({"remote_ip_prefix": "2001:db8::/64"}),
            "remote_ip_prefix",
        ),
        (
            json!({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": sg}),
            "remote_group_id",
        ),
    ];
    for (extra, field) in rules {
        let r = rest
            .post("/v2.0/security-group-rules", ALICE, rule(extra))
            .await;
        refused(&r, "InvalidInput", field);
    }
    let r = rest
        .post(
            "/v2.0/security-group-rules",
            ALICE,
            rule(json!({"ethertype": "IPv5"})),
        )
        .await;
    refused(&r, "InvalidInput", "ethertype");

    // Oversized body (413, naming the limit) and batches.
    let huge = vec![b' '; alcor_rest_gateway::limits::BODY_BYTES_MAX + 1];
    let r = rest
        .call_raw(Method::POST, "/v2.0/ports", Some(ALICE), huge, &[])
        .await;
    expect(
        &r,
        StatusCode::PAYLOAD_TOO_LARGE,
        Some("RequestEntityTooLarge"),
    );
    assert!(s(&r.body["NeutronError"]["message"])
        .contains(&alcor_rest_gateway::limits::BODY_BYTES_MAX.to_string()));
    let one = json!({"network_id": net});
    let batch = vec![one; alcor_rest_gateway::limits::BULK_PORTS_MAX + 1];
    let r = rest
        .post("/v2.0/ports", ALICE, json!({ "ports": batch }))
        .await;
    refused(&r, "InvalidInput", "ports");
    let r = rest
        .post(
            "/v2.0/networks",
            ALICE,
            json!({"networks": [{"name": "a"}, {"name": "b"}]}),
        )
        .await;
    refused(&r, "BadRequest", "networks");
    // A bulk create with one bad item creates none of the good ones.
    let r = rest
        .post(
            "/v2.0/ports",
            ALICE,
            json!({"ports": [{"network_id": net, "name": "ok"}, {"network_id": net, "colour": 1}]}),
        )
        .await;
    refused(&r, "BadRequest", "colour");

    // Unknown filters, sort keys and sort directions.
    for (query, field) in [
        ("/v2.0/ports?colour=red", "colour"),
        ("/v2.0/networks?name=n&colour=red", "colour"),
        ("/v2.0/ports?sort_key=name", "sort_key"),
        ("/v2.0/ports?sort_key=colour", "colour"),
        ("/v2.0/ports?sort_dir=sideways", "sort_dir"),
        (
            "/v2.0/security-group-rules?remote_colour=x",
            "remote_colour",
        ),
        ("/v2.0/routers?limit=many", "Limit"),
    ] {
        let r = rest.get(query, ALICE).await;
        refused(&r, "BadRequest", field);
    }

    assert_eq!(snapshot(&rest).await, before, "bad input changed the state");
    rest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_may_not_name_another_projects_groups_or_networks() {
    let rest = Rest::start().await;
    let (alice_net, _) = network_with_subnet(&rest, ALICE, "10.3.0.0/24").await;
    let (bob_net, _) = network_with_subnet(&rest, crate::harness::BOB, "10.3.0.0/24").await;
    let group = rest
        .post(
            "/v2.0/security-groups",
            crate::harness::BOB,
            json!({"security_group": {"name": "bobs"}}),
        )
        .await;
    expect(&group, StatusCode::CREATED, None);
    let bobs_group = s(&group.body["security_group"]["id"]);
    let before = snapshot(&rest).await;
    let r = rest
        .post(
            "/v2.0/ports",
            ALICE,
            json!({"port": {"network_id": alice_net, "security_groups": [bobs_group]}}),
        )
        .await;
    expect(&r, StatusCode::NOT_FOUND, Some("SecurityGroupNotFound"));
    let r = rest
        .post(
            "/v2.0/ports",
            ALICE,
            json!({"ports": [{"network_id": alice_net}, {"network_id": bob_net}]}),
        )
        .await;
    expect(&r, StatusCode::NOT_FOUND, Some("NetworkNotFound"));
    assert_eq!(
        snapshot(&rest).await,
        before,
        "a refused create changed the state"
    );
    // The same bodies with her own network and no foreign group go through.
    let r = rest
        .post(
            "/v2.0/ports",
            ALICE,
            json!({"ports": [{"network_id": alice_net}, {"network_id": alice_net}]}),
        )
        .await;
    expect(&r, StatusCode::CREATED, None);
    rest.shutdown().await;
}
