//! Router commands: create, update, delete, and adding or removing interfaces.
//!
//! An interface added by a format-6 command is a port (device owner
//! `network:router_interface`, device the router) holding the interface's
//! address; removing the interface deletes it, and the port API may neither
//! delete it nor change its device while it is one.
//!
//! A router's external gateway (format 8) is a port on an external network
//! (device owner `network:router_gateway`, device the router) and an SNAT
//! flag, in the external table (`state/external.rs`). Setting one creates the
//! port, moving it to another network or address replaces the port (the old
//! port goes first, so with a format-9 command the new one may keep its
//! addresses), clearing it or deleting the router deletes the port. The gateway may not leave its
//! network, nor an interface its subnet, while floating IPs of that network
//! reach ports through them (Neutron's 409s).

use crate::apply::port::{HostRule, PortsPlan};
use crate::apply::Ctx;
use crate::command::{
    FixedIpRequest, GatewayRequest, InterfaceRef, InterfaceTarget, Kind, PortSpecV5, Rejection,
    Reply,
};
use crate::goal::DiffCollector;
use crate::ids::{validate_client_id, Id, ProjectId};
use crate::limits::{ROUTER_INTERFACES_MAX, ROUTER_ROUTES_MAX};
use crate::model::{
    FixedIp, ResourceKind, Route, Router, RouterGateway, RouterInterface, Subnet,
    DEVICE_OWNER_ROUTER_GATEWAY, DEVICE_OWNER_ROUTER_INTERFACE,
};
use crate::state::{ip_to_int, State};
use crate::validate;
use std::collections::BTreeSet;
use std::sync::Arc;

impl State {
    pub(crate) fn create_router(
        &mut self,
        ctx: Ctx,
        id: Id,
        project: &ProjectId,
        name: &str,
        routes: &[Route],
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let router = self.check_new_router(ctx, id, project, name, routes)?;
        self.commit_router(id, Some(router.clone()), d);
        Ok(Reply::Router(router))
    }

