//! VPC commands: create (VNI allocation), update and delete.

use crate::apply::Ctx;
use crate::command::{Kind, Pool, Rejection, Reply};
use crate::goal::DiffCollector;
use crate::ids::{validate_client_id, Id, ProjectId};
use crate::limits::{MTU_DEFAULT, MTU_MAX, MTU_MIN, VNI_MAX, VNI_MIN};
use crate::model::{ResourceKind, Vpc};
use crate::state::State;
use crate::validate;
use ipnet::IpNet;

impl State {
    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the command's fields one to one"
    )]
    pub(crate) fn create_vpc(
        &mut self,
        ctx: Ctx,
        id: Id,
        project: &ProjectId,
        name: &str,
        cidr: Option<IpNet>,
        vni: Option<u32>,
        mtu: Option<u32>,
        (admin_state_up, port_security_enabled): (bool, bool),
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        validate_client_id("id", id)?;
        validate::ident("project_id", project)?;
        validate::name("name", name)?;
        if self.t.vpcs().contains_key(&id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::Vpc,
                id: id.to_string(),
            });
        }
        if let Some(cidr) = &cidr {
            validate::canonical_cidr(cidr)?;
        }
        let mtu = mtu.unwrap_or(MTU_DEFAULT);
        if !(MTU_MIN..=MTU_MAX).contains(&mtu) {
            return Err(Rejection::invalid(
                "mtu",
                format!("must be in {MTU_MIN}..={MTU_MAX}"),
            ));
        }
        self.check_quota(project, ResourceKind::Network, 1)?;
        let vni = match vni {
            Some(v) if !(VNI_MIN..=VNI_MAX).contains(&v) => {
                return Err(Rejection::invalid(
                    "vni",
                    format!("must be in {VNI_MIN}..={VNI_MAX}"),
                ));
            }
            Some(v) if self.ix.vni_used().contains_key(&v) => {
                return Err(Rejection::InUse {
                    kind: Kind::Vpc,
                    id: id.to_string(),
                    reason: format!("VNI {v} is taken"),
                });
            }
            Some(v) => v,
            None => self
                .next_free_vni()
                .ok_or(Rejection::Exhausted { pool: Pool::Vnis })?,
        };
        let vpc = Vpc {
            id,
            name: name.to_string(),
            cidr,
            vni,
            mtu,
            admin_state_up,
            port_security_enabled,
            meta: ctx.meta(project),
        };
        let cursor = if vni >= VNI_MAX { VNI_MIN } else { vni + 1 };
        self.commit_cursors([], None, Some(cursor));
        self.commit_vpc(id, Some(vpc.clone()), d);
        Ok(Reply::Vpc(vpc))
    }

    pub(crate) fn next_free_vni(&self) -> Option<u32> {
        let start = self.t.vni_cursor().clamp(VNI_MIN, VNI_MAX);
        let free_from = |lo: u32, hi: u32| {
            let mut cand = lo;
            for (&used, _) in self.ix.vni_used().range(lo..=hi) {
                if used != cand {
                    break;
                }
                cand = cand.checked_add(1)?;
            }
            (cand <= hi).then_some(cand)
        };
        free_from(start, VNI_MAX)
            .or_else(|| free_from(VNI_MIN, start.saturating_sub(1).max(VNI_MIN)))
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the command's fields one to one"
    )]
    pub(crate) fn update_vpc(
        &mut self,
        ctx: Ctx,
        id: Id,
        name: Option<&str>,
        mtu: Option<u32>,
        (admin_state_up, port_security_enabled): (Option<bool>, Option<bool>),
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let vpc = self
            .t
            .vpcs()
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Vpc, id))?;
        validate::revision(expected, vpc.meta.revision)?;
        if let Some(name) = name {
            validate::name("name", name)?;
        }
        if mtu.is_some_and(|m| !(MTU_MIN..=MTU_MAX).contains(&m)) {
            return Err(Rejection::invalid(
                "mtu",
                format!("must be in {MTU_MIN}..={MTU_MAX}"),
            ));
        }
        let mut new = vpc.clone();
        if let Some(name) = name {
            new.name = name.to_string();
        }
        if let Some(mtu) = mtu {
            new.mtu = mtu;
        }
        if let Some(up) = admin_state_up {
            new.admin_state_up = up;
        }
        if let Some(enabled) = port_security_enabled {
            // The default of ports created from now on; existing ports keep theirs.
            new.port_security_enabled = enabled;
        }
        ctx.touch(&mut new.meta);
        self.commit_vpc(id, Some(new.clone()), d);
        Ok(Reply::Vpc(new))
    }

    pub(crate) fn delete_vpc(
        &mut self,
        id: Id,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let vpc = self
            .t
            .vpcs()
            .get(&id)
            .ok_or_else(|| Rejection::not_found(Kind::Vpc, id))?;
        validate::revision(expected, vpc.meta.revision)?;
        if let Some(port) = self.ports_of_network(id).next() {
            return Err(Rejection::InUse {
                kind: Kind::Vpc,
                id: id.to_string(),
                reason: format!("port {} is in it", port.id),
            });
        }
        if let Some(subnet) = self.subnets_of(id).next() {
            return Err(Rejection::InUse {
                kind: Kind::Vpc,
                id: id.to_string(),
                reason: format!("subnet {} is in it", subnet.id),
            });
        }
        self.commit_vpc(id, None, d);
        Ok(Reply::Deleted)
    }

    /// [`Command::CreateVpcV8`](crate::Command::CreateVpcV8): the create,
    /// then `router:external`.
    pub(crate) fn create_vpc_external(
        &mut self,
        external: bool,
        create: impl FnOnce(&mut State) -> Result<Reply, Rejection>,
    ) -> Result<Reply, Rejection> {
        let reply = create(self)?;
        if let Reply::Vpc(vpc) = &reply {
            self.commit_network_external(vpc.id, external);
        }
        Ok(reply)
    }

    /// [`Command::UpdateVpcV8`](crate::Command::UpdateVpcV8): the update,
    /// then `router:external` (not turned off under a router's gateway:
    /// Neutron's 409 `ExternalNetworkInUse`; not turned on while one of its
    /// floating IPs maps to a port no router of it reaches).
    pub(crate) fn update_vpc_external(
        &mut self,
        id: Id,
        external: Option<bool>,
        update: impl FnOnce(&mut State) -> Result<Reply, Rejection>,
    ) -> Result<Reply, Rejection> {
        // Only an external network can hold a gateway, so the scan of the
        // gateways runs only when one is made internal (a rare operator
        // write), not on every update that names `router:external=false`.
        if external == Some(false) && self.network_is_external(id) {
            if let Some(router) = self.gateway_router_on(id) {
                return Err(Rejection::InUse {
                    kind: Kind::Vpc,
                    id: id.to_string(),
                    reason: format!("router {router} has its gateway on it"),
                });
            }
        }
        if external == Some(true) && !self.network_is_external(id) {
            // Its floating IPs become external ones: each must reach its
            // port through a router with its gateway here.
            for fip in self.floating_ips_of_network(id) {
                let (Some(port), Some(fixed)) = (fip.port_id, fip.fixed_ip_address) else {
                    continue;
                };
                let subnet = self
                    .port(&port)
                    .and_then(|p| p.fixed_ips.iter().find(|f| f.ip_address == fixed))
                    .map(|f| f.subnet_id);
                if let Some(subnet) = subnet {
                    self.external_path_of(id, port, subnet)?;
                }
            }
        }
        let reply = update(self)?;
        if let Some(external) = external {
            self.commit_network_external(id, external);
        }
        Ok(reply)
    }
}
