//! `alcor ctl` over the SDK against a real cluster: the update verbs, floating
//! IPs, bulk port creation in batches, `cluster members`, and the distinct
//! exit status of each error class.

use std::process::{Command, Output};

use serde_json::Value;

use crate::cluster::{ProcessCluster, BIN};
use crate::workload::{self, uuid, PROJECT};

/// Deadline of each `alcor ctl` call.
const CTL_TIMEOUT_MS: &str = "10000";

/// `alcor ctl -o json <args>` against `endpoints`.
fn run(endpoints: &[String], args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("ctl")
        .args(["--endpoints", &endpoints.join(",")])
        .args(["-o", "json", "--timeout-ms", CTL_TIMEOUT_MS])
        .args(args)
        .output()
        .expect("run alcor ctl")
}

fn endpoints(cluster: &ProcessCluster) -> Vec<String> {
    cluster
        .ids()
        .iter()
        .map(|id| cluster.api_addr(*id))
        .collect()
}

/// The parsed output of a call that must succeed.
fn ctl(cluster: &ProcessCluster, args: &[&str]) -> Value {
    let output = run(&endpoints(cluster), args);
    assert!(
        output.status.success(),
        "alcor ctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

/// The exit status of a call that must fail.
fn ctl_status(cluster: &ProcessCluster, args: &[&str]) -> i32 {
    let output = run(&endpoints(cluster), args);
    assert!(!output.status.success(), "alcor ctl {args:?} succeeded");
    output.status.code().expect("exit status")
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("id").to_string()
}

fn revision_of(value: &Value) -> String {
    value["revision"].as_u64().expect("revision").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_updates_every_resource_with_compare_and_set() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    cluster.leader(&all).await;
    let (vpc, subnet) = (uuid(0xd0), uuid(0xd1));
    workload::create_host(&cluster, &all, "host-a", 1).await;
    workload::create_host(&cluster, &all, "host-b", 2).await;
    workload::create_network(&cluster, &all, &vpc, &subnet).await;

    let host = ctl(
        &cluster,
        &["hosts", "update", "host-a", "--status", "maintenance"],
    );
    assert_eq!(host["status"], "MAINTENANCE", "{host}");
    ctl(&cluster, &["hosts", "update", "host-a", "--status", "up"]);

    let shown = ctl(&cluster, &["vpcs", "show", &vpc]);
    let renamed = ctl(
        &cluster,
        &[
            "vpcs",
            "update",
            &vpc,
            "--name",
            "renamed",
            "--expected-revision",
            &revision_of(&shown),
        ],
    );
    assert_eq!(renamed["name"], "renamed", "{renamed}");
    // The old revision no longer matches: precondition failed, nothing changes.
    let stale = [
        "vpcs",
        "update",
        &vpc,
        "--name",
        "again",
        "--expected-revision",
        &revision_of(&shown),
    ];
    assert_eq!(ctl_status(&cluster, &stale), 5);
    assert_eq!(ctl(&cluster, &["vpcs", "show", &vpc])["name"], "renamed");

    let updated = ctl(
        &cluster,
        &[
            "subnets",
            "update",
            &subnet,
            "--name",
            "s",
            "--dns-nameservers",
            "10.0.0.53",
        ],
    );
    assert_eq!(updated["dns_nameservers"][0], "10.0.0.53", "{updated}");

    let sg = ctl(
        &cluster,
        &["security-groups", "create", "--project-id", PROJECT],
    );
    let sg_id = id_of(&sg);
    let sg = ctl(
        &cluster,
        &[
            "security-groups",
            "update",
            &sg_id,
            "--description",
            "web tier",
        ],
    );
    assert_eq!(sg["description"], "web tier", "{sg}");

    let port = ctl(
        &cluster,
        &[
            "ports",
            "create",
            "--project-id",
            PROJECT,
            "--network",
            &vpc,
            "--host",
            "host-a",
        ],
    );
    let port_id = id_of(&port);
    let moved = ctl(
        &cluster,
        &[
            "ports",
            "update",
            &port_id,
            "--host",
            "host-b",
            "--security-groups",
            &sg_id,
            "--expected-revision",
            &revision_of(&port),
        ],
    );
    assert_eq!(moved["binding_host"], "host-b", "{moved}");
    let tagged = ctl(
        &cluster,
        &["ports", "update", &port_id, "--tag", "web", "--tag", "blue"],
    );
    assert_eq!(
        tagged["tags"],
        serde_json::json!(["blue", "web"]),
        "{tagged}"
    );
    let by_tag = ctl(&cluster, &["ports", "list", "--tags", "web,blue"]);
    assert_eq!(by_tag["ports"][0]["id"], port_id.as_str(), "{by_tag}");
    let untagged = ctl(&cluster, &["ports", "update", &port_id, "--clear-tags"]);
    assert_eq!(untagged["tags"], serde_json::json!([]), "{untagged}");
    assert_eq!(moved["security_groups"][0], sg_id.as_str(), "{moved}");

    let router = ctl(&cluster, &["routers", "create", "--project-id", PROJECT]);
    let router_id = id_of(&router);
    ctl(
        &cluster,
        &[
            "routers",
            "add-interface",
            &router_id,
            "--subnet-id",
            &subnet,
        ],
    );
    let routed = ctl(
        &cluster,
        &[
            "routers",
            "update",
            &router_id,
            "--route",
            "192.168.0.0/24=10.0.1.254",
        ],
    );
    assert_eq!(routed["routes"][0]["nexthop"], "10.0.1.254", "{routed}");
    let cleared = ctl(
        &cluster,
        &["routers", "update", &router_id, "--clear-routes"],
    );
    assert_eq!(
        cleared["routes"].as_array().map(Vec::len),
        Some(0),
        "{cleared}"
    );

    // Floating IPs: allocate from an external VPC, associate, disassociate, release.
    let external = ctl(
        &cluster,
        &[
            "vpcs",
            "create",
            "--project-id",
            PROJECT,
            "--cidr",
            "203.0.113.0/24",
        ],
    );
    let external_id = id_of(&external);
    ctl(
        &cluster,
        &[
            "subnets",
            "create",
            "--project-id",
            PROJECT,
            "--network-id",
            &external_id,
            "--cidr",
            "203.0.113.0/24",
        ],
    );
    let fip = ctl(
        &cluster,
        &[
            "floating-ips",
            "create",
            "--project-id",
            PROJECT,
            "--floating-network-id",
            &external_id,
        ],
    );
    let fip_id = id_of(&fip);
    assert_eq!(fip["status"], "DOWN", "{fip}");
    let associated = ctl(
        &cluster,
        &["floating-ips", "update", &fip_id, "--port-id", &port_id],
    );
    assert_eq!(associated["status"], "ACTIVE", "{associated}");
    let listed = ctl(&cluster, &["floating-ips", "list", "--port-id", &port_id]);
    assert_eq!(listed["floating_ips"][0]["id"], fip_id.as_str(), "{listed}");
    let released = ctl(
        &cluster,
        &["floating-ips", "update", &fip_id, "--port-id", ""],
    );
    assert_eq!(released["status"], "DOWN", "{released}");
    ctl(&cluster, &["floating-ips", "delete", &fip_id]);
    assert_eq!(ctl_status(&cluster, &["floating-ips", "show", &fip_id]), 3);

    let members = ctl(&cluster, &["cluster", "members"]);
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(3),
        "{members}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_creates_ports_in_batches_without_drawing_a_bar_off_a_terminal() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    cluster.leader(&all).await;
    // A /20 and no port quota: room for the 1,100 ports.
    ctl(&cluster, &["quotas", "set", PROJECT, "--port", "-1"]);
    let vpc = id_of(&ctl(
        &cluster,
        &[
            "vpcs",
            "create",
            "--project-id",
            PROJECT,
            "--cidr",
            "10.8.0.0/16",
        ],
    ));
    ctl(
        &cluster,
        &[
            "subnets",
            "create",
            "--project-id",
            PROJECT,
            "--network-id",
            &vpc,
            "--cidr",
            "10.8.0.0/20",
        ],
    );

    let output = run(
        &endpoints(&cluster),
        &[
            "ports",
            "create",
            "--project-id",
            PROJECT,
            "--network",
            &vpc,
            "--name",
            "bulk",
            "--count",
            "1100",
            "--batch-size",
            "250",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // stderr is a pipe here: the progress bar stays hidden.
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    let ports = created["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 1100);
    assert_eq!(ports[1099]["name"], "bulk-1099");
    let listed = ctl(
        &cluster,
        &["ports", "list", "--network-id", &vpc, "--limit", "1000"],
    );
    assert_eq!(listed["ports"].as_array().map(Vec::len), Some(1000));
    assert!(listed["next_marker"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_exits_with_a_distinct_status_per_error_class() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    cluster.leader(&all).await;
    let (vpc, subnet) = (uuid(0xd4), uuid(0xd5));
    workload::create_network(&cluster, &all, &vpc, &subnet).await;

    assert_eq!(ctl_status(&cluster, &["vpcs", "show", &uuid(0xdead)]), 3);
    let taken = ["vpcs", "create", "--id", &vpc, "--project-id", PROJECT];
    assert_eq!(ctl_status(&cluster, &taken), 4);
    assert_eq!(
        ctl_status(&cluster, &["vpcs", "delete", &vpc]),
        5,
        "in use by its subnet"
    );
    ctl(&cluster, &["quotas", "set", PROJECT, "--router", "0"]);
    assert_eq!(
        ctl_status(&cluster, &["routers", "create", "--project-id", PROJECT]),
        6
    );
    let reset = ctl(&cluster, &["quotas", "reset", PROJECT]);
    assert_ne!(reset["limits"]["router"], 0, "{reset}");
    let bad = [
        "vpcs",
        "create",
        "--project-id",
        PROJECT,
        "--cidr",
        "10.0.0.1/8",
    ];
    assert_eq!(ctl_status(&cluster, &bad), 7);
    // Nobody listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .to_string();
    let output = Command::new(BIN)
        .args([
            "ctl",
            "--endpoints",
            &dead,
            "--timeout-ms",
            "500",
            "vpcs",
            "list",
        ])
        .output()
        .expect("run alcor ctl");
    assert_eq!(output.status.code(), Some(8));
    // A bad command line is clap's 2.
    let output = Command::new(BIN)
        .args(["ctl", "vpcs", "frobnicate"])
        .output()
        .expect("run alcor ctl");
    assert_eq!(output.status.code(), Some(2));
}
