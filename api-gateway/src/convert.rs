//! The only place `alcor.api.v1` messages meet domain types: parsing and
//! validating requests into commands, and rendering resources as messages.
//!
//! Parsing failures are the state machine's own [`Rejection`]s
//! (`InvalidField`, `InvalidCidr`, `BatchTooLarge`) so a client sees the same
//! reason code whether the gateway or the state machine caught the problem.
//!
//! A create with a `request_token` becomes `Command::Idempotent`; without an
//! `id` it gets one derived from the token ([`token_id`]) so that a retry
//! proposes the identical command.

use std::net::IpAddr;
use std::str::FromStr;

use alcor_proto::api::v1 as pb;
use alcor_state_machine::limits::{ID_BYTES_MAX, NAME_BYTES_MAX, TAGS_MAX, TOKEN_BYTES_MAX};
use alcor_state_machine::model::{
    AllocationPool, AllowedAddressPair, Binding, Direction, EtherType, FloatingIp, Host,
    HostStatus, Mac, PairAddress, Port, PortStatus, QosPolicy, QosRule, QosRuleKind, Quota,
    ResourceKind, Route, Router, RouterGateway, RouterInterface, SecurityGroup, SecurityGroupRule,
    Subnet, Vpc,
};
use alcor_state_machine::{
    validate_client_id, validate_tags, Command, FixedIpRequest, GatewayRequest, GatewaySpec, Id,
    InterfaceRef, InterfaceTarget, Kind, PortSpecV5, PortUpdateV5, QosRuleUpdate, Rejection,
    Resource, ResourceChange, State, SubnetUpdate, TagFilter, Tags,
};
use ipnet::IpNet;

use crate::ids::{time_ordered_id, token_id};
use crate::limits::{PORTS_BATCH_MAX, PROTOCOL_NUMBER_MAX, TCP_UDP_PORT_MAX};

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

/// The ID of a new resource: the client's (outside the derived space the
/// state machine keeps for itself), or a fresh time-ordered UUID v7.
fn new_id(field: &str, text: &str) -> Result<Id, Rejection> {
    if text.is_empty() {
        time_ordered_id().map_err(|e| invalid(field, format!("cannot generate: {e}")))
    } else {
        let id = parse_id(field, text)?;
        validate_client_id(field, id)?;
        Ok(id)
    }
}

/// The ID of a new resource created with `token`: the client's, else one
/// derived from the token (same token and kind, same ID), else random.
fn new_id_for(field: &str, text: &str, token: &str, kind: &str) -> Result<Id, Rejection> {
    if text.is_empty() && !token.is_empty() {
        Ok(token_id(kind, token))
    } else {
        new_id(field, text)
    }
}

/// `command` under `token` (`Command::Idempotent`), or as is without one.
fn with_token(token: &str, command: Command) -> Result<Command, Rejection> {
    if token.is_empty() {
        return Ok(command);
    }
    if token.len() > TOKEN_BYTES_MAX || token.chars().any(char::is_control) {
        return Err(invalid(
            "request_token",
            format!("must be at most {TOKEN_BYTES_MAX} bytes without control characters"),
        ));
    }
    Ok(Command::Idempotent {
        token: token.to_string(),
        command: Box::new(command),
    })
}

/// A tag list as a set, checked like the state machine checks it.
pub fn parse_tags(field: &str, tags: &[String]) -> Result<Tags, Rejection> {
    if tags.len() > TAGS_MAX {
        return Err(invalid(field, format!("more than {TAGS_MAX} tags")));
    }
    validate_tags(field, tags)?;
    Ok(tags.iter().cloned().collect())
}

/// `command` with its resource's tags set to `tags` (none: as is).
fn with_tags(tags: Tags, command: Command) -> Command {
    if tags.is_empty() {
        command
    } else {
        Command::WithTags {
            tags,
            command: Box::new(command),
        }
    }
}

/// An update that also replaces the tags when the request sets them.
fn retag(tags: Option<&pb::TagSet>, command: Command) -> Result<Command, Rejection> {
    Ok(match tags {
        None => command,
        Some(set) => Command::WithTags {
            tags: parse_tags("tags", &set.tags)?,
            command: Box::new(command),
        },
    })
}

/// The tag filters of a list request.
pub fn tag_filter(
    tags: &[String],
    tags_any: &[String],
    not_tags: &[String],
    not_tags_any: &[String],
) -> Result<TagFilter, Rejection> {
    Ok(TagFilter {
        all: parse_tags("tags", tags)?,
        any: parse_tags("tags_any", tags_any)?,
        not_all: parse_tags("not_tags", not_tags)?,
        not_any: parse_tags("not_tags_any", not_tags_any)?,
    })
}

fn tag_list(tags: &Tags) -> Vec<String> {
    tags.iter().cloned().collect()
}

/// An optional list marker for UUID-keyed lists.
pub fn parse_marker(text: &str) -> Result<Option<Id>, Rejection> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse_id("marker", text).map(Some)
    }
}

