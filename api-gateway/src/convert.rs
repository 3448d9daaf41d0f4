//! The only place `alcor.api.v1` messages meet domain types: parsing and
//! validating requests into commands, and rendering resources as messages.
//!
//! Parsing failures are the state machine's own [`Rejection`]s
//! (`InvalidField`, `InvalidCidr`, `BatchTooLarge`) so a client sees the same
//! reason code whether the gateway or the state machine caught the problem.

use std::net::IpAddr;
use std::str::FromStr;

use alcor_proto::api::v1 as pb;
use alcor_state_machine::limits::{ID_BYTES_MAX, NAME_BYTES_MAX};
use alcor_state_machine::model::{
    AddressPair, AllocationPool, Host, HostStatus, Mac, Port, PortStatus, Route, Subnet, Vpc,
};
use alcor_state_machine::{
    Command, FixedIpRequest, GatewaySpec, Id, PortSpec, PortUpdate, Rejection,
};
use ipnet::IpNet;

use crate::ids::random_id;
use crate::limits::PORTS_BATCH_MAX;

/// A field failed to parse or is out of bounds.
fn invalid(field: &str, reason: impl Into<String>) -> Rejection {
    Rejection::InvalidField {
        field: field.to_string(),
        reason: reason.into(),
    }
}

// ------------------------------------------------------------ parsing --

/// A required resource ID.
pub fn parse_id(field: &str, text: &str) -> Result<Id, Rejection> {
    if text.is_empty() {
        return Err(invalid(field, "required"));
    }
    Id::from_str(text).map_err(|e| invalid(field, e.to_string()))
}

/// The ID of a new resource: the client's, or a fresh random UUID v4.
fn new_id(field: &str, text: &str) -> Result<Id, Rejection> {
    if text.is_empty() {
        random_id().map_err(|e| invalid(field, format!("cannot generate: {e}")))
    } else {
        parse_id(field, text)
    }
}

/// An optional list marker for UUID-keyed lists.
pub fn parse_marker(text: &str) -> Result<Option<Id>, Rejection> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse_id("marker", text).map(Some)
    }
}

/// A host or project ID: free text, bounded.
fn parse_name_id(field: &str, text: &str, required: bool) -> Result<String, Rejection> {
    if required && text.is_empty() {
        return Err(invalid(field, "required"));
    }
    check_len(field, text, ID_BYTES_MAX)?;
    Ok(text.to_string())
}

fn check_len(field: &str, text: &str, max: usize) -> Result<(), Rejection> {
    if text.len() > max {
        return Err(invalid(field, format!("longer than {max} bytes")));
    }
    Ok(())
}

fn parse_name(field: &str, text: &str) -> Result<String, Rejection> {
    check_len(field, text, NAME_BYTES_MAX)?;
    Ok(text.to_string())
}

fn parse_ip(field: &str, text: &str) -> Result<IpAddr, Rejection> {
    IpAddr::from_str(text).map_err(|_| invalid(field, format!("not an IP address: {text:?}")))
}

/// A CIDR, which must be canonical (no host bits set).
fn parse_cidr(text: &str) -> Result<IpNet, Rejection> {
    let cidr = |reason: &str| Rejection::InvalidCidr {
        cidr: text.to_string(),
        reason: reason.to_string(),
    };
    let net = IpNet::from_str(text).map_err(|_| cidr("not a CIDR"))?;
    if net.trunc() != net {
        return Err(cidr("host bits are set"));
    }
    Ok(net)
}

/// An address or prefix (allowed address pairs): a bare IP is a /32 or /128.
fn parse_ip_or_net(field: &str, text: &str) -> Result<IpNet, Rejection> {
    if let Ok(net) = IpNet::from_str(text) {
        return Ok(net);
    }
    parse_ip(field, text).map(IpNet::from)
}

fn parse_mac(field: &str, text: &str) -> Result<Mac, Rejection> {
    Mac::from_str(text).map_err(|e| invalid(field, e))
}

