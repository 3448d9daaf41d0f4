//! Host commands: register, update (underlay address, maintenance) and forget a
//! hypervisor.

use crate::apply::Ctx;
use crate::command::{Kind, Rejection, Reply};
use crate::goal::{DiffCollector, GoalKey, Scope, Touch};
use crate::ids::ProjectId;
use crate::model::{Host, HostStatus};
use crate::state::State;
use crate::validate;
use std::net::IpAddr;

impl State {

    pub(crate) fn create_host(
        &mut self,
        ctx: Ctx,
        id: &str,
        project: &ProjectId,
        ip: IpAddr,
    ) -> Result<Reply, Rejection> {
        validate::ident("id", id)?;
        validate::ident("project_id", project)?;
        if self.t.hosts.contains_key(id) {
            return Err(Rejection::AlreadyExists {
                kind: Kind::Host,
                id: id.to_string(),
            });
        }
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(Rejection::invalid(
                "underlay_ip",
                "must be a unicast address",
            ));
        }
        let host = Host {
            id: id.to_string(),
            underlay_ip: ip,
            status: HostStatus::Up,
            meta: ctx.meta(project),
        };
        self.changed_host(&host.id);
        self.t.hosts.insert(host.id.clone(), host.clone());
        Ok(Reply::Host(host))
    }

    pub(crate) fn update_host(
        &mut self,
        ctx: Ctx,
        id: &str,
        ip: Option<IpAddr>,
        status: Option<HostStatus>,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let host = self
            .t
            .hosts
            .get(id)
            .ok_or_else(|| Rejection::not_found(Kind::Host, id))?;
        validate::revision(expected, host.meta.revision)?;
        if ip.is_some_and(|ip| ip.is_unspecified() || ip.is_multicast()) {
            return Err(Rejection::invalid(
                "underlay_ip",
                "must be a unicast address",
            ));
        }
        // Every neighbor entry of every port on the host carries its underlay IP.
        let mut candidates = Touch::default();
        if ip.is_some_and(|ip| ip != host.underlay_ip) {
            for port in self.ports_of_host(id) {
                candidates
                    .objects
                    .push((Scope::Vpc(port.network_id), GoalKey::Neighbor(port.id)));
            }
        }
        d.before(self, &candidates);
        self.changed_host(id);
        if let Some(host) = self.t.hosts.get_mut(id) {
            if let Some(ip) = ip {
                host.underlay_ip = ip;
            }
            if let Some(status) = status {
                host.status = status;
            }
            ctx.touch(&mut host.meta);
        }
        self.t
            .hosts
            .get(id)
            .cloned()
            .map(Reply::Host)
            .ok_or_else(|| Rejection::not_found(Kind::Host, id))
    }

    pub(crate) fn delete_host(
        &mut self,
        id: &str,
        expected: Option<u64>,
    ) -> Result<Reply, Rejection> {
        let host = self
            .t
            .hosts
            .get(id)
            .ok_or_else(|| Rejection::not_found(Kind::Host, id))?;
        validate::revision(expected, host.meta.revision)?;
        if let Some(port) = self.ports_of_host(id).next() {
            return Err(Rejection::InUse {
                kind: Kind::Host,
                id: id.to_string(),
                reason: format!("port {} is bound to it", port.id),
            });
        }
        self.changed_host(id);
        self.t.hosts.remove(id);
        Ok(Reply::Deleted)
    }
}