/// An optional ID filter: empty means none.
pub fn parse_opt_id(field: &str, text: &str) -> Result<Option<Id>, Rejection> {
    parse_opt(text, |t| parse_id(field, t))
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

fn parse_routes(field: &str, routes: &[pb::Route]) -> Result<Vec<Route>, Rejection> {
    routes
        .iter()
        .map(|r| {
            Ok(Route {
                destination: parse_cidr(&r.destination)?,
                nexthop: parse_ip(&format!("{field}.nexthop"), &r.nexthop)?,
            })
        })
        .collect()
}

fn parse_pools(pools: &[pb::AllocationPool]) -> Result<Vec<AllocationPool>, Rejection> {
    pools
        .iter()
        .map(|p| {
            Ok(AllocationPool {
                start: parse_ip("allocation_pools.start", &p.start)?,
                end: parse_ip("allocation_pools.end", &p.end)?,
            })
        })
        .collect()
}

fn parse_ips(field: &str, ips: &[String]) -> Result<Vec<IpAddr>, Rejection> {
    ips.iter().map(|ip| parse_ip(field, ip)).collect()
}

/// Pairs as given: `10.0.0.5` stays an address, `10.0.0.5/32` a prefix.
fn parse_address_pairs(pairs: &[pb::AddressPair]) -> Result<Vec<AllowedAddressPair>, Rejection> {
    pairs
        .iter()
        .map(|p| {
            Ok(AllowedAddressPair {
                ip_address: PairAddress::from_str(&p.ip_address)
                    .map_err(|e| invalid("allowed_address_pairs.ip_address", e))?,
                mac_address: parse_opt(&p.mac_address, |t| {
                    parse_mac("allowed_address_pairs.mac_address", t)
                })?,
            })
        })
        .collect()
}

fn parse_opt_name(field: &str, text: Option<&str>) -> Result<Option<String>, Rejection> {
    text.map(|n| parse_name(field, n)).transpose()
}

fn parse_host_status(status: i32) -> Result<HostStatus, Rejection> {
    match pb::HostStatus::try_from(status) {
        Ok(pb::HostStatus::Up) => Ok(HostStatus::Up),
        Ok(pb::HostStatus::Maintenance) => Ok(HostStatus::Maintenance),
        Ok(pb::HostStatus::Unspecified) | Err(_) => {
            Err(invalid("status", "must be UP or MAINTENANCE"))
        }
    }
}

// ----------------------------------------------------------- commands --

/// `CreateHost` → `Command::CreateHost`.
pub fn create_host(req: &pb::CreateHostRequest) -> Result<Command, Rejection> {
    let command = Command::CreateHost {
        id: parse_name_id("id", &req.id, true)?,
        project_id: parse_name_id("project_id", &req.project_id, false)?,
        underlay_ip: parse_ip("underlay_ip", &req.underlay_ip)?,
    };
    with_token(&req.request_token, command)
}

/// `UpdateHost` → `Command::UpdateHost`.
pub fn update_host(req: &pb::UpdateHostRequest) -> Result<Command, Rejection> {
    Ok(Command::UpdateHost {
        id: parse_name_id("id", &req.id, true)?,
        underlay_ip: req
            .underlay_ip
            .as_deref()
            .map(|ip| parse_ip("underlay_ip", ip))
            .transpose()?,
        status: req.status.map(parse_host_status).transpose()?,
        expected_revision: req.expected_revision,
    })
}

/// `CreateVpc` → `Command::CreateVpcV8` (under its request token).
pub fn create_vpc(req: &pb::CreateVpcRequest) -> Result<Command, Rejection> {
    let command = Command::CreateVpcV8 {
        id: new_id_for("id", &req.id, &req.request_token, "vpc")?,
        project_id: parse_name_id("project_id", &req.project_id, true)?,
        name: parse_name("name", &req.name)?,
        cidr: parse_opt(&req.cidr, parse_cidr)?,
        vni: req.vni,
        mtu: req.mtu,
        admin_state_up: req.admin_state_up.unwrap_or(true),
        port_security_enabled: req.port_security_enabled.unwrap_or(true),
        qos_policy_id: parse_opt(&req.qos_policy_id, |t| parse_id("qos_policy_id", t))?,
        external: req.external,
    };
    let command = with_tags(parse_tags("tags", &req.tags)?, command);
    with_token(&req.request_token, command)
}

/// `UpdateVpc` → `Command::UpdateVpcV8`.
pub fn update_vpc(req: &pb::UpdateVpcRequest) -> Result<Command, Rejection> {
    let command = Command::UpdateVpcV8 {
        id: parse_id("id", &req.id)?,
        name: parse_opt_name("name", req.name.as_deref())?,
        mtu: req.mtu,
        admin_state_up: req.admin_state_up,
        port_security_enabled: req.port_security_enabled,
        qos_policy_id: parse_qos_change(req.qos_policy_id.as_deref())?,
        external: req.external,
        expected_revision: req.expected_revision,
    };
    retag(req.tags.as_ref(), command)
}

/// `CreateSubnet` → `Command::CreateSubnet` (under its request token).
pub fn create_subnet(req: &pb::CreateSubnetRequest) -> Result<Command, Rejection> {
    let gateway = match (req.no_gateway, req.gateway_ip.as_str()) {
        (false, "") => GatewaySpec::Default,
        (true, "") => GatewaySpec::Disabled,
        (false, ip) => GatewaySpec::Ip(parse_ip("gateway_ip", ip)?),
        (true, _) => return Err(invalid("gateway_ip", "set together with no_gateway")),
    };
    let pools = parse_pools(&req.allocation_pools)?;
    let command = Command::CreateSubnet {
        id: new_id_for("id", &req.id, &req.request_token, "subnet")?,
        project_id: parse_name_id("project_id", &req.project_id, true)?,
        network_id: parse_id("network_id", &req.network_id)?,
        name: parse_name("name", &req.name)?,
        cidr: parse_cidr(&req.cidr)?,
        gateway,
        allocation_pools: (!pools.is_empty()).then_some(pools),
        enable_dhcp: req.enable_dhcp.unwrap_or(true),
        dns_nameservers: parse_ips("dns_nameservers", &req.dns_nameservers)?,
        host_routes: parse_routes("host_routes", &req.host_routes)?,
    };
    let command = with_tags(parse_tags("tags", &req.tags)?, command);
    with_token(&req.request_token, command)
}

/// `UpdateSubnet` → `Command::UpdateSubnet`.
pub fn update_subnet(req: &pb::UpdateSubnetRequest) -> Result<Command, Rejection> {
    let gateway_ip = match req.gateway_ip.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(ip) => Some(Some(parse_ip("gateway_ip", ip)?)),
    };
    let command = Command::UpdateSubnet {
        id: parse_id("id", &req.id)?,
        update: SubnetUpdate {
            name: parse_opt_name("name", req.name.as_deref())?,
            gateway_ip,
            allocation_pools: req
                .allocation_pools
                .as_ref()
                .map(|l| parse_pools(&l.pools))
                .transpose()?,
            enable_dhcp: req.enable_dhcp,
            dns_nameservers: req
                .dns_nameservers
                .as_ref()
                .map(|l| parse_ips("dns_nameservers", &l.addresses))
                .transpose()?,
            host_routes: req
                .host_routes
                .as_ref()
                .map(|l| parse_routes("host_routes", &l.routes))
                .transpose()?,
        },
        expected_revision: req.expected_revision,
    };
    retag(req.tags.as_ref(), command)
}

/// `CreatePort` → `Command::CreatePortV7` (under its request token).
pub fn create_port(req: &pb::CreatePortRequest) -> Result<Command, Rejection> {
    let spec = port_spec(req, new_id_for("id", &req.id, &req.request_token, "port")?)?;
    let command = Command::CreatePortV7 {
        spec,
        qos_policy_id: parse_opt(&req.qos_policy_id, |t| parse_id("qos_policy_id", t))?,
    };
    let command = with_tags(parse_tags("tags", &req.tags)?, command);
    with_token(&req.request_token, command)
}

/// One port of a `CreatePort`/`CreatePorts` request, with its ID decided.
fn port_spec(req: &pb::CreatePortRequest, id: Id) -> Result<PortSpecV5, Rejection> {
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
    let allowed_address_pairs = parse_address_pairs(&req.allowed_address_pairs)?;
    Ok(PortSpecV5 {
        id,
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
        port_security_enabled: req.port_security_enabled,
    })
}

