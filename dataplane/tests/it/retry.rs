//! A port the kernel refuses costs its own retry, not a full pass: the
//! pass after the one that failed it is incremental, programs it once the
//! cause is gone, and leaves the kernel as a full pass would.

use std::collections::BTreeMap;

use alcor_dataplane::Reconciler;

use crate::incremental::random_plan_where;
use crate::Host;

/// A plain file where a port's namespace goes: opening it as a namespace
/// fails, so that port cannot be programmed. Removed on drop.
struct Blocker(String);

impl Drop for Blocker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn retry_after_a_failed_port(host_id: String) {
    let plan = random_plan_where(7, &host_id, |p| p.ports.len() >= 2);
    let port = plan.ports.values().next().expect("a port").clone();
    let blocker = Blocker(format!("/run/netns/{}", port.netns));
    std::fs::write(&blocker.0, b"").expect("block the port's namespace");

    let mut agent = Reconciler::new(&host_id).expect("netlink");
    let first = agent.reconcile(&plan).await;
    assert!(first.full);
    assert_eq!(
        first.failed.keys().collect::<Vec<_>>(),
        vec![&port.port_id],
        "only the blocked port fails"
    );

    drop(blocker);
    let second = agent.reconcile(&plan).await;
    assert_eq!(
        second.failed,
        BTreeMap::new(),
        "the retry programs the port"
    );
    assert!(
        !second.full,
        "a port that failed made the next pass a full one"
    );
    assert!(second.n_changes > 0, "the retry changed nothing");

    let third = agent.reconcile(&plan).await;
    assert!(!third.full);
    assert_eq!(
        third.n_changes, 0,
        "the port is retried again once programmed"
    );

    let mut checker = Reconciler::new(&host_id).expect("netlink");
    let check = checker.reconcile(&plan).await;
    assert!(check.full);
    assert_eq!(check.failed, BTreeMap::new());
    assert_eq!(
        check.n_changes, 0,
        "a full pass still had to change the kernel after the retry"
    );
}

#[test]
fn a_port_that_failed_is_retried_by_an_incremental_pass() {
    Host::create("retry").block_on(retry_after_a_failed_port);
}
