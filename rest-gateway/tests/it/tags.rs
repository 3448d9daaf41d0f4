//! Neutron tags: in bodies and responses, the four tag filters, and the
//! `/{id}/tags` sub-resource (replace all, add/check/remove one, If-Match).

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api::{network_with_subnet, s};
use crate::harness::{expect, Rest, ADMIN, ALICE, BOB};

fn names(list: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = list[key]
        .as_array()
        .map(|l| l.iter().map(|i| s(&i["name"])).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_filter_lists_and_live_in_every_tagged_body() {
    let rest = Rest::start().await;
    rest.hosts(&["h1"]).await;
    for (name, tags) in [
        ("n1", json!(["a", "b"])),
        ("n2", json!(["c", "b"])),
        ("n3", json!([])),
    ] {
        let r = rest
            .post(
                "/v2.0/networks",
                ALICE,
                json!({"network": {"name": name, "tags": tags}}),
            )
            .await;
        expect(&r, StatusCode::CREATED, None);
    }
    let r = rest.get("/v2.0/networks?name=n2", ALICE).await;
    assert_eq!(r.body["networks"][0]["tags"], json!(["b", "c"]));
    for (query, want) in [
        ("tags=a,b", vec!["n1"]),
        ("tags=b", vec!["n1", "n2"]),
        ("tags=a&tags=c", vec![]),
        ("tags-any=a,c", vec!["n1", "n2"]),
        ("not-tags=b", vec!["n3"]),
        ("not-tags=a,b", vec!["n2", "n3"]),
        ("not-tags-any=a,c", vec!["n3"]),
        ("tags-any=b&not-tags-any=a", vec!["n2"]),
    ] {
        let r = rest.get(&format!("/v2.0/networks?{query}"), ALICE).await;
        expect(&r, StatusCode::OK, None);
        assert_eq!(names(&r.body, "networks"), want, "?{query}");
    }
    // Another project's tags match nothing of Alice's.
    let r = rest.get("/v2.0/networks?tags=a", BOB).await;
    assert_eq!(names(&r.body, "networks"), Vec::<String>::new());

    // Every tagged kind takes tags on create and filters on them.
    let (net, subnet) = network_with_subnet(&rest, ALICE, "10.4.0.0/24").await;
    let bodies = [
        (
            "ports",
            "port",
            json!({"port": {"network_id": net, "name": "t", "tags": ["k"]}}),
        ),
        (
            "security-groups",
            "security_group",
            json!({"security_group": {"name": "t", "tags": ["k"]}}),
        ),
        (
            "routers",
            "router",
            json!({"router": {"name": "t", "tags": ["k"]}}),
        ),
        (
            "subnets",
            "subnet",
            json!({"subnet": {"network_id": net, "cidr": "10.44.0.0/24", "ip_version": 4, "name": "t", "tags": ["k"]}}),
        ),
        (
            "floatingips",
            "floatingip",
            json!({"floatingip": {"floating_network_id": net, "tags": ["k"]}}),
        ),
    ];
    for (path, singular, body) in bodies {
        let r = rest.post(&format!("/v2.0/{path}"), ALICE, body).await;
        expect(&r, StatusCode::CREATED, None);
        assert_eq!(r.body[singular]["tags"], json!(["k"]), "{path}");
        let id = s(&r.body[singular]["id"]);
        let plural = format!("{}s", singular);
        let r = rest.get(&format!("/v2.0/{path}?tags=k"), ALICE).await;
        expect(&r, StatusCode::OK, None);
        let ids: Vec<String> = r.body[&plural]
            .as_array()
            .map(|l| l.iter().map(|i| s(&i["id"])).collect())
            .unwrap_or_default();
        assert_eq!(ids, vec![id.clone()], "{path}?tags=k");
        let r = rest.get(&format!("/v2.0/{path}/{id}/tags"), ALICE).await;
        expect(&r, StatusCode::OK, None);
        assert_eq!(r.body, json!({"tags": ["k"]}), "{path}");
    }
    let r = rest
        .get(&format!("/v2.0/subnets?tags-any=k&network_id={net}"), ALICE)
        .await;
    assert_eq!(names(&r.body, "subnets"), vec!["t"]);
    assert!(!subnet.is_empty());

    // Bad tags change nothing.
    for bad in [json!(["a,b"]), json!("k"), json!([""]), json!([5])] {
        let r = rest
            .post(
                "/v2.0/networks",
                ALICE,
                json!({"network": {"name": "bad", "tags": bad}}),
            )
            .await;
        expect(&r, StatusCode::BAD_REQUEST, None);
        assert!(
            s(&r.body["NeutronError"]["message"]).contains("tag"),
            "{}",
            r.body
        );
    }
    let r = rest.get("/v2.0/networks?name=bad", ALICE).await;
    assert_eq!(names(&r.body, "networks"), Vec::<String>::new());
    rest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_subresource_replaces_adds_and_removes() {
    let rest = Rest::start().await;
    let r = rest
        .post(
            "/v2.0/routers",
            ALICE,
            json!({"router": {"name": "r", "tags": ["old"]}}),
        )
        .await;
    expect(&r, StatusCode::CREATED, None);
    let id = s(&r.body["router"]["id"]);
    let revision = r.body["router"]["revision_number"].as_u64().unwrap_or(0);
    let tags = format!("/v2.0/routers/{id}/tags");

    // PUT replaces every tag; a stale If-Match is 412 and changes nothing.
    let body = json!({"tags": ["x", "y"]}).to_string();
    let stale = format!("revision_number={}", revision + 5);
    let r = rest
        .call_raw(
            Method::PUT,
            &tags,
            Some(ALICE),
            body.clone().into_bytes(),
            &[("if-match", &stale)],
        )
        .await;
    expect(
        &r,
        StatusCode::PRECONDITION_FAILED,
        Some("RevisionNumberConstraintFailed"),
    );
    let r = rest.get(&tags, ALICE).await;
    assert_eq!(r.body, json!({"tags": ["old"]}));
    let current = format!("revision_number={revision}");
    let r = rest
        .call_raw(
            Method::PUT,
            &tags,
            Some(ALICE),
            body.into_bytes(),
            &[("if-match", &current)],
        )
        .await;
    expect(&r, StatusCode::OK, None);
    assert_eq!(r.body, json!({"tags": ["x", "y"]}));
    let shown = rest.get(&format!("/v2.0/routers/{id}"), ALICE).await;
    assert_eq!(shown.body["router"]["tags"], json!(["x", "y"]));
    assert!(
        shown.body["router"]["revision_number"]
            .as_u64()
            .unwrap_or(0)
            > revision
    );

    // One tag at a time.
    let r = rest
        .call(Method::PUT, &format!("{tags}/z"), ALICE, None)
        .await;
    expect(&r, StatusCode::CREATED, None);
    let r = rest
        .call(Method::PUT, &format!("{tags}/z"), ALICE, None)
        .await;
    expect(&r, StatusCode::CREATED, None);
    let r = rest.get(&format!("{tags}/z"), ALICE).await;
    expect(&r, StatusCode::NO_CONTENT, None);
    let r = rest.get(&format!("{tags}/w"), ALICE).await;
    expect(&r, StatusCode::NOT_FOUND, Some("TagNotFound"));
    let r = rest.get(&tags, ALICE).await;
    assert_eq!(r.body, json!({"tags": ["x", "y", "z"]}));
    let r = rest
        .call(Method::DELETE, &format!("{tags}/x"), ALICE, None)
        .await;
    expect(&r, StatusCode::NO_CONTENT, None);
    let r = rest
        .call(Method::DELETE, &format!("{tags}/x"), ALICE, None)
        .await;
    expect(&r, StatusCode::NOT_FOUND, Some("TagNotFound"));
    let r = rest.get(&tags, ALICE).await;
    assert_eq!(r.body, json!({"tags": ["y", "z"]}));
    let r = rest
        .call(Method::PUT, &format!("{tags}/a%2Cb"), ALICE, None)
        .await;
    expect(&r, StatusCode::BAD_REQUEST, None);

    // A resource update with tags replaces them too.
    let r = rest
        .call(
            Method::PUT,
            &format!("/v2.0/routers/{id}"),
            ALICE,
            Some(json!({"router": {"tags": ["u"]}})),
        )
        .await;
    expect(&r, StatusCode::OK, None);
    assert_eq!(r.body["router"]["tags"], json!(["u"]));

    // Scoping, unknown resources, bad bodies.
    let r = rest.get(&tags, BOB).await;
    expect(&r, StatusCode::NOT_FOUND, Some("RouterNotFound"));
    let r = rest
        .call(Method::PUT, &format!("{tags}/b"), BOB, None)
        .await;
    expect(&r, StatusCode::NOT_FOUND, Some("RouterNotFound"));
    let missing = "00000000-0000-4000-8000-000000000042";
    let r = rest
        .get(&format!("/v2.0/networks/{missing}/tags"), ADMIN)
        .await;
    expect(&r, StatusCode::NOT_FOUND, Some("NetworkNotFound"));
    let r = rest
        .call(
            Method::PUT,
            &tags,
            ALICE,
            Some(json!({"tags": ["a"], "colour": 1})),
        )
        .await;
    expect(&r, StatusCode::BAD_REQUEST, Some("BadRequest"));
    let r = rest
        .call(Method::PUT, &tags, ALICE, Some(json!({"tag": ["a"]})))
        .await;
    expect(&r, StatusCode::BAD_REQUEST, Some("BadRequest"));
    let r = rest
        .get(&format!("/v2.0/security-group-rules/{missing}/tags"), ADMIN)
        .await;
    expect(&r, StatusCode::NOT_FOUND, None);

    // DELETE removes every tag.
    let r = rest.call(Method::DELETE, &tags, ALICE, None).await;
    expect(&r, StatusCode::NO_CONTENT, None);
    let r = rest.get(&tags, ALICE).await;
    assert_eq!(r.body, json!({"tags": []}));
    rest.shutdown().await;
}
