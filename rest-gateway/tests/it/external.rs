//! External networks and router gateways: `router:external`, a router's
//! `external_gateway_info` (its `network:router_gateway` port, `enable_snat`,
//! `external_fixed_ips`), floating IPs of an external network through the
//! router, and Neutron's 404 and 409 when the router path is missing or
//! still needed.

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::api::s;
use crate::fixtures::{bound_port, external_network, routed_network};
use crate::harness::{expect, Rest, ADMIN, ALICE, BOB};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_external_network_floating_ip_flow_needs_a_router_gateway() {
    let rest = Rest::start().await;
    rest.hosts(&["h1"]).await;
    // The operator's external network with a subnet.
    let (ext, ext_sub) = external_network(&rest, "203.0.113.0/24").await;
    let listed = rest.get("/v2.0/networks?router:external=true", ADMIN).await;
    assert_eq!(listed.body["networks"].as_array().map(Vec::len), Some(1));

    // Alice's network, router interface and VM port.
    let (net, sub, router) = routed_network(&rest, ALICE, "10.7.0.0/24").await;
    let (vm, _) = bound_port(&rest, ALICE, &net).await;

    // No gateway yet: the external network is not reachable from the subnet.
    let f = rest
        .post(
            "/v2.0/floatingips",
            ALICE,
            json!({"floatingip": {"floating_network_id": ext, "port_id": vm}}),
        )
        .await;
    expect(
        &f,
        StatusCode::NOT_FOUND,
        Some("ExternalGatewayForFloatingIPNotFound"),
    );
    let message = s(&f.body["NeutronError"]["message"]);
    assert!(
        message.starts_with(&format!(
            "External network {ext} is not reachable from subnet {sub}"
        )),
        "{message}"
    );

    // A gateway on a network that is not external: 400.
    let r = rest
        .call(
            Method::PUT,
            &format!("/v2.0/routers/{router}"),
            ALICE,
            Some(json!({"router": {"external_gateway_info": {"network_id": net}}})),
        )
        .await;
    expect(&r, StatusCode::BAD_REQUEST, Some("InvalidInput"));

    // The gateway: a port of the router on the external network, SNAT on.
    let r = rest
        .call(
            Method::PUT,
            &format!("/v2.0/routers/{router}"),
            ALICE,
            Some(json!({"router": {"external_gateway_info": {"network_id": ext}}})),
        )
        .await;
    expect(&r, StatusCode::OK, None);
    let info = &r.body["router"]["external_gateway_info"];
    assert_eq!(info["network_id"], ext.as_str());
    assert_eq!(info["enable_snat"], true);
    assert_eq!(info["external_fixed_ips"][0]["subnet_id"], ext_sub.as_str());
    let gw_ip = s(&info["external_fixed_ips"][0]["ip_address"]);
    let ports = rest
        .get(
            &format!("/v2.0/ports?device_id={router}&device_owner=network:router_gateway"),
            ADMIN,
        )
        .await;
    let gw_ports = ports.body["ports"].as_array().cloned().unwrap_or_default();
    assert_eq!(gw_ports.len(), 1, "{}", ports.body);
    assert_eq!(gw_ports[0]["network_id"], ext.as_str());
    assert_eq!(gw_ports[0]["fixed_ips"][0]["ip_address"], gw_ip.as_str());
    let gw_port = s(&gw_ports[0]["id"]);
    let d = rest
        .call(
            Method::DELETE,
            &format!("/v2.0/ports/{gw_port}"),
            ADMIN,
            None,
        )
        .await;
    expect(&d, StatusCode::CONFLICT, Some("ServicePortInUse"));

    // Now the floating IP of the external network reaches the VM.
    let f = rest
        .post(
            "/v2.0/floatingips",
            ALICE,
            json!({"floatingip": {"floating_network_id": ext, "port_id": vm}}),
        )
        .await;
    expect(&f, StatusCode::CREATED, None);
    assert_eq!(f.body["floatingip"]["router_id"], router.as_str());
    assert_eq!(f.body["floatingip"]["status"], "ACTIVE");
    let fip = s(&f.body["floatingip"]["id"]);

    // SNAT off keeps the gateway port and address.
    let r = rest
        .call(
            Method::PUT,
            &format!("/v2.0/routers/{router}"),
            ALICE,
            Some(json!({"router": {"external_gateway_info": {"network_id": ext, "enable_snat": false}}})),
        )
        .await;
    expect(&r, StatusCode::OK, None);
    let info = &r.body["router"]["external_gateway_info"];
    assert_eq!(info["enable_snat"], false);
    assert_eq!(info["external_fixed_ips"][0]["ip_address"], gw_ip.as_str());

    // The gateway may not go while the floating IP uses it.
    let router_path = format!("/v2.0/routers/{router}");
    let clear = || {
        rest.call(
            Method::PUT,
            &router_path,
            ALICE,
            Some(json!({"router": {"external_gateway_info": {}}})),
        )
    };
    let r = clear().await;
    expect(
        &r,
        StatusCode::CONFLICT,
        Some("RouterExternalGatewayInUseByFloatingIp"),
    );
    let r = rest
        .call(
            Method::PUT,
            &format!("/v2.0/floatingips/{fip}"),
            ALICE,
            Some(json!({"floatingip": {"port_id": null}})),
        )
        .await;
    expect(&r, StatusCode::OK, None);
    let r = clear().await;
    expect(&r, StatusCode::OK, None);
    assert!(r.body["router"]["external_gateway_info"].is_null());
    let ports = rest
        .get(
            &format!("/v2.0/ports?device_id={router}&device_owner=network:router_gateway"),
            ADMIN,
        )
        .await;
    assert_eq!(ports.body["ports"].as_array().map(Vec::len), Some(0));
    rest.shutdown().await;
}

