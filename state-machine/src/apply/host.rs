//! Host commands: register, update (underlay address, maintenance) and forget a
//! hypervisor.

use crate::apply::Ctx;
use crate::command::{Kind, Rejection, Reply};
use crate::goal::DiffCollector;
use crate::ids::{Id, ProjectId};
use crate::model::{Host, HostStatus};
use crate::state::State;
use crate::validate;
use std::net::IpAddr;
use std::sync::Arc;

impl State {
    pub(crate) fn create_host(
        &mut self,
        ctx: Ctx,
        id: &str,
        project: &ProjectId,
        ip: IpAddr,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        validate::ident("id", id)?;
        validate::ident("project_id", project)?;
        if self.t.hosts().contains_key(id) {
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
        self.commit_host(id, Some(host.clone()), d);
        // Ports bound to it before it registered are bound now: each is
        // written again (a new revision), so watchers see the binding change.
        let waiting: Vec<Id> = self.ports_of_host(id).map(|p| p.id).collect();
        for port_id in waiting {
            if let Some(port) = self.t.ports().get(&port_id) {
                let mut port = port.clone();
                ctx.touch(&mut port.meta);
                self.commit_port(port_id, Some(Arc::new(port)), d);
            }
        }
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
            .hosts()
            .get(id)
            .ok_or_else(|| Rejection::not_found(Kind::Host, id))?;
        validate::revision(expected, host.meta.revision)?;
        if ip.is_some_and(|ip| ip.is_unspecified() || ip.is_multicast()) {
            return Err(Rejection::invalid(
                "underlay_ip",
                "must be a unicast address",
            ));
        }
        let mut new = host.clone();
        if let Some(ip) = ip {
            new.underlay_ip = ip;
        }
        if let Some(status) = status {
            new.status = status;
        }
        ctx.touch(&mut new.meta);
        self.commit_host(id, Some(new.clone()), d);
        Ok(Reply::Host(new))
    }

    pub(crate) fn delete_host(
        &mut self,
        id: &str,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let host = self
            .t
            .hosts()
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
        self.commit_host(id, None, d);
        Ok(Reply::Deleted)
    }
}
