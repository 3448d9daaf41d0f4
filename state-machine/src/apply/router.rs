//! Router commands: create, update, delete, and adding or removing interfaces.
//!
//! An interface added by a format-6 command is a port (device owner
//! `network:router_interface`, device the router) holding the interface's
//! address; removing the interface deletes it, and the port API may neither
//! delete it nor change its device while it is one.

use crate::apply::port::HostRule;
use crate::apply::Ctx;
use crate::command::{
    FixedIpRequest, InterfaceRef, InterfaceTarget, Kind, PortSpecV5, Rejection, Reply,
};
use crate::goal::DiffCollector;
use crate::ids::{validate_client_id, Id, ProjectId};
use crate::limits::{ROUTER_INTERFACES_MAX, ROUTER_ROUTES_MAX};
use crate::model::{
    FixedIp, ResourceKind, Route, Router, RouterInterface, Subnet, DEVICE_OWNER_ROUTER_INTERFACE,
};
use crate::state::State;
use crate::validate;

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
        let router = Router {
            id,
            name: name.to_string(),
            admin_state_up: true,
            interfaces: Vec::new(),
            routes,
            meta: ctx.meta(project),
        };
        self.commit_router(id, Some(router.clone()), d);
        Ok(Reply::Router(router))
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
        self.commit_router(id, Some(new.clone()), d);
        Ok(Reply::Router(new))
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
                self.commit_port(port_id, Some(Box::new(port)), d);
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