    /// The router a create would store, checked (nothing is changed).
    fn check_new_router(
        &self,
        ctx: Ctx,
        id: Id,
        project: &ProjectId,
        name: &str,
        routes: &[Route],
    ) -> Result<Router, Rejection> {
        validate_client_id("id", id)?;
        validate::ident("project_id", project)?;
        validate::name("name", name)?;
        if self.t.routers().contains_key(&id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::Router,
                id: id.to_string(),
            });
        }
        let routes = validate::routes("routes", routes, ROUTER_ROUTES_MAX)?;
        self.check_quota(project, ResourceKind::Router, 1)?;
        Ok(Router {
            id,
            name: name.to_string(),
            admin_state_up: true,
            interfaces: Vec::new(),
            routes,
            meta: ctx.meta(project),
        })
    }

    /// [`Command::CreateRouterV8`](crate::Command::CreateRouterV8): the
    /// router, then its gateway port and gateway.
    pub(crate) fn create_router_with_gateway(
        &mut self,
        ctx: Ctx,
        (id, project, name, routes): (Id, &ProjectId, &str, &[Route]),
        gateway: Option<&GatewayRequest>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let router = self.check_new_router(ctx, id, project, name, routes)?;
        let change = self.plan_gateway(ctx, &router, Some(gateway), HeldAddresses::Taken)?;
        // Checked: nothing below can fail.
        self.commit_router(id, Some(router.clone()), d);
        let gateway = self.commit_gateway_change(ctx, id, change, d);
        Ok(Reply::RouterGateway { router, gateway })
    }

    /// [`Command::UpdateRouterV8`](crate::Command::UpdateRouterV8) and
    /// [`Command::UpdateRouterV9`](crate::Command::UpdateRouterV9) (`held`
    /// tells which): the gateway, then the router's fields.
    #[allow(
        clippy::too_many_arguments,
        reason = "the command's fields, and which variant it is"
    )]
    pub(crate) fn update_router_with_gateway(
        &mut self,
        ctx: Ctx,
        (id, name, routes, admin_state_up): (Id, Option<&str>, Option<&[Route]>, Option<bool>),
        gateway: Option<Option<&GatewayRequest>>,
        expected: Option<u64>,
        held: HeldAddresses,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let router = self.check_router_update(ctx, id, (name, routes, admin_state_up), expected)?;
        let change = self.plan_gateway(ctx, &router, gateway, held)?;
        // Checked: nothing below can fail.
        let gateway = self.commit_gateway_change(ctx, id, change, d);
        self.commit_router(id, Some(router.clone()), d);
        Ok(Reply::RouterGateway { router, gateway })
    }

    /// What a gateway request (`None`: not asked; `Some(None)`: clear) does
    /// to `router`'s gateway, checked (nothing is changed).
    fn plan_gateway(
        &self,
        ctx: Ctx,
        router: &Router,
        request: Option<Option<&GatewayRequest>>,
        held: HeldAddresses,
    ) -> Result<GatewayChange, Rejection> {
        let current = self.router_gateway(router.id);
        let Some(request) = request else {
            return Ok(GatewayChange::Keep);
        };
        let Some(request) = request else {
            return match current {
                None => Ok(GatewayChange::Keep),
                Some(current) => {
                    self.check_gateway_unused(router.id, current.network_id)?;
                    Ok(GatewayChange::Clear)
                }
            };
        };
        let net = request.network_id;
        if self.vpc(&net).is_none() {
            return Err(Rejection::not_found(Kind::Vpc, net));
        }
        if !self.network_is_external(net) {
            return Err(Rejection::invalid(
                "external_gateway_info",
                format!("network {net} is not an external network"),
            ));
        }
        if let Some(current) = current {
            if current.network_id == net {
                let wanted: Vec<_> = request.fixed_ips.iter().map(|f| f.ip_address).collect();
                let held: Vec<_> = current
                    .external_fixed_ips
                    .iter()
                    .map(|f| Some(f.ip_address))
                    .collect();
                if wanted.is_empty() || wanted == held {
                    return Ok(GatewayChange::Snat(request.enable_snat));
                }
            } else {
                self.check_gateway_unused(router.id, current.network_id)?;
            }
        }
        let spec = PortSpecV5 {
            id: request.port_id,
            project_id: router.meta.project_id.clone(),
            network_id: net,
            name: String::new(),
            fixed_ips: request.fixed_ips.clone(),
            mac_address: None,
            binding_host: None,
            device_id: router.id.to_string(),
            device_owner: DEVICE_OWNER_ROUTER_GATEWAY.to_string(),
            security_groups: Some(Vec::new()),
            allowed_address_pairs: Vec::new(),
            admin_state_up: true,
            port_security_enabled: None,
        };
        // The current gateway port goes before the new one is stored, so
        // the new one may keep its addresses (a format-9 command).
        let released = match (held, current) {
            (HeldAddresses::Free, Some(current)) => current
                .external_fixed_ips
                .iter()
                .map(|f| (f.subnet_id, ip_to_int(f.ip_address)))
                .collect(),
            _ => BTreeSet::new(),
        };
        let plan = self
            .plan_ports(ctx, &[spec], HostRule::Registered, released)
            .map_err(|e| match e {
                Rejection::BatchEntry { cause, .. } => *cause,
                other => other,
            })?;
        Ok(GatewayChange::NewPort(Box::new(plan), request.enable_snat))
    }

    /// Refuses to take `router`'s gateway off `network` while a floating IP
    /// of that network reaches a port through the router.
    fn check_gateway_unused(&self, router: Id, network: Id) -> Result<(), Rejection> {
        match self.fip_through(network, router, None) {
            Some(_) => Err(Rejection::GatewayInUseByFloatingIps {
                router_id: router,
                network_id: network,
            }),
            None => Ok(()),
        }
    }

    /// Commits a checked gateway change: the current gateway and its port
    /// go first (so a new port may take their addresses), then the new port
    /// and gateway are stored; returns the gateway after it.
    fn commit_gateway_change(
        &mut self,
        ctx: Ctx,
        router: Id,
        change: GatewayChange,
        d: &mut DiffCollector,
    ) -> Option<RouterGateway> {
        let current = self.router_gateway(router).cloned();
        let (plan, enable_snat) = match change {
            GatewayChange::Keep => return current,
            GatewayChange::Snat(enable_snat) => {
                let new = current.map(|g| RouterGateway { enable_snat, ..g });
                self.commit_router_gateway(router, new.clone());
                return new;
            }
            GatewayChange::Clear => (None, false),
            GatewayChange::NewPort(plan, enable_snat) => (Some(plan), enable_snat),
        };
        if let Some(old) = current {
            self.commit_router_gateway(router, None);
            self.delete_gateway_port(ctx, old.port_id, d);
        }
        let port = plan.and_then(|plan| self.commit_ports(ctx, *plan, d).pop())?;
        let new = RouterGateway {
            network_id: port.network_id,
            enable_snat,
            port_id: port.id,
            external_fixed_ips: port.fixed_ips.to_vec(),
        };
        self.commit_router_gateway(router, Some(new.clone()));
        Some(new)
    }

    /// Deletes a former gateway port (like a port delete: its floating IPs
    /// are disassociated first).
    fn delete_gateway_port(&mut self, ctx: Ctx, port: Id, d: &mut DiffCollector) {
        for fip in self.fips_of_port(port) {
            self.set_fip_association(ctx, fip, None, d);
        }
        self.commit_port(port, None, d);
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the command's fields one to one"
    )]
    pub(crate) fn update_router(
        &mut self,
        ctx: Ctx,
        id: Id,
        name: Option<&str>,
        routes: Option<&[Route]>,
        admin_state_up: Option<bool>,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let new = self.check_router_update(ctx, id, (name, routes, admin_state_up), expected)?;
        self.commit_router(id, Some(new.clone()), d);
        Ok(Reply::Router(new))
    }

    /// The router an update of its own fields (name, routes, admin state)
    /// would store, checked (nothing is changed): the one set of checks of
    /// [`Command::UpdateRouter`](crate::Command::UpdateRouter),
    /// [`Command::UpdateRouterV8`](crate::Command::UpdateRouterV8) and
    /// [`Command::UpdateRouterV9`](crate::Command::UpdateRouterV9).
    fn check_router_update(
        &self,
        ctx: Ctx,
        id: Id,
        (name, routes, admin_state_up): (Option<&str>, Option<&[Route]>, Option<bool>),
        expected: Option<u64>,
    ) -> Result<Router, Rejection> {
        let router = self
            .t
            .routers()
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Router, id))?;
        validate::revision(expected, router.meta.revision)?;
        let mut new = router.clone();
        if let Some(name) = name {
            validate::name("name", name)?;
            new.name = name.to_string();
        }
        if let Some(routes) = routes {
            new.routes = validate::routes("routes", routes, ROUTER_ROUTES_MAX)?;
        }
        if let Some(up) = admin_state_up {
            new.admin_state_up = up;
        }
        ctx.touch(&mut new.meta);
        Ok(new)
    }

    pub(crate) fn delete_router(
        &mut self,
        id: Id,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let router = self
            .t
            .routers()
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Router, id))?;
        validate::revision(expected, router.meta.revision)?;
        if let Some(iface) = router.interfaces.first() {
            return Err(Rejection::InUse {
                kind: Kind::Router,
                id: id.to_string(),
                reason: format!("it has an interface on subnet {}", iface.subnet_id),
            });
        }
        // As in Neutron, the gateway goes with the router (no floating IP
        // can depend on it: the router has no interfaces).
        if let Some(gateway) = self.router_gateway(id).cloned() {
            self.commit_router_gateway(id, None);
            self.commit_port(gateway.port_id, None, d);
        }
        self.commit_router(id, None, d);
        Ok(Reply::Deleted)
    }

    /// A format-4 interface change: add without a port, or remove by subnet.
    pub(crate) fn router_interface(
        &mut self,
        ctx: Ctx,
        router_id: Id,
        subnet_id: Id,
        add: bool,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        if !add {
            return self
                .remove_router_interface(ctx, router_id, InterfaceRef::Subnet(subnet_id), d)
                .map(|reply| match reply {
                    Reply::RouterInterface { router, .. } => Reply::Router(router),
                    other => other,
                });
        }
        let router = self
            .t
            .routers()
            .get(&router_id)
            .ok_or_else(|| Rejection::not_found(Kind::Router, router_id))?;
        let subnet = self
            .t
            .subnets()
            .get(&subnet_id)
            .ok_or_else(|| Rejection::not_found(Kind::Subnet, subnet_id))?;
        let Some(gateway) = subnet.gateway_ip else {
            return Err(Rejection::invalid(
                "subnet_id",
                "the subnet has no gateway address",
            ));
        };
        self.check_new_interface(router, subnet)?;
        let mut new = router.clone();
        new.interfaces.push(RouterInterface {
            subnet_id,
            ip_address: gateway,
        });
        new.interfaces.sort();
        ctx.touch(&mut new.meta);
        self.commit_router(router_id, Some(new.clone()), d);
        Ok(Reply::Router(new))
    }

    /// Refuses an interface of `router` on `subnet`: the subnet has one
    /// already, the router is full, or it has an overlapping subnet of the
    /// same network.
    fn check_new_interface(&self, router: &Router, subnet: &Subnet) -> Result<(), Rejection> {
        if let Some(owner) = self.ix.subnet_router().get(&subnet.id) {
            return Err(Rejection::InUse {
                kind: Kind::Subnet,
                id: subnet.id.to_string(),
                reason: format!("router {owner} already has an interface on it"),
            });
        }
        if router.interfaces.len() >= ROUTER_INTERFACES_MAX {
            return Err(Rejection::invalid(
                "subnet_id",
                format!("router has {ROUTER_INTERFACES_MAX} interfaces already"),
            ));
        }
        let same_net = router
            .interfaces
            .iter()
            .filter_map(|i| self.t.subnets().get(&i.subnet_id))
            .find(|s| {
                s.network_id == subnet.network_id && validate::overlaps(&s.cidr, &subnet.cidr)
            });
        if let Some(other) = same_net {
            return Err(Rejection::OverlappingSubnet {
                cidr: subnet.cidr.to_string(),
                existing_id: other.id,
                existing_cidr: other.cidr.to_string(),
            });
        }
        Ok(())
    }

    /// Adds an interface through a port: a new one on the subnet's gateway
    /// address, or the given one.
    pub(crate) fn add_router_interface(
        &mut self,
        ctx: Ctx,
        router_id: Id,
        target: InterfaceTarget,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let router = self
            .t
            .routers()
            .get(&router_id)
            .ok_or_else(|| Rejection::not_found(Kind::Router, router_id))?;
        let (port_id, fixed) = match target {
            InterfaceTarget::Subnet { subnet_id, port_id } => {
                let subnet = self
                    .t
                    .subnets()
                    .get(&subnet_id)
                    .ok_or_else(|| Rejection::not_found(Kind::Subnet, subnet_id))?;
                let Some(gateway) = subnet.gateway_ip else {
                    return Err(Rejection::invalid(
                        "subnet_id",
                        "the subnet has no gateway address",
                    ));
                };
                let fixed = FixedIp {
                    subnet_id,
                    ip_address: gateway,
                };
                (port_id, fixed)
            }
            InterfaceTarget::Port(port_id) => {
                let port = self
                    .t
                    .ports()
                    .get(&port_id)
                    .ok_or_else(|| Rejection::not_found(Kind::Port, port_id))?;
                if !port.device_id.is_empty() {
                    return Err(Rejection::InUse {
                        kind: Kind::Port,
                        id: port_id.to_string(),
                        reason: format!("device {} uses it", port.device_id),
                    });
                }
                if port.meta.project_id != router.meta.project_id {
                    return Err(Rejection::invalid(
                        "port_id",
                        format!("port {port_id} belongs to another project"),
                    ));
                }
                let [fixed] = *port.fixed_ips else {
                    return Err(Rejection::invalid(
                        "port_id",
                        format!("port {port_id} needs exactly one fixed address"),
                    ));
                };
                (port_id, fixed)
            }
        };
        let subnet = self
            .t
            .subnets()
            .get(&fixed.subnet_id)
            .ok_or_else(|| Rejection::not_found(Kind::Subnet, fixed.subnet_id))?;
        self.check_new_interface(router, subnet)?;
        let mut new = router.clone();
        let project = router.meta.project_id.clone();
        let network_id = subnet.network_id;
        // Nothing below changes the state unless it all succeeds: the port
        // create is all or nothing and the rest cannot fail.
        match target {
            InterfaceTarget::Subnet { .. } => {
                let spec = PortSpecV5 {
                    id: port_id,
                    project_id: project,
                    network_id,
                    name: String::new(),
                    fixed_ips: vec![FixedIpRequest {
                        subnet_id: Some(fixed.subnet_id),
                        ip_address: Some(fixed.ip_address),
                    }],
                    mac_address: None,
                    binding_host: None,
                    device_id: router_id.to_string(),
                    device_owner: DEVICE_OWNER_ROUTER_INTERFACE.to_string(),
                    security_groups: Some(Vec::new()),
                    allowed_address_pairs: Vec::new(),
                    admin_state_up: true,
                    port_security_enabled: None,
                };
                self.create_port(ctx, spec, HostRule::Registered, d)?;
            }
            InterfaceTarget::Port(_) => {
                let mut port = self
                    .t
                    .ports()
                    .get(&port_id)
                    .cloned()
                    .ok_or_else(|| Rejection::not_found(Kind::Port, port_id))?;
                port.device_id = router_id.to_string().into();
                port.device_owner = DEVICE_OWNER_ROUTER_INTERFACE.into();
                ctx.touch(&mut port.meta);
                self.commit_port(port_id, Some(Arc::new(port)), d);
            }
        }
        new.interfaces.push(RouterInterface {
            subnet_id: fixed.subnet_id,
            ip_address: fixed.ip_address,
        });
        new.interfaces.sort();
        ctx.touch(&mut new.meta);
        self.commit_router(router_id, Some(new.clone()), d);
        Ok(Reply::RouterInterface {
            router: new,
            subnet_id: fixed.subnet_id,
            port_id: Some(port_id),
        })
    }

    /// Removes an interface and deletes its port (as Neutron does, whether
    /// the interface was added by subnet or by port).
    pub(crate) fn remove_router_interface(
        &mut self,
        ctx: Ctx,
        router_id: Id,
        target: InterfaceRef,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let router = self
            .t
            .routers()
            .get(&router_id)
            .ok_or_else(|| Rejection::not_found(Kind::Router, router_id))?;
        let (iface, port) = match target {
            InterfaceRef::Subnet(subnet_id) => {
                if !self.t.subnets().contains_key(&subnet_id) {
                    return Err(Rejection::not_found(Kind::Subnet, subnet_id));
                }
                let iface = router
                    .interfaces
                    .iter()
                    .find(|i| i.subnet_id == subnet_id)
                    .copied()
                    .ok_or_else(|| {
                        Rejection::invalid(
                            "subnet_id",
                            format!("router {router_id} has no interface on subnet {subnet_id}"),
                        )
                    })?;
                (iface, self.interface_port(router_id, &iface).map(|p| p.id))
            }
            InterfaceRef::Port(port_id) => {
                let port = self
                    .t
                    .ports()
                    .get(&port_id)
                    .ok_or_else(|| Rejection::not_found(Kind::Port, port_id))?;
                let iface = router
                    .interfaces
                    .iter()
                    .find(|i| self.interface_port(router_id, i).map(|p| p.id) == Some(port.id))
                    .copied()
                    .ok_or_else(|| {
                        Rejection::invalid(
                            "port_id",
                            format!("router {router_id} has no interface through port {port_id}"),
                        )
                    })?;
                (iface, Some(port_id))
            }
        };
        if let Some(gateway) = self.router_gateway(router_id) {
            if self
                .fip_through(gateway.network_id, router_id, Some(iface.subnet_id))
                .is_some()
            {
                return Err(Rejection::InUse {
                    kind: Kind::Router,
                    id: router_id.to_string(),
                    reason: format!(
                        "its interface on subnet {} is required by one or more floating IPs",
                        iface.subnet_id
                    ),
                });
            }
        }
        let mut new = router.clone();
        new.interfaces.retain(|i| *i != iface);
        if let Some(port_id) = port {
            // Like a port delete: its floating IPs are disassociated first.
            for fip in self.fips_of_port(port_id) {
                self.set_fip_association(ctx, fip, None, d);
            }
            self.commit_port(port_id, None, d);
        }
        ctx.touch(&mut new.meta);
        self.commit_router(router_id, Some(new.clone()), d);
        Ok(Reply::RouterInterface {
            router: new,
            subnet_id: iface.subnet_id,
            port_id: port,
        })
    }
}

/// What a gateway request does to a router's gateway.
#[derive(Debug)]
enum GatewayChange {
    /// Nothing.
    Keep,
    /// Same network and addresses: only the SNAT flag is set.
    Snat(bool),
    /// A new gateway port (this checked create of one port) with this SNAT
    /// flag; the current one, if any, goes.
    NewPort(Box<PortsPlan>, bool),
    /// The gateway goes.
    Clear,
}

/// Whether a new gateway port may ask for addresses the router's current
/// gateway port holds (which it replaces).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeldAddresses {
    /// No: they are in use ([`Command::CreateRouterV8`](crate::Command::CreateRouterV8),
    /// [`Command::UpdateRouterV8`](crate::Command::UpdateRouterV8), whose log
    /// entries apply as they did).
    Taken,
    /// Yes: the router keeps its gateway address, as in Neutron
    /// ([`Command::UpdateRouterV9`](crate::Command::UpdateRouterV9)).
    Free,
}