fn parse_opt<T>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, Rejection>,
) -> Result<Option<T>, Rejection> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse(text).map(Some)
    }
}

fn parse_ids(field: &str, list: &pb::IdList) -> Result<Vec<Id>, Rejection> {
    list.ids.iter().map(|id| parse_id(field, id)).collect()
}

fn parse_routes(routes: &[pb::Route]) -> Result<Vec<Route>, Rejection> {
    routes
        .iter()
        .map(|r| {
            Ok(Route {
                destination: parse_cidr(&r.destination)?,
                nexthop: parse_ip("host_routes.nexthop", &r.nexthop)?,
            })
        })
        .collect()
}

// ----------------------------------------------------------- commands --

/// `CreateHost` → `Command::CreateHost`.
pub fn create_host(req: &pb::CreateHostRequest) -> Result<Command, Rejection> {
    Ok(Command::CreateHost {
        id: parse_name_id("id", &req.id, true)?,
        project_id: parse_name_id("project_id", &req.project_id, false)?,
        underlay_ip: parse_ip("underlay_ip", &req.underlay_ip)?,
    })
}

/// `CreateVpc` → `Command::CreateVpc`.
pub fn create_vpc(req: &pb::CreateVpcRequest) -> Result<Command, Rejection> {
    Ok(Command::CreateVpc {
        id: new_id("id", &req.id)?,
        project_id: parse_name_id("project_id", &req.project_id, true)?,
        name: parse_name("name", &req.name)?,
        cidr: parse_opt(&req.cidr, parse_cidr)?,
        vni: req.vni,
        mtu: req.mtu,
        admin_state_up: req.admin_state_up.unwrap_or(true),
    })
}

/// `CreateSubnet` → `Command::CreateSubnet`.
pub fn create_subnet(req: &pb::CreateSubnetRequest) -> Result<Command, Rejection> {
    let gateway = match (req.no_gateway, req.gateway_ip.as_str()) {
        (false, "") => GatewaySpec::Default,
        (true, "") => GatewaySpec::Disabled,
        (false, ip) => GatewaySpec::Ip(parse_ip("gateway_ip", ip)?),
        (true, _) => return Err(invalid("gateway_ip", "set together with no_gateway")),
    };
    let pools = req
        .allocation_pools
        .iter()
        .map(|p| {
            Ok(AllocationPool {
                start: parse_ip("allocation_pools.start", &p.start)?,
                end: parse_ip("allocation_pools.end", &p.end)?,
            })
        })
        .collect::<Result<Vec<_>, Rejection>>()?;
    Ok(Command::CreateSubnet {
        id: new_id("id", &req.id)?,
        project_id: parse_name_id("project_id", &req.project_id, true)?,
        network_id: parse_id("network_id", &req.network_id)?,
        name: parse_name("name", &req.name)?,
        cidr: parse_cidr(&req.cidr)?,
        gateway,
        allocation_pools: (!pools.is_empty()).then_some(pools),
        enable_dhcp: req.enable_dhcp.unwrap_or(true),
        dns_nameservers: req
            .dns_nameservers
            .iter()
            .map(|ip| parse_ip("dns_nameservers", ip))
            .collect::<Result<_, _>>()?,
        host_routes: parse_routes(&req.host_routes)?,
    })
}

