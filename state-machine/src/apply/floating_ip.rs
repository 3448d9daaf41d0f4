//! Floating IP commands: allocate an address from a subnet of the floating
//! (external) VPC, associate it with one fixed IPv4 address of a port, move or
//! release it. The port's binding host receives it (host scope) for local DNAT.
//!
//! A floating IP of an external network (format 8) may belong to any project
//! and maps only to a port on a subnet attached to a router whose gateway is
//! on that network (Neutron's 404 "External network ... is not reachable
//! from subnet ..."); one of the caller's own network needs no router, as
//! before.

use crate::apply::Ctx;
use crate::command::{Kind, Pool, Rejection, Reply};
use crate::goal::DiffCollector;
use crate::ids::{Id, ProjectId};
use crate::model::{FloatingIp, ResourceKind};
use crate::state::{int_to_ip, ip_to_int, State};
use crate::validate;
use std::net::IpAddr;

/// A requested association: the port and, optionally, which of its addresses.
type Association = (Id, Option<IpAddr>);

/// The fields a floating IP update may change; `None` leaves a field alone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FipUpdate<'a> {
    /// `Some(Some(port))` associates, `Some(None)` disassociates.
    pub(crate) port_id: Option<Option<Id>>,
    /// With `port_id`: which of its addresses; alone: another address of the
    /// current port.
    pub(crate) fixed_ip_address: Option<IpAddr>,
    /// New description.
    pub(crate) description: Option<&'a str>,
}

