//! The kernel side: make the host's network objects match a [`Plan`].
//!
//! Each pass reads what the agent owns (links named `alc…` in the agent's
//! namespace, namespaces named by [`crate::plan::netns_prefix`] and
//! [`crate::plan::router_netns_prefix`], FDB and neighbour entries on its
//! VXLAN devices), and then, in order: deletes ports, router interfaces
//! and router copies no longer planned, makes each VPC's bridge and VXLAN
//! device match (recreating a VXLAN device only when its identity — VNI,
//! local address, port, learning, proxy — differs), deletes VPCs no longer
//! planned, makes each port and each router copy match, and adds and
//! removes FDB and neighbour entries one by one. Between VPCs and ports,
//! the agent's nftables tables are made to match the plan's firewall in
//! one atomic batch ([`crate::firewall`]), so no port is ever up without
//! its filter.
//! Nothing that matches is touched, so an agent restart or a repeat
//! pass changes nothing (the test compares interface indexes).
//!
//! The inside of a port's namespace (MAC, MTU, addresses, default route)
//! and of a router's (sysctls, interfaces, gateway addresses, static
//! routes of protocol `static`) is checked when it is created, when its
//! plan changes, and once after the agent starts; the reconciler remembers
//! the plans it applied to skip unchanged ones afterwards.
//!
//! That is a *full* pass. Once one has run to its end, the reconciler
//! keeps its plan: it is the only writer of its objects, so the kernel
//! holds that plan, except for the ports the pass failed to program. The
//! next pass is then *incremental*: it touches only what
//! [`Delta::between_retrying`] the kept plan and the new one names, those
//! failed ports included (reading those links back one by one, by name),
//! adds and deletes the FDB and neighbour entries that differ without
//! dumping any, and diffs the firewall against its last batch. So a port
//! that cannot be programmed (a full bridge, say) costs its own retry on
//! every pass, not a full pass of the host. An incremental pass runs its
//! nftables batch concurrently with its link work (measured: little gain,
//! both wait on RCU grace periods and stretch each other; benches/README)
//! and keeps the same
//! guarantee another way: the host ends of removed ports go down first (a
//! down bridge port passes nothing), new ports are created with their host
//! end down and brought up once the batch is in. Either kind of pass sets
//! a removed port's host end down and removes its namespace rather than
//! its link: the kernel deletes the pair as it destroys the namespace, in
//! its own worker, so the pass does not wait out a link deletion's RCU
//! grace periods (benches/README); the next passes (and [`Reconciler::tidy`], which the
//! agent calls between passes) delete a pair that outlives
//! `TEARDOWN_MS_MAX`, and a pass deletes one whose name is planned again. A pass after one that stopped
//! on an error, failed a router copy or timed out, the first pass, and
//! the first pass after `FULL_PASS_INTERVAL_MS_MAX` are full again (they
//! read everything back, the nftables tables included), so what changed
//! behind the agent's back is repaired then.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use alcor_state_machine::Id;
use futures::{Stream, TryStreamExt};
use ipnet::IpNet;
use nix::errno::Errno;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVxlan, RouteMessageBuilder,
};

use crate::delta::Delta;
use crate::error::DataplaneError;
use crate::firewall;
use crate::limits;
use crate::netns;
use crate::nft;
use crate::plan::{self, Plan, PortPlan, RouterPlan, VpcPlan};

/// How often [`Reconciler::settle`] looks whether the kernel has deleted
/// the removed ports' links.
const TEARDOWN_POLL: Duration = Duration::from_millis(5);

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Ports not programmed, with the reason (the plan's failures included).
    pub failed: BTreeMap<Id, String>,
    /// Kernel objects created, changed or deleted.
    pub n_changes: u64,
    /// Whether the pass read the kernel in full (else it was incremental).
    pub full: bool,
}

/// Makes the kernel match plans, one pass at a time. Holds the agent's
/// netlink connection (in the agent's own namespace).
#[derive(Debug)]
pub struct Reconciler {
    handle: Handle,
    /// Prefix of the port namespaces of this host.
    netns_prefix: String,
    /// Prefix of the router namespaces of this host.
    router_prefix: String,
    /// Ports whose namespace was configured to this plan (by veth name).
    configured: BTreeMap<String, PortPlan>,
    /// Router copies whose namespace was configured to this plan (by
    /// namespace name).
    configured_routers: BTreeMap<String, RouterPlan>,
    /// The agent's nftables tables as its last successful batch left them;
    /// `None`: read them from the kernel on the next pass.
    firewall_applied: Option<firewall::Existing>,
    /// The firewall the last successful batch programmed (with
    /// `firewall_applied`): the next batch builds and diffs only what
    /// differs from it.
    firewall_programmed: Option<firewall::Firewall>,
    /// The port chains of the last desired ruleset (a memo of a pure
    /// function: valid whatever the kernel holds).
    port_chains: firewall::PortChains,
    /// The plan (without its firewall) the last pass ran through, which
    /// the kernel holds but for the ports in `retry`; `None`: the next
    /// pass is full.
    programmed: Option<Plan>,
    /// Host ends of the ports of `programmed` that its pass failed to
    /// program: the next incremental pass redoes them.
    retry: BTreeSet<String>,
    /// Host ends of removed ports whose namespace a pass removed, with
    /// when: the kernel deletes the pair as it destroys the
    /// namespace, off the pass's critical path. [`Reconciler::reap`] drops
    /// them once gone and deletes those that outlive
    /// `TEARDOWN_MS_MAX` (a process still holds the namespace) or are
    /// planned again.
    doomed: BTreeMap<String, Instant>,
    /// When the last full pass started.
    full_at: Option<Instant>,
    n_changes: u64,
}

/// A veth pair to create: host end on a bridge, far end in a namespace.
struct VethPair<'a> {
    veth: &'a str,
    peer: &'a str,
    mac: [u8; 6],
    mtu: u32,
    bridge: u32,
    netns: &'a str,
    /// Host end up at once (else it stays down: a disabled bridge port).
    up: bool,
}

/// An nftables batch, built but not yet applied.
struct FirewallBatch {
    batch: firewall::Batch,
    /// What the tables hold once it is applied.
    applied: firewall::Existing,
    /// The firewall they then hold.
    programmed: firewall::Firewall,
}

/// What the reconciler reads of one link.
#[derive(Clone, Debug)]
struct Link {
    index: u32,
    kind: Option<InfoKind>,
    mtu: u32,
    up: bool,
    controller: Option<u32>,
    mac: Vec<u8>,
    vxlan: Vec<InfoVxlan>,
}

