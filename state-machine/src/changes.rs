//! Resource changes per applied entry, for watchers: which resources an
//! entry created, changed or deleted, in the order it first touched them,
//! each with its value after the entry (or its deletion).
//!
//! The commit paths (`state/commit.rs`) mark every resource they write
//! (handlers validate first, so a rejected command marks nothing); `State::apply`
//! turns the marks into [`ResourceChange`]s once the entry is applied. The
//! marks are transient: they never reach snapshots or comparisons.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::command::Kind;
use crate::ids::{HostId, Id};
use crate::model::{
    FloatingIp, Host, Port, QosPolicy, Router, SecurityGroup, SecurityGroupRule, Subnet, Vpc,
};
use crate::state::State;
use serde::{Deserialize, Serialize};

/// A resource as a watcher receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "one variant per resource type, named after it")]
pub enum Resource {
    Host(Host),
    Vpc(Vpc),
    Subnet(Subnet),
    Port(Arc<Port>),
    SecurityGroup(SecurityGroup),
    SecurityGroupRule(SecurityGroupRule),
    Router(Router),
    FloatingIp(FloatingIp),
    QosPolicy(QosPolicy),
}

impl Resource {
    /// The resource's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Resource::Host(_) => Kind::Host,
            Resource::Vpc(_) => Kind::Vpc,
            Resource::Subnet(_) => Kind::Subnet,
            Resource::Port(_) => Kind::Port,
            Resource::SecurityGroup(_) => Kind::SecurityGroup,
            Resource::SecurityGroupRule(_) => Kind::SecurityGroupRule,
            Resource::Router(_) => Kind::Router,
            Resource::FloatingIp(_) => Kind::FloatingIp,
            Resource::QosPolicy(_) => Kind::QosPolicy,
        }
    }
}

/// One resource's change in one entry.
#[allow(
    clippy::large_enum_variant,
    reason = "Put is the common case; boxing it would cost an allocation per change"
)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResourceChange {
    /// Created or changed: its value after the entry.
    Put(Resource),
    /// Deleted.
    Delete {
        /// What it was.
        kind: Kind,
        /// Its ID (a host's name, else a UUID).
        id: String,
    },
}

/// A resource a handler touched.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ChangeKey {
    Host(HostId),
    Id(Kind, Id),
}

/// The marks of the entry being applied, in first-touch order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Marks {
    order: Vec<ChangeKey>,
    seen: BTreeSet<ChangeKey>,
}

impl Marks {
    /// Marks a resource touched (once; the first touch fixes its position).
    pub(crate) fn mark(&mut self, key: ChangeKey) {
        if self.seen.insert(key.clone()) {
            self.order.push(key);
        }
    }

    /// The marked resources in first-touch order.
    pub(crate) fn into_order(self) -> Vec<ChangeKey> {
        self.order
    }
}

impl State {
    /// The change record of a marked resource, from the tables after the entry.
    pub(crate) fn change_of(&self, key: ChangeKey) -> ResourceChange {
        let t = &self.t;
        let (kind, id) = match key {
            ChangeKey::Host(id) => {
                return match t.hosts().get(&id) {
                    Some(h) => ResourceChange::Put(Resource::Host(h.clone())),
                    None => ResourceChange::Delete {
                        kind: Kind::Host,
                        id,
                    },
                }
            }
            ChangeKey::Id(kind, id) => (kind, id),
        };
        let found = match kind {
            Kind::Host => None,
            Kind::Vpc => t.vpcs().get(&id).cloned().map(Resource::Vpc),
            Kind::Subnet => t.subnets().get(&id).cloned().map(Resource::Subnet),
            Kind::Port => t.ports().shared(&id).map(|p| Resource::Port(Arc::clone(p))),
            Kind::SecurityGroup => t
                .security_groups()
                .get(&id)
                .cloned()
                .map(Resource::SecurityGroup),
            Kind::SecurityGroupRule => t.rules().get(&id).cloned().map(Resource::SecurityGroupRule),
            Kind::Router => t.routers().get(&id).cloned().map(Resource::Router),
            Kind::FloatingIp => t.floating_ips().get(&id).cloned().map(Resource::FloatingIp),
            Kind::QosPolicy => self.qos_policy(&id).cloned().map(Resource::QosPolicy),
            Kind::QosRule => None,
        };
        match found {
            Some(resource) => ResourceChange::Put(resource),
            None => ResourceChange::Delete {
                kind,
                id: id.to_string(),
            },
        }
    }
}