/// `CreatePorts` → `Command::CreatePortsV6`, refusing oversized batches
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
            let spec = if !port.tags.is_empty() {
                Err(invalid("tags", "not supported on the entries of a batch"))
            } else if !port.qos_policy_id.is_empty() {
                Err(invalid(
                    "qos_policy_id",
                    "not supported on the entries of a batch",
                ))
            } else if port.request_token.is_empty() {
                // Under a batch token, an entry without an id gets one derived from
                // (token, position), so a retried batch is the identical command.
                let token = if req.request_token.is_empty() {
                    String::new()
                } else {
                    format!("{}#{index}", req.request_token)
                };
                new_id_for("id", &port.id, &token, "port").and_then(|id| port_spec(port, id))
            } else {
                Err(invalid(
                    "request_token",
                    "not supported on the entries of a batch",
                ))
            };
            spec.map_err(|cause| Rejection::BatchEntry {
                index,
                cause: Box::new(cause),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    with_token(&req.request_token, Command::CreatePortsV6(specs))
}

/// `UpdatePort` → `Command::UpdatePortV7`.
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
    let command = Command::UpdatePortV7 {
        id: parse_id("id", &req.id)?,
        update: PortUpdateV5 {
            name,
            binding_host,
            device_id,
            device_owner,
            security_groups: req
                .security_groups
                .as_ref()
                .map(|l| parse_ids("security_groups", l))
                .transpose()?,
            allowed_address_pairs: req
                .allowed_address_pairs
                .as_ref()
                .map(|l| parse_address_pairs(&l.pairs))
                .transpose()?,
            admin_state_up: req.admin_state_up,
            port_security_enabled: req.port_security_enabled,
        },
        qos_policy_id: parse_qos_change(req.qos_policy_id.as_deref())?,
        expected_revision: req.expected_revision,
    };
    retag(req.tags.as_ref(), command)
}

/// `CreateSecurityGroup` → `Command::CreateSecurityGroup` (under its token).
pub fn create_security_group(req: &pb::CreateSecurityGroupRequest) -> Result<Command, Rejection> {
    let command = Command::CreateSecurityGroup {
        id: new_id_for("id", &req.id, &req.request_token, "security_group")?,
        project_id: parse_name_id("project_id", &req.project_id, true)?,
        name: parse_name("name", &req.name)?,
        description: parse_name("description", &req.description)?,
    };
    let command = with_tags(parse_tags("tags", &req.tags)?, command);
    with_token(&req.request_token, command)
}

/// `UpdateSecurityGroup` → `Command::UpdateSecurityGroup`.
pub fn update_security_group(req: &pb::UpdateSecurityGroupRequest) -> Result<Command, Rejection> {
    let command = Command::UpdateSecurityGroup {
        id: parse_id("id", &req.id)?,
        name: parse_opt_name("name", req.name.as_deref())?,
        description: parse_opt_name("description", req.description.as_deref())?,
        expected_revision: req.expected_revision,
    };
    retag(req.tags.as_ref(), command)
}

/// IANA protocol keywords Neutron accepts in rules.
const PROTOCOL_NAMES: [(&str, u8); 23] = [
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("icmp", 1),
    ("icmpv6", 58),
    ("igmp", 2),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];

/// A rule's protocol: a keyword or a number; empty or `any` is any.
/// `icmp` on an IPv6 rule is ICMPv6, as in Neutron.
fn parse_protocol(text: &str, ethertype: EtherType) -> Result<Option<u8>, Rejection> {
    let lower = text.to_ascii_lowercase();
    if lower.is_empty() || lower == "any" {
        return Ok(None);
    }
    if lower == "icmp" && ethertype == EtherType::Ipv6 {
        return Ok(Some(58));
    }
    if let Some((_, number)) = PROTOCOL_NAMES.iter().find(|(name, _)| *name == lower) {
        return Ok(Some(*number));
    }
    match lower.parse::<u32>() {
        Ok(n) => u8::try_from(n).map(Some).map_err(|_| {
            invalid(
                "protocol",
                format!("number {n} is above {PROTOCOL_NUMBER_MAX}"),
            )
        }),
        Err(_) => Err(invalid(
            "protocol",
            format!("{text:?} is neither a protocol name nor a number 0-{PROTOCOL_NUMBER_MAX}"),
        )),
    }
}

/// A port bound (or ICMP type/code) of a rule, within 0-65535.
fn parse_port_bound(field: &str, value: Option<u32>) -> Result<Option<u16>, Rejection> {
    value
        .map(|v| {
            u16::try_from(v).map_err(|_| invalid(field, format!("{v} is above {TCP_UDP_PORT_MAX}")))
        })
        .transpose()
}

/// The port range of a rule, checked against its protocol exactly as the
/// state machine does: TCP, UDP and SCTP take both ends or neither
/// (1 <= min <= max); ICMP and ICMPv6 take a type and optionally a code
/// (each at most 255); other protocols take none.
fn check_port_range(
    protocol: Option<u8>,
    min: Option<u16>,
    max: Option<u16>,
) -> Result<(), Rejection> {
    const ICMP_FIELD_MAX: u16 = 255;
    match protocol {
        Some(6 | 17 | 132) => match (min, max) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(invalid("port_range_max", "required with port_range_min")),
            (None, Some(_)) => Err(invalid("port_range_min", "required with port_range_max")),
            (Some(0), Some(_)) => Err(invalid("port_range_min", "must be at least 1")),
            (Some(lo), Some(hi)) if lo > hi => Err(invalid(
                "port_range_min",
                format!("{lo} is above port_range_max {hi}"),
            )),
            (Some(_), Some(_)) => Ok(()),
        },
        Some(1 | 58) => match (min, max) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(invalid(
                "port_range_max",
                "an ICMP code needs a type (port_range_min)",
            )),
            (Some(t), _) if t > ICMP_FIELD_MAX => Err(invalid(
                "port_range_min",
                format!("ICMP type {t} is above {ICMP_FIELD_MAX}"),
            )),
            (Some(_), Some(c)) if c > ICMP_FIELD_MAX => Err(invalid(
                "port_range_max",
                format!("ICMP code {c} is above {ICMP_FIELD_MAX}"),
            )),
            (Some(_), _) => Ok(()),
        },
        _ => match (min, max) {
            (None, None) => Ok(()),
            (Some(_), _) => Err(invalid(
                "port_range_min",
                "port ranges need protocol tcp, udp or sctp (or an ICMP type)",
            )),
            (None, Some(_)) => Err(invalid(
                "port_range_max",
                "port ranges need protocol tcp, udp or sctp (or an ICMP code)",
            )),
        },
    }
}

/// A rule's remote prefix: canonical, of the rule's family; a bare address
/// is a host prefix.
fn parse_remote_prefix(text: &str, ethertype: EtherType) -> Result<IpNet, Rejection> {
    const FIELD: &str = "remote_ip_prefix";
    let net = parse_ip_or_net(FIELD, text)?;
    if net.trunc() != net {
        return Err(invalid(
            FIELD,
            format!("host bits are set; did you mean {}?", net.trunc()),
        ));
    }
    match (net, ethertype) {
        (IpNet::V4(_), EtherType::Ipv4) | (IpNet::V6(_), EtherType::Ipv6) => Ok(net),
        (IpNet::V4(_), EtherType::Ipv6) => Err(invalid(FIELD, "an IPv4 prefix on an IPv6 rule")),
        (IpNet::V6(_), EtherType::Ipv4) => Err(invalid(FIELD, "an IPv6 prefix on an IPv4 rule")),
    }
}