impl Reconciler {
    /// Opens a netlink connection in the current namespace (must run
    /// inside a tokio runtime) for host `host_id`.
    pub fn new(host_id: &str) -> Result<Reconciler, DataplaneError> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(DataplaneError::Connection)?;
        tokio::spawn(connection);
        Ok(Reconciler {
            handle,
            netns_prefix: plan::netns_prefix(host_id),
            router_prefix: plan::router_netns_prefix(host_id),
            configured: BTreeMap::new(),
            configured_routers: BTreeMap::new(),
            firewall_applied: None,
            firewall_programmed: None,
            port_chains: firewall::PortChains::default(),
            programmed: None,
            retry: BTreeSet::new(),
            doomed: BTreeMap::new(),
            full_at: None,
            n_changes: 0,
        })
    }

    /// One pass: makes the kernel match `plan`, bounded by
    /// `RECONCILE_MS_MAX`; reports the ports it could not program. The
    /// pass is incremental when the last one ran to its end (failed ports
    /// aside) less than `FULL_PASS_INTERVAL_MS_MAX` after a full pass, and
    /// full otherwise (see the module doc).
    pub async fn reconcile(&mut self, plan: &Plan) -> Outcome {
        self.n_changes = 0;
        let interval = Duration::from_millis(limits::FULL_PASS_INTERVAL_MS_MAX);
        let fresh = self.full_at.is_some_and(|at| at.elapsed() < interval);
        let last = if fresh { self.programmed.take() } else { None };
        let retry = std::mem::take(&mut self.retry);
        self.programmed = None;
        let full = last.is_none();
        if full {
            self.full_at = Some(Instant::now());
            // Read the nftables tables back too.
            self.firewall_applied = None;
            self.firewall_programmed = None;
        }
        let budget = Duration::from_millis(limits::RECONCILE_MS_MAX);
        let pass = async {
            self.reap(plan, false).await?;
            match &last {
                Some(last) => self.incremental_pass(last, &retry, plan).await,
                None => self.pass(plan).await,
            }
        };
        let mut failed = match tokio::time::timeout(budget, pass).await {
            Ok(Ok((failed, complete))) => {
                if complete {
                    self.programmed = Some(Plan {
                        firewall: firewall::Firewall::default(),
                        failed: BTreeMap::new(),
                        ..plan.clone()
                    });
                    self.retry = plan
                        .ports
                        .iter()
                        .filter(|(_, port)| failed.contains_key(&port.port_id))
                        .map(|(veth, _)| veth.clone())
                        .collect();
                }
                failed
            }
            Ok(Err(e)) => all_ports(plan, &e.to_string()),
            Err(_) => {
                self.configured.clear();
                self.configured_routers.clear();
                self.firewall_applied = None;
                self.firewall_programmed = None;
                all_ports(plan, "the reconcile pass timed out")
            }
        };
        failed.extend(plan.failed.iter().map(|(id, r)| (*id, r.clone())));
        Outcome {
            failed,
            n_changes: self.n_changes,
            full,
        }
    }

    /// A full pass: reads every object the agent owns. Returns the ports
    /// that failed and whether every router copy was programmed.
    async fn pass(&mut self, plan: &Plan) -> Result<(BTreeMap<Id, String>, bool), DataplaneError> {
        let mut failed = BTreeMap::new();
        let mut complete = true;
        let links = self.owned_links().await?;
        // Ports no longer planned: the host end goes down (cut off), then
        // the namespace goes and takes the pair with it (doomed, as in an
        // incremental pass).
        let mut unplanned = Vec::new();
        for (name, link) in &links {
            if name.starts_with(plan::VETH_PREFIX) && !plan.ports.contains_key(name) {
                if link.up {
                    self.set_down(name, link.index).await?;
                }
                self.configured.remove(name);
                unplanned.push(name);
            }
        }
        let wanted_netns: BTreeSet<&str> = plan.ports.values().map(|p| p.netns.as_str()).collect();
        for name in netns::list(&self.netns_prefix)? {
            if !wanted_netns.contains(name.as_str()) {
                netns::remove(&name).await?;
                self.n_changes += 1;
            }
        }
        let now = Instant::now();
        for name in unplanned {
            self.doomed.entry(name.clone()).or_insert(now);
        }
        // Router interfaces and copies no longer planned (a namespace takes
        // its interfaces' far ends, and so the pairs, with it).
        let wanted_gateways: BTreeSet<&str> = plan
            .routers
            .values()
            .flat_map(|r| r.interfaces.iter().map(|i| i.veth.as_str()))
            .collect();
        for (name, link) in &links {
            if name.starts_with(plan::GATEWAY_PREFIX) && !wanted_gateways.contains(name.as_str()) {
                self.delete_link(name, link.index).await?;
            }
        }
        for name in netns::list(&self.router_prefix)? {
            if !plan.routers.contains_key(&name) {
                netns::remove(&name).await?;
                self.configured_routers.remove(&name);
                self.n_changes += 1;
            }
        }
        // VPCs.
        let (vxlans, bridges) = self
            .ensure_vpcs(plan.vpcs.values(), &links, plan, &mut failed)
            .await;
        let wanted_links: BTreeSet<&str> = plan
            .vpcs
            .values()
            .flat_map(|v| [v.bridge.as_str(), v.vxlan.as_str()])
            .collect();
        for (name, link) in &links {
            let vpc_link =
                name.starts_with(plan::VXLAN_PREFIX) || name.starts_with(plan::BRIDGE_PREFIX);
            if vpc_link && !wanted_links.contains(name.as_str()) {
                self.delete_link(name, link.index).await?;
            }
        }
        // Filters before ports, so a new port is never up unfiltered.
        self.sync_firewall(plan).await?;
        // Ports.
        for port in plan.ports.values() {
            let Some(bridge) = bridges.get(&port.vni) else {
                continue;
            };
            if let Err(e) = self.ensure_port(port, *bridge, links.get(&port.veth)).await {
                self.configured.remove(&port.veth);
                failed.insert(port.port_id, e.to_string());
            }
        }
        // Routers: a copy that cannot be programmed leaves its ports
        // unrouted, not unprogrammed; the next pass retries it.
        for router in plan.routers.values() {
            let Some(bridge) = bridges.get(&router.vni) else {
                continue;
            };
            if let Err(e) = self.ensure_router(router, *bridge, &links).await {
                self.router_failed(router, &e);
                complete = false;
            }
        }
        // Remote ports.
        self.sync_fdb(plan, &vxlans).await?;
        self.sync_neighbours(plan, &vxlans).await?;
        Ok((failed, complete))
    }

    fn router_failed(&mut self, router: &RouterPlan, e: &DataplaneError) {
        self.configured_routers.remove(&router.netns);
        tracing::warn!(
            router = %router.router_id,
            vni = router.vni,
            "router not programmed: {e}"
        );
    }

    /// An incremental pass from `last`, which the kernel holds (the last
    /// pass ran through it) but for the ports whose host ends are in
    /// `retry` (it failed them), to `plan`: the steps of a full pass, in
    /// its order, on the objects the change touches and those ports only.
    async fn incremental_pass(
        &mut self,
        last: &Plan,
        retry: &BTreeSet<String>,
        plan: &Plan,
    ) -> Result<(BTreeMap<Id, String>, bool), DataplaneError> {
        let delta = Delta::between_retrying(last, plan, retry);
        let mut failed = BTreeMap::new();
        let mut complete = true;
        // Only the links the change touches, read by name.
        let mut names: BTreeSet<&str> = BTreeSet::new();
        names.extend(delta.ports_removed.iter().map(|p| p.veth.as_str()));
        names.extend(delta.ports_changed.iter().map(|p| p.veth.as_str()));
        names.extend(delta.gateways_removed.iter().copied());
        names.extend(
            delta
                .routers_changed
                .iter()
                .flat_map(|r| r.interfaces.iter().map(|i| i.veth.as_str())),
        );
        names.extend(
            delta
                .vpcs_removed
                .iter()
                .chain(&delta.vpcs_changed)
                .flat_map(|v| [v.bridge.as_str(), v.vxlan.as_str()]),
        );
        let mut links = BTreeMap::new();
        for name in names {
            if let Some(link) = self.find_link(name).await? {
                links.insert(name.to_string(), link);
            }
        }
        // Removed ports are cut off first (a host end that is down is a
        // disabled bridge port: nothing passes it either way), so their
        // filters may go while their links are being deleted.
        for port in &delta.ports_removed {
            if let Some(link) = links.get(&port.veth) {
                self.set_down(&port.veth, link.index).await?;
            }
        }
        // The firewall's batch runs concurrently with the link work below
        // (both mostly wait on RCU grace periods; benches/README): no port
        // is up and unfiltered at any time, because new ports stay down
        // until the batch is in.
        let batch = self.firewall_batch(plan).await?;
        let links_work = async {
            let mut created: Vec<(&PortPlan, u32)> = Vec::new();
            // A removed port's namespace takes its pair with it: the
            // kernel deletes both ends as it destroys the namespace, in
            // its own worker, so the pass does not wait out the RCU
            // grace periods of a link deletion (benches/README).
            for port in &delta.ports_removed {
                self.configured.remove(&port.veth);
                let link = links.get(&port.veth);
                if netns::exists(&port.netns) {
                    netns::remove(&port.netns).await?;
                    self.n_changes += 1;
                    if link.is_some() {
                        self.doomed.insert(port.veth.clone(), Instant::now());
                    }
                } else if let Some(link) = link {
                    self.delete_link(&port.veth, link.index).await?;
                }
            }
            for name in &delta.gateways_removed {
                if let Some(link) = links.get(*name) {
                    self.delete_link(name, link.index).await?;
                }
            }
            for router in &delta.routers_removed {
                if netns::exists(&router.netns) {
                    netns::remove(&router.netns).await?;
                    self.n_changes += 1;
                }
                self.configured_routers.remove(&router.netns);
            }
            let (vxlans, bridges) = self
                .ensure_vpcs(
                    delta.vpcs_changed.iter().copied(),
                    &links,
                    plan,
                    &mut failed,
                )
                .await;
            for vpc in &delta.vpcs_removed {
                for name in [&vpc.bridge, &vpc.vxlan] {
                    if let Some(link) = links.get(name) {
                        self.delete_link(name, link.index).await?;
                    }
                }
            }
            // New ports, host end down.
            for port in &delta.ports_changed {
                let Some(bridge) = bridges.get(&port.vni) else {
                    continue;
                };
                if links.contains_key(&port.veth) {
                    continue;
                }
                match self.create_port(port, *bridge).await {
                    Ok(index) => created.push((port, index)),
                    Err(e) => {
                        self.configured.remove(&port.veth);
                        failed.insert(port.port_id, e.to_string());
                    }
                }
            }
            Ok::<_, DataplaneError>((vxlans, bridges, created))
        };
        let (applied, links_done) = tokio::join!(nft::apply(&batch.batch), links_work);
        // A failed batch leaves the new ports down; the next (full) pass
        // programs the tables, then brings them up.
        applied?;
        self.firewall_applied_batch(batch);
        let (mut vxlans, bridges, created) = links_done?;
        for (port, index) in created {
            if let Err(e) = self.set_up(&port.veth, index).await {
                self.configured.remove(&port.veth);
                failed.insert(port.port_id, e.to_string());
            }
        }
        // Ports whose links exist (changed or retried).
        for port in &delta.ports_changed {
            let Some(bridge) = bridges.get(&port.vni) else {
                continue;
            };
            let Some(link) = links.get(&port.veth) else {
                continue;
            };
            if let Err(e) = self.ensure_port(port, *bridge, Some(link)).await {
                self.configured.remove(&port.veth);
                failed.insert(port.port_id, e.to_string());
            }
        }
        for router in &delta.routers_changed {
            let Some(bridge) = bridges.get(&router.vni) else {
                continue;
            };
            if let Err(e) = self.ensure_router(router, *bridge, &links).await {
                self.router_failed(router, &e);
                complete = false;
            }
        }
        self.apply_entries(&delta, &mut vxlans).await?;
        Ok((failed, complete))
    }

    /// The index of VXLAN device `name`, read once per pass.
    async fn vxlan_index(
        &self,
        name: &str,
        vxlans: &mut BTreeMap<String, u32>,
    ) -> Result<u32, DataplaneError> {
        if let Some(index) = vxlans.get(name) {
            return Ok(*index);
        }
        let index = self.link(name).await?.index;
        vxlans.insert(name.to_string(), index);
        Ok(index)
    }

    /// Deletes and adds the FDB and neighbour entries `delta` names.
    async fn apply_entries(
        &mut self,
        delta: &Delta<'_>,
        vxlans: &mut BTreeMap<String, u32>,
    ) -> Result<(), DataplaneError> {
        for (vxlan, mac, dst) in &delta.fdb_removed {
            let index = self.vxlan_index(vxlan, vxlans).await?;
            // `Own` (NTF_SELF): the VXLAN device's own table, as added;
            // without it the kernel looks in its bridge's.
            let mut request = self
                .handle
                .neighbours()
                .add_bridge(index, mac)
                .destination(*dst)
                .flags(NeighbourFlags::Own);
            let message = request.message_mut().clone();
            self.delete_entry(message, "FDB entry", vxlan).await?;
        }
        for (vxlan, ip, mac) in &delta.neighbours_removed {
            let index = self.vxlan_index(vxlan, vxlans).await?;
            let mut request = self
                .handle
                .neighbours()
                .add(index, *ip)
                .link_layer_address(mac);
            let message = request.message_mut().clone();
            self.delete_entry(message, "neighbour", vxlan).await?;
        }
        for (vxlan, mac, dst) in &delta.fdb_added {
            let index = self.vxlan_index(vxlan, vxlans).await?;
            self.add_fdb(vxlan, index, mac, *dst).await?;
        }
        for (vxlan, ip, mac) in &delta.neighbours_added {
            let index = self.vxlan_index(vxlan, vxlans).await?;
            self.add_neighbour(vxlan, index, *ip, mac).await?;
        }
        Ok(())
    }

    /// Deletes one FDB or neighbour entry; one already gone is no error.
    async fn delete_entry(
        &mut self,
        message: NeighbourMessage,
        what: &str,
        vxlan: &str,
    ) -> Result<(), DataplaneError> {
        let result = self.handle.neighbours().del(message).execute().await;
        self.deleted(result, Errno::ENOENT, || {
            format!("delete {what} on {vxlan}")
        })
    }

    /// Counts a deletion the kernel made; one whose object was gone
    /// already (the kernel answered `gone`) is no error and no change.
    fn deleted(
        &mut self,
        result: Result<(), rtnetlink::Error>,
        gone: Errno,
        what: impl FnOnce() -> String,
    ) -> Result<(), DataplaneError> {
        match result {
            Ok(()) => {
                self.n_changes += 1;
                Ok(())
            }
            Err(e) if error_code(&e) == Some(gone as i32) => Ok(()),
            Err(source) => Err(DataplaneError::Netlink {
                what: what(),
                source,
            }),
        }
    }

    async fn add_fdb(
        &mut self,
        vxlan: &str,
        index: u32,
        mac: &[u8; 6],
        dst: IpAddr,
    ) -> Result<(), DataplaneError> {
        self.handle
            .neighbours()
            .add_bridge(index, mac)
            .destination(dst)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(DataplaneError::netlink(format!("add FDB entry on {vxlan}")))?;
        self.n_changes += 1;
        Ok(())
    }

    async fn add_neighbour(
        &mut self,
        vxlan: &str,
        index: u32,
        ip: IpAddr,
        mac: &[u8; 6],
    ) -> Result<(), DataplaneError> {
        self.handle
            .neighbours()
            .add(index, ip)
            .link_layer_address(mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(DataplaneError::netlink(format!("add neighbour on {vxlan}")))?;
        self.n_changes += 1;
        Ok(())
    }

    /// Makes the agent's nftables tables match the plan's firewall in one
    /// atomic batch (nothing when they already do).
    async fn sync_firewall(&mut self, plan: &Plan) -> Result<(), DataplaneError> {
        let batch = self.firewall_batch(plan).await?;
        nft::apply(&batch.batch).await?;
        self.firewall_applied_batch(batch);
        Ok(())
    }

    /// The batch that makes the tables match `plan`'s firewall, and what
    /// they hold once it is applied ([`Self::firewall_applied_batch`]).
    async fn firewall_batch(&mut self, plan: &Plan) -> Result<FirewallBatch, DataplaneError> {
        if !plan.firewall.ports.is_empty() {
            nft::check_bridge_hooks()?;
        }
        // The kernel is read on the first pass and after a failed one; in
        // between, only this agent writes its tables, so they hold what its
        // last batch made of them (a read of 1,000 ports' chains costs about
        // a second), and only what changed since is built and diffed.
        let memory = self.firewall_applied.take();
        let last = self.firewall_programmed.take();
        let existing = match (memory, last) {
            (Some(mut memory), Some(last)) => {
                // Only the part that differs from `last` (`memory` is what
                // a read would find).
                let scope = firewall::Scope::between(&last, &plan.firewall);
                let desired =
                    firewall::ruleset_scoped(&plan.firewall, &mut self.port_chains, &scope);
                let batch = firewall::diff(&desired, &firewall::restrict(&memory, &scope));
                firewall::merge(&mut memory, &scope, firewall::applied(&desired));
                return Ok(FirewallBatch {
                    batch,
                    applied: memory,
                    programmed: plan.firewall.clone(),
                });
            }
            (Some(memory), None) => memory,
            (None, _) => nft::read().await?,
        };
        let desired = firewall::ruleset_cached(&plan.firewall, &mut self.port_chains);
        Ok(FirewallBatch {
            batch: firewall::diff(&desired, &existing),
            applied: firewall::applied(&desired),
            programmed: plan.firewall.clone(),
        })
    }

    /// Records that `batch` was applied. Until then the reconciler has no
    /// memory of its tables, so a failed batch makes the next pass read
    /// them back.
    fn firewall_applied_batch(&mut self, batch: FirewallBatch) {
        self.n_changes += batch.batch.n_changes;
        self.firewall_applied = Some(batch.applied);
        self.firewall_programmed = Some(batch.programmed);
    }

    /// The links named `alc…` in the agent's namespace, by name.
    async fn owned_links(&self) -> Result<BTreeMap<String, Link>, DataplaneError> {
        let stream = self.handle.link().get().execute();
        let messages = collect_bounded(stream, "links").await?;
        let mut links = BTreeMap::new();
        for message in messages {
            let (name, link) = read_link(&message);
            if name.starts_with(plan::OWNED_PREFIX) {
                links.insert(name, link);
            }
        }
        Ok(links)
    }

    async fn link(&self, name: &str) -> Result<Link, DataplaneError> {
        link_named(&self.handle, name).await
    }

    /// Link `name` in the agent's namespace, if it exists.
    async fn find_link(&self, name: &str) -> Result<Option<Link>, DataplaneError> {
        let request = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_next()
            .await;
        match request {
            Ok(Some(message)) => Ok(Some(read_link(&message).1)),
            Ok(None) => Ok(None),
            Err(e) if error_code(&e) == Some(Errno::ENODEV as i32) => Ok(None),
            Err(e) => Err(DataplaneError::Netlink {
                what: format!("read {name}"),
                source: e,
            }),
        }
    }

    /// Deletes link `name` (its index read this pass); one the kernel
    /// deleted meanwhile (a doomed port's, with its namespace) is gone
    /// already, not an error.
    async fn delete_link(&mut self, name: &str, index: u32) -> Result<(), DataplaneError> {
        tracing::info!(link = name, "deleting");
        let result = self.handle.link().del(index).execute().await;
        self.deleted(result, Errno::ENODEV, || format!("delete {name}"))
    }

    /// Forgets the doomed host ends the kernel has deleted, and deletes
    /// those `plan` wants again (the name is to be reused), those older
    /// than `TEARDOWN_MS_MAX`, and, with `all`, every one left.
    async fn reap(&mut self, plan: &Plan, all: bool) -> Result<(), DataplaneError> {
        let grace = Duration::from_millis(limits::TEARDOWN_MS_MAX);
        let doomed: Vec<(String, Instant)> = self
            .doomed
            .iter()
            .map(|(name, at)| (name.clone(), *at))
            .collect();
        for (name, at) in doomed {
            match self.find_link(&name).await? {
                None => {}
                Some(link) if all || plan.ports.contains_key(&name) || at.elapsed() >= grace => {
                    self.delete_link(&name, link.index).await?;
                }
                Some(_) => continue,
            }
            self.doomed.remove(&name);
        }
        Ok(())
    }

    /// Between passes: forgets the doomed host ends the kernel has deleted
    /// and deletes those older than `TEARDOWN_MS_MAX` (a process held
    /// their namespace), so they do not wait for the next change. Sends
    /// nothing when no port was removed lately.
    pub async fn tidy(&mut self) -> Result<(), DataplaneError> {
        if self.doomed.is_empty() {
            return Ok(());
        }
        self.reap(&Plan::default(), false).await
    }

    /// Waits until the host ends of the ports removed so far are gone,
    /// at most `TEARDOWN_MS_MAX` (the kernel deletes them as it destroys
    /// their namespaces), and then deletes those left. Afterwards a full
    /// pass over the last plan changes nothing.
    pub async fn settle(&mut self) -> Result<(), DataplaneError> {
        let deadline = Instant::now() + Duration::from_millis(limits::TEARDOWN_MS_MAX);
        let plan = Plan::default();
        while !self.doomed.is_empty() && Instant::now() < deadline {
            self.reap(&plan, false).await?;
            tokio::time::sleep(TEARDOWN_POLL).await;
        }
        self.reap(&plan, true).await
    }

    /// Makes each of `vpcs` match ([`Self::ensure_vpc`]); returns their
    /// VXLAN devices' indexes by name and their bridges' by VNI. The ports
    /// of a VPC that could not be made go into `failed`.
    async fn ensure_vpcs<'a>(
        &mut self,
        vpcs: impl Iterator<Item = &'a VpcPlan>,
        links: &BTreeMap<String, Link>,
        plan: &Plan,
        failed: &mut BTreeMap<Id, String>,
    ) -> (BTreeMap<String, u32>, BTreeMap<u32, u32>) {
        let mut vxlans = BTreeMap::new();
        let mut bridges = BTreeMap::new();
        for vpc in vpcs {
            match self.ensure_vpc(vpc, links).await {
                Ok((bridge, vxlan)) => {
                    bridges.insert(vpc.vni, bridge);
                    vxlans.insert(vpc.vxlan.clone(), vxlan);
                }
                Err(e) => {
                    for port in plan.ports_of(vpc.vni) {
                        failed.insert(port, format!("VPC with VNI {}: {e}", vpc.vni));
                    }
                }
            }
        }
        (vxlans, bridges)
    }

    /// Makes VPC `vpc`'s bridge and VXLAN device match; returns their
    /// indexes.
    async fn ensure_vpc(
        &mut self,
        vpc: &VpcPlan,
        links: &BTreeMap<String, Link>,
    ) -> Result<(u32, u32), DataplaneError> {
        let bridge = match links.get(&vpc.bridge) {
            Some(link) if link.kind == Some(InfoKind::Bridge) => link.clone(),
            other => {
                if let Some(link) = other {
                    self.delete_link(&vpc.bridge, link.index).await?;
                }
                let message = LinkBridge::new(&vpc.bridge).mtu(vpc.mtu).up().build();
                self.add_link(&vpc.bridge, message).await?;
                self.link(&vpc.bridge).await?
            }
        };
        self.ensure_link(&vpc.bridge, &bridge, vpc.mtu, None)
            .await?;
        let vxlan = match links.get(&vpc.vxlan) {
            Some(link) if vxlan_matches(link, vpc) => link.clone(),
            other => {
                if let Some(link) = other {
                    self.delete_link(&vpc.vxlan, link.index).await?;
                }
                let mut builder = LinkVxlan::new(&vpc.vxlan, vpc.vni)
                    .port(limits::VXLAN_PORT)
                    .learning(false)
                    .proxy(true);
                builder = match vpc.local {
                    IpAddr::V4(local) => builder.local(local),
                    IpAddr::V6(local) => builder.local6(local),
                };
                let message = builder.mtu(vpc.mtu).controller(bridge.index).up().build();
                self.add_link(&vpc.vxlan, message).await?;
                self.link(&vpc.vxlan).await?
            }
        };
        self.ensure_link(&vpc.vxlan, &vxlan, vpc.mtu, Some(bridge.index))
            .await?;
        Ok((bridge.index, vxlan.index))
    }

    async fn add_link(&mut self, name: &str, message: LinkMessage) -> Result<(), DataplaneError> {
        tracing::info!(link = name, "creating");
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(DataplaneError::netlink(format!("create {name}")))?;
        self.n_changes += 1;
        Ok(())
    }

    /// Sets what differs of an existing link: MTU, controller, up.
    async fn ensure_link(
        &mut self,
        name: &str,
        link: &Link,
        mtu: u32,
        controller: Option<u32>,
    ) -> Result<(), DataplaneError> {
        let wrong_controller = controller.is_some() && link.controller != controller;
        if link.mtu == mtu && link.up && !wrong_controller {
            return Ok(());
        }
        let mut builder = LinkUnspec::new_with_index(link.index).mtu(mtu).up();
        if let Some(controller) = controller {
            builder = builder.controller(controller);
        }
        self.handle
            .link()
            .set(builder.build())
            .execute()
            .await
            .map_err(DataplaneError::netlink(format!("update {name}")))?;
        self.n_changes += 1;
        Ok(())
    }

    /// Makes port `port` match: its veth pair (created with the far end in
    /// the port's namespace) and, when needed, the namespace's inside.
    async fn ensure_port(
        &mut self,
        port: &PortPlan,
        bridge: u32,
        existing: Option<&Link>,
    ) -> Result<(), DataplaneError> {
        let existing = existing.filter(|l| l.kind == Some(InfoKind::Veth));
        match existing {
            Some(link) => {
                self.ensure_link(&port.veth, link, port.mtu, Some(bridge))
                    .await?;
                self.configure_port(port).await
            }
            None => self.add_port(port, bridge, true).await,
        }
    }

    /// Creates port `port` whose host end does not exist, with that end
    /// down (a disabled bridge port: nothing passes it), and configures
    /// its inside; returns the host end's index. [`Self::set_up`] brings
    /// it up.
    async fn create_port(&mut self, port: &PortPlan, bridge: u32) -> Result<u32, DataplaneError> {
        self.add_port(port, bridge, false).await?;
        Ok(self.link(&port.veth).await?.index)
    }

    /// Creates port `port`'s namespace when missing and its veth pair,
    /// host end up or down, then configures its inside.
    async fn add_port(
        &mut self,
        port: &PortPlan,
        bridge: u32,
        up: bool,
    ) -> Result<(), DataplaneError> {
        if !netns::exists(&port.netns) {
            netns::run_in(&port.netns, true, |_| async { Ok(()) }).await?;
            self.n_changes += 1;
        }
        let pair = VethPair {
            veth: &port.veth,
            peer: &port.peer,
            mac: port.mac,
            mtu: port.mtu,
            bridge,
            netns: &port.netns,
            up,
        };
        self.add_veth_pair(&pair).await?;
        self.configured.remove(&port.veth);
        self.configure_port(port).await
    }

    /// Configures the inside of port `port`'s namespace unless it already
    /// holds this plan.
    async fn configure_port(&mut self, port: &PortPlan) -> Result<(), DataplaneError> {
        if self.configured.get(&port.veth) == Some(port) {
            return Ok(());
        }
        let inside = port.clone();
        let n_changes = netns::run_in(&port.netns, false, move |handle| async move {
            configure_inside(&handle, &inside).await
        })
        .await?;
        self.n_changes += n_changes;
        self.configured.insert(port.veth.clone(), port.clone());
        Ok(())
    }

    /// Sets link `name` down.
    async fn set_down(&mut self, name: &str, index: u32) -> Result<(), DataplaneError> {
        let message = LinkUnspec::new_with_index(index).down().build();
        set_link(&self.handle, message, name).await
    }

    /// Sets link `name` up.
    async fn set_up(&mut self, name: &str, index: u32) -> Result<(), DataplaneError> {
        let message = LinkUnspec::new_with_index(index).up().build();
        set_link(&self.handle, message, name).await?;
        self.n_changes += 1;
        Ok(())
    }

    /// Creates a veth pair whose host end is on bridge `bridge` and whose
    /// far end (with its MAC) is in an existing namespace.
    async fn add_veth_pair(&mut self, pair: &VethPair<'_>) -> Result<(), DataplaneError> {
        let file = netns::open(pair.netns)?;
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(pair.peer.to_string())
            .address(pair.mac.to_vec())
            .mtu(pair.mtu)
            .setns_by_fd(file.as_raw_fd())
            .build();
        let mut builder = LinkVeth::new(pair.veth, pair.peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .mtu(pair.mtu)
            .controller(pair.bridge);
        if pair.up {
            builder = builder.up();
        }
        let message = builder.build();
        match self.add_link(pair.veth, message).await {
            Err(DataplaneError::Netlink { source, .. })
                if error_code(&source) == Some(Errno::EXFULL as i32) =>
            {
                return Err(DataplaneError::BridgeFull {
                    port: pair.veth.to_string(),
                    max: limits::BRIDGE_PORTS_MAX,
                });
            }
            other => other?,
        }
        drop(file);
        Ok(())
    }

    /// Makes router copy `router` match: its namespace, one veth pair per
    /// interface (host end on bridge `bridge`) and, when needed, the
    /// namespace's inside.
    async fn ensure_router(
        &mut self,
        router: &RouterPlan,
        bridge: u32,
        links: &BTreeMap<String, Link>,
    ) -> Result<(), DataplaneError> {
        if !netns::exists(&router.netns) {
            netns::run_in(&router.netns, true, |_| async { Ok(()) }).await?;
            self.n_changes += 1;
            self.configured_routers.remove(&router.netns);
        }
        for interface in &router.interfaces {
            let existing = links
                .get(&interface.veth)
                .filter(|l| l.kind == Some(InfoKind::Veth));
            match existing {
                Some(link) => {
                    self.ensure_link(&interface.veth, link, router.mtu, Some(bridge))
                        .await?;
                }
                None => {
                    let pair = VethPair {
                        veth: &interface.veth,
                        peer: &interface.peer,
                        mac: interface.mac,
                        mtu: router.mtu,
                        bridge,
                        netns: &router.netns,
                        up: true,
                    };
                    self.add_veth_pair(&pair).await?;
                    self.configured_routers.remove(&router.netns);
                }
            }
        }
        if self.configured_routers.get(&router.netns) == Some(router) {
            return Ok(());
        }
        let inside = router.clone();
        let n_changes = netns::run_in(&router.netns, false, move |handle| async move {
            configure_router(&handle, &inside).await
        })
        .await?;
        self.n_changes += n_changes;
        self.configured_routers
            .insert(router.netns.clone(), router.clone());
        Ok(())
    }

    /// Adds missing and removes unplanned static FDB entries on the
    /// planned VXLAN devices.
    async fn sync_fdb(
        &mut self,
        plan: &Plan,
        vxlans: &BTreeMap<String, u32>,
    ) -> Result<(), DataplaneError> {
        let by_index: BTreeMap<u32, &String> = vxlans.iter().map(|(n, i)| (*i, n)).collect();
        let request = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge);
        let messages = collect_bounded(request.execute(), "FDB entries").await?;
        let mut existing: BTreeMap<(String, [u8; 6]), (IpAddr, NeighbourMessage)> = BTreeMap::new();
        for message in messages {
            let Some(vxlan) = by_index.get(&message.header.ifindex) else {
                continue;
            };
            let (Some(mac), Some(dst)) = (neighbour_mac(&message), neighbour_ip(&message)) else {
                continue;
            };
            existing.insert(((*vxlan).clone(), mac), (dst, message));
        }
        for (key, (dst, message)) in &existing {
            if plan.fdb.get(key) != Some(dst) {
                self.handle
                    .neighbours()
                    .del(message.clone())
                    .execute()
                    .await
                    .map_err(DataplaneError::netlink(format!(
                        "delete FDB entry on {}",
                        key.0
                    )))?;
                self.n_changes += 1;
            }
        }
        for ((vxlan, mac), dst) in &plan.fdb {
            let Some(index) = vxlans.get(vxlan) else {
                continue;
            };
            if existing.get(&(vxlan.clone(), *mac)).map(|e| e.0) == Some(*dst) {
                continue;
            }
            self.add_fdb(vxlan, *index, mac, *dst).await?;
        }
        Ok(())
    }

    /// Adds missing and removes unplanned static neighbour entries on the
    /// planned VXLAN devices (the devices' proxy answers ARP/ND from them).
    async fn sync_neighbours(
        &mut self,
        plan: &Plan,
        vxlans: &BTreeMap<String, u32>,
    ) -> Result<(), DataplaneError> {
        let by_index: BTreeMap<u32, &String> = vxlans.iter().map(|(n, i)| (*i, n)).collect();
        let mut existing: BTreeMap<(String, IpAddr), ([u8; 6], NeighbourMessage)> = BTreeMap::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let request = self.handle.neighbours().get().set_address_family(family);
            for message in collect_bounded(request.execute(), "neighbours").await? {
                let Some(vxlan) = by_index.get(&message.header.ifindex) else {
                    continue;
                };
                if message.header.state != NeighbourState::Permanent {
                    continue;
                }
                let (Some(ip), Some(mac)) = (neighbour_ip(&message), neighbour_mac(&message))
                else {
                    continue;
                };
                existing.insert(((*vxlan).clone(), ip), (mac, message));
            }
        }
        for (key, (mac, message)) in &existing {
            if plan.neighbours.get(key) != Some(mac) {
                self.handle
                    .neighbours()
                    .del(message.clone())
                    .execute()
                    .await
                    .map_err(DataplaneError::netlink(format!(
                        "delete neighbour on {}",
                        key.0
                    )))?;
                self.n_changes += 1;
            }
        }
        for ((vxlan, ip), mac) in &plan.neighbours {
            let Some(index) = vxlans.get(vxlan) else {
                continue;
            };
            if existing.get(&(vxlan.clone(), *ip)).map(|e| e.0) == Some(*mac) {
                continue;
            }
            self.add_neighbour(vxlan, *index, *ip, mac).await?;
        }
        Ok(())
    }
}

