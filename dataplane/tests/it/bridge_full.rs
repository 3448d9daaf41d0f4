//! A port past what its VPC's bridge holds fails with a reason that says
//! so (the kernel's bare `EXFULL` reads "Exchange full"), and only that
//! port fails.

use std::io::Write;
use std::process::{Command, Stdio};

use alcor_dataplane::limits::BRIDGE_PORTS_MAX;
use alcor_dataplane::Reconciler;

use crate::incremental::random_plan_where;
use crate::Host;

/// Ports on bridge `bridge` of the calling thread's namespace.
fn bridge_ports(bridge: &str) -> usize {
    let output = Command::new("ip")
        .args(["-j", "link", "show", "master", bridge])
        .output()
        .expect("run ip");
    assert!(output.status.success(), "ip link show master {bridge}");
    let links: serde_json::Value = serde_json::from_slice(&output.stdout).expect("ip -j");
    links.as_array().expect("links").len()
}

/// Fills bridge `bridge` up to `BRIDGE_PORTS_MAX` ports with veth pairs
/// (both ends in this namespace), in one `ip -batch` run.
fn fill(bridge: &str) {
    let missing = BRIDGE_PORTS_MAX - bridge_ports(bridge);
    let mut lines = String::new();
    for n in 0..missing {
        lines.push_str(&format!("link add fill{n} type veth peer name fillp{n}\n"));
        lines.push_str(&format!("link set fill{n} master {bridge}\n"));
    }
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("run ip -batch");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write the batch");
    assert!(child.wait().expect("ip -batch").success(), "ip -batch");
    assert_eq!(bridge_ports(bridge), BRIDGE_PORTS_MAX);
}

async fn port_past_a_full_bridge(host_id: String) {
    let plan = random_plan_where(3, &host_id, |p| p.ports.len() >= 2);
    let (veth, last) = plan.ports.iter().next_back().expect("a port");
    let (veth, last) = (veth.clone(), last.clone());
    let mut before = plan.clone();
    before.ports.remove(&veth);
    before.firewall.ports.remove(&last.port_id);
    // The last port's VPC is in `before` too (random_plan keeps a VPC
    // without ports).
    let bridge = plan.vpcs[&last.vni].bridge.clone();

    let mut agent = Reconciler::new(&host_id).expect("netlink");
    let first = agent.reconcile(&before).await;
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    fill(&bridge);

    let second = agent.reconcile(&plan).await;
    assert_eq!(
        second.failed.keys().collect::<Vec<_>>(),
        vec![&last.port_id],
        "only the port past the full bridge fails"
    );
    let reason = &second.failed[&last.port_id];
    assert!(
        reason.contains("bridge on this host is full") && reason.contains("1023"),
        "{reason}"
    );
}

#[test]
fn a_port_past_a_full_bridge_fails_with_a_reason_that_says_so() {
    Host::create("full").block_on(port_past_a_full_bridge);
}
