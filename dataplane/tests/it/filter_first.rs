//! A new port is never up without its filter: an incremental pass
//! creates it with its host end down while the nftables batch runs, and
//! brings it up only once the batch is in. Here the batch fails (the
//! agent's table was deleted behind its back): the port must not be up,
//! and the next pass (a full one) must program the table and bring the
//! port up.

use std::process::Command;

use alcor_dataplane::{firewall, Plan, Reconciler};

use crate::incremental::random_plan_where;
use crate::{link_up, Host};

async fn new_port_waits_for_its_filter(host_id: String) {
    let filtered = |plan: &Plan| {
        plan.ports
            .iter()
            .find(|(_, p)| plan.firewall.ports.contains_key(&p.port_id))
            .map(|(veth, _)| veth.clone())
    };
    let plan = random_plan_where(11, &host_id, |p| filtered(p).is_some());
    let veth = filtered(&plan).expect("a filtered port");
    let port_id = plan.ports[&veth].port_id;
    let mut before = plan.clone();
    before.ports.remove(&veth);
    before.firewall.ports.remove(&port_id);

    let mut agent = Reconciler::new(&host_id).expect("netlink");
    let first = agent.reconcile(&before).await;
    assert!(first.full);
    assert!(first.failed.is_empty(), "{:?}", first.failed);

    let status = Command::new("nft")
        .args(["delete", "table", "inet", firewall::TABLE])
        .status()
        .expect("run nft");
    assert!(status.success(), "delete the agent's table");
    let second = agent.reconcile(&plan).await;
    assert!(!second.full, "the pass that adds the port is incremental");
    assert!(
        second.failed.contains_key(&port_id),
        "the batch into a missing table succeeded"
    );
    assert_ne!(
        link_up(&veth),
        Some(true),
        "the new port is up while its filter failed"
    );

    let third = agent.reconcile(&plan).await;
    assert!(third.full, "a failed pass was not followed by a full one");
    assert!(third.failed.is_empty(), "{:?}", third.failed);
    assert_eq!(link_up(&veth), Some(true), "the port never came up");
}

#[test]
fn a_new_port_stays_down_until_its_filter_is_in() {
    Host::create("filter").block_on(new_port_waits_for_its_filter);
}