/// Inside a port's namespace: loopback up, the far end's MAC, MTU,
/// addresses and default routes as planned, and up. Returns the number of
/// changes.
async fn configure_inside(handle: &Handle, port: &PortPlan) -> Result<u64, DataplaneError> {
    let mut n_changes = 0;
    let lo = link_named(handle, "lo").await?;
    if !lo.up {
        set_link(
            handle,
            LinkUnspec::new_with_index(lo.index).up().build(),
            "lo",
        )
        .await?;
        n_changes += 1;
    }
    let (index, changed) =
        sync_link(handle, &port.peer, port.mac, port.mtu, &port.addresses).await?;
    n_changes += changed;
    n_changes += sync_default_routes(handle, index, &port.gateways).await?;
    Ok(n_changes)
}

/// Makes link `name` (inside a namespace) have MAC `mac`, MTU `mtu`,
/// exactly `addresses` (besides IPv6 link-local ones) and be up. Returns
/// its index and the number of changes.
async fn sync_link(
    handle: &Handle,
    name: &str,
    mac: [u8; 6],
    mtu: u32,
    addresses: &[IpNet],
) -> Result<(u32, u64), DataplaneError> {
    let mut n_changes = 0;
    let link = link_named(handle, name).await?;
    if link.mac != mac || link.mtu != mtu {
        let down = LinkUnspec::new_with_index(link.index).down().build();
        set_link(handle, down, name).await?;
        let message = LinkUnspec::new_with_index(link.index)
            .address(mac.to_vec())
            .mtu(mtu)
            .build();
        set_link(handle, message, name).await?;
        n_changes += 1;
    }
    // Addresses (IPv6 link-local ones are the kernel's).
    let request = handle.address().get().set_link_index_filter(link.index);
    let mut present: BTreeMap<IpNet, AddressMessage> = BTreeMap::new();
    for message in collect_bounded(request.execute(), "addresses").await? {
        if let Some(net) = address_of(&message) {
            present.insert(net, message);
        }
    }
    for (net, message) in &present {
        let link_local =
            matches!(net.addr(), IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
        if !link_local && !addresses.contains(net) {
            handle
                .address()
                .del(message.clone())
                .execute()
                .await
                .map_err(DataplaneError::netlink(format!("delete address {net}")))?;
            n_changes += 1;
        }
    }
    for net in addresses {
        if !present.contains_key(net) {
            handle
                .address()
                .add(link.index, net.addr(), net.prefix_len())
                .execute()
                .await
                .map_err(DataplaneError::netlink(format!("add address {net}")))?;
            n_changes += 1;
        }
    }
    if !link.up || n_changes > 0 {
        let up = LinkUnspec::new_with_index(link.index).up().build();
        set_link(handle, up, name).await?;
    }
    Ok((link.index, n_changes))
}

/// The sysctls of a router namespace: forwarding on, and ARP answered
/// only on the interface that holds the address asked for (every
/// interface of a copy is on one bridge, so without it each would answer
/// for every gateway).
const ROUTER_SYSCTLS: [(&str, &str); 3] = [
    ("/proc/sys/net/ipv4/ip_forward", "1"),
    ("/proc/sys/net/ipv4/conf/all/arp_ignore", "1"),
    ("/proc/sys/net/ipv6/conf/all/forwarding", "1"),
];

/// Inside a router namespace: sysctls, loopback up, each interface's MAC,
/// MTU, gateway address and up, and the static routes as planned. Returns
/// the number of changes.
async fn configure_router(handle: &Handle, router: &RouterPlan) -> Result<u64, DataplaneError> {
    let mut n_changes = 0;
    for (path, value) in ROUTER_SYSCTLS {
        // This thread is in the router's namespace: /proc/sys/net is its.
        let current = std::fs::read_to_string(path).unwrap_or_default();
        if current.trim() == value {
            continue;
        }
        if let Err(e) = std::fs::write(path, value) {
            if path.contains("ipv6") && e.kind() == std::io::ErrorKind::NotFound {
                continue; // a kernel without IPv6
            }
            return Err(DataplaneError::Namespace {
                name: router.netns.clone(),
                reason: format!("write {path}: {e}"),
            });
        }
        n_changes += 1;
    }
    let lo = link_named(handle, "lo").await?;
    if !lo.up {
        set_link(
            handle,
            LinkUnspec::new_with_index(lo.index).up().build(),
            "lo",
        )
        .await?;
        n_changes += 1;
    }
    for interface in &router.interfaces {
        let (_, changed) = sync_link(
            handle,
            &interface.peer,
            interface.mac,
            router.mtu,
            &[interface.address],
        )
        .await?;
        n_changes += changed;
    }
    n_changes += sync_static_routes(handle, &router.routes).await?;
    Ok(n_changes)
}

/// Makes the static routes (protocol `static`) of the main table be
/// exactly `routes`.
async fn sync_static_routes(
    handle: &Handle,
    routes: &[(IpNet, IpAddr)],
) -> Result<u64, DataplaneError> {
    let mut n_changes = 0;
    let queries = [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ];
    let mut present: Vec<((IpNet, Option<IpAddr>), RouteMessage)> = Vec::new();
    for query in queries {
        for route in collect_bounded(handle.route().get(query).execute(), "routes").await? {
            if route.header.table != RouteHeader::RT_TABLE_MAIN
                || route.header.protocol != RouteProtocol::Static
            {
                continue;
            }
            if let Some(destination) = route_destination(&route) {
                present.push(((destination, route_gateway(&route)), route));
            }
        }
    }
    for ((destination, gateway), route) in &present {
        if !gateway.is_some_and(|g| routes.contains(&(*destination, g))) {
            handle
                .route()
                .del(route.clone())
                .execute()
                .await
                .map_err(DataplaneError::netlink(format!(
                    "delete route to {destination}"
                )))?;
            n_changes += 1;
        }
    }
    for (destination, nexthop) in routes {
        if present
            .iter()
            .any(|(k, _)| *k == (*destination, Some(*nexthop)))
        {
            continue;
        }
        let what = format!("add route to {destination} via {nexthop}");
        let route = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(destination.addr(), destination.prefix_len())
            .and_then(|b| b.gateway(*nexthop))
            .map_err(|e| DataplaneError::Namespace {
                name: what.clone(),
                reason: e.to_string(),
            })?
            .protocol(RouteProtocol::Static)
            .build();
        handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(DataplaneError::netlink(what))?;
        n_changes += 1;
    }
    Ok(n_changes)
}

/// Makes the default routes of the main table be exactly one via each of
/// `gateways` (one per family) out of link `index`.
async fn sync_default_routes(
    handle: &Handle,
    index: u32,
    gateways: &[IpAddr],
) -> Result<u64, DataplaneError> {
    let mut n_changes = 0;
    let queries = [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ];
    let mut present: Vec<(Option<IpAddr>, RouteMessage)> = Vec::new();
    for query in queries {
        for route in collect_bounded(handle.route().get(query).execute(), "routes").await? {
            if route.header.destination_prefix_length == 0
                && route.header.table == RouteHeader::RT_TABLE_MAIN
            {
                present.push((route_gateway(&route), route));
            }
        }
    }
    for (gateway, route) in &present {
        if !gateway.is_some_and(|g| gateways.contains(&g)) {
            handle
                .route()
                .del(route.clone())
                .execute()
                .await
                .map_err(DataplaneError::netlink("delete default route"))?;
            n_changes += 1;
        }
    }
    for gateway in gateways {
        if present.iter().any(|(g, _)| *g == Some(*gateway)) {
            continue;
        }
        let route = match gateway {
            IpAddr::V4(v4) => RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(*v4)
                .output_interface(index)
                .build(),
            IpAddr::V6(v6) => RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(*v6)
                .output_interface(index)
                .build(),
        };
        handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(DataplaneError::netlink(format!(
                "add default route via {gateway}"
            )))?;
        n_changes += 1;
    }
    Ok(n_changes)
}

async fn set_link(handle: &Handle, message: LinkMessage, name: &str) -> Result<(), DataplaneError> {
    handle
        .link()
        .set(message)
        .execute()
        .await
        .map_err(DataplaneError::netlink(format!("update {name}")))
}

async fn link_named(handle: &Handle, name: &str) -> Result<Link, DataplaneError> {
    let message = handle
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .map_err(DataplaneError::netlink(format!("read {name}")))?
        .ok_or_else(|| DataplaneError::Missing(format!("link {name}")))?;
    Ok(read_link(&message).1)
}

/// Every item of a dump, or an error past `DUMP_OBJECTS_MAX`.
async fn collect_bounded<T>(
    stream: impl Stream<Item = Result<T, rtnetlink::Error>>,
    what: &'static str,
) -> Result<Vec<T>, DataplaneError> {
    futures::pin_mut!(stream);
    let mut items = Vec::new();
    while let Some(item) = stream
        .try_next()
        .await
        .map_err(DataplaneError::netlink(format!("read {what}")))?
    {
        if items.len() >= limits::DUMP_OBJECTS_MAX {
            return Err(DataplaneError::DumpTooLong {
                what,
                max: limits::DUMP_OBJECTS_MAX,
            });
        }
        items.push(item);
    }
    Ok(items)
}

fn read_link(message: &LinkMessage) -> (String, Link) {
    let mut name = String::new();
    let mut link = Link {
        index: message.header.index,
        kind: None,
        mtu: 0,
        up: message.header.flags.contains(LinkFlags::Up),
        controller: None,
        mac: Vec::new(),
        vxlan: Vec::new(),
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name.clone_from(n),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Controller(index) => link.controller = Some(*index),
            LinkAttribute::Address(mac) => link.mac.clone_from(mac),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(kind) => link.kind = Some(kind.clone()),
                        LinkInfo::Data(InfoData::Vxlan(data)) => link.vxlan.clone_from(data),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (name, link)
}

/// Whether an existing VXLAN device has the identity `vpc` plans (what
/// cannot be changed in place).
fn vxlan_matches(link: &Link, vpc: &VpcPlan) -> bool {
    if link.kind != Some(InfoKind::Vxlan) {
        return false;
    }
    let local = match vpc.local {
        IpAddr::V4(v4) => InfoVxlan::Local(v4),
        IpAddr::V6(v6) => InfoVxlan::Local6(v6),
    };
    [
        InfoVxlan::Id(vpc.vni),
        local,
        InfoVxlan::Port(limits::VXLAN_PORT),
        InfoVxlan::Learning(false),
        InfoVxlan::Proxy(true),
    ]
    .iter()
    .all(|wanted| link.vxlan.contains(wanted))
}

fn neighbour_mac(message: &NeighbourMessage) -> Option<[u8; 6]> {
    message.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(mac) => <[u8; 6]>::try_from(mac.as_slice()).ok(),
        _ => None,
    })
}

