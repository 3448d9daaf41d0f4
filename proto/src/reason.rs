//! The machine-readable part of every failure the server answers with: the
//! reason code (header [`REASON_HEADER`](crate::REASON_HEADER)) and the
//! resource it is about (header [`RESOURCE_HEADER`](crate::RESOURCE_HEADER)).
//!
//! Server, SDK, CLI and REST gateway all name codes through these enums, so a
//! code is spelled once; clients decide from codes, never from message text.
//! Refused credentials have their own codes in [`Denial`](crate::identity::Denial).

/// Why a call failed (everything but refused credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The resource named does not exist (see the resource header).
    NotFound,
    /// A resource with that ID already exists.
    AlreadyExists,
    /// A CIDR is malformed or not canonical.
    InvalidCidr,
    /// A field has an unacceptable value.
    InvalidField,
    /// A subnet overlaps another of its network.
    OverlappingSubnet,
    /// A requested address is not in the subnet.
    IpOutsideSubnet,
    /// A requested address is taken.
    IpInUse,
    /// A requested MAC address is taken in the network.
    MacInUse,
    /// A pool ran out (the resource header names it: `subnet`, `network`,
    /// `mac_address` or `vni`).
    PoolExhausted,
    /// The resource is still used by others (see the resource header).
    InUse,
    /// A floating IP already maps to that fixed address of the port.
    AlreadyAssociated,
    /// The port has port security off, yet would have security groups
    /// (resource header `security_group`) or allowed address pairs (no
    /// resource header).
    PortSecurityRequired,
    /// The port is a router's interface or gateway port: only removing the
    /// interface or clearing the gateway deletes it or changes its device
    /// (resource header `port`).
    RouterInterfacePort,
    /// A QoS policy already has a rule of that type (and direction).
    QosRuleExists,
    /// A floating IP of an external network would map to a port whose
    /// subnet no router with its gateway on that network is attached to.
    ExternalNetworkUnreachable,
    /// A router's gateway would leave its network while floating IPs of that
    /// network reach ports through the router.
    GatewayInUse,
    /// A project quota would be exceeded.
    QuotaExceeded,
    /// Compare-and-set failed: the resource moved since it was read.
    StaleRevision,
    /// An identical security-group rule exists.
    RuleExists,
    /// The batch is larger than the limit.
    BatchTooLarge,
    /// The request token was used for a different request.
    TokenConflict,
    /// A client chose an ID of the form the controller derives.
    ReservedId,
    /// No leader is known; the write was never proposed.
    NoLeader,
    /// A linearizable read could not reach a quorum.
    NoQuorum,
    /// The leader is known but could not be reached.
    LeaderUnreachable,
    /// The member's Raft engine stopped.
    RaftStopped,
    /// The call timed out; a write may still commit.
    Timeout,
    /// Too many calls in flight; retry later.
    Overloaded,
    /// Only the leader serves this call (header `x-alcor-leader-api`).
    NotLeader,
    /// The membership change was refused.
    MembershipRejected,
    /// A barrier's hosts did not apply the revision in time.
    BarrierTimeout,
    /// The revision asked for was compacted away.
    Compacted,
    /// The watcher fell too far behind.
    WatchLagged,
    /// A bug: the server met a state it cannot explain.
    Internal,
}

impl Reason {
    /// Every reason, for tables and tests.
    pub const ALL: [Reason; 34] = [
        Reason::NotFound,
        Reason::AlreadyExists,
        Reason::InvalidCidr,
        Reason::InvalidField,
        Reason::OverlappingSubnet,
        Reason::IpOutsideSubnet,
        Reason::IpInUse,
        Reason::MacInUse,
        Reason::PoolExhausted,
        Reason::InUse,
        Reason::AlreadyAssociated,
        Reason::PortSecurityRequired,
        Reason::RouterInterfacePort,
        Reason::QosRuleExists,
        Reason::ExternalNetworkUnreachable,
        Reason::GatewayInUse,
        Reason::QuotaExceeded,
        Reason::StaleRevision,
        Reason::RuleExists,
        Reason::BatchTooLarge,
        Reason::TokenConflict,
        Reason::ReservedId,
        Reason::NoLeader,
        Reason::NoQuorum,
        Reason::LeaderUnreachable,
        Reason::RaftStopped,
        Reason::Timeout,
        Reason::Overloaded,
        Reason::NotLeader,
        Reason::MembershipRejected,
        Reason::BarrierTimeout,
        Reason::Compacted,
        Reason::WatchLagged,
        Reason::Internal,
    ];

