//! Port commands: IPAM and MAC allocation, batch create (all or nothing), update,
//! status and delete, and the candidate (host, key) sets their diffs are computed on.
//!
//! A batch is planned first against the state plus an overlay of what earlier
//! entries of the same batch took; only a fully valid plan is committed.

use crate::apply::Ctx;
use crate::command::{
    FixedIpRequest, Kind, Pool, PortSecurityNeed, PortSpecV5, PortUpdateV5, Rejection, Reply,
};
use crate::goal::DiffCollector;
use crate::ids::{HostId, Id, ProjectId};
use crate::limits::{
    BATCH_PORTS_MAX, MAC_PREFIX, MAC_SUFFIXES_MAX, PORT_ADDRESS_PAIRS_MAX, PORT_FIXED_IPS_MAX,
    PORT_SECURITY_GROUPS_MAX,
};
use crate::model::{
    AllowedAddressPair, FixedIp, HostStatus, Mac, PairAddress, Port, PortStatus, ResourceKind,
    SecurityGroup, Subnet, DEVICE_OWNER_ROUTER_INTERFACE,
};
use crate::state::{int_to_ip, ip_to_int, State};
use crate::validate;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What earlier entries of a batch have claimed, on top of the state.
#[derive(Default)]
struct Overlay {
    ids: BTreeSet<Id>,
    ips: BTreeSet<(Id, u128)>,
    macs: BTreeSet<(Id, Mac)>,
    ip_cursors: BTreeMap<Id, u128>,
    mac_cursor: Option<u32>,
    ports_per_project: BTreeMap<ProjectId, u64>,
    /// Default groups to create first: project -> group ID.
    default_sgs: BTreeMap<ProjectId, Id>,
    /// Addresses a port the same command deletes holds: free to ask for by
    /// address (a router's gateway port replaced by one keeping its address).
    released: BTreeSet<(Id, u128)>,
}

/// A checked port create (nothing changed yet): [`State::plan_ports`]
/// makes it, [`State::commit_ports`] stores it and cannot fail.
#[derive(Debug)]
pub(crate) struct PortsPlan {
    ports: Vec<Port>,
    /// Default groups to create first: project, group ID, its rules' IDs.
    default_sgs: Vec<(ProjectId, Id, [Id; 4])>,
    ip_cursors: BTreeMap<Id, u128>,
    mac_cursor: Option<u32>,
}

/// Which binding hosts a command accepts: commands before format 6 refuse a
/// host the controller does not know (and must keep doing so when their log
/// entries are applied again); format-6 commands accept it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostRule {
    /// Only registered hosts (`NotFound` otherwise).
    Registered,
    /// Any well-formed host name; the port binds when the host registers.
    Any,
}

impl State {
    /// Creates one port: a batch of one, rejected as itself.
    pub(crate) fn create_port(
        &mut self,
        ctx: Ctx,
        spec: PortSpecV5,
        hosts: HostRule,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        self.create_ports(ctx, std::slice::from_ref(&spec), hosts, d)
            .map(|mut ports| match ports.pop() {
                Some(port) => Reply::Port(port),
                None => Reply::Ports(Vec::new()),
            })
            .map_err(|e| match e {
                Rejection::BatchEntry { cause, .. } => *cause,
                other => other,
            })
    }

    pub(crate) fn create_ports(
        &mut self,
        ctx: Ctx,
        specs: &[PortSpecV5],
        hosts: HostRule,
        d: &mut DiffCollector,
    ) -> Result<Vec<Arc<Port>>, Rejection> {
        let plan = self.plan_ports(ctx, specs, hosts, BTreeSet::new())?;
        Ok(self.commit_ports(ctx, plan, d))
    }

