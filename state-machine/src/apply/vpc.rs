//! VPC commands: create (VNI allocation), update and delete.

use crate::apply::Ctx;
use crate::command::{Kind, Rejection, Reply};
use crate::goal::{DiffCollector, GoalKey, Scope, Touch};
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
        admin_state_up: bool,
    ) -> Result<Reply, Rejection> {
        validate_client_id("id", id)?;
        validate::ident("project_id", project)?;
        validate::name("name", name)?;
        if self.t.vpcs.contains_key(&id) {
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
            Some(v) if self.ix.vni_used.contains_key(&v) => {
                return Err(Rejection::InUse {
                    kind: Kind::Vpc,
                    id: id.to_string(),
                    reason: format!("VNI {v} is taken"),
                });
            }
            Some(v) => v,
            None => self.next_free_vni().ok_or(Rejection::PoolExhausted {
                scope: "VNI range".to_string(),
            })?,
        };
        let vpc = Vpc {
            id,
            name: name.to_string(),
            cidr,
            vni,
            mtu,
            admin_state_up,
            meta: ctx.meta(project),
        };
        self.t.vni_cursor = if vni >= VNI_MAX { VNI_MIN } else { vni + 1 };
        self.ix.vni_used.insert(vni, id);
        self.usage_add(project, ResourceKind::Network, 1);
        self.changed(Kind::Vpc, id);
        self.t.vpcs.insert(id, vpc.clone());
        Ok(Reply::Vpc(vpc))
    }

    pub(crate) fn next_free_vni(&self) -> Option<u32> {
        let start = self.t.vni_cursor.clamp(VNI_MIN, VNI_MAX);
        let free_from = |lo: u32, hi: u32| {
            let mut cand = lo;
            for (&used, _) in self.ix.vni_used.range(lo..=hi) {
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
        admin_state_up: Option<bool>,
        expected: Option<u64>,
        d: &mut DiffCollector,
    ) -> Result<Reply, Rejection> {
        let vpc = self
            .t
            .vpcs
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
        let candidates = Touch {
            objects: vec![(Scope::Vpc(id), GoalKey::Vpc(id))],
            subs: Vec::new(),
        };
        d.before(self, &candidates);
        self.changed(Kind::Vpc, id);
        if let Some(vpc) = self.t.vpcs.get_mut(&id) {
            if let Some(name) = name {
                vpc.name = name.to_string();
            }
            if let Some(mtu) = mtu {
                vpc.mtu = mtu;
            }
            if let Some(up) = admin_state_up {
                vpc.admin_state_up = up;
            }
            ctx.touch(&mut vpc.meta);
        }
        self.t
            .vpcs
            .get(&id)
            .cloned()
            .map(Reply::Vpc)
            .ok_or_else(|| Rejection::not_found(Kind::Vpc, id))
    }

    pub(crate) fn delete_vpc(&mut self, id: Id, expected: Option<u64>) -> Result<Reply, Rejection> {
        let vpc = self
            .t
            .vpcs
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
        let project = vpc.meta.project_id.clone();
        let vni = vpc.vni;
        self.changed(Kind::Vpc, id);
        if let Some(gone) = self.t.vpcs.remove(&id) {
            self.index_tags(Kind::Vpc, id, &gone.meta.tags, false);
        }
        self.ix.vni_used.remove(&vni);
        self.usage_sub(&project, ResourceKind::Network, 1);
        Ok(Reply::Deleted)
    }
}
