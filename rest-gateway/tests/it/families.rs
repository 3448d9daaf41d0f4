//! Security groups and their rules, routers and their interfaces, quotas.

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api::{network_with_subnet, s};
use crate::harness::{expect, Rest, ADMIN, ALICE, BOB};

fn rule_ids(group: &Value) -> Vec<String> {
    group["security_group_rules"]
        .as_array()
        .map(|rules| rules.iter().map(|r| s(&r["id"])).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_embed_their_rules_and_refuse_duplicates() {
    let rest = Rest::start().await;
    let index = rest
        .call_raw(Method::GET, "/v2.0/", None, Vec::new(), &[])
        .await;
    let listed = index.body["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["collection"] == "security_groups"))
        .map(|r| s(&r["links"][0]["href"]))
        .unwrap_or_default();
    assert!(listed.ends_with("/v2.0/security-groups"), "{}", index.body);

    let group = rest
        .post(
            "/v2.0/security-groups",
            ALICE,
            json!({"security_group": {"name": "web", "description": "web tier"}}),
        )
        .await;
    expect(&group, StatusCode::CREATED, None);
    let g = &group.body["security_group"];
    assert_eq!(
        (g["name"].clone(), g["project_id"].clone()),
        (json!("web"), json!("alice"))
    );
    assert!(g["security_group_rules"].is_array());
    let gid = s(&g["id"]);

    let ssh = json!({"security_group_rule": {
        "security_group_id": gid, "direction": "ingress", "ethertype": "IPv4",
        "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
        "remote_ip_prefix": "0.0.0.0/0"}});
    let rule = rest
        .post("/v2.0/security-group-rules", ALICE, ssh.clone())
        .await;
    expect(&rule, StatusCode::CREATED, None);
    let r = &rule.body["security_group_rule"];
    assert_eq!(
        (
            r["direction"].clone(),
            r["ethertype"].clone(),
            r["protocol"].clone()
        ),
        (json!("ingress"), json!("IPv4"), json!("tcp"))
    );
    assert_eq!(
        (r["port_range_min"].clone(), r["port_range_max"].clone()),
        (json!(22), json!(22))
    );
    assert_eq!(r["remote_group_id"], Value::Null);
    let rid = s(&r["id"]);
    let dup = rest.post("/v2.0/security-group-rules", ALICE, ssh).await;
    expect(&dup, StatusCode::CONFLICT, Some("SecurityGroupRuleExists"));

    let udp = rest
        .post(
            "/v2.0/security-group-rules",
            ALICE,
            json!({"security_group_rule": {"security_group_id": gid, "direction": "egress",
                   "ethertype": "IPv6", "protocol": 17, "remote_group_id": gid}}),
        )
        .await;
    expect(&udp, StatusCode::CREATED, None);
    assert_eq!(udp.body["security_group_rule"]["protocol"], "udp");
    assert_eq!(udp.body["security_group_rule"]["ethertype"], "IPv6");
    let bad = rest
        .post(
            "/v2.0/security-group-rules",
            ALICE,
            json!({"security_group_rule": {"security_group_id": gid, "direction": "sideways"}}),
        )
        .await;
    expect(&bad, StatusCode::BAD_REQUEST, Some("InvalidInput"));

    let shown = rest
        .get(&format!("/v2.0/security-groups/{gid}"), ALICE)
        .await;
    expect(&shown, StatusCode::OK, None);
    let ids = rule_ids(&shown.body["security_group"]);
    assert!(ids.contains(&rid), "rules {ids:?}");
    assert!(ids.contains(&s(&udp.body["security_group_rule"]["id"])));
    let listed = rest
        .get(
            &format!("/v2.0/security-group-rules?security_group_id={gid}"),
            ALICE,
        )
        .await;
    expect(&listed, StatusCode::OK, None);
    assert_eq!(
        listed.body["security_group_rules"].as_array().map(Vec::len),
        Some(ids.len())
    );
    let groups = rest.get("/v2.0/security-groups?name=web", ALICE).await;
    expect(&groups, StatusCode::OK, None);
    assert_eq!(
        rule_ids(&groups.body["security_groups"][0]).len(),
        ids.len()
    );

    let renamed = rest
        .call(
            Method::PUT,
            &format!("/v2.0/security-groups/{gid}"),
            ALICE,
            Some(json!({"security_group": {"name": "web2"}})),
        )
        .await;
    expect(&renamed, StatusCode::OK, None);
    assert_eq!(renamed.body["security_group"]["name"], "web2");
    let hidden = rest.get(&format!("/v2.0/security-groups/{gid}"), BOB).await;
    expect(
        &hidden,
        StatusCode::NOT_FOUND,
        Some("SecurityGroupNotFound"),
    );
    let foreign = rest
        .post(
            "/v2.0/security-group-rules",
            BOB,
            json!({"security_group_rule": {"security_group_id": gid, "direction": "ingress"}}),
        )
        .await;
    expect(
        &foreign,
        StatusCode::NOT_FOUND,
        Some("SecurityGroupNotFound"),
    );

    let gone = rest
        .call(
            Method::DELETE,
            &format!("/v2.0/security-group-rules/{rid}"),
            ALICE,
            None,
        )
        .await;
    expect(&gone, StatusCode::NO_CONTENT, None);
    let missing = rest
        .get(&format!("/v2.0/security-group-rules/{rid}"), ALICE)
        .await;
    expect(
        &missing,
        StatusCode::NOT_FOUND,
        Some("SecurityGroupRuleNotFound"),
    );
    let deleted = rest
        .call(
            Method::DELETE,
            &format!("/v2.0/security-groups/{gid}"),
            ALICE,
            None,
        )
        .await;
    expect(&deleted, StatusCode::NO_CONTENT, None);

    rest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_attach_and_detach_subnets_by_id_through_a_port() {
    let rest = Rest::start().await;
    let (_net, subnet) = network_with_subnet(&rest, ALICE, "10.1.0.0/24").await;

    let router = rest
        .post("/v2.0/routers", ALICE, json!({"router": {"name": "r1"}}))
        .await;
    expect(&router, StatusCode::CREATED, None);
    let r = &router.body["router"];
    assert_eq!(
        (r["name"].clone(), r["routes"].clone()),
        (json!("r1"), json!([]))
    );
    let rid = s(&r["id"]);
    let add = format!("/v2.0/routers/{rid}/add_router_interface");
    let remove = format!("/v2.0/routers/{rid}/remove_router_interface");

    let both = rest
        .call(
            Method::PUT,
            &add,
            ALICE,
            Some(json!({"port_id": rid, "subnet_id": subnet})),
        )
        .await;
    expect(&both, StatusCode::BAD_REQUEST, Some("BadRequest"));
    let no_such_port = rest
        .call(Method::PUT, &add, ALICE, Some(json!({"port_id": rid})))
        .await;
    expect(&no_such_port, StatusCode::NOT_FOUND, Some("PortNotFound"));
    let stranger = rest
        .call(Method::PUT, &add, BOB, Some(json!({"subnet_id": subnet})))
        .await;
    expect(&stranger, StatusCode::NOT_FOUND, Some("RouterNotFound"));
    let added = rest
        .call(Method::PUT, &add, ALICE, Some(json!({"subnet_id": subnet})))
        .await;
    expect(&added, StatusCode::OK, None);
    let port_id = s(&added.body["port_id"]);
    assert!(!port_id.is_empty(), "the interface is a port");
    assert_eq!(
        added.body,
        json!({"id": rid, "subnet_id": subnet, "subnet_ids": [subnet], "port_id": port_id,
               "tenant_id": "alice", "project_id": "alice"})
    );
    let iface = rest.get(&format!("/v2.0/ports/{port_id}"), ALICE).await;
    expect(&iface, StatusCode::OK, None);
    assert_eq!(
        (
            iface.body["port"]["device_owner"].clone(),
            iface.body["port"]["device_id"].clone(),
            iface.body["port"]["fixed_ips"][0]["ip_address"].clone()
        ),
        (
            json!("network:router_interface"),
            json!(rid),
            json!("10.1.0.1")
        )
    );
    let undeletable = rest
        .call(
            Method::DELETE,
            &format!("/v2.0/ports/{port_id}"),
            ALICE,
            None,
        )
        .await;
    expect(&undeletable, StatusCode::CONFLICT, Some("ServicePortInUse"));
    let busy = rest
        .call(Method::DELETE, &format!("/v2.0/routers/{rid}"), ALICE, None)
        .await;
    expect(&busy, StatusCode::CONFLICT, Some("RouterInUse"));

    let updated = rest
        .call(
            Method::PUT,
            &format!("/v2.0/routers/{rid}"),
            ALICE,
            Some(json!({"router": {"name": "r2", "admin_state_up": false,
                        "routes": [{"destination": "192.168.0.0/24", "nexthop": "10.1.0.5"}]}})),
        )
        .await;
    expect(&updated, StatusCode::OK, None);
    let u = &updated.body["router"];
    assert_eq!(
        (u["name"].clone(), u["status"].clone()),
        (json!("r2"), json!("DOWN"))
    );
    assert_eq!(
        u["routes"],
        json!([{"destination": "192.168.0.0/24", "nexthop": "10.1.0.5"}])
    );

    let removed = rest
        .call(
            Method::PUT,
            &remove,
            ALICE,
            Some(json!({"subnet_id": subnet})),
        )
        .await;
    expect(&removed, StatusCode::OK, None);
    assert_eq!(removed.body["subnet_ids"], json!([subnet]));
    assert_eq!(removed.body["port_id"], json!(port_id));
    let gone = rest.get(&format!("/v2.0/ports/{port_id}"), ALICE).await;
    expect(&gone, StatusCode::NOT_FOUND, Some("PortNotFound"));
    let deleted = rest
        .call(Method::DELETE, &format!("/v2.0/routers/{rid}"), ALICE, None)
        .await;
    expect(&deleted, StatusCode::NO_CONTENT, None);

    rest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_limit_creates_until_reset() {
    let rest = Rest::start().await;

    let own = rest.get("/v2.0/quotas/alice", ALICE).await;
    expect(&own, StatusCode::OK, None);
    for key in [
        "network",
        "subnet",
        "port",
        "router",
        "security_group",
        "security_group_rule",
    ] {
        assert!(own.body["quota"][key].is_i64(), "{key}: {}", own.body);
    }
    let default_routers = own.body["quota"]["router"].clone();
    let other = rest.get("/v2.0/quotas/alice", BOB).await;
    expect(&other, StatusCode::FORBIDDEN, Some("PolicyNotAuthorized"));
    let raise = rest
        .call(
            Method::PUT,
            "/v2.0/quotas/alice",
            ALICE,
            Some(json!({"quota": {"router": 99}})),
        )
        .await;
    expect(&raise, StatusCode::FORBIDDEN, Some("PolicyNotAuthorized"));
    let bogus = rest
        .call(
            Method::PUT,
            "/v2.0/quotas/alice",
            ADMIN,
            Some(json!({"quota": {"rooter": 1}})),
        )
        .await;
    expect(&bogus, StatusCode::BAD_REQUEST, Some("BadRequest"));

    let set = rest
        .call(
            Method::PUT,
            "/v2.0/quotas/alice",
            ADMIN,
            Some(json!({"quota": {"router": 1}})),
        )
        .await;
    expect(&set, StatusCode::OK, None);
    assert_eq!(set.body["quota"]["router"], 1);
    assert_eq!(set.body["quota"]["network"], own.body["quota"]["network"]);
    let first = rest
        .post("/v2.0/routers", ALICE, json!({"router": {"name": "a"}}))
        .await;
    expect(&first, StatusCode::CREATED, None);
    let second = rest
        .post("/v2.0/routers", ALICE, json!({"router": {"name": "b"}}))
        .await;
    expect(&second, StatusCode::CONFLICT, Some("OverQuota"));
    let details = rest.get("/v2.0/quotas/alice/details", ALICE).await;
    expect(&details, StatusCode::OK, None);
    assert_eq!(
        details.body["quota"]["router"],
        json!({"limit": 1, "used": 1, "reserved": 0})
    );

    let reset = rest
        .call(Method::DELETE, "/v2.0/quotas/alice", ADMIN, None)
        .await;
    expect(&reset, StatusCode::NO_CONTENT, None);
    let back = rest.get("/v2.0/quotas/alice", ADMIN).await;
    expect(&back, StatusCode::OK, None);
    assert_eq!(back.body["quota"]["router"], default_routers);

    rest.shutdown().await;
}
