//! What changes between two plans (pure): the objects an incremental pass
//! touches. The reconciler is the only writer of its objects, so once a
//! pass has programmed a plan in full, the kernel holds that plan; the
//! next pass needs to look at and change only the objects whose plan
//! differs, not to read every link, FDB and neighbour entry back.
//!
//! [`Delta::between`] lists, from the plan the last pass programmed
//! (`last`) to the new one (`next`): ports, router copies and VPCs that
//! are gone, and those that are new or changed (in the order a full pass
//! handles them); router interfaces that are gone; FDB and neighbour
//! entries to delete and to add. Applied to the objects of `last`, it
//! gives exactly the objects of `next` (property-tested below, and against
//! the kernel by the reconciler's tests).

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::plan::{Plan, PortPlan, RouterPlan, VpcPlan};

/// The objects an incremental pass from `last` to `next` touches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta<'a> {
    /// Ports of `last` not in `next`: their veth pair and namespace go.
    pub ports_removed: Vec<&'a PortPlan>,
    /// Ports of `next` new or changed since `last`.
    pub ports_changed: Vec<&'a PortPlan>,
    /// Router copies of `last` not in `next`: their namespace goes.
    pub routers_removed: Vec<&'a RouterPlan>,
    /// Router copies of `next` new or changed since `last`.
    pub routers_changed: Vec<&'a RouterPlan>,
    /// Host ends of router interfaces of `last` that no copy of `next` has.
    pub gateways_removed: Vec<&'a str>,
    /// VPCs of `last` not in `next`: their bridge and VXLAN device go.
    pub vpcs_removed: Vec<&'a VpcPlan>,
    /// VPCs of `next` new or changed since `last`, and those of changed
    /// ports and router copies (which need their bridge).
    pub vpcs_changed: Vec<&'a VpcPlan>,
    /// FDB entries to delete: on a VXLAN device `next` keeps, no longer
    /// planned or planned with another destination.
    pub fdb_removed: Vec<(&'a str, [u8; 6], IpAddr)>,
    /// FDB entries to add (or replace).
    pub fdb_added: Vec<(&'a str, [u8; 6], IpAddr)>,
    /// Neighbour entries to delete (as for FDB entries).
    pub neighbours_removed: Vec<(&'a str, IpAddr, [u8; 6])>,
    /// Neighbour entries to add (or replace).
    pub neighbours_added: Vec<(&'a str, IpAddr, [u8; 6])>,
}

impl<'a> Delta<'a> {
    /// The change from `last` (programmed in full) to `next`.
    pub fn between(last: &'a Plan, next: &'a Plan) -> Delta<'a> {
        Delta::between_retrying(last, next, &BTreeSet::new())
    }

    /// [`Delta::between`], with the ports of `next` whose host end is in
    /// `retry` counted as changed even where `last` plans them the same:
    /// ports the last pass failed to program (the rest of `last` is in
    /// the kernel; theirs may be half made, which an ensure repairs).
    pub fn between_retrying(last: &'a Plan, next: &'a Plan, retry: &BTreeSet<String>) -> Delta<'a> {
        let mut out = Delta::default();
        for (veth, port) in &last.ports {
            if !next.ports.contains_key(veth) {
                out.ports_removed.push(port);
            }
        }
        for (veth, port) in &next.ports {
            if last.ports.get(veth) != Some(port) || retry.contains(veth) {
                out.ports_changed.push(port);
            }
        }
        for (netns, router) in &last.routers {
            if !next.routers.contains_key(netns) {
                out.routers_removed.push(router);
            }
        }
        for (netns, router) in &next.routers {
            if last.routers.get(netns) != Some(router) {
                out.routers_changed.push(router);
            }
        }
        let gateways = |plan: &'a Plan| -> BTreeSet<&'a str> {
            plan.routers
                .values()
                .flat_map(|r| r.interfaces.iter().map(|i| i.veth.as_str()))
                .collect()
        };
        let wanted_gateways = gateways(next);
        out.gateways_removed = gateways(last)
            .into_iter()
            .filter(|g| !wanted_gateways.contains(g))
            .collect();
        for (vni, vpc) in &last.vpcs {
            if !next.vpcs.contains_key(vni) {
                out.vpcs_removed.push(vpc);
            }
        }
        // VPCs whose devices may have been recreated: every entry on
        // their VXLAN device is added again (an add replaces).
        let mut renewed: BTreeSet<&str> = BTreeSet::new();
        let mut needed: BTreeSet<u32> = BTreeSet::new();
        for (vni, vpc) in &next.vpcs {
            match last.vpcs.get(vni) {
                Some(before) if before == vpc => {}
                Some(_) => {
                    renewed.insert(vpc.vxlan.as_str());
                    needed.insert(*vni);
                }
                None => {
                    needed.insert(*vni);
                }
            }
        }
        needed.extend(out.ports_changed.iter().map(|p| p.vni));
        needed.extend(out.routers_changed.iter().map(|r| r.vni));
        out.vpcs_changed = needed.iter().filter_map(|v| next.vpcs.get(v)).collect();
        let kept: BTreeSet<&str> = next.vpcs.values().map(|v| v.vxlan.as_str()).collect();
        for ((vxlan, mac), dst) in &last.fdb {
            let gone = next.fdb.get(&(vxlan.clone(), *mac)) != Some(dst);
            if gone && kept.contains(vxlan.as_str()) {
                out.fdb_removed.push((vxlan, *mac, *dst));
            }
        }
        for ((vxlan, mac), dst) in &next.fdb {
            let new = last.fdb.get(&(vxlan.clone(), *mac)) != Some(dst);
            if new || renewed.contains(vxlan.as_str()) {
                out.fdb_added.push((vxlan, *mac, *dst));
            }
        }
        for ((vxlan, ip), mac) in &last.neighbours {
            let gone = next.neighbours.get(&(vxlan.clone(), *ip)) != Some(mac);
            if gone && kept.contains(vxlan.as_str()) {
                out.neighbours_removed.push((vxlan, *ip, *mac));
            }
        }
        for ((vxlan, ip), mac) in &next.neighbours {
            let new = last.neighbours.get(&(vxlan.clone(), *ip)) != Some(mac);
            if new || renewed.contains(vxlan.as_str()) {
                out.neighbours_added.push((vxlan, *ip, *mac));
            }
        }
        out
    }

    /// Whether `next` asks nothing of the kernel that `last` did not.
    pub fn is_empty(&self) -> bool {
        *self == Delta::default()
    }
}

#[cfg(test)]
mod tests;