/// Neutron keeps a router's gateway address when its `external_fixed_ips`
/// change to a list that includes it: the new gateway port takes it over
/// from the old one in the same write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_gateway_to_addresses_that_include_its_own_keeps_that_address() {
    let rest = Rest::start().await;
    let (ext, ext_sub) = external_network(&rest, "203.0.113.0/24").await;
    let router = rest
        .post("/v2.0/routers", ALICE, json!({"router": {"name": "r"}}))
        .await;
    expect(&router, StatusCode::CREATED, None);
    let path = format!("/v2.0/routers/{}", s(&router.body["router"]["id"]));
    let set = |ips: &[&str]| {
        let ips: Vec<_> = ips
            .iter()
            .map(|ip| json!({"subnet_id": ext_sub, "ip_address": ip}))
            .collect();
        rest.call(
            Method::PUT,
            &path,
            ALICE,
            Some(json!({"router": {"external_gateway_info": {"network_id": ext, "external_fixed_ips": ips}}})),
        )
    };
    // The gateway's addresses, answered and as its one port holds them.
    let addresses = |r: &crate::harness::Reply| -> Vec<String> {
        let ips = r.body["router"]["external_gateway_info"]["external_fixed_ips"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ips.iter().map(|f| s(&f["ip_address"])).collect()
    };
    let gateway_ports = || async {
        let router = path.trim_start_matches("/v2.0/routers/");
        let ports = rest
            .get(
                &format!("/v2.0/ports?device_id={router}&device_owner=network:router_gateway"),
                ADMIN,
            )
            .await;
        let ports = ports.body["ports"].as_array().cloned().unwrap_or_default();
        ports
            .iter()
            .map(|p| {
                let ips = p["fixed_ips"].as_array().cloned().unwrap_or_default();
                ips.iter().map(|f| s(&f["ip_address"])).collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let r = set(&["203.0.113.10"]).await;
    expect(&r, StatusCode::OK, None);
    assert_eq!(addresses(&r), ["203.0.113.10"]);
    let r = set(&["203.0.113.10", "203.0.113.11"]).await;
    expect(&r, StatusCode::OK, None);
    assert_eq!(addresses(&r), ["203.0.113.10", "203.0.113.11"]);
    assert_eq!(
        gateway_ports().await,
        [vec!["203.0.113.10".to_string(), "203.0.113.11".to_string()]]
    );
    let r = set(&["203.0.113.11"]).await;
    expect(&r, StatusCode::OK, None);
    assert_eq!(addresses(&r), ["203.0.113.11"]);
    assert_eq!(gateway_ports().await, [vec!["203.0.113.11".to_string()]]);
    rest.shutdown().await;
}

/// The names of the networks `token` lists at `path`.
async fn listed_names(rest: &Rest, path: &str, token: &str) -> Vec<String> {
    let listed = rest.get(path, token).await;
    expect(&listed, StatusCode::OK, None);
    let networks = listed.body["networks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    networks.iter().map(|n| s(&n["name"])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_project_reads_an_external_network_and_only_its_owner_changes_it() {
    let rest = Rest::start().await;
    let create = |name: &str, external: bool| {
        rest.post(
            "/v2.0/networks",
            ADMIN,
            json!({"network": {"name": name, "router:external": external}}),
        )
    };
    let public = create("public", true).await;
    expect(&public, StatusCode::CREATED, None);
    let public = s(&public.body["network"]["id"]);
    let private = create("admin-private", false).await;
    expect(&private, StatusCode::CREATED, None);
    let private = s(&private.body["network"]["id"]);
    let sub = rest
        .post(
            "/v2.0/subnets",
            ADMIN,
            json!({"subnet": {"network_id": public, "cidr": "203.0.113.0/24", "ip_version": 4}}),
        )
        .await;
    expect(&sub, StatusCode::CREATED, None);
    let sub = s(&sub.body["subnet"]["id"]);
    let (_, _) = crate::api::network_with_subnet(&rest, BOB, "10.8.0.0/24").await;

    // Bob (another project) lists his own networks and the external one.
    let all = listed_names(&rest, "/v2.0/networks", BOB).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.contains(&"public".to_string()), "{all:?}");
    let external = listed_names(&rest, "/v2.0/networks?router:external=true", BOB).await;
    assert_eq!(external, vec!["public".to_string()]);
    let internal = listed_names(&rest, "/v2.0/networks?router:external=false", BOB).await;
    assert!(!internal.contains(&"public".to_string()), "{internal:?}");
    let by_id = listed_names(&rest, &format!("/v2.0/networks?id={public}"), BOB).await;
    assert_eq!(by_id, vec!["public".to_string()]);
    let shown = rest.get(&format!("/v2.0/networks/{public}"), BOB).await;
    expect(&shown, StatusCode::OK, None);
    assert_eq!(shown.body["network"]["router:external"], true);
    assert_eq!(shown.body["network"]["project_id"], "admin");

    // Not the admin's other network, nor the external network's subnet
    // (Neutron shows those only when shared).
    let hidden = rest.get(&format!("/v2.0/networks/{private}"), BOB).await;
    expect(&hidden, StatusCode::NOT_FOUND, Some("NetworkNotFound"));
    let subnets = rest.get("/v2.0/subnets", BOB).await;
    assert_eq!(subnets.body["subnets"].as_array().map(Vec::len), Some(1));
    let subnets = rest
        .get(&format!("/v2.0/subnets?network_id={public}"), BOB)
        .await;
    assert_eq!(subnets.body["subnets"].as_array().map(Vec::len), Some(0));
    let subnet = rest.get(&format!("/v2.0/subnets/{sub}"), BOB).await;
    expect(&subnet, StatusCode::NOT_FOUND, Some("SubnetNotFound"));
    let by_id = listed_names(&rest, &format!("/v2.0/networks?id={private}"), BOB).await;
    assert!(by_id.is_empty(), "{by_id:?}");

    // Read-only for Bob: update and delete are refused as before.
    let path = format!("/v2.0/networks/{public}");
    let update = rest
        .call(
            Method::PUT,
            &path,
            BOB,
            Some(json!({"network": {"name": "mine"}})),
        )
        .await;
    expect(&update, StatusCode::NOT_FOUND, Some("NetworkNotFound"));
    let delete = rest.call(Method::DELETE, &path, BOB, None).await;
    expect(&delete, StatusCode::NOT_FOUND, Some("NetworkNotFound"));
    let shown = rest.get(&path, ADMIN).await;
    assert_eq!(shown.body["network"]["name"], "public");

    // The reverse: the admin's network that is not external stays invisible
    // when Bob tries to change it.
    let path = format!("/v2.0/networks/{private}");
    let update = rest
        .call(
            Method::PUT,
            &path,
            BOB,
            Some(json!({"network": {"name": "mine"}})),
        )
        .await;
    expect(&update, StatusCode::NOT_FOUND, Some("NetworkNotFound"));
    let delete = rest.call(Method::DELETE, &path, BOB, None).await;
    expect(&delete, StatusCode::NOT_FOUND, Some("NetworkNotFound"));
    let shown = rest.get(&path, ADMIN).await;
    assert_eq!(shown.body["network"]["name"], "admin-private");
    rest.shutdown().await;
}