/// `CreateSecurityGroupRule` → `Command::CreateSecurityGroupRule` (under
/// its token), with every field checked.
pub fn create_security_group_rule(
    req: &pb::CreateSecurityGroupRuleRequest,
) -> Result<Command, Rejection> {
    let direction = match pb::Direction::try_from(req.direction) {
        Ok(pb::Direction::Ingress) => Direction::Ingress,
        Ok(pb::Direction::Egress) => Direction::Egress,
        Ok(pb::Direction::Unspecified) | Err(_) => {
            return Err(invalid("direction", "must be INGRESS or EGRESS"))
        }
    };
    let ethertype = match pb::EtherType::try_from(req.ethertype) {
        Ok(pb::EtherType::Unspecified | pb::EtherType::Ipv4) => EtherType::Ipv4,
        Ok(pb::EtherType::Ipv6) => EtherType::Ipv6,
        Err(_) => return Err(invalid("ethertype", "must be IPV4 or IPV6")),
    };
    let protocol = parse_protocol(&req.protocol, ethertype)?;
    let port_range_min = parse_port_bound("port_range_min", req.port_range_min)?;
    let port_range_max = parse_port_bound("port_range_max", req.port_range_max)?;
    check_port_range(protocol, port_range_min, port_range_max)?;
    if !req.remote_ip_prefix.is_empty() && !req.remote_group_id.is_empty() {
        return Err(invalid(
            "remote_ip_prefix",
            "remote_ip_prefix and remote_group_id are exclusive",
        ));
    }
    let command = Command::CreateSecurityGroupRule {
        id: new_id_for("id", &req.id, &req.request_token, "security_group_rule")?,
        project_id: parse_name_id("project_id", &req.project_id, true)?,
        security_group_id: parse_id("security_group_id", &req.security_group_id)?,
        direction,
        ethertype,
        protocol,
        port_range_min,
        port_range_max,
        remote_ip_prefix: parse_opt(&req.remote_ip_prefix, |t| parse_remote_prefix(t, ethertype))?,
        remote_group_id: parse_opt(&req.remote_group_id, |t| parse_id("remote_group_id", t))?,
    };
    with_token(&req.request_token, command)
}

/// `CreateRouter` → `Command::CreateRouterV8` (under its request token;
/// the gateway port's ID derives from the token too, so a retry is the
/// same command).
pub fn create_router(req: &pb::CreateRouterRequest) -> Result<Command, Rejection> {
    let gateway = req
        .external_gateway
        .as_ref()
        .map(|g| {
            let port_id = new_id_for(
                "external_gateway.port_id",
                "",
                &req.request_token,
                "router_gateway",
            )?;
            gateway_request(g, port_id)
        })
        .transpose()?;
    let command = Command::CreateRouterV8 {
        id: new_id_for("id", &req.id, &req.request_token, "router")?,
        project_id: parse_name_id("project_id", &req.project_id, true)?,
        name: parse_name("name", &req.name)?,
        routes: parse_routes("routes", &req.routes)?,
        gateway,
    };
    let command = with_tags(parse_tags("tags", &req.tags)?, command);
    with_token(&req.request_token, command)
}

/// `UpdateRouter` → `Command::UpdateRouterV9`.
pub fn update_router(req: &pb::UpdateRouterRequest) -> Result<Command, Rejection> {
    let gateway = req
        .external_gateway
        .as_ref()
        .map(|change| {
            change
                .gateway
                .as_ref()
                .map(|g| gateway_request(g, new_id("external_gateway.port_id", "")?))
                .transpose()
        })
        .transpose()?;
    let command = Command::UpdateRouterV9 {
        id: parse_id("id", &req.id)?,
        name: parse_opt_name("name", req.name.as_deref())?,
        routes: req
            .routes
            .as_ref()
            .map(|l| parse_routes("routes", &l.routes))
            .transpose()?,
        admin_state_up: req.admin_state_up,
        gateway,
        expected_revision: req.expected_revision,
    };
    retag(req.tags.as_ref(), command)
}

/// A gateway of a router request, its new port's ID decided.
fn gateway_request(g: &pb::RouterGatewayRequest, port_id: Id) -> Result<GatewayRequest, Rejection> {
    let fixed_ips = g
        .external_fixed_ips
        .iter()
        .map(|f| {
            Ok(FixedIpRequest {
                subnet_id: parse_opt(&f.subnet_id, |t| {
                    parse_id("external_gateway.external_fixed_ips.subnet_id", t)
                })?,
                ip_address: parse_opt(&f.ip_address, |t| {
                    parse_ip("external_gateway.external_fixed_ips.ip_address", t)
                })?,
            })
        })
        .collect::<Result<Vec<_>, Rejection>>()?;
    Ok(GatewayRequest {
        network_id: parse_id("external_gateway.network_id", &g.network_id)?,
        enable_snat: g.enable_snat.unwrap_or(true),
        port_id,
        fixed_ips,
    })
}

/// `AddRouterInterface` (`add`) or `RemoveRouterInterface` → the command:
/// by `subnet_id` or by `port_id`, exactly one of them.
pub fn router_interface(req: &pb::RouterInterfaceRequest, add: bool) -> Result<Command, Rejection> {
    let router_id = parse_id("router_id", &req.router_id)?;
    let by_port = match (req.subnet_id.is_empty(), req.port_id.is_empty()) {
        (false, true) => false,
        (true, false) => true,
        _ => {
            return Err(invalid(
                "subnet_id",
                "give exactly one of subnet_id and port_id",
            ))
        }
    };
    if by_port && !req.interface_port_id.is_empty() {
        return Err(invalid("interface_port_id", "only with subnet_id"));
    }
    Ok(match (add, by_port) {
        (true, false) => Command::AddRouterInterfaceV6 {
            router_id,
            target: InterfaceTarget::Subnet {
                subnet_id: parse_id("subnet_id", &req.subnet_id)?,
                port_id: new_id("interface_port_id", &req.interface_port_id)?,
            },
        },
        (true, true) => Command::AddRouterInterfaceV6 {
            router_id,
            target: InterfaceTarget::Port(parse_id("port_id", &req.port_id)?),
        },
        (false, false) => Command::RemoveRouterInterfaceV6 {
            router_id,
            target: InterfaceRef::Subnet(parse_id("subnet_id", &req.subnet_id)?),
        },
        (false, true) => Command::RemoveRouterInterfaceV6 {
            router_id,
            target: InterfaceRef::Port(parse_id("port_id", &req.port_id)?),
        },
    })
}

