//! Subnet commands: create (CIDR, gateway, pools and DHCP options checked),
//! update and delete.

use crate::apply::Ctx;
use crate::command::{GatewaySpec, Kind, Rejection, Reply, SubnetUpdate};
use crate::goal::DiffCollector;
use crate::ids::{validate_client_id, Id, ProjectId};
use crate::limits::{SUBNET_DNS_MAX, SUBNET_HOST_ROUTES_MAX, SUBNET_POOLS_MAX};
use crate::model::{ResourceKind, Route, Subnet};
use crate::state::{ip_to_int, State};
use crate::validate;
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::IpAddr;

impl State {
    /// What holds an address of the IPAM index: a port or a floating IP.
    fn address_user_kind(&self, user: Id) -> Kind {
        if self.t.ports().contains_key(&user) {
            Kind::Port
        } else {
            debug_assert!(self.t.floating_ips().contains_key(&user));
            Kind::FloatingIp
        }
    }

    pub(crate) fn create_subnet(
        &mut self,
        ctx: Ctx,
        s: &NewSubnet<'_>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        validate_client_id("id", s.id)?;
        validate::ident("project_id", s.project_id)?;
        validate::name("name", s.name)?;
        if self.t.subnets().contains_key(&s.id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::Subnet,
                id: s.id.to_string(),
            });
        }
        let vpc = self
            .t
            .vpcs()
            .get(&s.network_id)
            .ok_or_else(|| Rejection::not_found(Kind::Vpc, s.network_id))?;
        validate::subnet_cidr(&s.cidr)?;
        if let Some(vpc_cidr) = &vpc.cidr {
            if !vpc_cidr.contains(&s.cidr) {
                return Err(Rejection::InvalidCidr {
                    cidr: s.cidr.to_string(),
                    reason: format!("not inside the network's CIDR {vpc_cidr}"),
                });
            }
        }
        for other in self.subnets_of(s.network_id) {
            if validate::overlaps(&other.cidr, &s.cidr) {
                return Err(Rejection::OverlappingSubnet {
                    cidr: s.cidr.to_string(),
                    existing_id: other.id,
                    existing_cidr: other.cidr.to_string(),
                });
            }
        }
        let gateway_ip = match s.gateway {
            GatewaySpec::Default => Some(s.cidr.network())
                .map(|n| crate::state::int_to_ip(n.is_ipv4(), ip_to_int(n) + 1)),
            GatewaySpec::Disabled => None,
            GatewaySpec::Ip(ip) => {
                check_gateway(&s.cidr, ip)?;
                Some(ip)
            }
        };
        let allocation_pools = match s.allocation_pools {
            Some(p) if p.len() > SUBNET_POOLS_MAX => {
                return Err(Rejection::invalid(
                    "allocation_pools",
                    format!("more than {SUBNET_POOLS_MAX} pools"),
                ));
            }
            Some(p) => validate::pools(&s.cidr, gateway_ip, p)?,
            None => validate::default_pools(&s.cidr, gateway_ip),
        };
        let (dns, routes) = check_dhcp_options(&s.cidr, s.dns_nameservers, s.host_routes)?;
        self.check_quota(s.project_id, ResourceKind::Subnet, 1)?;
        let subnet = Subnet {
            id: s.id,
            name: s.name.to_string(),
            network_id: s.network_id,
            cidr: s.cidr,
            gateway_ip,
            allocation_pools,
            enable_dhcp: s.enable_dhcp,
            dns_nameservers: dns,
            host_routes: routes,
            meta: ctx.meta(s.project_id),
        };
        self.commit_subnet(s.id, Some(subnet.clone()), d);
        Ok(Reply::Subnet(subnet))
    }

    pub(crate) fn update_subnet(
        &mut self,
        ctx: Ctx,
        id: Id,
        u: &SubnetUpdate,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let old = self
            .t
            .subnets()
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Subnet, id))?;
        validate::revision(expected, old.meta.revision)?;
        let mut new = old.clone();
        if let Some(name) = &u.name {
            validate::name("name", name)?;
            new.name = name.clone();
        }
        if let Some(gateway) = u.gateway_ip {
            if self.ix.subnet_router().contains_key(&id) && gateway != old.gateway_ip {
                return Err(Rejection::InUse {
                    kind: Kind::Subnet,
                    id: id.to_string(),
                    reason: "a router interface uses the gateway address".to_string(),
                });
            }
            if let Some(ip) = gateway {
                check_gateway(&new.cidr, ip)?;
                if let Some(user) = self.ix.ip_used().get(id, &ip_to_int(ip)) {
                    return Err(Rejection::InUse {
                        kind: Kind::Subnet,
                        id: id.to_string(),
                        reason: format!(
                            "gateway address {ip} is used by {} {user}",
                            self.address_user_kind(*user)
                        ),
                    });
                }
            }
            new.gateway_ip = gateway;
        }
        if let Some(pools) = &u.allocation_pools {
            if pools.len() > SUBNET_POOLS_MAX {
                return Err(Rejection::invalid(
                    "allocation_pools",
                    format!("more than {SUBNET_POOLS_MAX} pools"),
                ));
            }
            new.allocation_pools = validate::pools(&new.cidr, new.gateway_ip, pools)?;
        } else if u.gateway_ip.is_some() {
            // The gateway moved: pools must still exclude it.
            new.allocation_pools =
                validate::pools(&new.cidr, new.gateway_ip, &new.allocation_pools)?;
        }
        if let Some(dhcp) = u.enable_dhcp {
            new.enable_dhcp = dhcp;
        }
        let dns = u
            .dns_nameservers
            .as_deref()
            .unwrap_or(&new.dns_nameservers)
            .to_vec();
        let routes = u
            .host_routes
            .as_deref()
            .unwrap_or(&new.host_routes)
            .to_vec();
        let (dns, routes) = check_dhcp_options(&new.cidr, &dns, &routes)?;
        new.dns_nameservers = dns;
        new.host_routes = routes;
        ctx.touch(&mut new.meta);
        self.commit_subnet(id, Some(new.clone()), d);
        Ok(Reply::Subnet(new))
    }

    pub(crate) fn delete_subnet(
        &mut self,
        id: Id,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let subnet = self
            .t
            .subnets()
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Subnet, id))?;
        validate::revision(expected, subnet.meta.revision)?;
        if let Some((_, port)) = self.ix.ip_used().range(id, ..).next() {
            return Err(Rejection::InUse {
                kind: Kind::Subnet,
                id: id.to_string(),
                reason: format!(
                    "{} {port} has an address in it",
                    self.address_user_kind(*port)
                ),
            });
        }
        if let Some(router) = self.ix.subnet_router().get(&id) {
            return Err(Rejection::InUse {
                kind: Kind::Subnet,
                id: id.to_string(),
                reason: format!("router {router} has an interface on it"),
            });
        }
        self.commit_subnet(id, None, d);
        Ok(Reply::Deleted)
    }
}

