//! The `--initial-cluster` syntax: `ID=RAFT_ADDR/API_ADDR` entries joined by
//! commas, e.g. `1=10.0.0.1:7001/10.0.0.1:8001,2=10.0.0.2:7001/10.0.0.2:8001`.
//! Addresses are `host:port` without a scheme; every member gets the same
//! value (etcd style).

use std::collections::BTreeMap;

use alcor_raft_core::{Node, NodeId};

/// Members a cluster may be bootstrapped with.
pub(crate) const INITIAL_MEMBERS_MAX: usize = 9;

/// Parses the `--initial-cluster` value.
pub(crate) fn parse(text: &str) -> Result<BTreeMap<NodeId, Node>, String> {
    let mut members = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addrs) = entry
            .split_once('=')
            .ok_or_else(|| format!("{entry:?}: expected ID=RAFT_ADDR/API_ADDR"))?;
        let id: NodeId = id
            .trim()
            .parse()
            .map_err(|_| format!("{entry:?}: node id must be a positive integer"))?;
        if id == 0 {
            return Err(format!("{entry:?}: node id 0 is reserved"));
        }
        let (raft_addr, api_addr) = addrs
            .split_once('/')
            .ok_or_else(|| format!("{entry:?}: expected RAFT_ADDR/API_ADDR"))?;
        for addr in [raft_addr, api_addr] {
            if addr
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
            {
                return Err(format!("{entry:?}: {addr:?} is not HOST:PORT"));
            }
        }
        let node = Node {
            raft_addr: raft_addr.to_string(),
            api_addr: api_addr.to_string(),
        };
        if members.insert(id, node).is_some() {
            return Err(format!("node id {id} appears twice"));
        }
    }
    if members.is_empty() {
        return Err("no members given".to_string());
    }
    if members.len() > INITIAL_MEMBERS_MAX {
        return Err(format!("more than {INITIAL_MEMBERS_MAX} members"));
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_lists_each_member_with_both_addresses() {
        let members = parse("1=127.0.0.1:7001/127.0.0.1:8001, 2=h2:7002/h2:8002");
        let members = members.unwrap_or_default();
        assert_eq!(members.len(), 2);
        assert_eq!(members[&2].raft_addr, "h2:7002");
        assert_eq!(members[&2].api_addr, "h2:8002");
    }

    #[test]
    fn malformed_initial_cluster_is_refused() {
        for bad in [
            "",
            "1=a:1",
            "x=a:1/b:2",
            "0=a:1/b:2",
            "1=a:1/b:2,1=c:3/d:4",
            "1=a/b:2",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