/// `CreateFloatingIp` → `Command::CreateFloatingIp` (under its request token).
pub fn create_floating_ip(req: &pb::CreateFloatingIpRequest) -> Result<Command, Rejection> {
    let port_id = parse_opt(&req.port_id, |t| parse_id("port_id", t))?;
    let fixed_ip_address = parse_opt(&req.fixed_ip_address, |t| parse_ip("fixed_ip_address", t))?;
    if port_id.is_none() && fixed_ip_address.is_some() {
        return Err(invalid("fixed_ip_address", "needs port_id"));
    }
    let command = Command::CreateFloatingIp {
        id: new_id_for("id", &req.id, &req.request_token, "floating_ip")?,
        project_id: parse_name_id("project_id", &req.project_id, true)?,
        floating_network_id: parse_id("floating_network_id", &req.floating_network_id)?,
        floating_ip_address: parse_opt(&req.floating_ip_address, |t| {
            parse_ip("floating_ip_address", t)
        })?,
        port_id,
        fixed_ip_address,
        description: parse_name("description", &req.description)?,
    };
    let command = with_tags(parse_tags("tags", &req.tags)?, command);
    with_token(&req.request_token, command)
}

/// `UpdateFloatingIp` → `Command::UpdateFloatingIp`.
pub fn update_floating_ip(req: &pb::UpdateFloatingIpRequest) -> Result<Command, Rejection> {
    let port_id = match req.port_id.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(port) => Some(Some(parse_id("port_id", port)?)),
    };
    let command = Command::UpdateFloatingIp {
        id: parse_id("id", &req.id)?,
        port_id,
        fixed_ip_address: req
            .fixed_ip_address
            .as_deref()
            .map(|ip| parse_ip("fixed_ip_address", ip))
            .transpose()?,
        description: parse_opt_name("description", req.description.as_deref())?,
        expected_revision: req.expected_revision,
    };
    retag(req.tags.as_ref(), command)
}

/// The status filter of `ListFloatingIps`: `None` for any.
pub fn floating_ip_status_filter(status: i32) -> Result<Option<bool>, Rejection> {
    match pb::FloatingIpStatus::try_from(status) {
        Ok(pb::FloatingIpStatus::Unspecified) => Ok(None),
        Ok(pb::FloatingIpStatus::Active) => Ok(Some(true)),
        Ok(pb::FloatingIpStatus::Down) => Ok(Some(false)),
        Err(_) => Err(invalid("status", format!("unknown status {status}"))),
    }
}

/// A project ID named by a quota request.
pub fn quota_project(project_id: &str) -> Result<String, Rejection> {
    parse_name_id("project_id", project_id, true)
}