    /// Checks a batch of port creates against the state (nothing is
    /// changed); `released` are addresses of a port the caller deletes
    /// before it commits the plan.
    pub(crate) fn plan_ports(
        &self,
        ctx: Ctx,
        specs: &[PortSpecV5],
        hosts: HostRule,
        released: BTreeSet<(Id, u128)>,
    ) -> Result<PortsPlan, Rejection> {
        if specs.len() > BATCH_PORTS_MAX {
            return Err(Rejection::BatchTooLarge {
                len: specs.len(),
                max: BATCH_PORTS_MAX,
            });
        }
        let mut overlay = Overlay {
            released,
            ..Overlay::default()
        };
        let mut planned = Vec::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            let port = self
                .plan_port(ctx, spec, hosts, &mut overlay)
                .map_err(|cause| Rejection::BatchEntry {
                    index,
                    cause: Box::new(cause),
                })?;
            planned.push(port);
        }
        // The default groups' rule IDs, derived in the order they always were
        // (project order, four each), checked before anything is committed.
        let mut default_sgs = Vec::with_capacity(overlay.default_sgs.len());
        for (project, sg_id) in std::mem::take(&mut overlay.default_sgs) {
            let mut rule_ids = [Id(0); 4];
            for slot in &mut rule_ids {
                *slot = ctx.derive_id();
            }
            self.check_derived_ids_free(sg_id, &rule_ids)?;
            default_sgs.push((project, sg_id, rule_ids));
        }
        Ok(PortsPlan {
            ports: planned,
            default_sgs,
            ip_cursors: overlay.ip_cursors,
            mac_cursor: overlay.mac_cursor,
        })
    }

    /// Stores a checked port create; returns its ports, shared with the
    /// table (the reply is the stored row, not a copy).
    pub(crate) fn commit_ports(
        &mut self,
        ctx: Ctx,
        plan: PortsPlan,
        d: &mut DiffCollector,
    ) -> Vec<Arc<Port>> {
        let PortsPlan {
            ports: planned,
            default_sgs,
            ip_cursors,
            mac_cursor,
        } = plan;
        for (project, sg_id, rule_ids) in default_sgs {
            let sg = SecurityGroup {
                id: sg_id,
                name: "default".to_string(),
                description: "Default security group".to_string(),
                is_default: true,
                meta: ctx.meta(&project),
            };
            self.insert_security_group(ctx, sg, rule_ids, d);
        }
        self.commit_cursors(ip_cursors, mac_cursor, None);
        let mut stored = Vec::with_capacity(planned.len());
        for port in planned {
            let port = Arc::new(port);
            // Its addresses being free is asserted where they are indexed.
            let replaced = self.commit_port(port.id, Some(Arc::clone(&port)), d);
            assert!(
                replaced.is_none(),
                "port {} is free when its plan commits (its caller deleted the port that held it)",
                port.id
            );
            stored.push(port);
        }
        stored
    }

    fn plan_port(
        &self,
        ctx: Ctx,
        spec: &PortSpecV5,
        hosts: HostRule,
        ov: &mut Overlay,
    ) -> Result<Port, Rejection> {
        crate::ids::validate_client_id("id", spec.id)?;
        validate::ident("project_id", &spec.project_id)?;
        validate::name("name", &spec.name)?;
        validate::name("device_id", &spec.device_id)?;
        validate::name("device_owner", &spec.device_owner)?;
        if self.t.ports().contains_key(&spec.id) || ov.ids.contains(&spec.id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::Port,
                id: spec.id.to_string(),
            });
        }
        let net = spec.network_id;
        let vpc = self
            .t
            .vpcs()
            .get(&net)
            .ok_or_else(|| Rejection::not_found(Kind::Vpc, net))?;
        let port_security_enabled = spec
            .port_security_enabled
            .unwrap_or(vpc.port_security_enabled);
        let pending = ov
            .ports_per_project
            .get(&spec.project_id)
            .copied()
            .unwrap_or(0);
        self.check_quota(&spec.project_id, ResourceKind::Port, pending + 1)?;
        if let Some(host) = &spec.binding_host {
            self.check_binding(host, hosts)?;
        }
        let may_take_gateway = spec.device_owner == DEVICE_OWNER_ROUTER_INTERFACE;
        let security_groups = match &spec.security_groups {
            Some(groups) => self.check_groups(&spec.project_id, groups)?,
            None if port_security_enabled => vec![self.default_group(ctx, &spec.project_id, ov)],
            None => Vec::new(),
        };
        let allowed_address_pairs = check_pairs(&spec.allowed_address_pairs)?;
        check_port_security(
            spec.id,
            port_security_enabled,
            &security_groups,
            &allowed_address_pairs,
        )?;
        let mac_address = match spec.mac_address {
            Some(mac) => {
                check_mac(&mac)?;
                if self.ix.mac_used().contains(net, &mac) || ov.macs.contains(&(net, mac)) {
                    return Err(Rejection::MacInUse {
                        mac: mac.to_string(),
                        network_id: net,
                    });
                }
                mac
            }
            None => self.allocate_mac(net, ov)?,
        };
        let fixed_ips = self.plan_fixed_ips(net, &spec.fixed_ips, may_take_gateway, ov)?;
        // Claim everything in the overlay only once the entry is fully valid.
        ov.ids.insert(spec.id);
        ov.macs.insert((net, mac_address));
        for ip in &fixed_ips {
            ov.ips.insert((ip.subnet_id, ip_to_int(ip.ip_address)));
        }
        match ov.ports_per_project.get_mut(spec.project_id.as_str()) {
            Some(n) => *n += 1,
            None => {
                ov.ports_per_project.insert(spec.project_id.clone(), 1);
            }
        }
        Ok(Port {
            id: spec.id,
            name: spec.name.as_str().into(),
            network_id: net,
            fixed_ips: fixed_ips.into(),
            mac_address,
            binding_host: spec.binding_host.as_deref().map(Into::into),
            device_id: spec.device_id.as_str().into(),
            device_owner: spec.device_owner.as_str().into(),
            security_groups: security_groups.into(),
            allowed_address_pairs: allowed_address_pairs.into(),
            admin_state_up: spec.admin_state_up,
            port_security_enabled,
            status: PortStatus::Down,
            meta: ctx.meta(&spec.project_id),
        })
    }

    /// A port may be bound to a host the controller does not know yet (Nova
    /// binds before the host's agent first connects): it stays down until
    /// the host registers. A host in maintenance takes no new binding.
    fn check_binding(&self, host: &HostId, hosts: HostRule) -> Result<(), Rejection> {
        let Some(h) = self.t.hosts().get(host) else {
            return match hosts {
                HostRule::Registered => Err(Rejection::not_found(Kind::Host, host)),
                HostRule::Any => validate::ident("binding_host", host),
            };
        };
        if h.status == HostStatus::Maintenance {
            return Err(Rejection::invalid(
                "binding_host",
                format!("host {host} is in maintenance"),
            ));
        }
        Ok(())
    }

    fn check_groups(&self, project: &str, groups: &[Id]) -> Result<Vec<Id>, Rejection> {
        if groups.len() > PORT_SECURITY_GROUPS_MAX {
            return Err(Rejection::invalid(
                "security_groups",
                format!("more than {PORT_SECURITY_GROUPS_MAX} groups"),
            ));
        }
        for g in groups {
            let sg = self
                .t
                .security_groups()
                .get(g)
                .ok_or_else(|| Rejection::not_found(Kind::SecurityGroup, g))?;
            if sg.meta.project_id != project {
                return Err(Rejection::invalid(
                    "security_groups",
                    format!("group {g} belongs to another project"),
                ));
            }
        }
        let mut sorted = groups.to_vec();
        sorted.sort();
        sorted.dedup();
        Ok(sorted)
    }

    /// Refuses a default group whose derived IDs are taken. Clients cannot
    /// choose derived IDs, so only a state written before they were refused
    /// can hold one; overwriting it would corrupt the indexes.
    fn check_derived_ids_free(&self, sg_id: Id, rule_ids: &[Id; 4]) -> Result<(), Rejection> {
        if self.t.security_groups().contains_key(&sg_id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::SecurityGroup,
                id: sg_id.to_string(),
            });
        }
        if let Some(taken) = rule_ids.iter().find(|id| self.t.rules().contains_key(id)) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::SecurityGroupRule,
                id: taken.to_string(),
            });
        }
        Ok(())
    }

    /// The project's default group, planning its creation if it does not exist.
    fn default_group(&self, ctx: Ctx, project: &ProjectId, ov: &mut Overlay) -> Id {
        if let Some(id) = self.ix.default_sg().get(project) {
            return *id;
        }
        *ov.default_sgs
            .entry(project.clone())
            .or_insert_with(|| ctx.derive_id())
    }

    fn allocate_mac(&self, net: Id, ov: &mut Overlay) -> Result<Mac, Rejection> {
        let mut cursor = ov.mac_cursor.unwrap_or(self.t.mac_cursor()) % MAC_SUFFIXES_MAX;
        for _ in 0..MAC_SUFFIXES_MAX {
            let b = cursor.to_be_bytes();
            let mac = Mac([
                MAC_PREFIX[0],
                MAC_PREFIX[1],
                MAC_PREFIX[2],
                b[1],
                b[2],
                b[3],
            ]);
            cursor = (cursor + 1) % MAC_SUFFIXES_MAX;
            if !self.ix.mac_used().contains(net, &mac) && !ov.macs.contains(&(net, mac)) {
                ov.mac_cursor = Some(cursor);
                return Ok(mac);
            }
        }
        Err(Rejection::Exhausted {
            pool: Pool::MacAddresses(net),
        })
    }

    fn plan_fixed_ips(
        &self,
        net: Id,
        requests: &[FixedIpRequest],
        may_take_gateway: bool,
        ov: &mut Overlay,
    ) -> Result<Vec<FixedIp>, Rejection> {
        if requests.len() > PORT_FIXED_IPS_MAX {
            return Err(Rejection::invalid(
                "fixed_ips",
                format!("more than {PORT_FIXED_IPS_MAX} addresses"),
            ));
        }
        let mut out: Vec<FixedIp> = Vec::new();
        let mut taken: BTreeSet<(Id, u128)> = BTreeSet::new();
        if requests.is_empty() {
            let mut any_subnet = false;
            for subnet in self.subnets_of(net) {
                any_subnet = true;
                if let Some(n) = self.allocate_ip(subnet, ov, &taken) {
                    out.push(FixedIp {
                        subnet_id: subnet.id,
                        ip_address: int_to_ip(subnet.cidr.network().is_ipv4(), n),
                    });
                    break;
                }
            }
            if any_subnet && out.is_empty() {
                return Err(Rejection::Exhausted {
                    pool: Pool::Network(net),
                });
            }
            return Ok(out);
        }
        for req in requests {
            let subnet = match (req.subnet_id, req.ip_address) {
                (Some(id), _) => {
                    let s = self
                        .t
                        .subnets()
                        .get(&id)
                        .ok_or_else(|| Rejection::not_found(Kind::Subnet, id))?;
                    if s.network_id != net {
                        return Err(Rejection::invalid(
                            "fixed_ips",
                            format!("subnet {id} is not in network {net}"),
                        ));
                    }
                    s
                }
                (None, Some(ip)) => self
                    .subnets_of(net)
                    .find(|s| s.cidr.contains(&ip))
                    .ok_or_else(|| {
                        Rejection::invalid(
                            "fixed_ips",
                            format!("no subnet of network {net} contains {ip}"),
                        )
                    })?,
                (None, None) => {
                    return Err(Rejection::invalid(
                        "fixed_ips",
                        "each entry needs a subnet_id or an ip_address",
                    ))
                }
            };
            let n = match req.ip_address {
                Some(ip) => {
                    if !validate::same_family(&ip, &subnet.cidr) || !subnet.cidr.contains(&ip) {
                        return Err(Rejection::IpOutsideSubnet {
                            ip,
                            subnet_id: subnet.id,
                        });
                    }
                    if validate::is_reserved(&subnet.cidr, &ip) {
                        return Err(Rejection::invalid(
                            "fixed_ips",
                            format!("{ip} is the network or broadcast address"),
                        ));
                    }
                    let n = ip_to_int(ip);
                    let key = (subnet.id, n);
                    if (subnet.gateway_ip == Some(ip) && !may_take_gateway)
                        || (self.ix.ip_used().contains(subnet.id, &n)
                            && !ov.released.contains(&key))
                        || ov.ips.contains(&key)
                        || taken.contains(&key)
                    {
                        return Err(Rejection::IpInUse {
                            ip,
                            subnet_id: subnet.id,
                        });
                    }
                    n
                }
                None => self
                    .allocate_ip(subnet, ov, &taken)
                    .ok_or(Rejection::Exhausted {
                        pool: Pool::Subnet(subnet.id),
                    })?,
            };
            taken.insert((subnet.id, n));
            out.push(FixedIp {
                subnet_id: subnet.id,
                ip_address: int_to_ip(subnet.cidr.network().is_ipv4(), n),
            });
        }
        Ok(out)
    }

    /// The first free pool address at or after the subnet's cursor, wrapping once.
    /// One address from the subnet's pools, and the subnet's cursor after it;
    /// nothing is claimed until the caller stores both.
    pub(crate) fn plan_single_ip(&self, subnet: &Subnet) -> Option<(u128, u128)> {
        let mut ov = Overlay::default();
        let n = self.allocate_ip(subnet, &mut ov, &BTreeSet::new())?;
        let cursor = ov
            .ip_cursors
            .get(&subnet.id)
            .copied()
            .unwrap_or(n.saturating_add(1));
        Some((n, cursor))
    }

    fn allocate_ip(
        &self,
        subnet: &Subnet,
        ov: &mut Overlay,
        taken: &BTreeSet<(Id, u128)>,
    ) -> Option<u128> {
        let id = subnet.id;
        let ranges = || {
            subnet
                .allocation_pools
                .iter()
                .map(|p| (ip_to_int(p.start), ip_to_int(p.end)))
        };
        let first = ranges().next()?.0;
        let cursor = ov
            .ip_cursors
            .get(&id)
            .or_else(|| self.t.ip_cursors().get(&id))
            .copied()
            .unwrap_or(first);
        let is_free = |n: u128| !ov.ips.contains(&(id, n)) && !taken.contains(&(id, n));
        let found = ranges()
            .filter(|(_, hi)| *hi >= cursor)
            .find_map(|(lo, hi)| self.first_free(id, lo.max(cursor), hi, &is_free))
            .or_else(|| {
                ranges()
                    .filter(|(lo, _)| *lo < cursor)
                    .find_map(|(lo, hi)| {
                        self.first_free(id, lo, hi.min(cursor.saturating_sub(1)), &is_free)
                    })
            })?;
        ov.ip_cursors.insert(id, found.saturating_add(1));
        Some(found)
    }

    /// Skips runs of used addresses through the index; each address at most once.
    fn first_free(
        &self,
        subnet: Id,
        lo: u128,
        hi: u128,
        is_free: &dyn Fn(u128) -> bool,
    ) -> Option<u128> {
        let mut cand = lo;
        while cand <= hi {
            for (used, _) in self.ix.ip_used().range(subnet, cand..=hi) {
                if *used != cand {
                    break;
                }
                cand = cand.checked_add(1)?;
            }
            if cand > hi {
                return None;
            }
            if is_free(cand) {
                return Some(cand);
            }
            cand = cand.checked_add(1)?;
        }
        None
    }

    pub(crate) fn update_port(
        &mut self,
        ctx: Ctx,
        id: Id,
        u: &PortUpdateV5,
        expected: Option<u64>,
        hosts: HostRule,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let old = self
            .t
            .ports()
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Port, id))?;
        validate::revision(expected, old.meta.revision)?;
        if let Some(router_id) = self.router_of_port(old) {
            let device_changes = u.device_id.as_deref().is_some_and(|v| v != &*old.device_id)
                || u.device_owner
                    .as_deref()
                    .is_some_and(|v| v != &*old.device_owner);
            if device_changes {
                return Err(Rejection::RouterInterfacePort {
                    port_id: id,
                    router_id,
                });
            }
        }
        let mut new = old.clone();
        if let Some(name) = &u.name {
            validate::name("name", name)?;
            new.name = name.as_str().into();
        }
        if let Some(device_id) = &u.device_id {
            validate::name("device_id", device_id)?;
            new.device_id = device_id.as_str().into();
        }
        if let Some(owner) = &u.device_owner {
            validate::name("device_owner", owner)?;
            new.device_owner = owner.as_str().into();
        }
        if let Some(host) = &u.binding_host {
            if let Some(h) = host {
                if Some(h.as_str()) != old.binding_host.as_deref() {
                    self.check_binding(h, hosts)?;
                }
            }
            if host.as_deref() != old.binding_host.as_deref() {
                // A moved port must be programmed again on its new host.
                new.status = PortStatus::Down;
            }
            new.binding_host = host.as_deref().map(Into::into);
        }
        if let Some(groups) = &u.security_groups {
            new.security_groups = self.check_groups(&old.meta.project_id, groups)?.into();
        }
        if let Some(pairs) = &u.allowed_address_pairs {
            new.allowed_address_pairs = check_pairs(pairs)?.into();
        }
        if let Some(up) = u.admin_state_up {
            new.admin_state_up = up;
        }
        if let Some(enabled) = u.port_security_enabled {
            new.port_security_enabled = enabled;
        }
        check_port_security(
            id,
            new.port_security_enabled,
            &new.security_groups,
            &new.allowed_address_pairs,
        )?;
        ctx.touch(&mut new.meta);
        let new = Arc::new(new);
        self.commit_port(id, Some(Arc::clone(&new)), d);
        Ok(Reply::Port(new))
    }

    pub(crate) fn set_port_status(
        &mut self,
        ctx: Ctx,
        id: Id,
        status: &PortStatus,
        (if_bound_to, if_revision_at_most): (Option<&str>, Option<u64>),
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let old = self
            .t
            .ports()
            .shared(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Port, id))?;
        if let PortStatus::Error(reason) = status {
            validate::name("status", reason)?;
        }
        let moved = if_bound_to.is_some_and(|h| old.binding_host.as_deref() != Some(h));
        let changed = if_revision_at_most.is_some_and(|r| old.meta.revision > r);
        if old.status == *status || moved || changed {
            return Ok(Reply::Port(Arc::clone(old)));
        }
        let mut new = Port::clone(old);
        new.status = status.clone();
        ctx.touch(&mut new.meta);
        let new = Arc::new(new);
        self.commit_port(id, Some(Arc::clone(&new)), d);
        Ok(Reply::Port(new))
    }

    pub(crate) fn delete_port(
        &mut self,
        ctx: Ctx,
        id: Id,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let old = self
            .t
            .ports()
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Port, id))?;
        validate::revision(expected, old.meta.revision)?;
        if let Some(router_id) = self.router_of_port(old) {
            return Err(Rejection::RouterInterfacePort {
                port_id: id,
                router_id,
            });
        }
        // Like Neutron, deleting a port disassociates its floating IPs.
        for fip in self.fips_of_port(id) {
            self.set_fip_association(ctx, fip, None, d);
        }
        self.commit_port(id, None, d);
        Ok(Reply::Deleted)
    }
}