fn neighbour_ip(message: &NeighbourMessage) -> Option<IpAddr> {
    message.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        // FDB entries (family AF_BRIDGE) carry their VTEP as raw bytes.
        NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(bytes.as_slice())
                .ok()
                .map(IpAddr::from),
            _ => None,
        },
        _ => None,
    })
}

fn address_of(message: &AddressMessage) -> Option<IpNet> {
    let ip = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    })?;
    IpNet::new(ip, message.header.prefix_len).ok()
}

fn route_destination(route: &RouteMessage) -> Option<IpNet> {
    let length = route.header.destination_prefix_length;
    let address = route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
        RouteAttribute::Destination(RouteAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    });
    match address {
        Some(address) => IpNet::new(address, length).ok(),
        None if length == 0 => {
            let any = match route.header.address_family {
                AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            };
            IpNet::new(any, 0).ok()
        }
        None => None,
    }
}

fn route_gateway(route: &RouteMessage) -> Option<IpAddr> {
    route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
        RouteAttribute::Gateway(RouteAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    })
}

/// The errno of a netlink error the kernel sent, if it is one.
fn error_code(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(message) => Some(-message.raw_code()),
        _ => None,
    }
}

/// Every planned port, failed with `reason`.
fn all_ports(plan: &Plan, reason: &str) -> BTreeMap<Id, String> {
    plan.ports
        .values()
        .map(|p| (p.port_id, reason.to_string()))
        .collect()
}
