//! External networks and router gateways: the table of snapshot format 8
//! and its commit paths.
//!
//! A network is external (`router:external`) when its ID is in the table; a
//! router's gateway ([`RouterGateway`]) names its external network and the
//! port holding its addresses there. Floating IPs of an external network map
//! only to ports on subnets of routers with their gateway on that network
//! ([`State::external_path`]).
//!
//! The table sits last in [`Tables`](super::Tables): a format-7 body is a
//! format-8 body without it, so it is read by appending an empty table's
//! encoding ([`format7_body_as_current`]).

use super::State;
use crate::changes::ChangeKey;
use crate::command::Kind;
use crate::ids::Id;
use crate::model::{FloatingIp, RouterGateway};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The external-network rows of the state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExternalTables {
    /// The networks with `router:external` set.
    networks: BTreeSet<Id>,
    /// router -> its gateway.
    gateways: BTreeMap<Id, RouterGateway>,
}

/// A format-7 snapshot body in format 8: the same bytes followed by an empty
/// [`ExternalTables`] (bincode writes a struct as its fields in order).
pub(super) fn format7_body_as_current(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    // Encoding plain data into a Vec has no failure mode other than OOM.
    if let Ok(empty) =
        bincode::serde::encode_to_vec(ExternalTables::default(), bincode::config::standard())
    {
        out.extend_from_slice(&empty);
    }
    out
}

impl State {
    /// Whether a network is external (`router:external`).
    pub fn network_is_external(&self, network: Id) -> bool {
        self.t.ext.networks.contains(&network)
    }
    /// A router's external gateway.
    pub fn router_gateway(&self, router: Id) -> Option<&RouterGateway> {
        self.t.ext.gateways.get(&router)
    }
    /// The first router (ID order) with its gateway on `network`.
    ///
    /// A scan of the gateways, with no index: only a network update that
    /// turns an external network internal asks (its handler checks the flag
    /// first; a network that is not external holds no gateway), a rare
    /// operator write, so an index kept on every gateway change would cost
    /// more than it saves.
    pub(crate) fn gateway_router_on(&self, network: Id) -> Option<Id> {
        self.t
            .ext
            .gateways
            .iter()
            .find(|(_, g)| g.network_id == network)
            .map(|(r, _)| *r)
    }
    /// The router a port is the gateway port of (its device owner is
    /// [`DEVICE_OWNER_ROUTER_GATEWAY`](crate::model::DEVICE_OWNER_ROUTER_GATEWAY),
    /// its device the router, and the router's gateway names it).
    pub fn gateway_router(&self, port: &crate::model::Port) -> Option<Id> {
        if &*port.device_owner != crate::model::DEVICE_OWNER_ROUTER_GATEWAY {
            return None;
        }
        let router: Id = port.device_id.parse().ok()?;
        let gateway = self.t.ext.gateways.get(&router)?;
        (gateway.port_id == port.id).then_some(router)
    }
    /// The router a port serves as an interface or gateway port: the port
    /// API may neither delete it nor change its device.
    pub fn router_of_port(&self, port: &crate::model::Port) -> Option<Id> {
        self.interface_router(port)
            .or_else(|| self.gateway_router(port))
    }
    /// Whether a floating IP of `network` may map to `fixed` of `port_id`:
    /// always for a network that is not external (the caller's own network,
    /// as before format 8); for an external one, the subnet of the address
    /// must be attached to a router whose gateway is on that network.
    pub(crate) fn external_path(
        &self,
        network: Id,
        port_id: Id,
        subnet_id: Id,
    ) -> Result<(), crate::command::Rejection> {
        if !self.network_is_external(network) {
            return Ok(());
        }
        self.external_path_of(network, port_id, subnet_id)
    }
    /// [`State::external_path`] as if `network` were external.
    pub(crate) fn external_path_of(
        &self,
        network: Id,
        port_id: Id,
        subnet_id: Id,
    ) -> Result<(), crate::command::Rejection> {
        let reachable = self
            .ix
            .subnet_router()
            .get(&subnet_id)
            .and_then(|r| self.t.ext.gateways.get(r))
            .is_some_and(|g| g.network_id == network);
        if reachable {
            Ok(())
        } else {
            Err(crate::command::Rejection::ExternalNetworkUnreachable {
                network_id: network,
                subnet_id,
                port_id,
            })
        }
    }
    /// The first floating IP (ID order) of `network` that reaches its port
    /// through `router`, on `subnet` if given.
    pub(crate) fn fip_through(
        &self,
        network: Id,
        router: Id,
        subnet: Option<Id>,
    ) -> Option<&FloatingIp> {
        self.floating_ips_of_network(network).find(|fip| {
            self.fip_subnet(fip).is_some_and(|s| {
                subnet.is_none_or(|want| want == s)
                    && self.ix.subnet_router().get(&s) == Some(&router)
            })
        })
    }
    /// The subnet of the fixed address an associated floating IP maps to.
    fn fip_subnet(&self, fip: &FloatingIp) -> Option<Id> {
        let port = self.t.ports.get(&fip.port_id?)?;
        let fixed = fip.fixed_ip_address?;
        port.fixed_ips
            .iter()
            .find(|f| f.ip_address == fixed)
            .map(|f| f.subnet_id)
    }

    /// Sets or clears a network's `router:external` (the VPC's row is
    /// committed by its handler).
    pub(crate) fn commit_network_external(&mut self, network: Id, external: bool) {
        if self.network_is_external(network) == external {
            return;
        }
        if external {
            assert!(
                self.vpc(&network).is_some(),
                "network {network} made external: it exists (the handler checks)"
            );
            self.t.ext.networks.insert(network);
        } else {
            assert!(
                self.gateway_router_on(network).is_none(),
                "network {network} made internal under a gateway (the handler checks)"
            );
            self.t.ext.networks.remove(&network);
        }
        self.marks.mark(ChangeKey::Id(Kind::Vpc, network));
    }

    /// Sets or clears a router's gateway. Its port is committed by the
    /// handler (created before, deleted after).
    pub(crate) fn commit_router_gateway(&mut self, router: Id, gateway: Option<RouterGateway>) {
        match gateway {
            Some(gateway) => {
                assert!(
                    self.t.routers.contains_key(&router)
                        && self.network_is_external(gateway.network_id)
                        && self.t.ports.get(&gateway.port_id).is_some(),
                    "router {router} gateway on an external network through an existing port (the handler checks)"
                );
                self.t.ext.gateways.insert(router, gateway);
            }
            None => {
                self.t.ext.gateways.remove(&router);
            }
        }
        self.marks.mark(ChangeKey::Id(Kind::Router, router));
    }

    /// Forgets the external flag of a deleted network (called by its commit
    /// path; a network with a gateway on it has its port, so cannot be deleted).
    pub(super) fn forget_external_network(&mut self, network: Id) {
        self.t.ext.networks.remove(&network);
    }
}
