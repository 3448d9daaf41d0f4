//! Rejections travel between members (a follower forwards a write and gets
//! the leader's result back) as bincode, which names an enum variant by its
//! position. A variant inserted in the middle would make members of two
//! versions read each other's rejections as the wrong kind; new ones go last.

use alcor_state_machine::{Id, Kind, Pool, PortSecurityNeed, Rejection};

fn variant_index(rejection: &Rejection) -> u8 {
    let bytes = bincode::serde::encode_to_vec(rejection, bincode::config::standard())
        .expect("a rejection encodes");
    bytes[0]
}

#[test]
fn rejection_variants_keep_their_wire_positions() {
    let s = String::new;
    let ip = "10.0.0.1".parse().expect("an address");
    let table: [(Rejection, u8); 24] = [
        (
            Rejection::NotFound {
                kind: Kind::Port,
                id: s(),
            },
            0,
        ),
        (
            Rejection::AlreadyExists {
                kind: Kind::Port,
                id: s(),
            },
            1,
        ),
        (
            Rejection::InvalidCidr {
                cidr: s(),
                reason: s(),
            },
            2,
        ),
        (
            Rejection::InvalidField {
                field: s(),
                reason: s(),
            },
            3,
        ),
        (
            Rejection::OverlappingSubnet {
                cidr: s(),
                existing_id: Id(1),
                existing_cidr: s(),
            },
            4,
        ),
        (
            Rejection::IpOutsideSubnet {
                ip,
                subnet_id: Id(1),
            },
            5,
        ),
        (
            Rejection::IpInUse {
                ip,
                subnet_id: Id(1),
            },
            6,
        ),
        (
            Rejection::MacInUse {
                mac: s(),
                network_id: Id(1),
            },
            7,
        ),
        (Rejection::PoolExhausted { scope: s() }, 8),
        (
            Rejection::InUse {
                kind: Kind::Port,
                id: s(),
                reason: s(),
            },
            9,
        ),
        (
            Rejection::QuotaExceeded {
                resource: alcor_state_machine::model::ResourceKind::Port,
                limit: 1,
            },
            10,
        ),
        (
            Rejection::StaleRevision {
                expected: 1,
                actual: 2,
            },
            11,
        ),
        (Rejection::RuleExists { existing_id: Id(1) }, 12),
        (Rejection::BatchTooLarge { len: 2, max: 1 }, 13),
        (Rejection::TokenConflict { token: s() }, 14),
        (
            Rejection::ReservedId {
                field: s(),
                id: Id(1),
            },
            15,
        ),
        (
            Rejection::BatchEntry {
                index: 0,
                cause: Box::new(Rejection::TokenConflict { token: s() }),
            },
            16,
        ),
        (Rejection::Exhausted { pool: Pool::Vnis }, 17),
        (
            Rejection::AlreadyAssociated {
                port_id: Id(1),
                ip,
                floating_ip_id: Id(2),
            },
            18,
        ),
        (
            Rejection::PortSecurityRequired {
                port_id: Id(1),
                need: PortSecurityNeed::SecurityGroups,
            },
            19,
        ),
        (
            Rejection::RouterInterfacePort {
                port_id: Id(1),
                router_id: Id(2),
            },
            20,
        ),
        (
            Rejection::QosRuleExists {
                policy_id: Id(1),
                existing_id: Id(2),
            },
            21,
        ),
        (
            Rejection::ExternalNetworkUnreachable {
                network_id: Id(1),
                subnet_id: Id(2),
                port_id: Id(3),
            },
            22,
        ),
        (
            Rejection::GatewayInUseByFloatingIps {
                router_id: Id(1),
                network_id: Id(2),
            },
            23,
        ),
    ];
    for (rejection, index) in &table {
        assert_eq!(variant_index(rejection), *index, "{rejection:?}");
    }
}
