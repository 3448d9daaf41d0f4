//! Router commands: create, update, delete, and adding or removing interfaces.

use crate::apply::Ctx;
use crate::command::{Kind, Rejection, Reply};
use crate::goal::DiffCollector;
use crate::ids::{validate_client_id, Id, ProjectId};
use crate::limits::{ROUTER_INTERFACES_MAX, ROUTER_ROUTES_MAX};
use crate::model::{ResourceKind, Route, Router, RouterInterface};
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

    pub(crate) fn router_interface(
        &mut self,
        ctx: Ctx,
        router_id: Id,
        subnet_id: Id,
        add: bool,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
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
        let mut new = router.clone();
        if add {
            if let Some(owner) = self.ix.subnet_router().get(&subnet_id) {
                return Err(Rejection::InUse {
                    kind: Kind::Subnet,
                    id: subnet_id.to_string(),
                    reason: format!("router {owner} already has an interface on it"),
                });
            }
            let Some(gateway) = subnet.gateway_ip else {
                return Err(Rejection::invalid(
                    "subnet_id",
                    "the subnet has no gateway address",
                ));
            };
            if new.interfaces.len() >= ROUTER_INTERFACES_MAX {
                return Err(Rejection::invalid(
                    "subnet_id",
                    format!("router has {ROUTER_INTERFACES_MAX} interfaces already"),
                ));
            }
            let same_net = new
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
            new.interfaces.push(RouterInterface {
                subnet_id,
                ip_address: gateway,
            });
            new.interfaces.sort();
        } else {
            let before = new.interfaces.len();
            new.interfaces.retain(|i| i.subnet_id != subnet_id);
            if new.interfaces.len() == before {
                return Err(Rejection::invalid(
                    "subnet_id",
                    format!("router {router_id} has no interface on subnet {subnet_id}"),
                ));
            }
        }
        ctx.touch(&mut new.meta);
        self.commit_router(router_id, Some(new.clone()), d);
        Ok(Reply::Router(new))
    }
}
