//! QoS policies and who uses them: the table of snapshot format 7, its one
//! commit path per row kind, and the effective policy of a port.
//!
//! A port's effective policy is its own (`qos_policy_id` on the port), else
//! its network's unless the port is the network's own (`device_owner`
//! `network:*`, as in Neutron). It is part of the port's goal-state object
//! ([`PortConfig::qos`]), so every commit here records the ports whose
//! effective policy it may change as diff candidates before it writes.
//!
//! Who uses a policy is found through the reverse index
//! ([`Indexes`](super::Indexes) `qos_ports`, `qos_networks`: (policy, user)),
//! kept by the commit paths here and rebuilt on restore.
//!
//! The table follows format 5's in [`Tables`](super::Tables): a format-5 body is a
//! format-7 body without it, so it is read by appending an empty table's
//! encoding ([`format5_body_as_format7`]).

use super::{Indexes, State};
use crate::changes::ChangeKey;
use crate::command::Kind;
use crate::goal::{DiffCollector, GoalKey, PortConfig, QosConfig};
use crate::ids::Id;
use crate::model::{Port, QosPolicy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The QoS rows of the state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct QosTables {
    policies: BTreeMap<Id, QosPolicy>,
    /// port -> its own policy.
    ports: BTreeMap<Id, Id>,
    /// network -> its policy.
    networks: BTreeMap<Id, Id>,
}

/// A format-5 snapshot body in format 7: the same bytes followed by an empty
/// [`QosTables`] (bincode writes a struct as its fields in order).
pub(super) fn format5_body_as_format7(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    // Encoding plain data into a Vec has no failure mode other than OOM.
    if let Ok(empty) =
        bincode::serde::encode_to_vec(QosTables::default(), bincode::config::standard())
    {
        out.extend_from_slice(&empty);
    }
    out
}

/// Whether a port inherits its network's policy (not the network's own ports).
fn inherits(port: &Port) -> bool {
    !port.device_owner.starts_with("network:")
}

impl State {
    /// A QoS policy by ID.
    pub fn qos_policy(&self, id: &Id) -> Option<&QosPolicy> {
        self.t.qos.policies.get(id)
    }
    /// All QoS policies in ID order.
    pub fn qos_policies(&self) -> impl Iterator<Item = &QosPolicy> {
        self.t.qos.policies.values()
    }
    /// A port's own QoS policy (`qos_policy_id` on the port).
    pub fn port_qos_policy_id(&self, port: Id) -> Option<Id> {
        self.t.qos.ports.get(&port).copied()
    }
    /// A network's QoS policy.
    pub fn network_qos_policy_id(&self, network: Id) -> Option<Id> {
        self.t.qos.networks.get(&network).copied()
    }
    /// The policy whose rules apply to a port: its own, else its network's
    /// (unless the port is the network's own, `network:*`).
    pub fn effective_qos_policy(&self, port: &Port) -> Option<&QosPolicy> {
        let id = match self.t.qos.ports.get(&port.id) {
            Some(own) => *own,
            None if inherits(port) => *self.t.qos.networks.get(&port.network_id)?,
            None => return None,
        };
        self.t.qos.policies.get(&id)
    }
    /// Whether a network or port uses the policy, and which first (networks
    /// before ports, each in ID order).
    pub(crate) fn qos_policy_user(&self, policy: Id) -> Option<(Kind, Id)> {
        let network = users_of(&self.ix.qos_networks, policy).next();
        let port = users_of(&self.ix.qos_ports, policy).next();
        network
            .map(|n| (Kind::Vpc, n))
            .or(port.map(|p| (Kind::Port, p)))
    }

    /// A port's goal-state object, its effective QoS policy included.
    pub(crate) fn port_config(&self, port: &Port) -> PortConfig {
        let mut config = PortConfig::of(port);
        config.qos = self.effective_qos_policy(port).map(QosConfig::of);
        config
    }

    /// Records the goal object of every bound port that uses `policy`
    /// (directly or through its network) as a diff candidate.
    fn record_policy_users(&self, policy: Id, d: &mut DiffCollector) {
        for port in users_of(&self.ix.qos_ports, policy) {
            self.record_port(port, d);
        }
        for network in users_of(&self.ix.qos_networks, policy) {
            self.record_network_ports(network, d);
        }
    }

    /// Records the goal object of a port, if bound.
    fn record_port(&self, id: Id, d: &mut DiffCollector) {
        if let Some(host) = self.port(&id).and_then(|p| p.binding_host.as_deref()) {
            d.host_object(self, host, GoalKey::Port(id));
        }
    }

    /// Records the goal object of every bound port of a network that may
    /// inherit its policy.
    fn record_network_ports(&self, network: Id, d: &mut DiffCollector) {
        for port in self.ports_of_network(network) {
            if let Some(host) = port.binding_host.as_deref() {
                if !self.t.qos.ports.contains_key(&port.id) && inherits(port) {
                    d.host_object(self, host, GoalKey::Port(port.id));
                }
            }
        }
    }

    /// Replaces, inserts or deletes QoS policy `id` (a deleted policy is
    /// used by nothing: the handler checks).
    pub(crate) fn commit_qos_policy(
        &mut self,
        id: Id,
        new: Option<QosPolicy>,
        d: &mut DiffCollector,
    ) {
        if new.is_none() {
            assert!(
                self.qos_policy_user(id).is_none(),
                "QoS policy {id} deleted while in use (the handler checks)"
            );
        }
        let old_rules = self.t.qos.policies.get(&id).map(|p| &p.rules);
        if old_rules != new.as_ref().map(|p| &p.rules) {
            self.record_policy_users(id, d);
        }
        self.marks.mark(ChangeKey::Id(Kind::QosPolicy, id));
        match new {
            Some(policy) => {
                assert_eq!(policy.id, id, "a policy is stored under its own ID");
                self.t.qos.policies.insert(id, policy);
            }
            None => {
                self.t.qos.policies.remove(&id);
            }
        }
    }

    /// Sets or clears a port's own QoS policy (the port's row is committed
    /// by its handler, which bumps its revision).
    pub(crate) fn commit_port_qos(&mut self, port: Id, policy: Option<Id>, d: &mut DiffCollector) {
        if self.t.qos.ports.get(&port).copied() == policy {
            return;
        }
        self.record_port(port, d);
        match policy {
            Some(policy) => {
                assert!(
                    self.t.qos.policies.contains_key(&policy) && self.port(&port).is_some(),
                    "port {port} given QoS policy {policy}: both exist (the handler checks)"
                );
                if let Some(old) = self.t.qos.ports.insert(port, policy) {
                    self.ix.qos_ports.remove(&(old, port));
                }
                self.ix.qos_ports.insert((policy, port));
            }
            None => {
                if let Some(old) = self.t.qos.ports.remove(&port) {
                    self.ix.qos_ports.remove(&(old, port));
                }
            }
        }
    }

    /// Sets or clears a network's QoS policy.
    pub(crate) fn commit_network_qos(
        &mut self,
        network: Id,
        policy: Option<Id>,
        d: &mut DiffCollector,
    ) {
        if self.t.qos.networks.get(&network).copied() == policy {
            return;
        }
        self.record_network_ports(network, d);
        match policy {
            Some(policy) => {
                assert!(
                    self.t.qos.policies.contains_key(&policy) && self.vpc(&network).is_some(),
                    "network {network} given QoS policy {policy}: both exist (the handler checks)"
                );
                if let Some(old) = self.t.qos.networks.insert(network, policy) {
                    self.ix.qos_networks.remove(&(old, network));
                }
                self.ix.qos_networks.insert((policy, network));
            }
            None => {
                if let Some(old) = self.t.qos.networks.remove(&network) {
                    self.ix.qos_networks.remove(&(old, network));
                }
            }
        }
    }

    /// Forgets the QoS policy of a deleted port or network (called by their
    /// commit paths).
    pub(super) fn forget_qos_user(&mut self, kind: Kind, id: Id) {
        match kind {
            Kind::Port => {
                if let Some(policy) = self.t.qos.ports.remove(&id) {
                    self.ix.qos_ports.remove(&(policy, id));
                }
            }
            Kind::Vpc => {
                if let Some(policy) = self.t.qos.networks.remove(&id) {
                    self.ix.qos_networks.remove(&(policy, id));
                }
            }
            _ => {}
        }
    }
}

/// The users (ports or networks) of `policy` in a (policy, user) index, in ID order.
fn users_of(index: &BTreeSet<(Id, Id)>, policy: Id) -> impl Iterator<Item = Id> + '_ {
    index
        .range((policy, Id(0))..=(policy, Id(u128::MAX)))
        .map(|(_, user)| *user)
}

impl Indexes {
    /// Builds the policy -> users index from the QoS table (restore).
    pub(super) fn qos_users(&mut self, t: &QosTables) {
        self.qos_ports = t.ports.iter().map(|(port, p)| (*p, *port)).collect();
        self.qos_networks = t.networks.iter().map(|(net, p)| (*p, *net)).collect();
    }
}