    /// The stable code sent in the reason header.
    pub const fn code(self) -> &'static str {
        match self {
            Reason::NotFound => "NOT_FOUND",
            Reason::AlreadyExists => "ALREADY_EXISTS",
            Reason::InvalidCidr => "INVALID_CIDR",
            Reason::InvalidField => "INVALID_FIELD",
            Reason::OverlappingSubnet => "OVERLAPPING_SUBNET",
            Reason::IpOutsideSubnet => "IP_OUTSIDE_SUBNET",
            Reason::IpInUse => "IP_IN_USE",
            Reason::MacInUse => "MAC_IN_USE",
            Reason::PoolExhausted => "POOL_EXHAUSTED",
            Reason::InUse => "IN_USE",
            Reason::AlreadyAssociated => "ALREADY_ASSOCIATED",
            Reason::PortSecurityRequired => "PORT_SECURITY_REQUIRED",
            Reason::RouterInterfacePort => "ROUTER_INTERFACE_PORT",
            Reason::QosRuleExists => "QOS_RULE_EXISTS",
            Reason::ExternalNetworkUnreachable => "EXTERNAL_NETWORK_UNREACHABLE",
            Reason::GatewayInUse => "GATEWAY_IN_USE",
            Reason::QuotaExceeded => "QUOTA_EXCEEDED",
            Reason::StaleRevision => "STALE_REVISION",
            Reason::RuleExists => "RULE_EXISTS",
            Reason::BatchTooLarge => "BATCH_TOO_LARGE",
            Reason::TokenConflict => "TOKEN_CONFLICT",
            Reason::ReservedId => "RESERVED_ID",
            Reason::NoLeader => "NO_LEADER",
            Reason::NoQuorum => "NO_QUORUM",
            Reason::LeaderUnreachable => "LEADER_UNREACHABLE",
            Reason::RaftStopped => "RAFT_STOPPED",
            Reason::Timeout => "TIMEOUT",
            Reason::Overloaded => "OVERLOADED",
            Reason::NotLeader => "NOT_LEADER",
            Reason::MembershipRejected => "MEMBERSHIP_REJECTED",
            Reason::BarrierTimeout => "BARRIER_TIMEOUT",
            Reason::Compacted => "COMPACTED",
            Reason::WatchLagged => "WATCH_LAGGED",
            Reason::Internal => "INTERNAL",
        }
    }

    /// The reason of a code, if it is one.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// The kind of resource a failure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A network (VPC).
    Network,
    /// A subnet, or the addresses of one.
    Subnet,
    /// A port.
    Port,
    /// A security group.
    SecurityGroup,
    /// A security-group rule.
    SecurityGroupRule,
    /// A router.
    Router,
    /// A host.
    Host,
    /// A floating IP.
    FloatingIp,
    /// The MAC addresses of a network.
    MacAddress,
    /// The range of VXLAN network identifiers.
    Vni,
    /// A QoS policy.
    QosPolicy,
    /// A rule of a QoS policy.
    QosRule,
}

impl Resource {
    /// Every resource kind, for tables and tests.
    pub const ALL: [Resource; 12] = [
        Resource::Network,
        Resource::Subnet,
        Resource::Port,
        Resource::SecurityGroup,
        Resource::SecurityGroupRule,
        Resource::Router,
        Resource::Host,
        Resource::FloatingIp,
        Resource::MacAddress,
        Resource::Vni,
        Resource::QosPolicy,
        Resource::QosRule,
    ];

    /// The stable name sent in the resource header.
    pub const fn code(self) -> &'static str {
        match self {
            Resource::Network => "network",
            Resource::Subnet => "subnet",
            Resource::Port => "port",
            Resource::SecurityGroup => "security_group",
            Resource::SecurityGroupRule => "security_group_rule",
            Resource::Router => "router",
            Resource::Host => "host",
            Resource::FloatingIp => "floating_ip",
            Resource::MacAddress => "mac_address",
            Resource::QosPolicy => "qos_policy",
            Resource::QosRule => "qos_rule",
            Resource::Vni => "vni",
        }
    }

    /// The resource of a name, if it is one.
    pub fn from_code(code: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Denial;

    #[test]
    fn every_code_reads_back_as_itself_and_no_two_share_a_spelling() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r.code()), Some(r));
            assert!(seen.insert(r.code()), "{} twice", r.code());
        }
        for d in Denial::ALL {
            assert!(seen.insert(d.code()), "{} is also a reason", d.code());
            assert_eq!(Reason::from_code(d.code()), None);
        }
        for r in Resource::ALL {
            assert_eq!(Resource::from_code(r.code()), Some(r));
        }
        assert_eq!(Reason::from_code("SOMETHING_NEW"), None);
        assert_eq!(Resource::from_code("Network"), None);
    }
}
