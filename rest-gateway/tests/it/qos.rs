//! QoS policies and their rules over REST, and `qos_policy_id` on networks
//! and ports.

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::api::{network_with_subnet, s};
use crate::harness::{expect, Rest, ALICE, BOB};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_policies_hold_one_rule_per_type_and_direction_and_are_in_use_while_named() {
    let rest = Rest::start().await;
    let created = rest
        .post(
            "/v2.0/qos/policies",
            ALICE,
            json!({"policy": {"name": "gold", "description": "d"}}),
        )
        .await;
    expect(&created, StatusCode::CREATED, None);
    let p = &created.body["policy"];
    assert_eq!(
        (p["name"].clone(), p["shared"].clone(), p["rules"].clone()),
        (json!("gold"), json!(false), json!([]))
    );
    let pid = s(&p["id"]);
    let bw = format!("/v2.0/qos/policies/{pid}/bandwidth_limit_rules");
    let dscp = format!("/v2.0/qos/policies/{pid}/dscp_marking_rules");

    let egress = rest
        .post(
            &bw,
            ALICE,
            json!({"bandwidth_limit_rule": {"max_kbps": 1000, "max_burst_kbps": 100}}),
        )
        .await;
    expect(&egress, StatusCode::CREATED, None);
    let rule = &egress.body["bandwidth_limit_rule"];
    assert_eq!(
        (
            rule["direction"].clone(),
            rule["max_kbps"].clone(),
            rule["qos_policy_id"].clone()
        ),
        (json!("egress"), json!(1000), json!(pid))
    );
    let rid = s(&rule["id"]);
    let again = rest
        .post(
            &bw,
            ALICE,
            json!({"bandwidth_limit_rule": {"max_kbps": 5, "direction": "egress"}}),
        )
        .await;
    expect(&again, StatusCode::CONFLICT, Some("QoSRulesConflict"));
    let ingress = rest
        .post(
            &bw,
            ALICE,
            json!({"bandwidth_limit_rule": {"max_kbps": 5, "direction": "ingress"}}),
        )
        .await;
    expect(&ingress, StatusCode::CREATED, None);
    let bad_mark = rest
        .post(&dscp, ALICE, json!({"dscp_marking_rule": {"dscp_mark": 7}}))
        .await;
    expect(&bad_mark, StatusCode::BAD_REQUEST, Some("InvalidInput"));
    let mark = rest
        .post(
            &dscp,
            ALICE,
            json!({"dscp_marking_rule": {"dscp_mark": 26}}),
        )
        .await;
    expect(&mark, StatusCode::CREATED, None);

    let updated = rest
        .call(
            Method::PUT,
            &format!("{bw}/{rid}"),
            ALICE,
            Some(json!({"bandwidth_limit_rule": {"max_kbps": 2000}})),
        )
        .await;
    expect(&updated, StatusCode::OK, None);
    assert_eq!(
        updated.body["bandwidth_limit_rule"]["max_kbps"],
        json!(2000)
    );
    let listed = rest.get(&bw, ALICE).await;
    expect(&listed, StatusCode::OK, None);
    assert_eq!(
        listed.body["bandwidth_limit_rules"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let shown = rest.get(&format!("/v2.0/qos/policies/{pid}"), ALICE).await;
    let types: Vec<String> = shown.body["policy"]["rules"]
        .as_array()
        .map(|rules| rules.iter().map(|r| s(&r["type"])).collect())
        .unwrap_or_default();
    let mut sorted = types.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["bandwidth_limit", "bandwidth_limit", "dscp_marking"]
    );
    // Another project sees neither the policy nor its rules.
    expect(
        &rest.get(&bw, BOB).await,
        StatusCode::NOT_FOUND,
        Some("QosPolicyNotFound"),
    );

    // On a network and on a port; in use until both let go.
    let (net, _subnet) = network_with_subnet(&rest, ALICE, "10.7.0.0/24").await;
    let set_net = rest
        .call(
            Method::PUT,
            &format!("/v2.0/networks/{net}"),
            ALICE,
            Some(json!({"network": {"qos_policy_id": pid}})),
        )
        .await;
    expect(&set_net, StatusCode::OK, None);
    assert_eq!(set_net.body["network"]["qos_policy_id"], json!(pid));
    let port = rest
        .post(
            "/v2.0/ports",
            ALICE,
            json!({"port": {"network_id": net, "qos_policy_id": pid}}),
        )
        .await;
    expect(&port, StatusCode::CREATED, None);
    assert_eq!(port.body["port"]["qos_policy_id"], json!(pid));
    let port_id = s(&port.body["port"]["id"]);
    let in_use = rest
        .call(
            Method::DELETE,
            &format!("/v2.0/qos/policies/{pid}"),
            ALICE,
            None,
        )
        .await;
    expect(&in_use, StatusCode::CONFLICT, Some("QosPolicyInUse"));
    let cleared = rest
        .call(
            Method::PUT,
            &format!("/v2.0/networks/{net}"),
            ALICE,
            Some(json!({"network": {"qos_policy_id": null}})),
        )
        .await;
    expect(&cleared, StatusCode::OK, None);
    assert_eq!(cleared.body["network"]["qos_policy_id"], json!(null));
    let still = rest
        .call(
            Method::DELETE,
            &format!("/v2.0/qos/policies/{pid}"),
            ALICE,
            None,
        )
        .await;
    expect(&still, StatusCode::CONFLICT, Some("QosPolicyInUse"));
    let port_cleared = rest
        .call(
            Method::PUT,
            &format!("/v2.0/ports/{port_id}"),
            ALICE,
            Some(json!({"port": {"qos_policy_id": null}})),
        )
        .await;
    expect(&port_cleared, StatusCode::OK, None);
    let shown_port = rest.get(&format!("/v2.0/ports/{port_id}"), ALICE).await;
    assert_eq!(shown_port.body["port"]["qos_policy_id"], json!(null));
    let deleted_rule = rest
        .call(Method::DELETE, &format!("{bw}/{rid}"), ALICE, None)
        .await;
    expect(&deleted_rule, StatusCode::NO_CONTENT, None);
    let gone = rest
        .call(
            Method::DELETE,
            &format!("/v2.0/qos/policies/{pid}"),
            ALICE,
            None,
        )
        .await;
    expect(&gone, StatusCode::NO_CONTENT, None);
    let extensions = rest.get("/v2.0/extensions", ALICE).await;
    let aliases: Vec<String> = extensions.body["extensions"]
        .as_array()
        .map(|e| e.iter().map(|x| s(&x["alias"])).collect())
        .unwrap_or_default();
    assert!(aliases.iter().any(|a| a == "qos"));
    assert!(aliases.iter().any(|a| a == "qos-bw-limit-direction"));
    rest.shutdown().await;
}