fn check_mac(mac: &Mac) -> Result<(), Rejection> {
    if mac.0 == [0; 6] || mac.0[0] & 1 == 1 {
        return Err(Rejection::invalid(
            "mac_address",
            format!("{mac} is not a unicast address"),
        ));
    }
    Ok(())
}

fn check_pairs(pairs: &[AllowedAddressPair]) -> Result<Vec<AllowedAddressPair>, Rejection> {
    if pairs.len() > PORT_ADDRESS_PAIRS_MAX {
        return Err(Rejection::invalid(
            "allowed_address_pairs",
            format!("more than {PORT_ADDRESS_PAIRS_MAX} pairs"),
        ));
    }
    for pair in pairs {
        if let PairAddress::Net(net) = &pair.ip_address {
            validate::canonical_cidr(net)?;
        }
        if let Some(mac) = &pair.mac_address {
            check_mac(mac)?;
        }
    }
    let mut sorted = pairs.to_vec();
    sorted.sort();
    sorted.dedup();
    Ok(sorted)
}

/// A port without port security has no security groups and no allowed
/// address pairs (Neutron refuses both with a 409).
fn check_port_security(
    port_id: Id,
    enabled: bool,
    security_groups: &[Id],
    pairs: &[AllowedAddressPair],
) -> Result<(), Rejection> {
    let need = if enabled {
        None
    } else if !security_groups.is_empty() {
        Some(PortSecurityNeed::SecurityGroups)
    } else if !pairs.is_empty() {
        Some(PortSecurityNeed::AllowedAddressPairs)
    } else {
        None
    };
    match need {
        Some(need) => Err(Rejection::PortSecurityRequired { port_id, need }),
        None => Ok(()),
    }
}
