//! The reader of snapshot format 4: its tables as they were encoded, and
//! their conversion to today's model.
//!
//! Format 5 added port security and allowed address pairs as given:
//! - a VPC's `port_security_enabled` is `true` (format 4 had no way to turn
//!   it off);
//! - a port's `port_security_enabled` is `true`, and each of its allowed
//!   address pairs is a prefix ([`PairAddress::Net`]), as format 4 stored it;
//! - request tokens keep their fingerprints; their remembered replies are
//!   converted the same way, so a retry answers what it answered before.
//!
//! Every other table is encoded as in format 5 and decoded with today's types.
//! The types here are never written: [`State::snapshot`](super::State::snapshot)
//! writes the newest format only.

use super::{PortTable, Tables, TokenRecord};
use crate::command::{Rejection, Reply};
use crate::ids::{HostId, Id, ProjectId};
use crate::model::{
    AddressPair, AllowedAddressPair, FixedIp, FloatingIp, Host, Mac, Meta, Port, PortStatus, Quota,
    Router, SecurityGroup, SecurityGroupRule, Subnet, Vpc,
};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// [`Tables`] in format 4 (same field order).
#[derive(Deserialize)]
pub(super) struct TablesV4 {
    applied_index: u64,
    hosts: BTreeMap<HostId, Host>,
    vpcs: BTreeMap<Id, VpcV4>,
    subnets: BTreeMap<Id, Subnet>,
    #[serde(deserialize_with = "super::rebuild::bulk_map")]
    ports: BTreeMap<Id, PortV4>,
    security_groups: BTreeMap<Id, SecurityGroup>,
    rules: BTreeMap<Id, SecurityGroupRule>,
    routers: BTreeMap<Id, Router>,
    quotas: BTreeMap<ProjectId, Quota>,
    mac_cursor: u32,
    vni_cursor: u32,
    ip_cursors: BTreeMap<Id, u128>,
    tokens: BTreeMap<String, TokenRecordV4>,
    floating_ips: BTreeMap<Id, FloatingIp>,
}

/// [`Vpc`] in format 4.
#[derive(Deserialize)]
pub(crate) struct VpcV4 {
    id: Id,
    name: String,
    cidr: Option<IpNet>,
    vni: u32,
    mtu: u32,
    admin_state_up: bool,
    meta: Meta,
}

/// [`Port`] in format 4.
#[derive(Deserialize)]
pub(crate) struct PortV4 {
    id: Id,
    name: String,
    network_id: Id,
    fixed_ips: Vec<FixedIp>,
    mac_address: Mac,
    binding_host: Option<HostId>,
    device_id: String,
    device_owner: String,
    security_groups: Vec<Id>,
    allowed_address_pairs: Vec<AddressPair>,
    admin_state_up: bool,
    status: PortStatus,
    meta: Meta,
}

/// [`TokenRecord`] in format 4.
#[derive(Deserialize)]
struct TokenRecordV4 {
    fingerprint: [u8; 32],
    index: u64,
    reply: ReplyV4,
}

/// [`Reply`] in format 4 (same variant order).
#[derive(Deserialize)]
enum ReplyV4 {
    Host(Host),
    Vpc(VpcV4),
    Subnet(Subnet),
    Port(Box<PortV4>),
    Ports(Vec<PortV4>),
    SecurityGroup(SecurityGroup),
    SecurityGroupRule(SecurityGroupRule),
    Router(Router),
    Quota(Quota),
    FloatingIp(FloatingIp),
    Deleted,
    Batch(#[serde(deserialize_with = "crate::decode::nested")] Vec<Result<ReplyV4, Rejection>>),
}

impl From<VpcV4> for Vpc {
    fn from(v: VpcV4) -> Vpc {
        Vpc {
            id: v.id,
            name: v.name,
            cidr: v.cidr,
            vni: v.vni,
            mtu: v.mtu,
            admin_state_up: v.admin_state_up,
            port_security_enabled: true,
            meta: v.meta,
        }
    }
}

impl From<PortV4> for Port {
    fn from(p: PortV4) -> Port {
        let pairs: Vec<AllowedAddressPair> = p
            .allowed_address_pairs
            .into_iter()
            .map(AllowedAddressPair::from)
            .collect();
        Port {
            id: p.id,
            name: p.name.into(),
            network_id: p.network_id,
            fixed_ips: p.fixed_ips.into(),
            mac_address: p.mac_address,
            binding_host: p.binding_host.map(Into::into),
            device_id: p.device_id.into(),
            device_owner: p.device_owner.into(),
            security_groups: p.security_groups.into(),
            allowed_address_pairs: pairs.into(),
            admin_state_up: p.admin_state_up,
            port_security_enabled: true,
            status: p.status,
            meta: p.meta,
        }
    }
}

impl From<ReplyV4> for Reply {
    fn from(r: ReplyV4) -> Reply {
        match r {
            ReplyV4::Host(h) => Reply::Host(h),
            ReplyV4::Vpc(v) => Reply::Vpc(v.into()),
            ReplyV4::Subnet(s) => Reply::Subnet(s),
            ReplyV4::Port(p) => Reply::Port(Arc::new(Port::from(*p))),
            ReplyV4::Ports(ps) => {
                Reply::Ports(ps.into_iter().map(|p| Arc::new(Port::from(p))).collect())
            }
            ReplyV4::SecurityGroup(g) => Reply::SecurityGroup(g),
            ReplyV4::SecurityGroupRule(r) => Reply::SecurityGroupRule(r),
            ReplyV4::Router(r) => Reply::Router(r),
            ReplyV4::Quota(q) => Reply::Quota(q),
            ReplyV4::FloatingIp(f) => Reply::FloatingIp(f),
            ReplyV4::Deleted => Reply::Deleted,
            ReplyV4::Batch(results) => {
                Reply::Batch(results.into_iter().map(|r| r.map(Reply::from)).collect())
            }
        }
    }
}

impl From<TablesV4> for Tables {
    fn from(t: TablesV4) -> Tables {
        let tokens = t
            .tokens
            .into_iter()
            .map(|(token, record)| {
                let record = TokenRecord {
                    fingerprint: record.fingerprint,
                    index: record.index,
                    reply: record.reply.into(),
                };
                (token, Arc::new(record))
            })
            .collect();
        Tables {
            applied_index: t.applied_index,
            hosts: t.hosts,
            vpcs: t.vpcs.into_iter().map(|(id, v)| (id, v.into())).collect(),
            subnets: t.subnets,
            ports: PortTable::from_ports(
                t.ports
                    .into_values()
                    .map(|p| Arc::new(Port::from(p)))
                    .collect(),
            ),
            security_groups: t.security_groups,
            rules: t.rules,
            routers: t.routers,
            quotas: t.quotas,
            mac_cursor: t.mac_cursor,
            vni_cursor: t.vni_cursor,
            ip_cursors: t.ip_cursors,
            tokens,
            floating_ips: t.floating_ips,
            qos: Default::default(),
            ext: Default::default(),
        }
    }
}