/// Fields of a new subnet, borrowed from the command.
pub(crate) struct NewSubnet<'a> {
    pub(crate) id: Id,
    pub(crate) project_id: &'a ProjectId,
    pub(crate) network_id: Id,
    pub(crate) name: &'a str,
    pub(crate) cidr: IpNet,
    pub(crate) gateway: GatewaySpec,
    pub(crate) allocation_pools: Option<&'a [crate::model::AllocationPool]>,
    pub(crate) enable_dhcp: bool,
    pub(crate) dns_nameservers: &'a [IpAddr],
    pub(crate) host_routes: &'a [Route],
}

pub(crate) fn check_gateway(cidr: &IpNet, ip: IpAddr) -> Result<(), Rejection> {
    if !validate::same_family(&ip, cidr) || !cidr.contains(&ip) {
        return Err(Rejection::invalid(
            "gateway_ip",
            format!("{ip} is not inside {cidr}"),
        ));
    }
    if validate::is_reserved(cidr, &ip) {
        return Err(Rejection::invalid(
            "gateway_ip",
            "network and broadcast addresses cannot be the gateway",
        ));
    }
    Ok(())
}

fn check_dhcp_options(
    cidr: &IpNet,
    dns: &[IpAddr],
    routes: &[Route],
) -> Result<(Vec<IpAddr>, Vec<Route>), Rejection> {
    if dns.len() > SUBNET_DNS_MAX {
        return Err(Rejection::invalid(
            "dns_nameservers",
            format!("more than {SUBNET_DNS_MAX} servers"),
        ));
    }
    let mut seen = BTreeSet::new();
    for ip in dns {
        if !seen.insert(*ip) {
            return Err(Rejection::invalid(
                "dns_nameservers",
                format!("duplicate server {ip}"),
            ));
        }
    }
    let routes = validate::routes("host_routes", routes, SUBNET_HOST_ROUTES_MAX)?;
    if routes
        .iter()
        .any(|r| !validate::same_family(&r.nexthop, cidr))
    {
        return Err(Rejection::invalid(
            "host_routes",
            "next hop family differs from the subnet",
        ));
    }
    Ok((dns.to_vec(), routes))
}