/// One port of a `CreatePort`/`CreatePorts` request.
pub fn port_spec(req: &pb::CreatePortRequest) -> Result<PortSpec, Rejection> {
    let fixed_ips = req
        .fixed_ips
        .iter()
        .map(|f| {
            Ok(FixedIpRequest {
                subnet_id: parse_opt(&f.subnet_id, |t| parse_id("fixed_ips.subnet_id", t))?,
                ip_address: parse_opt(&f.ip_address, |t| parse_ip("fixed_ips.ip_address", t))?,
            })
        })
        .collect::<Result<Vec<_>, Rejection>>()?;
    let allowed_address_pairs = req
        .allowed_address_pairs
        .iter()
        .map(|p| {
            Ok(AddressPair {
                ip_address: parse_ip_or_net("allowed_address_pairs.ip_address", &p.ip_address)?,
                mac_address: parse_opt(&p.mac_address, |t| {
                    parse_mac("allowed_address_pairs.mac_address", t)
                })?,
            })
        })
        .collect::<Result<Vec<_>, Rejection>>()?;
    Ok(PortSpec {
        id: new_id("id", &req.id)?,
        project_id: parse_name_id("project_id", &req.project_id, true)?,
        network_id: parse_id("network_id", &req.network_id)?,
        name: parse_name("name", &req.name)?,
        fixed_ips,
        mac_address: parse_opt(&req.mac_address, |t| parse_mac("mac_address", t))?,
        binding_host: parse_opt(&req.binding_host, |t| {
            parse_name_id("binding_host", t, true)
        })?,
        device_id: parse_name("device_id", &req.device_id)?,
        device_owner: parse_name("device_owner", &req.device_owner)?,
        security_groups: req
            .security_groups
            .as_ref()
            .map(|l| parse_ids("security_groups", l))
            .transpose()?,
        allowed_address_pairs,
        admin_state_up: req.admin_state_up.unwrap_or(true),
    })
}

