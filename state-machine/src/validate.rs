//! Field validation and address arithmetic shared by the command handlers.

use crate::command::Rejection;
use crate::limits::{ID_BYTES_MAX, IPV4_PREFIX_LEN_MAX, IPV6_PREFIX_LEN_MAX, NAME_BYTES_MAX};
use crate::model::{AllocationPool, Route};
use crate::state::ip_to_int;
use ipnet::IpNet;
use std::net::IpAddr;

/// A text field within [`NAME_BYTES_MAX`].
pub(crate) fn name(field: &str, value: &str) -> Result<(), Rejection> {
    if value.len() > NAME_BYTES_MAX {
        return Err(Rejection::invalid(
            field,
            format!("longer than {NAME_BYTES_MAX} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Rejection::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// A host or project ID: 1..=[`ID_BYTES_MAX`] bytes of `[A-Za-z0-9._:-]`.
pub(crate) fn ident(field: &str, value: &str) -> Result<(), Rejection> {
    let ok_chars = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
    if value.is_empty() || value.len() > ID_BYTES_MAX || !ok_chars {
        return Err(Rejection::invalid(
            field,
            format!("must be 1 to {ID_BYTES_MAX} characters of [A-Za-z0-9._:-]"),
        ));
    }
    Ok(())
}

/// A canonical CIDR (no host bits set) with room for hosts.
pub(crate) fn subnet_cidr(cidr: &IpNet) -> Result<(), Rejection> {
    if cidr.trunc() != *cidr {
        return Err(Rejection::InvalidCidr {
            cidr: cidr.to_string(),
            reason: format!("host bits set; did you mean {}?", cidr.trunc()),
        });
    }
    let max = match cidr {
        IpNet::V4(_) => IPV4_PREFIX_LEN_MAX,
        IpNet::V6(_) => IPV6_PREFIX_LEN_MAX,
    };
    if cidr.prefix_len() > max {
        return Err(Rejection::InvalidCidr {
            cidr: cidr.to_string(),
            reason: format!("prefix longer than /{max} leaves no room for hosts"),
        });
    }
    Ok(())
}

/// A canonical CIDR of any length.
pub(crate) fn canonical_cidr(cidr: &IpNet) -> Result<(), Rejection> {
    if cidr.trunc() != *cidr {
        return Err(Rejection::InvalidCidr {
            cidr: cidr.to_string(),
            reason: format!("host bits set; did you mean {}?", cidr.trunc()),
        });
    }
    Ok(())
}

/// Whether two prefixes share any address.
pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Whether an address is the same family as a prefix.
pub(crate) fn same_family(ip: &IpAddr, net: &IpNet) -> bool {
    matches!(
        (ip, net),
        (IpAddr::V4(_), IpNet::V4(_)) | (IpAddr::V6(_), IpNet::V6(_))
    )
}

/// Addresses of a subnet that are never handed to ports: the network address
/// and, for IPv4, the broadcast address.
pub(crate) fn is_reserved(cidr: &IpNet, ip: &IpAddr) -> bool {
    *ip == cidr.network() || (matches!(cidr, IpNet::V4(_)) && *ip == cidr.broadcast())
}

/// The first and last usable host addresses of a subnet, as integers.
pub(crate) fn host_range(cidr: &IpNet) -> (u128, u128) {
    let first = ip_to_int(cidr.network()) + 1;
    let last = match cidr {
        IpNet::V4(_) => ip_to_int(cidr.broadcast()) - 1,
        IpNet::V6(_) => ip_to_int(cidr.broadcast()),
    };
    (first, last)
}

/// The default pools: all host addresses except the gateway.
pub(crate) fn default_pools(cidr: &IpNet, gateway: Option<IpAddr>) -> Vec<AllocationPool> {
    let (first, last) = host_range(cidr);
    let v4 = matches!(cidr, IpNet::V4(_));
    let to_ip = |n| crate::state::int_to_ip(v4, n);
    let mut out = Vec::new();
    match gateway.map(ip_to_int) {
        Some(g) if g >= first && g <= last => {
            if g > first {
                out.push(AllocationPool {
                    start: to_ip(first),
                    end: to_ip(g - 1),
                });
            }
            if g < last {
                out.push(AllocationPool {
                    start: to_ip(g + 1),
                    end: to_ip(last),
                });
            }
        }
        _ => out.push(AllocationPool {
            start: to_ip(first),
            end: to_ip(last),
        }),
    }
    out
}

/// Pools inside the subnet, clear of reserved addresses and the gateway, disjoint;
/// returned sorted.
pub(crate) fn pools(
    cidr: &IpNet,
    gateway: Option<IpAddr>,
    pools: &[AllocationPool],
) -> Result<Vec<AllocationPool>, Rejection> {
    let (first, last) = host_range(cidr);
    let mut sorted: Vec<AllocationPool> = pools.to_vec();
    sorted.sort();
    for pool in &sorted {
        if !same_family(&pool.start, cidr) || !same_family(&pool.end, cidr) {
            return Err(Rejection::invalid(
                "allocation_pools",
                "address family differs from the CIDR",
            ));
        }
        let (s, e) = (ip_to_int(pool.start), ip_to_int(pool.end));
        if s > e {
            return Err(Rejection::invalid(
                "allocation_pools",
                format!("start {} after end {}", pool.start, pool.end),
            ));
        }
        if s < first || e > last {
            return Err(Rejection::invalid(
                "allocation_pools",
                format!(
                    "{}-{} is not inside the usable range of {cidr}",
                    pool.start, pool.end
                ),
            ));
        }
        if let Some(g) = gateway.map(ip_to_int) {
            if s <= g && g <= e {
                return Err(Rejection::invalid(
                    "allocation_pools",
                    "pool contains the gateway address",
                ));
            }
        }
    }
    for pair in sorted.windows(2) {
        if ip_to_int(pair[0].end) >= ip_to_int(pair[1].start) {
            return Err(Rejection::invalid("allocation_pools", "pools overlap"));
        }
    }
    Ok(sorted)
}

/// Routes with a canonical destination and a next hop of the same family.
pub(crate) fn routes(field: &str, routes: &[Route], max: usize) -> Result<Vec<Route>, Rejection> {
    if routes.len() > max {
        return Err(Rejection::invalid(field, format!("more than {max} routes")));
    }
    for route in routes {
        canonical_cidr(&route.destination)?;
        if !same_family(&route.nexthop, &route.destination) {
            return Err(Rejection::invalid(
                field,
                "next hop family differs from destination",
            ));
        }
    }
    let mut sorted = routes.to_vec();
    sorted.sort();
    sorted.dedup();
    Ok(sorted)
}

/// The expected revision, if given, equals the current one.
pub(crate) fn revision(expected: Option<u64>, actual: u64) -> Result<(), Rejection> {
    match expected {
        Some(expected) if expected != actual => Err(Rejection::StaleRevision { expected, actual }),
        _ => Ok(()),
    }
}