/// `SetQuota` → `Command::SetQuota`: the set limits over `current`.
pub fn set_quota(req: &pb::SetQuotaRequest, current: Quota) -> Result<Command, Rejection> {
    let limit = |field: &str, value: Option<i64>, current: i64| match value {
        Some(v) if v < -1 => Err(invalid(field, "must be -1 (unlimited) or at least 0")),
        Some(v) => Ok(v),
        None => Ok(current),
    };
    Ok(Command::SetQuota {
        project_id: quota_project(&req.project_id)?,
        quota: Quota {
            network: limit("network", req.network, current.network)?,
            subnet: limit("subnet", req.subnet, current.subnet)?,
            port: limit("port", req.port, current.port)?,
            router: limit("router", req.router, current.router)?,
            security_group: limit("security_group", req.security_group, current.security_group)?,
            security_group_rule: limit(
                "security_group_rule",
                req.security_group_rule,
                current.security_group_rule,
            )?,
            // Not on the wire yet: a SetQuota keeps the floating-IP limit.
            floating_ip: current.floating_ip,
        },
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
        port_security_enabled: v.port_security_enabled,
        qos_policy_id: String::new(),
        external: false,
        tags: tag_list(&v.meta.tags),
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
        host_routes: routes(&s.host_routes),
        tags: tag_list(&s.meta.tags),
        revision: s.meta.revision,
        created_at_ms: s.meta.created_at,
        updated_at_ms: s.meta.updated_at,
    }
}

/// A port as a message; `binding` is derived from the state
/// ([`State::binding`]).
pub fn port(p: &Port, binding: Binding) -> pb::Port {
    let (status, status_detail) = match &p.status {
        PortStatus::Down => (pb::PortStatus::Down, String::new()),
        PortStatus::Active => (pb::PortStatus::Active, String::new()),
        PortStatus::Error(reason) => (pb::PortStatus::Error, reason.to_string()),
    };
    pb::Port {
        id: p.id.to_string(),
        project_id: p.meta.project_id.clone(),
        network_id: p.network_id.to_string(),
        name: p.name.to_string(),
        fixed_ips: p
            .fixed_ips
            .iter()
            .map(|f| pb::FixedIp {
                subnet_id: f.subnet_id.to_string(),
                ip_address: f.ip_address.to_string(),
            })
            .collect(),
        mac_address: p.mac_address.to_string(),
        binding_host: p.binding_host.as_deref().unwrap_or_default().to_string(),
        device_id: p.device_id.to_string(),
        device_owner: p.device_owner.to_string(),
        security_groups: p.security_groups.iter().map(Id::to_string).collect(),
        allowed_address_pairs: p
            .allowed_address_pairs
            .iter()
            .map(|a| pb::AddressPair {
                // As given; the MAC defaults to the port's, as in Neutron.
                ip_address: a.ip_address.to_string(),
                mac_address: a.mac_address.unwrap_or(p.mac_address).to_string(),
            })
            .collect(),
        admin_state_up: p.admin_state_up,
        port_security_enabled: p.port_security_enabled,
        vif_type: match binding {
            Binding::Unbound => pb::VifType::Unbound,
            Binding::HostUnknown => pb::VifType::BindingFailed,
            Binding::Bound => pb::VifType::Ovs,
        } as i32,
        qos_policy_id: String::new(),
        status: status as i32,
        status_detail,
        tags: tag_list(&p.meta.tags),
        revision: p.meta.revision,
        created_at_ms: p.meta.created_at,
        updated_at_ms: p.meta.updated_at,
    }
}

/// A security group as a message.
pub fn security_group(g: &SecurityGroup) -> pb::SecurityGroup {
    pb::SecurityGroup {
        id: g.id.to_string(),
        project_id: g.meta.project_id.clone(),
        name: g.name.clone(),
        description: g.description.clone(),
        is_default: g.is_default,
        tags: tag_list(&g.meta.tags),
        revision: g.meta.revision,
        created_at_ms: g.meta.created_at,
        updated_at_ms: g.meta.updated_at,
    }
}

/// A security-group rule as a message.
pub fn security_group_rule(r: &SecurityGroupRule) -> pb::SecurityGroupRule {
    pb::SecurityGroupRule {
        id: r.id.to_string(),
        project_id: r.meta.project_id.clone(),
        security_group_id: r.security_group_id.to_string(),
        direction: match r.direction {
            Direction::Ingress => pb::Direction::Ingress,
            Direction::Egress => pb::Direction::Egress,
        } as i32,
        ethertype: match r.ethertype {
            EtherType::Ipv4 => pb::EtherType::Ipv4,
            EtherType::Ipv6 => pb::EtherType::Ipv6,
        } as i32,
        protocol: r.protocol.map(|p| p.to_string()).unwrap_or_default(),
        port_range_min: r.port_range_min.map(u32::from),
        port_range_max: r.port_range_max.map(u32::from),
        remote_ip_prefix: r
            .remote_ip_prefix
            .map(|p| p.to_string())
            .unwrap_or_default(),
        remote_group_id: r.remote_group_id.map(|g| g.to_string()).unwrap_or_default(),
        revision: r.meta.revision,
        created_at_ms: r.meta.created_at,
        updated_at_ms: r.meta.updated_at,
    }
}

fn routes(routes: &[Route]) -> Vec<pb::Route> {
    routes
        .iter()
        .map(|r| pb::Route {
            destination: r.destination.to_string(),
            nexthop: r.nexthop.to_string(),
        })
        .collect()
}

/// A port rendered against the state it lives in (its binding and QoS policy).
pub fn port_in(state: &State, p: &Port) -> pb::Port {
    port_with(p, port_context(state, p))
}

/// What rendering a port reads from the state beyond its row. Gathered
/// under the state's read lock, so that a large reply is formatted after
/// the lock is released and apply does not wait for the formatting.
#[derive(Clone, Copy, Debug)]
pub struct PortContext {
    binding: Binding,
    qos_policy_id: Option<Id>,
}

/// The state's part of port `p`'s rendering.
pub fn port_context(state: &State, p: &Port) -> PortContext {
    PortContext {
        binding: state.binding(p),
        qos_policy_id: state.port_qos_policy_id(p.id),
    }
}

/// Port `p` rendered with what [`port_context`] gathered.
pub fn port_with(p: &Port, context: PortContext) -> pb::Port {
    pb::Port {
        qos_policy_id: id_text(context.qos_policy_id),
        ..port(p, context.binding)
    }
}

/// A VPC rendered against the state it lives in (its QoS policy and
/// `router:external`).
pub fn vpc_in(state: &State, v: &Vpc) -> pb::Vpc {
    pb::Vpc {
        qos_policy_id: id_text(state.network_qos_policy_id(v.id)),
        external: state.network_is_external(v.id),
        ..vpc(v)
    }
}

fn id_text(id: Option<Id>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// A router rendered against the state it lives in (its interfaces' ports
/// and its gateway).
pub fn router_in(state: &State, r: &Router) -> pb::Router {
    pb::Router {
        external_gateway: state.router_gateway(r.id).map(router_gateway),
        ..router(r, |iface| state.interface_port(r.id, iface).map(|p| p.id))
    }
}

/// A router's gateway as a message.
pub fn router_gateway(g: &RouterGateway) -> pb::RouterGateway {
    pb::RouterGateway {
        network_id: g.network_id.to_string(),
        enable_snat: g.enable_snat,
        port_id: g.port_id.to_string(),
        external_fixed_ips: g
            .external_fixed_ips
            .iter()
            .map(|f| pb::FixedIp {
                subnet_id: f.subnet_id.to_string(),
                ip_address: f.ip_address.to_string(),
            })
            .collect(),
    }
}

/// A router as a message; `port_of` names an interface's port.
pub fn router(r: &Router, port_of: impl Fn(&RouterInterface) -> Option<Id>) -> pb::Router {
    pb::Router {
        id: r.id.to_string(),
        project_id: r.meta.project_id.clone(),
        name: r.name.clone(),
        admin_state_up: r.admin_state_up,
        interfaces: r
            .interfaces
            .iter()
            .map(|i| pb::RouterInterface {
                subnet_id: i.subnet_id.to_string(),
                ip_address: i.ip_address.to_string(),
                port_id: port_of(i).map(|p| p.to_string()).unwrap_or_default(),
            })
            .collect(),
        routes: routes(&r.routes),
        external_gateway: None,
        tags: tag_list(&r.meta.tags),
        revision: r.meta.revision,
        created_at_ms: r.meta.created_at,
        updated_at_ms: r.meta.updated_at,
    }
}

/// A floating IP as a message; `router` is the router serving its fixed
/// address (derived from the state, see `State::floating_ip_router`).
pub fn floating_ip(f: &FloatingIp, router: Option<Id>) -> pb::FloatingIp {
    let status = if f.port_id.is_some() {
        pb::FloatingIpStatus::Active
    } else {
        pb::FloatingIpStatus::Down
    };
    pb::FloatingIp {
        id: f.id.to_string(),
        project_id: f.meta.project_id.clone(),
        floating_network_id: f.floating_network_id.to_string(),
        floating_subnet_id: f.floating_subnet_id.to_string(),
        floating_ip_address: f.floating_ip_address.to_string(),
        port_id: f.port_id.map(|p| p.to_string()).unwrap_or_default(),
        fixed_ip_address: f
            .fixed_ip_address
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
        router_id: router.map(|r| r.to_string()).unwrap_or_default(),
        status: status as i32,
        description: f.description.clone(),
        tags: tag_list(&f.meta.tags),
        revision: f.meta.revision,
        created_at_ms: f.meta.created_at,
        updated_at_ms: f.meta.updated_at,
    }
}

/// A floating IP rendered against the state it lives in.
pub fn floating_ip_in(state: &alcor_state_machine::State, f: &FloatingIp) -> pb::FloatingIp {
    floating_ip(f, state.floating_ip_router(f))
}

/// The Watch kind of a state-machine kind.
pub fn resource_kind(kind: Kind) -> pb::ResourceKind {
    match kind {
        Kind::Host => pb::ResourceKind::Host,
        Kind::Vpc => pb::ResourceKind::Vpc,
        Kind::Subnet => pb::ResourceKind::Subnet,
        Kind::Port => pb::ResourceKind::Port,
        Kind::SecurityGroup => pb::ResourceKind::SecurityGroup,
        Kind::SecurityGroupRule => pb::ResourceKind::SecurityGroupRule,
        Kind::Router => pb::ResourceKind::Router,
        Kind::FloatingIp => pb::ResourceKind::FloatingIp,
        // Rules change as part of their policy.
        Kind::QosPolicy | Kind::QosRule => pb::ResourceKind::QosPolicy,
    }
}

/// The `kind` field of the watch event of `change` (without converting it).
pub fn watch_kind(change: &ResourceChange) -> i32 {
    let kind = match change {
        ResourceChange::Delete { kind, .. } => *kind,
        ResourceChange::Put(resource) => resource.kind(),
    };
    resource_kind(kind) as i32
}

/// One applied change as a Watch event; what is derived (a floating IP's
/// router, a port's binding, a router's interface ports) comes from `state`
/// when it is readable.
pub fn watch_event(
    revision: u64,
    change: &ResourceChange,
    state: Option<&State>,
) -> pb::WatchEvent {
    use pb::watch_event::Object;
    let (kind, id, kind_of_event, object) = match change {
        ResourceChange::Delete { kind, id } => {
            (*kind, id.clone(), pb::WatchEventType::Delete, None)
        }
        ResourceChange::Put(resource) => {
            let (id, object) = match resource {
                Resource::Host(h) => (h.id.clone(), Object::Host(host(h))),
                Resource::Vpc(v) => {
                    let rendered = match state {
                        Some(s) => vpc_in(s, v),
                        None => vpc(v),
                    };
                    (v.id.to_string(), Object::Vpc(rendered))
                }
                Resource::Subnet(s) => (s.id.to_string(), Object::Subnet(subnet(s))),
                Resource::Port(p) => {
                    let binding = match (state, &p.binding_host) {
                        (Some(s), _) => s.binding(p),
                        (None, None) => Binding::Unbound,
                        (None, Some(_)) => Binding::Bound,
                    };
                    let rendered = pb::Port {
                        qos_policy_id: id_text(state.and_then(|s| s.port_qos_policy_id(p.id))),
                        ..port(p, binding)
                    };
                    (p.id.to_string(), Object::Port(rendered))
                }
                Resource::SecurityGroup(g) => {
                    (g.id.to_string(), Object::SecurityGroup(security_group(g)))
                }
                Resource::SecurityGroupRule(r) => (
                    r.id.to_string(),
                    Object::SecurityGroupRule(security_group_rule(r)),
                ),
                Resource::Router(r) => {
                    let rendered = match state {
                        Some(s) => router_in(s, r),
                        None => router(r, |_| None),
                    };
                    (r.id.to_string(), Object::Router(rendered))
                }
                Resource::QosPolicy(q) => (q.id.to_string(), Object::QosPolicy(qos_policy(q))),
                Resource::FloatingIp(f) => (
                    f.id.to_string(),
                    Object::FloatingIp(floating_ip(f, state.and_then(|s| s.floating_ip_router(f)))),
                ),
            };
            (resource.kind(), id, pb::WatchEventType::Put, Some(object))
        }
    };
    pb::WatchEvent {
        revision,
        kind: resource_kind(kind) as i32,
        id,
        r#type: kind_of_event as i32,
        object,
    }
}

/// A project's limits and its usage (`usage` counts one kind).
pub fn quota(project_id: &str, limits: &Quota, usage: impl Fn(ResourceKind) -> u64) -> pb::Quota {
    pb::Quota {
        project_id: project_id.to_string(),
        limits: Some(pb::QuotaLimits {
            network: limits.network,
            subnet: limits.subnet,
            port: limits.port,
            router: limits.router,
            security_group: limits.security_group,
            security_group_rule: limits.security_group_rule,
        }),
        usage: Some(pb::QuotaUsage {
            network: usage(ResourceKind::Network),
            subnet: usage(ResourceKind::Subnet),
            port: usage(ResourceKind::Port),
            router: usage(ResourceKind::Router),
            security_group: usage(ResourceKind::SecurityGroup),
            security_group_rule: usage(ResourceKind::SecurityGroupRule),
        }),
    }
}

// ---------------------------------------------------------------- QoS --

/// A QoS policy change of an update: unset leaves it, empty removes it.
fn parse_qos_change(text: Option<&str>) -> Result<Option<Option<Id>>, Rejection> {
    text.map(|t| parse_opt(t, |t| parse_id("qos_policy_id", t)))
        .transpose()
}

/// `CreateQosPolicy` → `Command::CreateQosPolicy` (under its request token).
pub fn create_qos_policy(req: &pb::CreateQosPolicyRequest) -> Result<Command, Rejection> {
    let command = Command::CreateQosPolicy {
        id: new_id_for("id", &req.id, &req.request_token, "qos_policy")?,
        project_id: parse_name_id("project_id", &req.project_id, true)?,
        name: parse_name("name", &req.name)?,
        description: parse_name("description", &req.description)?,
        shared: req.shared,
    };
    with_token(&req.request_token, command)
}

/// `UpdateQosPolicy` → `Command::UpdateQosPolicy`.
pub fn update_qos_policy(req: &pb::UpdateQosPolicyRequest) -> Result<Command, Rejection> {
    Ok(Command::UpdateQosPolicy {
        id: parse_id("id", &req.id)?,
        name: parse_opt_name("name", req.name.as_deref())?,
        description: parse_opt_name("description", req.description.as_deref())?,
        shared: req.shared,
        expected_revision: req.expected_revision,
    })
}

fn parse_qos_direction(value: i32) -> Result<Direction, Rejection> {
    match pb::Direction::try_from(value) {
        Ok(pb::Direction::Unspecified | pb::Direction::Egress) => Ok(Direction::Egress),
        Ok(pb::Direction::Ingress) => Ok(Direction::Ingress),
        Err(_) => Err(invalid("direction", "must be INGRESS or EGRESS")),
    }
}

fn parse_dscp_mark(value: u32) -> Result<u8, Rejection> {
    u8::try_from(value).map_err(|_| invalid("dscp_mark", format!("{value} is not a DSCP mark")))
}

/// `CreateQosRule` → `Command::CreateQosRule` (under its request token),
/// its values checked as the state machine checks them.
pub fn create_qos_rule(req: &pb::CreateQosRuleRequest) -> Result<Command, Rejection> {
    let rule = req
        .rule
        .as_ref()
        .ok_or_else(|| invalid("rule", "missing"))?;
    let kind = match &rule.kind {
        Some(pb::qos_rule::Kind::BandwidthLimit(b)) => QosRuleKind::BandwidthLimit {
            direction: parse_qos_direction(b.direction)?,
            max_kbps: b.max_kbps,
            max_burst_kbps: b.max_burst_kbps,
        },
        Some(pb::qos_rule::Kind::DscpMarking(m)) => QosRuleKind::DscpMarking {
            dscp_mark: parse_dscp_mark(m.dscp_mark)?,
        },
        None => return Err(invalid("rule", "names no rule type")),
    };
    alcor_state_machine::validate_qos_rule(&kind)?;
    let command = Command::CreateQosRule {
        policy_id: parse_id("policy_id", &req.policy_id)?,
        rule: QosRule {
            id: new_id_for("rule.id", &rule.id, &req.request_token, "qos_rule")?,
            kind,
        },
    };
    with_token(&req.request_token, command)
}

/// `UpdateQosRule` → `Command::UpdateQosRule`.
pub fn update_qos_rule(req: &pb::UpdateQosRuleRequest) -> Result<Command, Rejection> {
    Ok(Command::UpdateQosRule {
        policy_id: parse_id("policy_id", &req.policy_id)?,
        rule_id: parse_id("rule_id", &req.rule_id)?,
        update: QosRuleUpdate {
            max_kbps: req.max_kbps,
            max_burst_kbps: req.max_burst_kbps,
            direction: req.direction.map(parse_qos_direction).transpose()?,
            dscp_mark: req.dscp_mark.map(parse_dscp_mark).transpose()?,
        },
    })
}

/// `DeleteQosRule` → `Command::DeleteQosRule`.
pub fn delete_qos_rule(req: &pb::DeleteQosRuleRequest) -> Result<Command, Rejection> {
    Ok(Command::DeleteQosRule {
        policy_id: parse_id("policy_id", &req.policy_id)?,
        rule_id: parse_id("rule_id", &req.rule_id)?,
    })
}

/// A QoS rule as a message.
pub fn qos_rule(r: &QosRule) -> pb::QosRule {
    let kind = match r.kind {
        QosRuleKind::BandwidthLimit {
            direction,
            max_kbps,
            max_burst_kbps,
        } => pb::qos_rule::Kind::BandwidthLimit(pb::QosBandwidthLimit {
            direction: match direction {
                Direction::Ingress => pb::Direction::Ingress,
                Direction::Egress => pb::Direction::Egress,
            } as i32,
            max_kbps,
            max_burst_kbps,
        }),
        QosRuleKind::DscpMarking { dscp_mark } => {
            pb::qos_rule::Kind::DscpMarking(pb::QosDscpMarking {
                dscp_mark: u32::from(dscp_mark),
            })
        }
    };
    pb::QosRule {
        id: r.id.to_string(),
        kind: Some(kind),
    }
}

/// A QoS policy as a message.
pub fn qos_policy(q: &QosPolicy) -> pb::QosPolicy {
    pb::QosPolicy {
        id: q.id.to_string(),
        project_id: q.meta.project_id.clone(),
        name: q.name.clone(),
        description: q.description.clone(),
        shared: q.shared,
        rules: q.rules.iter().map(qos_rule).collect(),
        revision: q.meta.revision,
        created_at_ms: q.meta.created_at,
        updated_at_ms: q.meta.updated_at,
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
    fn empty_id_on_create_gets_a_time_ordered_uuid_v7() {
        let a = new_id("id", "");
        let b = new_id("id", "");
        assert!(a.is_ok() && b.is_ok());
        assert_ne!(a, b);
        let text = a.map(|id| id.to_string()).unwrap_or_default();
        assert_eq!(text.as_bytes()[14], b'7');
    }

    #[test]
    fn client_id_of_the_derived_form_is_refused_as_reserved() {
        let derived = "00000000-0009-a000-0000-000000000001";
        assert_eq!(
            new_id("id", derived),
            Err(Rejection::ReservedId {
                field: "id".to_string(),
                id: Id::derived(9, 1),
            })
        );
        assert!(new_id("id", "0f1e2d3c-4b5a-4978-8a9b-0c1d2e3f4a5b").is_ok());
    }

    #[test]
    fn protocols_are_names_or_numbers_and_icmp_follows_the_ethertype() {
        let v4 = EtherType::Ipv4;
        assert_eq!(parse_protocol("TCP", v4), Ok(Some(6)));
        assert_eq!(parse_protocol("255", v4), Ok(Some(255)));
        assert_eq!(parse_protocol("any", v4), Ok(None));
        assert_eq!(parse_protocol("", v4), Ok(None));
        assert_eq!(parse_protocol("icmp", v4), Ok(Some(1)));
        assert_eq!(parse_protocol("icmp", EtherType::Ipv6), Ok(Some(58)));
        for bad in ["256", "-1", "tpc"] {
            let err = parse_protocol(bad, v4);
            assert!(
                matches!(&err, Err(Rejection::InvalidField { field, .. }) if field == "protocol"),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn port_ranges_follow_the_protocol_like_the_state_machine() {
        let field = |r: Result<(), Rejection>| match r {
            Ok(()) => "ok".to_string(),
            Err(Rejection::InvalidField { field, .. }) => field,
            Err(other) => format!("{other:?}"),
        };
        assert_eq!(field(check_port_range(Some(6), Some(1), Some(65535))), "ok");
        assert_eq!(field(check_port_range(Some(17), None, None)), "ok");
        assert_eq!(
            field(check_port_range(Some(6), Some(0), Some(1))),
            "port_range_min"
        );
        assert_eq!(
            field(check_port_range(Some(6), Some(2), Some(1))),
            "port_range_min"
        );
        assert_eq!(
            field(check_port_range(Some(132), Some(2), None)),
            "port_range_max"
        );
        assert_eq!(field(check_port_range(Some(1), Some(8), None)), "ok");
        assert_eq!(
            field(check_port_range(Some(58), Some(1), Some(256))),
            "port_range_max"
        );
        assert_eq!(
            field(check_port_range(None, Some(1), Some(2))),
            "port_range_min"
        );
        assert_eq!(
            field(check_port_range(Some(47), None, Some(2))),
            "port_range_max"
        );
    }

    #[test]
    fn remote_prefix_must_be_canonical_and_of_the_rule_family() {
        assert_eq!(
            parse_remote_prefix("10.0.0.1", EtherType::Ipv4).map(|n| n.to_string()),
            Ok("10.0.0.1/32".to_string())
        );
        assert!(parse_remote_prefix("10.0.0.1/8", EtherType::Ipv4).is_err());
        assert!(parse_remote_prefix("10.0.0.0/8", EtherType::Ipv6).is_err());
        assert!(parse_remote_prefix("::/0", EtherType::Ipv6).is_ok());
    }

    #[test]
    fn a_token_without_an_id_derives_the_same_command_each_time() {
        let req = pb::CreateRouterRequest {
            project_id: "p".into(),
            request_token: "t".into(),
            ..Default::default()
        };
        let first = create_router(&req);
        assert!(matches!(first, Ok(Command::Idempotent { .. })), "{first:?}");
        assert_eq!(first, create_router(&req));
        let untokened = pb::CreateRouterRequest {
            request_token: String::new(),
            ..req
        };
        assert_ne!(create_router(&untokened), create_router(&untokened));
    }

    #[test]
    fn oversized_batch_is_rejected_before_parsing_entries() {
        let req = pb::CreatePortsRequest {
            ports: vec![pb::CreatePortRequest::default(); PORTS_BATCH_MAX + 1],
            ..Default::default()
        };
        let err = create_ports(&req);
        assert!(
            matches!(err, Err(Rejection::BatchTooLarge { .. })),
            "{err:?}"
        );
    }
}
