//! A removed port is cut off by the pass that removes it, incremental or
//! the first after a restart (its host end goes down, its namespace is
//! removed), while its veth pair goes with
//! the namespace, deleted by the kernel off the pass's critical path. A
//! pair that outlives its namespace's removal (a process holds the
//! namespace open) is deleted by a later pass or between passes, and at
//! once when its name is planned again.

use std::path::Path;
use std::time::{Duration, Instant};

use alcor_dataplane::{limits, Plan, Reconciler};

use crate::incremental::random_plan_where;
use crate::{link_up, Host};

/// A plan with a port, the port's host end, and the plan without it.
fn plan_and_port(seed: u64, host_id: &str) -> (Plan, String, Plan) {
    let plan = random_plan_where(seed, host_id, |p| !p.ports.is_empty());
    let veth = plan.ports.keys().next().expect("a port").clone();
    let mut without = plan.clone();
    let port = without.ports.remove(&veth).expect("the port");
    without.firewall.ports.remove(&port.port_id);
    (plan, veth, without)
}

/// Waits up to `limit` for link `name` to be gone; whether it went.
async fn gone_within(name: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if link_up(name).is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    link_up(name).is_none()
}

/// Removes a port by an incremental pass, or with `restarted` by a fresh
/// reconciler's full pass (an agent restart), and checks that the port is
/// cut off at once and that its link goes with its namespace.
async fn removed_port_goes_with_its_namespace(host_id: String, seed: u64, restarted: bool) {
    let (plan, veth, without) = plan_and_port(seed, &host_id);
    let netns = plan.ports[&veth].netns.clone();
    let mut agent = Reconciler::new(&host_id).expect("netlink");
    let first = agent.reconcile(&plan).await;
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert_eq!(link_up(&veth), Some(true));

    if restarted {
        agent = Reconciler::new(&host_id).expect("netlink");
    }
    // Held open until the checks, so the pair cannot vanish before them.
    let handle = std::fs::File::open(Path::new("/run/netns").join(&netns)).expect("open netns");
    let second = agent.reconcile(&without).await;
    assert_eq!(second.full, restarted, "pass kind");
    assert!(second.failed.is_empty(), "{:?}", second.failed);
    assert_eq!(link_up(&veth), Some(false), "the removed port is not down");
    assert!(
        !Path::new("/run/netns").join(&netns).exists(),
        "the removed port's namespace is still mounted"
    );
    // No further pass: the kernel deletes the pair with the namespace.
    drop(handle);
    assert!(
        gone_within(&veth, Duration::from_millis(limits::TEARDOWN_MS_MAX)).await,
        "the removed port's link outlived its namespace"
    );
}

/// A reconciler that programmed a plan with a port and then removed the
/// port while an open handle kept its namespace (and so its pair) alive;
/// the plan, the port's host end, the plan without it, and the handle.
struct Held {
    agent: Reconciler,
    plan: Plan,
    veth: String,
    without: Plan,
    _handle: std::fs::File,
}

async fn remove_while_held(seed: u64, host_id: &str) -> Held {
    let (plan, veth, without) = plan_and_port(seed, host_id);
    let netns = plan.ports[&veth].netns.clone();
    let mut agent = Reconciler::new(host_id).expect("netlink");
    let first = agent.reconcile(&plan).await;
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    let handle = std::fs::File::open(Path::new("/run/netns").join(&netns)).expect("open netns");
    let second = agent.reconcile(&without).await;
    assert!(second.failed.is_empty(), "{:?}", second.failed);
    assert_eq!(
        link_up(&veth),
        Some(false),
        "the held port's link is not down"
    );
    Held {
        agent,
        plan,
        veth,
        without,
        _handle: handle,
    }
}

async fn held_namespace_link_is_deleted_later(host_id: String) {
    let mut held = remove_while_held(22, &host_id).await;
    tokio::time::sleep(Duration::from_millis(limits::TEARDOWN_MS_MAX + 100)).await;
    assert_eq!(
        link_up(&held.veth),
        Some(false),
        "the namespace was not held"
    );

    let third = held.agent.reconcile(&held.without).await;
    assert!(!third.full);
    assert!(third.failed.is_empty(), "{:?}", third.failed);
    assert_eq!(link_up(&held.veth), None, "a later pass left the straggler");
    assert!(third.n_changes >= 1);
}

async fn held_namespace_link_is_deleted_between_passes(host_id: String) {
    let mut held = remove_while_held(25, &host_id).await;
    held.agent.tidy().await.expect("tidy");
    assert_eq!(
        link_up(&held.veth),
        Some(false),
        "tidying deleted a pair before TEARDOWN_MS_MAX"
    );
    tokio::time::sleep(Duration::from_millis(limits::TEARDOWN_MS_MAX + 100)).await;
    held.agent.tidy().await.expect("tidy");
    assert_eq!(link_up(&held.veth), None, "tidying left the straggler");
}

async fn held_namespace_link_is_replaced_when_planned_again(host_id: String) {
    let Held {
        mut agent,
        plan,
        veth,
        _handle: handle,
        ..
    } = remove_while_held(23, &host_id).await;
    // Planned again at once: the pass must replace the doomed pair.
    let third = agent.reconcile(&plan).await;
    assert!(!third.full);
    assert!(third.failed.is_empty(), "{:?}", third.failed);
    assert_eq!(link_up(&veth), Some(true), "the port is not back up");
    drop(handle);

    let mut checker = Reconciler::new(&host_id).expect("netlink");
    let check = checker.reconcile(&plan).await;
    assert!(check.failed.is_empty(), "{:?}", check.failed);
    assert_eq!(
        check.n_changes, 0,
        "a full pass still had to change the re-added port"
    );
}

#[test]
fn a_removed_port_is_cut_off_at_once_and_its_link_goes_with_its_namespace() {
    Host::create("gone")
        .block_on(|host_id| removed_port_goes_with_its_namespace(host_id, 21, false));
}

#[test]
fn a_port_removed_while_the_agent_was_down_is_cut_off_by_its_first_pass() {
    Host::create("restart")
        .block_on(|host_id| removed_port_goes_with_its_namespace(host_id, 24, true));
}

#[test]
fn a_link_that_outlives_its_held_namespace_is_deleted_by_a_later_pass() {
    Host::create("held").block_on(held_namespace_link_is_deleted_later);
}

#[test]
fn a_link_that_outlives_its_held_namespace_is_deleted_between_passes() {
    Host::create("tidy").block_on(held_namespace_link_is_deleted_between_passes);
}

#[test]
fn a_doomed_link_is_replaced_when_its_port_is_planned_again() {
    Host::create("again").block_on(held_namespace_link_is_replaced_when_planned_again);
}
