//! `/v2.0/floatingips`: allocate, associate, move, disassociate, filters,
//! `fields`, If-Match, bulk all-or-nothing, project scoping, error types.

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api::{network_with_subnet, s};
use crate::fixtures::{bound_port, routed_network};
use crate::harness::{expect, Rest, ALICE, BOB};

fn ids(list: &Value) -> Vec<String> {
    let mut out: Vec<String> = list["floatingips"]
        .as_array()
        .map(|l| l.iter().map(|f| s(&f["id"])).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floating_ips_associate_move_and_disassociate() {
    let rest = Rest::start().await;
    rest.hosts(&["h1"]).await;
    // The state machine has no shared networks: a project allocates from its own.
    let (public, _) = network_with_subnet(&rest, ALICE, "198.51.100.0/24").await;
    let (net, subnet, router) = routed_network(&rest, ALICE, "10.5.0.0/24").await;
    let (p1, ip1) = bound_port(&rest, ALICE, &net).await;
    let (p2, ip2) = bound_port(&rest, ALICE, &net).await;

    // Allocated and associated at once: ACTIVE, behind the subnet's router.
    let f = rest
        .post(
            "/v2.0/floatingips",
            ALICE,
            json!({"floatingip": {"floating_network_id": public, "port_id": p1, "description": "web"}}),
        )
        .await;
    expect(&f, StatusCode::CREATED, None);
    let fip = &f.body["floatingip"];
    assert_eq!(fip["project_id"], "alice");
    assert_eq!(fip["status"], "ACTIVE");
    assert_eq!(
        (s(&fip["port_id"]), s(&fip["fixed_ip_address"])),
        (p1.clone(), ip1.clone())
    );
    assert_eq!(s(&fip["router_id"]), router);
    assert_eq!(fip["description"], "web");
    assert!(s(&fip["floating_ip_address"]).starts_with("198.51.100."));
    let fid = s(&fip["id"]);
    let path = format!("/v2.0/floatingips/{fid}");
    let revision = fip["revision_number"].as_u64().unwrap_or(0);

    // A second one may not map to the same fixed address.
    let r = rest
        .post(
            "/v2.0/floatingips",
            ALICE,
            json!({"floatingip": {"floating_network_id": public, "port_id": p1}}),
        )
        .await;
    expect(
        &r,
        StatusCode::CONFLICT,
        Some("FloatingIPPortAlreadyAssociated"),
    );

    // Move to another port (If-Match: current passes, stale is 412).
    let stale = format!("revision_number={}", revision + 7);
    let body = json!({"floatingip": {"port_id": p2}}).to_string();
    let r = rest
        .call_raw(
            Method::PUT,
            &path,
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
    let current = format!("revision_number={revision}");
    let r = rest
        .call_raw(
            Method::PUT,
            &path,
            Some(ALICE),
            body.into_bytes(),
            &[("if-match", &current)],
        )
        .await;
    expect(&r, StatusCode::OK, None);
    assert_eq!(
        (
            s(&r.body["floatingip"]["port_id"]),
            s(&r.body["floatingip"]["fixed_ip_address"])
        ),
        (p2.clone(), ip2.clone())
    );

    // Filters, fields, scoping.
    let free = rest
        .post(
            "/v2.0/floatingips",
            ALICE,
            json!({"floatingip": {"floating_network_id": public}}),
        )
        .await;
    expect(&free, StatusCode::CREATED, None);
    assert_eq!(free.body["floatingip"]["status"], "DOWN");
    assert_eq!(free.body["floatingip"]["port_id"], Value::Null);
    assert_eq!(free.body["floatingip"]["fixed_ip_address"], Value::Null);
    let free_id = s(&free.body["floatingip"]["id"]);
    let r = rest
        .get(&format!("/v2.0/floatingips?port_id={p2}"), ALICE)
        .await;
    assert_eq!(ids(&r.body), vec![fid.clone()]);
    let r = rest.get("/v2.0/floatingips?status=DOWN", ALICE).await;
    assert_eq!(ids(&r.body), vec![free_id.clone()]);
    let r = rest
        .get(
            &format!("/v2.0/floatingips?floating_network_id={public}&fields=id&fields=status"),
            ALICE,
        )
        .await;
    expect(&r, StatusCode::OK, None);
    let mut both = vec![fid.clone(), free_id.clone()];
    both.sort();
    assert_eq!(ids(&r.body), both);
    assert!(r.body["floatingips"].as_array().is_some_and(|l| l
        .iter()
        .all(|f| f.as_object().is_some_and(|o| o.len() == 2))));
    let r = rest
        .get(&format!("/v2.0/floatingips?router_id={router}"), ALICE)
        .await;
    assert_eq!(ids(&r.body), vec![fid.clone()]);
    let r = rest.get("/v2.0/floatingips?port_id=not-an-id", ALICE).await;
    assert_eq!(ids(&r.body), Vec::<String>::new());
    let r = rest.get("/v2.0/floatingips", BOB).await;
    assert_eq!(ids(&r.body), Vec::<String>::new());
    let r = rest.get(&path, BOB).await;
    expect(&r, StatusCode::NOT_FOUND, Some("FloatingIPNotFound"));
    // Bob may not map to Alice's port.
    let r = rest
        .post(
            "/v2.0/floatingips",
            BOB,
            json!({"floatingip": {"floating_network_id": public, "port_id": p1}}),
        )
        .await;
    expect(&r, StatusCode::NOT_FOUND, Some("PortNotFound"));
    let r = rest
        .call(
            Method::PUT,
            &format!("/v2.0/floatingips/{free_id}"),
            BOB,
            Some(json!({"floatingip": {"port_id": p1}})),
        )
        .await;
    expect(&r, StatusCode::NOT_FOUND, Some("FloatingIPNotFound"));

    // Disassociate with "port_id": null.
    let r = rest
        .call(
            Method::PUT,
            &path,
            ALICE,
            Some(json!({"floatingip": {"port_id": null}})),
        )
        .await;
    expect(&r, StatusCode::OK, None);
    let f = &r.body["floatingip"];
    assert_eq!(
        (
            f["status"].clone(),
            f["port_id"].clone(),
            f["fixed_ip_address"].clone()
        ),
        (json!("DOWN"), Value::Null, Value::Null)
    );

    // Bad input.
    for (body, error_type, field) in [
        (
            json!({"floatingip": {"floating_network_id": public, "colour": 1}}),
            "BadRequest",
            "colour",
        ),
        (
            json!({"floatingip": {"port_id": p1}}),
            "BadRequest",
            "floating_network_id",
        ),
        (
            json!({"floatingip": {"floating_network_id": public, "subnet_id": subnet}}),
            "InvalidInput",
            "subnet_id",
        ),
        (
            json!({"floatingip": {"floating_network_id": public, "floating_ip_address": "10.9.9.9"}}),
            "InvalidInput",
            "floating_ip_address",
        ),
    ] {
        let r = rest.post("/v2.0/floatingips", ALICE, body).await;
        expect(&r, StatusCode::BAD_REQUEST, Some(error_type));
        assert!(
            s(&r.body["NeutronError"]["message"]).contains(field),
            "{}",
            r.body
        );
    }
    let r = rest
        .call(
            Method::PUT,
            &path,
            ALICE,
            Some(json!({"floatingip": {"floating_network_id": public}})),
        )
        .await;
    expect(&r, StatusCode::BAD_REQUEST, Some("BadRequest"));

    // Delete: stale If-Match is 412, then gone.
    let r = rest
        .call_raw(
            Method::DELETE,
            &path,
            Some(ALICE),
            Vec::new(),
            &[("if-match", &current)],
        )
        .await;
    expect(
        &r,
        StatusCode::PRECONDITION_FAILED,
        Some("RevisionNumberConstraintFailed"),
    );
    let r = rest.call(Method::DELETE, &path, ALICE, None).await;
    expect(&r, StatusCode::NO_CONTENT, None);
    let r = rest.get(&path, ALICE).await;
    expect(&r, StatusCode::NOT_FOUND, Some("FloatingIPNotFound"));
    rest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floating_ip_bulk_create_is_all_or_nothing() {
    let rest = Rest::start().await;
    rest.hosts(&["h1"]).await;
    let (public, _) = network_with_subnet(&rest, ALICE, "203.0.113.0/24").await;
    let (net, _) = network_with_subnet(&rest, ALICE, "10.6.0.0/24").await;
    let (p1, _) = bound_port(&rest, ALICE, &net).await;

    let r = rest
        .post(
            "/v2.0/floatingips",
            ALICE,
            json!({"floatingips": [
                {"floating_network_id": public, "port_id": p1},
                {"floating_network_id": public, "floating_ip_address": "203.0.113.50"},
            ]}),
        )
        .await;
    expect(&r, StatusCode::CREATED, None);
    let created = ids(&r.body);
    assert_eq!(created.len(), 2);
    assert_eq!(
        r.body["floatingips"][1]["floating_ip_address"],
        "203.0.113.50"
    );

    // The second item takes an address in use: the first is undone.
    let r = rest
        .post(
            "/v2.0/floatingips",
            ALICE,
            json!({"floatingips": [
                {"floating_network_id": public, "floating_ip_address": "203.0.113.60"},
                {"floating_network_id": public, "floating_ip_address": "203.0.113.50"},
            ]}),
        )
        .await;
    expect(&r, StatusCode::CONFLICT, Some("IpAddressInUse"));
    let listed = rest.get("/v2.0/floatingips", ALICE).await;
    assert_eq!(ids(&listed.body), created);

    let too_many = vec![
        json!({"floating_network_id": public});
        alcor_rest_gateway::limits::BULK_FLOATING_IPS_MAX + 1
    ];
    let r = rest
        .post(
            "/v2.0/floatingips",
            ALICE,
            json!({ "floatingips": too_many }),
        )
        .await;
    expect(&r, StatusCode::BAD_REQUEST, Some("InvalidInput"));
    let listed = rest.get("/v2.0/floatingips", ALICE).await;
    assert_eq!(ids(&listed.body), created);

    let openapi = rest
        .call_raw(Method::GET, "/openapi.json", None, Vec::new(), &[])
        .await;
    assert!(openapi.body["paths"]["/v2.0/floatingips/{id}"]["put"].is_object());
    rest.shutdown().await;
}