/// `CreatePorts` → `Command::CreatePorts`, refusing oversized batches
/// before parsing any entry.
pub fn create_ports(req: &pb::CreatePortsRequest) -> Result<Command, Rejection> {
    if req.ports.len() > PORTS_BATCH_MAX {
        return Err(Rejection::BatchTooLarge {
            len: req.ports.len(),
            max: PORTS_BATCH_MAX,
        });
    }
    if req.ports.is_empty() {
        return Err(invalid("ports", "empty batch"));
    }
    let specs = req
        .ports
        .iter()
        .enumerate()
        .map(|(index, port)| {
            port_spec(port).map_err(|cause| Rejection::BatchEntry {
                index,
                cause: Box::new(cause),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Command::CreatePorts(specs))
}

/// `UpdatePort` → `Command::UpdatePort`.
pub fn update_port(req: &pb::UpdatePortRequest) -> Result<Command, Rejection> {
    let binding_host = match req.binding_host.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(host) => Some(Some(parse_name_id("binding_host", host, true)?)),
    };
    let name = req
        .name
        .as_deref()
        .map(|n| parse_name("name", n))
        .transpose()?;
    let device_id = req
        .device_id
        .as_deref()
        .map(|n| parse_name("device_id", n))
        .transpose()?;
    let device_owner = req
        .device_owner
        .as_deref()
        .map(|n| parse_name("device_owner", n))
        .transpose()?;
    Ok(Command::UpdatePort {
        id: parse_id("id", &req.id)?,
        update: PortUpdate {
            name,
            binding_host,
            device_id,
            device_owner,
            security_groups: req
                .security_groups
                .as_ref()
                .map(|l| parse_ids("security_groups", l))
                .transpose()?,
            allowed_address_pairs: None,
            admin_state_up: req.admin_state_up,
        },
        expected_revision: req.expected_revision,
    })
}

// ---------------------------------------------------------- resources --

/// A host as a message.
pub fn host(h: &Host) -> pb::Host {
    pb::Host {
        id: h.id.clone(),
        project_id: h.meta.project_id.clone(),
        underlay_ip: h.underlay_ip.to_string(),
        status: match h.status {
            HostStatus::Up => pb::HostStatus::Up,
            HostStatus::Maintenance => pb::HostStatus::Maintenance,
        } as i32,
        revision: h.meta.revision,
        created_at_ms: h.meta.created_at,
        updated_at_ms: h.meta.updated_at,
    }
}

/// A VPC as a message.
pub fn vpc(v: &Vpc) -> pb::Vpc {
    pb::Vpc {
        id: v.id.to_string(),
        project_id: v.meta.project_id.clone(),
        name: v.name.clone(),
        cidr: v.cidr.map(|c| c.to_string()).unwrap_or_default(),
        vni: v.vni,
        mtu: v.mtu,
        admin_state_up: v.admin_state_up,
        revision: v.meta.revision,
        created_at_ms: v.meta.created_at,
        updated_at_ms: v.meta.updated_at,
    }
}

/// A subnet as a message.
pub fn subnet(s: &Subnet) -> pb::Subnet {
    pb::Subnet {
        id: s.id.to_string(),
        project_id: s.meta.project_id.clone(),
        network_id: s.network_id.to_string(),
        name: s.name.clone(),
        cidr: s.cidr.to_string(),
        gateway_ip: s.gateway_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        allocation_pools: s
            .allocation_pools
            .iter()
            .map(|p| pb::AllocationPool {
                start: p.start.to_string(),
                end: p.end.to_string(),
            })
            .collect(),
        enable_dhcp: s.enable_dhcp,
        dns_nameservers: s.dns_nameservers.iter().map(|ip| ip.to_string()).collect(),
        host_routes: s
            .host_routes
            .iter()
            .map(|r| pb::Route {
                destination: r.destination.to_string(),
                nexthop: r.nexthop.to_string(),
            })
            .collect(),
        revision: s.meta.revision,
        created_at_ms: s.meta.created_at,
        updated_at_ms: s.meta.updated_at,
    }
}

/// A port as a message.
pub fn port(p: &Port) -> pb::Port {
    let (status, status_detail) = match &p.status {
        PortStatus::Down => (pb::PortStatus::Down, String::new()),
        PortStatus::Active => (pb::PortStatus::Active, String::new()),
        PortStatus::Error(reason) => (pb::PortStatus::Error, reason.clone()),
    };
    pb::Port {
        id: p.id.to_string(),
        project_id: p.meta.project_id.clone(),
        network_id: p.network_id.to_string(),
        name: p.name.clone(),
        fixed_ips: p
            .fixed_ips
            .iter()
            .map(|f| pb::FixedIp {
                subnet_id: f.subnet_id.to_string(),
                ip_address: f.ip_address.to_string(),
            })
            .collect(),
        mac_address: p.mac_address.to_string(),
        binding_host: p.binding_host.clone().unwrap_or_default(),
        device_id: p.device_id.clone(),
        device_owner: p.device_owner.clone(),
        security_groups: p.security_groups.iter().map(Id::to_string).collect(),
        allowed_address_pairs: p
            .allowed_address_pairs
            .iter()
            .map(|a| pb::AddressPair {
                ip_address: a.ip_address.to_string(),
                mac_address: a.mac_address.map(|m| m.to_string()).unwrap_or_default(),
            })
            .collect(),
        admin_state_up: p.admin_state_up,
        status: status as i32,
        status_detail,
        revision: p.meta.revision,
        created_at_ms: p.meta.created_at,
        updated_at_ms: p.meta.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_with_host_bits_is_rejected_as_invalid_cidr() {
        let err = parse_cidr("10.0.0.1/24");
        assert!(matches!(err, Err(Rejection::InvalidCidr { .. })), "{err:?}");
        assert!(parse_cidr("10.0.0.0/24").is_ok());
        assert!(parse_cidr("not-a-cidr").is_err());
    }

    #[test]
    fn empty_id_on_create_gets_a_random_uuid_v4() {
        let a = new_id("id", "");
        let b = new_id("id", "");
        assert!(a.is_ok() && b.is_ok());
        assert_ne!(a, b);
        let text = a.map(|id| id.to_string()).unwrap_or_default();
        assert_eq!(text.as_bytes()[14], b'4');
    }

    #[test]
    fn oversized_batch_is_rejected_before_parsing_entries() {
        let req = pb::CreatePortsRequest {
            ports: vec![pb::CreatePortRequest::default(); PORTS_BATCH_MAX + 1],
        };
        let err = create_ports(&req);
        assert!(
            matches!(err, Err(Rejection::BatchTooLarge { .. })),
            "{err:?}"
        );
    }
}
