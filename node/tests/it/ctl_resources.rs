//! `alcor ctl` drives security groups, rules, routers and quotas end to
//! end against a real cluster, with JSON output.

use std::process::Command;

use serde_json::Value;

use crate::cluster::{ProcessCluster, BIN};
use crate::workload::{self, uuid, PROJECT};

/// Deadline of each `alcor ctl` call.
const CTL_TIMEOUT_MS: &str = "10000";

/// `alcor ctl -o json <args>` against every member; the parsed output, or
/// a failure with the command's stderr.
fn ctl(cluster: &ProcessCluster, args: &[&str]) -> Value {
    let endpoints: Vec<String> = cluster
        .ids()
        .iter()
        .map(|id| cluster.api_addr(*id))
        .collect();
    let output = Command::new(BIN)
        .arg("ctl")
        .args(["--endpoints", &endpoints.join(",")])
        .args(["-o", "json", "--timeout-ms", CTL_TIMEOUT_MS])
        .args(args)
        .output()
        .expect("run alcor ctl");
    assert!(
        output.status.success(),
        "alcor ctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

/// `alcor ctl <args>` is expected to fail.
fn ctl_fails(cluster: &ProcessCluster, args: &[&str]) -> bool {
    let endpoints: Vec<String> = cluster
        .ids()
        .iter()
        .map(|id| cluster.api_addr(*id))
        .collect();
    Command::new(BIN)
        .arg("ctl")
        .args(["--endpoints", &endpoints.join(",")])
        .args(["--timeout-ms", CTL_TIMEOUT_MS])
        .args(args)
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_creates_lists_and_deletes_security_groups_rules_routers_and_sets_quotas() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    cluster.leader(&all).await;
    let vpc = uuid(0xc0);
    let subnet = uuid(0xc1);
    workload::create_network(&cluster, &all, &vpc, &subnet).await;

    // Security groups and rules.
    let sg = ctl(
        &cluster,
        &[
            "security-groups",
            "create",
            "--project-id",
            PROJECT,
            "--name",
            "web",
        ],
    );
    let sg_id = sg["id"].as_str().expect("group id").to_string();
    let rule = ctl(
        &cluster,
        &[
            "rules",
            "create",
            "--project-id",
            PROJECT,
            "--security-group-id",
            &sg_id,
            "--protocol",
            "tcp",
            "--port-range-min",
            "80",
            "--port-range-max",
            "80",
            "--remote-ip-prefix",
            "0.0.0.0/0",
        ],
    );
    assert_eq!(rule["direction"], "ingress", "{rule}");
    assert_eq!(rule["port_range_min"], 80, "{rule}");
    let rule_id = rule["id"].as_str().expect("rule id").to_string();
    let rules = ctl(&cluster, &["rules", "list", "--security-group-id", &sg_id]);
    let listed: Vec<&str> = rules["security_group_rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(listed.contains(&rule_id.as_str()), "{rules}");
    let groups = ctl(
        &cluster,
        &["security-groups", "list", "--project-id", PROJECT],
    );
    assert!(
        groups["security_groups"]
            .as_array()
            .expect("groups")
            .iter()
            .any(|g| g["id"] == sg_id.as_str()),
        "{groups}"
    );
    ctl(&cluster, &["rules", "delete", &rule_id]);
    ctl(&cluster, &["security-groups", "delete", &sg_id]);
    assert!(ctl_fails(&cluster, &["security-groups", "get", &sg_id]));

    // Routers and interfaces.
    let router = ctl(
        &cluster,
        &["routers", "create", "--project-id", PROJECT, "--name", "r1"],
    );
    let router_id = router["id"].as_str().expect("router id").to_string();
    let attached = ctl(
        &cluster,
        &[
            "routers",
            "add-interface",
            &router_id,
            "--subnet-id",
            &subnet,
        ],
    );
    assert_eq!(
        attached["interfaces"][0]["subnet_id"],
        subnet.as_str(),
        "{attached}"
    );
    let routers = ctl(&cluster, &["routers", "list", "--project-id", PROJECT]);
    assert_eq!(
        routers["routers"].as_array().map(Vec::len),
        Some(1),
        "{routers}"
    );
    let detached = ctl(
        &cluster,
        &[
            "routers",
            "remove-interface",
            &router_id,
            "--subnet-id",
            &subnet,
        ],
    );
    assert_eq!(detached["interfaces"].as_array().map(Vec::len), Some(0));
    // The interface made by subnet was a port; removing it deleted it.
    let made = attached["interfaces"][0]["port_id"]
        .as_str()
        .expect("interface port id")
        .to_string();
    assert!(!made.is_empty(), "{attached}");
    assert!(ctl_fails(&cluster, &["ports", "get", &made]));

    // By an existing port: it becomes the interface, and goes with it.
    let port = ctl(
        &cluster,
        &[
            "ports",
            "create",
            "--project-id",
            PROJECT,
            "--network-id",
            &vpc,
            "--subnet-id",
            &subnet,
            "--ip",
            "10.0.1.77",
        ],
    );
    let port_id = port["id"].as_str().expect("port id").to_string();
    assert_eq!(port["vif_type"], "unbound", "{port}");
    let attached = ctl(
        &cluster,
        &[
            "routers",
            "add-interface",
            &router_id,
            "--port-id",
            &port_id,
        ],
    );
    assert_eq!(
        attached["interfaces"][0]["port_id"],
        port_id.as_str(),
        "{attached}"
    );
    assert!(
        ctl_fails(&cluster, &["routers", "add-interface", &router_id]),
        "neither --subnet-id nor --port-id"
    );
    let detached = ctl(
        &cluster,
        &[
            "routers",
            "remove-interface",
            &router_id,
            "--port-id",
            &port_id,
        ],
    );
    assert_eq!(detached["interfaces"].as_array().map(Vec::len), Some(0));
    assert!(ctl_fails(&cluster, &["ports", "get", &port_id]));
    ctl(&cluster, &["routers", "delete", &router_id]);

    // Quotas: set one limit, the others stay; usage counts what exists.
    let set = ctl(
        &cluster,
        &["quotas", "set", PROJECT, "--port", "7", "--router", "-1"],
    );
    assert_eq!(set["limits"]["port"], 7, "{set}");
    assert_eq!(set["limits"]["router"], -1, "{set}");
    let shown = ctl(&cluster, &["quotas", "show", PROJECT]);
    assert_eq!(shown["limits"]["port"], 7, "{shown}");
    assert_eq!(shown["usage"]["network"], 1, "{shown}");
    assert_eq!(shown["usage"]["router"], 0, "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_creates_qos_policies_and_rules_and_sets_them_on_vpcs_and_ports() {
    let cluster = ProcessCluster::start(3);
    let all = cluster.ids();
    cluster.leader(&all).await;
    let (vpc, subnet, port) = (uuid(0xd0), uuid(0xd1), uuid(0xd2));
    workload::create_network(&cluster, &all, &vpc, &subnet).await;
    workload::create_port(&cluster, &all, &vpc, &subnet, &port, "").await;

    let policy = ctl(
        &cluster,
        &[
            "qos-policies",
            "create",
            "--project-id",
            PROJECT,
            "--name",
            "gold",
        ],
    );
    let id = policy["id"].as_str().expect("policy id").to_string();
    let with_limit = ctl(
        &cluster,
        &[
            "qos-policies",
            "add-bandwidth-limit",
            &id,
            "--max-kbps",
            "1000",
        ],
    );
    assert_eq!(with_limit["rules"][0]["direction"], "egress");
    assert_eq!(with_limit["rules"][0]["max_kbps"], 1000);
    assert!(
        ctl_fails(
            &cluster,
            &[
                "qos-policies",
                "add-bandwidth-limit",
                &id,
                "--max-kbps",
                "5"
            ],
        ),
        "a second egress limit is refused"
    );
    assert!(
        ctl_fails(
            &cluster,
            &["qos-policies", "add-dscp-marking", &id, "--dscp-mark", "7"],
        ),
        "7 is not a DSCP mark"
    );
    let marked = ctl(
        &cluster,
        &["qos-policies", "add-dscp-marking", &id, "--dscp-mark", "26"],
    );
    assert_eq!(marked["rules"].as_array().map(Vec::len), Some(2));

    let on_port = ctl(
        &cluster,
        &["ports", "update", &port, "--qos-policy-id", &id],
    );
    assert_eq!(on_port["qos_policy_id"], id.as_str());
    let on_vpc = ctl(&cluster, &["vpcs", "update", &vpc, "--qos-policy-id", &id]);
    assert_eq!(on_vpc["qos_policy_id"], id.as_str());
    assert!(
        ctl_fails(&cluster, &["qos-policies", "delete", &id]),
        "a policy in use is not deleted"
    );
    ctl(&cluster, &["ports", "update", &port, "--qos-policy-id", ""]);
    ctl(&cluster, &["vpcs", "update", &vpc, "--qos-policy-id", ""]);
    ctl(&cluster, &["qos-policies", "delete", &id]);
    let listed = ctl(&cluster, &["qos-policies", "list"]);
    assert_eq!(listed["qos_policies"], serde_json::json!([]));
}