impl State {
    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the command's fields one to one"
    )]
    pub(crate) fn create_floating_ip(
        &mut self,
        ctx: Ctx,
        id: Id,
        project: &ProjectId,
        net: Id,
        address: Option<IpAddr>,
        association: Option<Association>,
        description: &str,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        crate::ids::validate_client_id("id", id)?;
        validate::ident("project_id", project)?;
        validate::name("description", description)?;
        if self.t.floating_ips().contains_key(&id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::FloatingIp,
                id: id.to_string(),
            });
        }
        let vpc = self
            .t
            .vpcs()
            .get(&net)
            .ok_or_else(|| Rejection::not_found(Kind::Vpc, net))?;
        // An address comes from an external network (any project's) or the
        // caller's own network (issue 13, finding 5).
        if vpc.meta.project_id != *project && !self.network_is_external(net) {
            return Err(Rejection::invalid(
                "floating_network_id",
                format!("network {net} belongs to another project"),
            ));
        }
        self.check_quota(project, ResourceKind::FloatingIp, 1)?;
        let (subnet_id, n, cursor) = match address {
            Some(ip) => {
                let subnet = self
                    .subnets_of(net)
                    .find(|s| s.cidr.contains(&ip))
                    .ok_or_else(|| {
                        Rejection::invalid(
                            "floating_ip_address",
                            format!("no subnet of network {net} contains {ip}"),
                        )
                    })?;
                if validate::is_reserved(&subnet.cidr, &ip) || subnet.gateway_ip == Some(ip) {
                    return Err(Rejection::IpInUse {
                        ip,
                        subnet_id: subnet.id,
                    });
                }
                if self.ix.ip_used().contains(subnet.id, &ip_to_int(ip)) {
                    return Err(Rejection::IpInUse {
                        ip,
                        subnet_id: subnet.id,
                    });
                }
                (subnet.id, ip_to_int(ip), None)
            }
            None => self
                .subnets_of(net)
                .find_map(|s| self.plan_single_ip(s).map(|(n, c)| (s.id, n, Some(c))))
                .ok_or(Rejection::Exhausted {
                    pool: Pool::Network(net),
                })?,
        };
        let v4 = self
            .t
            .subnets()
            .get(&subnet_id)
            .is_some_and(|s| s.cidr.network().is_ipv4());
        let fixed = match association {
            Some((port, fixed)) => Some((port, self.check_association(id, net, port, fixed)?)),
            None => None,
        };
        let fip = FloatingIp {
            id,
            floating_network_id: net,
            floating_subnet_id: subnet_id,
            floating_ip_address: int_to_ip(v4, n),
            port_id: fixed.map(|(p, _)| p),
            fixed_ip_address: fixed.map(|(_, ip)| ip),
            description: description.to_string(),
            meta: ctx.meta(project),
        };
        self.commit_cursors(cursor.map(|c| (subnet_id, c)), None, None);
        self.commit_fip(id, Some(fip.clone()), d);
        Ok(Reply::FloatingIp(fip))
    }

    pub(crate) fn update_floating_ip(
        &mut self,
        ctx: Ctx,
        id: Id,
        update: FipUpdate,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let fip = self
            .t
            .floating_ips()
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::FloatingIp, id))?;
        validate::revision(expected, fip.meta.revision)?;
        if let Some(description) = update.description {
            validate::name("description", description)?;
        }
        let association = match (update.port_id, update.fixed_ip_address) {
            (None, None) => None,
            (Some(None), Some(_)) => {
                return Err(Rejection::invalid(
                    "fixed_ip_address",
                    "given while disassociating",
                ))
            }
            (Some(None), None) => Some(None),
            (Some(Some(port)), fixed) => Some(Some((port, fixed))),
            (None, Some(fixed)) => match fip.port_id {
                Some(port) => Some(Some((port, Some(fixed)))),
                None => {
                    return Err(Rejection::invalid(
                        "fixed_ip_address",
                        "the floating IP has no port: give port_id too",
                    ))
                }
            },
        };
        let target = match association {
            None => None,
            Some(None) => Some(None),
            Some(Some((port, fixed))) => Some(Some((
                port,
                self.check_association(id, fip.floating_network_id, port, fixed)?,
            ))),
        };
        let mut new = fip.clone();
        if let Some(target) = target {
            new.port_id = target.map(|(p, _)| p);
            new.fixed_ip_address = target.map(|(_, ip)| ip);
        }
        if let Some(description) = update.description {
            new.description = description.to_string();
        }
        ctx.touch(&mut new.meta);
        self.commit_fip(id, Some(new.clone()), d);
        Ok(Reply::FloatingIp(new))
    }

    pub(crate) fn delete_floating_ip(
        &mut self,
        _ctx: Ctx,
        id: Id,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let fip = self
            .t
            .floating_ips()
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::FloatingIp, id))?;
        validate::revision(expected, fip.meta.revision)?;
        self.commit_fip(id, None, d);
        Ok(Reply::Deleted)
    }

    /// Moves a floating IP to `target` (already validated) or disassociates it.
    pub(crate) fn set_fip_association(
        &mut self,
        ctx: Ctx,
        id: Id,
        target: Option<(Id, IpAddr)>,
        d: &mut DiffCollector,
    ) {
        let Some(old) = self.t.floating_ips().get(&id) else {
            return;
        };
        let mut new = old.clone();
        new.port_id = target.map(|(p, _)| p);
        new.fixed_ip_address = target.map(|(_, ip)| ip);
        ctx.touch(&mut new.meta);
        self.commit_fip(id, Some(new), d);
    }

    /// The fixed address a floating IP would map to, checked.
    fn check_association(
        &self,
        fip: Id,
        net: Id,
        port_id: Id,
        fixed: Option<IpAddr>,
    ) -> Result<IpAddr, Rejection> {
        let port = self
            .t
            .ports()
            .get(&port_id)
            .ok_or_else(|| Rejection::not_found(Kind::Port, port_id))?;
        if port.network_id == net {
            return Err(Rejection::invalid(
                "port_id",
                "the port is on the floating network itself",
            ));
        }
        let ip = match fixed {
            Some(ip) => {
                if !port.fixed_ips.iter().any(|f| f.ip_address == ip) {
                    return Err(Rejection::invalid(
                        "fixed_ip_address",
                        format!("{ip} is not an address of port {port_id}"),
                    ));
                }
                ip
            }
            None => port
                .fixed_ips
                .iter()
                .map(|f| f.ip_address)
                .find(IpAddr::is_ipv4)
                .ok_or_else(|| {
                    Rejection::invalid(
                        "port_id",
                        format!("port {port_id} has no fixed IPv4 address"),
                    )
                })?,
        };
        if !ip.is_ipv4() {
            return Err(Rejection::invalid(
                "fixed_ip_address",
                "floating IPs map to IPv4 addresses",
            ));
        }
        if let Some(fixed) = port.fixed_ips.iter().find(|f| f.ip_address == ip) {
            self.external_path(net, port_id, fixed.subnet_id)?;
        }
        match self.ix.fip_fixed().get(&(port_id, ip)) {
            Some(other) if *other != fip => Err(Rejection::AlreadyAssociated {
                port_id,
                ip,
                floating_ip_id: *other,
            }),
            _ => Ok(ip),
        }
    }
}
