//! Property tests over random command sequences: determinism, IPAM uniqueness,
//! all-or-nothing rejections, indexes equal to a rebuild (client IDs sometimes
//! of the derived form), diffs summing to goal state, snapshot round trips.
//! The generator makes every [`Command`] variant
//! (`every_command_variant_is_generated` checks it).

use crate::support::*;
use alcor_state_machine::model::{
    AllocationPool, AllowedAddressPair, Direction, EtherType, HostStatus, PairAddress, PortStatus,
    QosRule, QosRuleKind, Quota, Route,
};
use alcor_state_machine::{
    Command, FixedIpRequest, GatewayRequest, Id, InterfaceRef, InterfaceTarget, PortSpec,
    PortSpecV5, PortUpdate, PortUpdateV5, QosRuleUpdate, State, SubnetUpdate,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::collections::BTreeSet;

/// Cases of a property: `default`, or `PROPTEST_CASES` from the environment for
/// a longer run (`PROPTEST_CASES=20000 cargo test -p alcor-state-machine props`).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const HOSTS: [&str; 4] = ["h1", "h2", "h3", "h4"];
const CIDRS: [&str; 5] = [
    "10.1.0.0/29",
    "10.1.0.8/29",
    "10.1.0.0/28",
    "10.2.0.0/30",
    "fd00::/126",
];

fn arb_host() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![Just(None), (0..HOSTS.len()).prop_map(|i| Some(HOSTS[i]))]
}

fn arb_groups() -> impl Strategy<Value = Option<Vec<Id>>> {
    prop_oneof![
        Just(None),
        proptest::collection::vec((50u128..53).prop_map(Id), 0..3).prop_map(Some)
    ]
}

/// Log indexes from this one up in a generated ID stand for "this many
/// entries after the command's own": [`resolve_ahead`] replaces them.
const AHEAD_MARK: u64 = 0xFFFF_0000_0000;

/// A client-chosen ID: usually from `plain`, sometimes of the derived form
/// for an entry 1 to 3 after the command's own, with a sequence number the
/// state machine uses for a default group (1) or its rules (2 to 5), so a
/// following port create would derive the same ID (and the client's must
/// be refused).
fn arb_client_id(plain: std::ops::Range<u128>) -> impl Strategy<Value = Id> {
    prop_oneof![
        3 => plain.prop_map(Id),
        1 => (1u64..4, 1u32..6).prop_map(|(ahead, seq)| Id::derived(AHEAD_MARK + ahead, seq)),
    ]
}

/// `command` applied at log index `index`, with every ID marked by
/// [`arb_client_id`] as "ahead" replaced by the ID derived that many
/// entries later.
fn resolve_ahead(command: Command, index: u64) -> Command {
    let resolve = |id: &mut Id| {
        let id_index = (id.0 >> 80) as u64;
        if id.is_derived() && id_index > AHEAD_MARK {
            *id = Id::derived(index + (id_index - AHEAD_MARK), id.0 as u32);
        }
    };
    match command {
        Command::CreateSecurityGroup {
            mut id,
            project_id,
            name,
            description,
        } => {
            resolve(&mut id);
            Command::CreateSecurityGroup {
                id,
                project_id,
                name,
                description,
            }
        }
        Command::CreateSecurityGroupRule {
            mut id,
            project_id,
            security_group_id,
            direction,
            ethertype,
            protocol,
            port_range_min,
            port_range_max,
            remote_ip_prefix,
            remote_group_id,
        } => {
            resolve(&mut id);
            Command::CreateSecurityGroupRule {
                id,
                project_id,
                security_group_id,
                direction,
                ethertype,
                protocol,
                port_range_min,
                port_range_max,
                remote_ip_prefix,
                remote_group_id,
            }
        }
        Command::Batch(commands) => Command::Batch(
            commands
                .into_iter()
                .map(|c| resolve_ahead(c, index))
                .collect(),
        ),
        Command::Idempotent { token, command } => Command::Idempotent {
            token,
            command: Box::new(resolve_ahead(*command, index)),
        },
        Command::WithTags { tags, command } => Command::WithTags {
            tags,
            command: Box::new(resolve_ahead(*command, index)),
        },
        other => other,
    }
}

fn arb_spec() -> impl Strategy<Value = PortSpec> {
    (
        100u128..110,
        1u128..3,
        arb_host(),
        arb_groups(),
        proptest::option::of((10u128..14, 0u8..16)),
    )
        .prop_map(|(n, net, host, groups, fixed)| {
            let mut spec = port_spec(n, net, host);
            spec.security_groups = groups;
            if let Some((subnet, offset)) = fixed {
                spec.fixed_ips = vec![FixedIpRequest {
                    subnet_id: Some(Id(subnet)),
                    ip_address: if offset < 8 {
                        Some(format!("10.1.0.{offset}").parse().unwrap())
                    } else {
                        None
                    },
                }];
            }
            spec
        })
}

/// Allowed address pairs as a client gives them: addresses and prefixes,
/// with or without a MAC.
fn arb_pairs() -> impl Strategy<Value = Vec<AllowedAddressPair>> {
    let pair =
        (0u8..4, any::<bool>(), any::<bool>()).prop_map(|(n, prefix, mac)| AllowedAddressPair {
            ip_address: if prefix {
                PairAddress::Net(format!("10.9.{n}.0/24").parse().unwrap())
            } else {
                PairAddress::Ip(format!("10.9.0.{n}").parse().unwrap())
            },
            mac_address: mac.then(|| "fa:16:3e:00:00:77".parse().unwrap()),
        });
    proptest::collection::vec(pair, 0..3)
}

/// A format-5 port: sometimes without port security (then with or without
/// groups and pairs, which must be refused when given).
fn arb_spec_v5() -> impl Strategy<Value = PortSpecV5> {
    (arb_spec(), proptest::option::of(any::<bool>()), arb_pairs()).prop_map(
        |(spec, port_security_enabled, pairs)| {
            let mut spec = PortSpecV5::from(spec);
            spec.port_security_enabled = port_security_enabled;
            spec.allowed_address_pairs = pairs;
            spec
        },
    )
}

/// The format-5 commands (port security, pairs as given).
fn arb_v5_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (1u128..3, any::<bool>()).prop_map(|(n, enabled)| match vpc(n, None) {
            Command::CreateVpc {
                id,
                project_id,
                name,
                cidr,
                vni,
                mtu,
                admin_state_up,
            } => Command::CreateVpcV5 {
                id,
                project_id,
                name,
                cidr,
                vni,
                mtu,
                admin_state_up,
                port_security_enabled: enabled,
            },
            other => other,
        }),
        (1u128..3, proptest::option::of(any::<bool>())).prop_map(|(n, enabled)| {
            Command::UpdateVpcV5 {
                id: Id(n),
                name: None,
                mtu: None,
                admin_state_up: None,
                port_security_enabled: enabled,
                expected_revision: None,
            }
        }),
        arb_spec_v5().prop_map(Command::CreatePortV5),
        proptest::collection::vec(arb_spec_v5(), 1..4).prop_map(Command::CreatePortsV5),
        (
            100u128..110,
            arb_groups(),
            proptest::option::of(arb_pairs()),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(n, groups, pairs, enabled)| Command::UpdatePortV5 {
                id: Id(n),
                update: PortUpdateV5 {
                    security_groups: groups,
                    allowed_address_pairs: pairs,
                    port_security_enabled: enabled,
                    ..PortUpdateV5::default()
                },
                expected_revision: None,
            }),
    ]
}

/// Hosts the generators name but never register: a port bound to one waits
/// for it (format-6 commands accept it, older ones refuse it).
const UNREGISTERED_HOSTS: [&str; 1] = ["h-later"];

/// The format-6 commands: port binding to hosts not (yet) registered,
/// router interfaces that are ports.
fn arb_v6_command() -> impl Strategy<Value = Command> {
    let any_host = || {
        prop_oneof![
            Just(None),
            (0..HOSTS.len()).prop_map(|i| Some(HOSTS[i].to_string())),
            Just(Some(UNREGISTERED_HOSTS[0].to_string())),
        ]
    };
    prop_oneof![
        (arb_spec_v5(), any_host()).prop_map(|(mut spec, host)| {
            spec.binding_host = host;
            Command::CreatePortV6(spec)
        }),
        proptest::collection::vec((arb_spec_v5(), any_host()), 1..4).prop_map(|specs| {
            Command::CreatePortsV6(
                specs
                    .into_iter()
                    .map(|(mut spec, host)| {
                        spec.binding_host = host;
                        spec
                    })
                    .collect(),
            )
        }),
        (100u128..110, any_host(), proptest::option::of(0u8..3)).prop_map(|(n, host, device)| {
            Command::UpdatePortV6 {
                id: Id(n),
                update: PortUpdateV5 {
                    binding_host: Some(host),
                    device_id: device.map(|k| format!("vm-{k}")),
                    ..PortUpdateV5::default()
                },
                expected_revision: None,
            }
        }),
        (70u128..72, 10u128..14, 100u128..112, any::<bool>()).prop_map(|(r, s, p, by_port)| {
            Command::AddRouterInterfaceV6 {
                router_id: Id(r),
                target: if by_port {
                    InterfaceTarget::Port(Id(p))
                } else {
                    InterfaceTarget::Subnet {
                        subnet_id: Id(s),
                        port_id: Id(p),
                    }
                },
            }
        }),
        (70u128..72, 10u128..14, 100u128..112, any::<bool>()).prop_map(|(r, s, p, by_port)| {
            Command::RemoveRouterInterfaceV6 {
                router_id: Id(r),
                target: if by_port {
                    InterfaceRef::Port(Id(p))
                } else {
                    InterfaceRef::Subnet(Id(s))
                },
            }
        }),
    ]
}

fn arb_direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Ingress), Just(Direction::Egress)]
}

/// A QoS rule: bandwidth limits (sometimes above the limit) or DSCP marks
/// (sometimes invalid).
fn arb_qos_rule() -> impl Strategy<Value = QosRule> {
    let kind = prop_oneof![
        (
            arb_direction(),
            prop_oneof![Just(0u32), Just(1000), Just(u32::MAX)],
            0u32..3
        )
            .prop_map(|(direction, max_kbps, max_burst_kbps)| {
                QosRuleKind::BandwidthLimit {
                    direction,
                    max_kbps,
                    max_burst_kbps,
                }
            }),
        prop_oneof![Just(0u8), Just(26), Just(46), Just(7)]
            .prop_map(|dscp_mark| QosRuleKind::DscpMarking { dscp_mark }),
    ];
    (30u128..35, kind).prop_map(|(n, kind)| QosRule { id: Id(n), kind })
}

/// A QoS policy ID from a small pool, or none.
fn arb_qos_id() -> impl Strategy<Value = Option<Id>> {
    prop_oneof![Just(None), (20u128..23).prop_map(|n| Some(Id(n)))]
}

/// The format-7 commands: QoS policies, rules, and the policy of networks
/// and ports.
fn arb_v7_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (20u128..23, any::<bool>()).prop_map(|(n, shared)| Command::CreateQosPolicy {
            id: Id(n),
            project_id: if n == 22 { "proj-b" } else { PROJECT }.into(),
            name: format!("qos-{n}"),
            description: String::new(),
            shared,
        }),
        (
            20u128..23,
            proptest::option::of(any::<bool>()),
            arb_expected()
        )
            .prop_map(|(n, shared, expected_revision)| Command::UpdateQosPolicy {
                id: Id(n),
                name: Some(format!("qos-{n}b")),
                description: None,
                shared,
                expected_revision,
            }),
        (20u128..23, arb_expected()).prop_map(|(n, expected_revision)| {
            Command::DeleteQosPolicy {
                id: Id(n),
                expected_revision,
            }
        }),
        (20u128..23, arb_qos_rule()).prop_map(|(n, rule)| Command::CreateQosRule {
            policy_id: Id(n),
            rule,
        }),
        (
            20u128..23,
            30u128..35,
            proptest::option::of(prop_oneof![Just(5u32), Just(u32::MAX)]),
            proptest::option::of(arb_direction()),
            proptest::option::of(prop_oneof![Just(10u8), Just(9)]),
        )
            .prop_map(|(n, r, max_kbps, direction, dscp_mark)| {
                Command::UpdateQosRule {
                    policy_id: Id(n),
                    rule_id: Id(r),
                    update: QosRuleUpdate {
                        max_kbps,
                        max_burst_kbps: None,
                        direction,
                        dscp_mark,
                    },
                }
            }),
        (20u128..23, 30u128..35).prop_map(|(n, r)| Command::DeleteQosRule {
            policy_id: Id(n),
            rule_id: Id(r),
        }),
        (1u128..4, arb_qos_id()).prop_map(|(n, qos_policy_id)| Command::CreateVpcV7 {
            id: Id(n),
            project_id: PROJECT.into(),
            name: format!("vpc-{n}"),
            cidr: None,
            vni: None,
            mtu: None,
            admin_state_up: true,
            port_security_enabled: true,
            qos_policy_id,
        }),
        (1u128..3, proptest::option::of(arb_qos_id()), arb_expected()).prop_map(
            |(n, qos_policy_id, expected_revision)| Command::UpdateVpcV7 {
                id: Id(n),
                name: None,
                mtu: None,
                admin_state_up: None,
                port_security_enabled: None,
                qos_policy_id,
                expected_revision,
            }
        ),
        (arb_spec_v5(), arb_qos_id()).prop_map(|(spec, qos_policy_id)| Command::CreatePortV7 {
            spec,
            qos_policy_id,
        }),
        (
            100u128..110,
            proptest::option::of(arb_host()),
            proptest::option::of(arb_qos_id())
        )
            .prop_map(|(n, host, qos_policy_id)| Command::UpdatePortV7 {
                id: Id(n),
                update: PortUpdateV5 {
                    binding_host: host.map(|h| h.map(str::to_string)),
                    ..PortUpdateV5::default()
                },
                qos_policy_id,
                expected_revision: None,
            }),
    ]
}

/// The creates, and the updates and deletes of ports, rules and floating IPs.
fn arb_common_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (0..HOSTS.len(), 1u8..250)
            .prop_map(|(h, last)| host(HOSTS[h], &format!("172.16.0.{last}"))),
        (0..HOSTS.len(), 1u8..250).prop_map(|(h, last)| Command::UpdateHost {
            id: HOSTS[h].into(),
            underlay_ip: Some(format!("172.16.1.{last}").parse().unwrap()),
            status: Some(if last % 5 == 0 {
                HostStatus::Maintenance
            } else {
                HostStatus::Up
            }),
            expected_revision: None,
        }),
        (1u128..3).prop_map(|n| vpc(n, None)),
        (10u128..14, 1u128..3, 0..CIDRS.len()).prop_map(|(n, net, c)| subnet(n, net, CIDRS[c])),
        (10u128..14).prop_map(|n| Command::DeleteSubnet {
            id: Id(n),
            expected_revision: None
        }),
        (arb_client_id(50..53)).prop_map(|id| Command::CreateSecurityGroup {
            id,
            project_id: PROJECT.into(),
            name: format!("sg{}", id.0 % 1000),
            description: String::new()
        }),
        (
            arb_client_id(60..66),
            50u128..53,
            proptest::option::of(50u128..53),
            0u16..3
        )
            .prop_map(|(id, sg, remote, p)| Command::CreateSecurityGroupRule {
                id,
                project_id: PROJECT.into(),
                security_group_id: Id(sg),
                direction: Direction::Ingress,
                ethertype: EtherType::Ipv4,
                protocol: Some(6),
                port_range_min: Some(80 + p),
                port_range_max: Some(80 + p),
                remote_ip_prefix: None,
                remote_group_id: remote.map(Id),
            }),
        (60u128..66).prop_map(|n| Command::DeleteSecurityGroupRule {
            id: Id(n),
            expected_revision: None
        }),
        arb_spec().prop_map(Command::CreatePort),
        proptest::collection::vec(arb_spec(), 1..6).prop_map(Command::CreatePorts),
        (100u128..110, arb_host(), arb_groups()).prop_map(|(n, host, groups)| {
            Command::UpdatePort {
                id: Id(n),
                update: PortUpdate {
                    binding_host: Some(host.map(str::to_string)),
                    security_groups: groups,
                    ..PortUpdate::default()
                },
                expected_revision: None,
            }
        }),
        (100u128..110).prop_map(|n| Command::DeletePort {
            id: Id(n),
            expected_revision: None
        }),
        (70u128..72).prop_map(|n| Command::CreateRouter {
            id: Id(n),
            project_id: PROJECT.into(),
            name: "r".into(),
            routes: vec![]
        }),
        (70u128..72, 10u128..14, any::<bool>()).prop_map(|(r, s, add)| if add {
            Command::AddRouterInterface {
                router_id: Id(r),
                subnet_id: Id(s),
            }
        } else {
            Command::RemoveRouterInterface {
                router_id: Id(r),
                subnet_id: Id(s),
            }
        }),
        (
            80u128..83,
            1u128..4,
            proptest::option::of(100u128..110),
            0u8..4
        )
            .prop_map(|(n, net, port, who)| {
                Command::CreateFloatingIp {
                    id: Id(n),
                    // Now and then another project, whose allocation from these
                    // networks must be refused.
                    project_id: if who == 0 {
                        "proj-b".into()
                    } else {
                        PROJECT.into()
                    },
                    floating_network_id: Id(net),
                    floating_ip_address: None,
                    port_id: port.map(Id),
                    fixed_ip_address: None,
                    description: String::new(),
                }
            }),
        (80u128..83, proptest::option::of(100u128..110)).prop_map(|(n, port)| {
            Command::UpdateFloatingIp {
                id: Id(n),
                port_id: Some(port.map(Id)),
                fixed_ip_address: None,
                description: None,
                expected_revision: None,
            }
        }),
        (80u128..83).prop_map(|n| Command::DeleteFloatingIp {
            id: Id(n),
            expected_revision: None
        }),
        (1u128..3, 1000u32..1500).prop_map(|(n, mtu)| Command::UpdateVpc {
            id: Id(n),
            name: None,
            mtu: Some(mtu),
            admin_state_up: None,
            expected_revision: None
        }),
    ]
}

/// Any command but the wrappers: each of the rarer ones comes up about half as
/// often as each common one.
fn arb_simple_command() -> BoxedStrategy<Command> {
    prop_oneof![
        20 => arb_common_command(),
        5 => arb_rare_command(),
        5 => arb_v5_command(),
        5 => arb_v6_command(),
        5 => arb_v7_command(),
        5 => arb_v8_command()
    ]
    .boxed()
}

/// A gateway request on one of the prelude's networks (refused unless it is
/// external), with a new port ID (some taken) and sometimes an address.
fn arb_gateway() -> impl Strategy<Value = GatewayRequest> {
    (
        1u128..3,
        any::<bool>(),
        108u128..114,
        // Zero to two addresses: a move may keep the one the gateway holds.
        proptest::collection::btree_set(2u8..5, 0..3),
    )
        .prop_map(|(net, enable_snat, port, ips)| GatewayRequest {
            network_id: Id(net),
            enable_snat,
            port_id: Id(port),
            fixed_ips: ips
                .into_iter()
                .map(|k| FixedIpRequest {
                    subnet_id: None,
                    ip_address: Some(format!("10.1.0.{k}").parse().unwrap()),
                })
                .collect(),
        })
}

/// The format-8 commands: `router:external` on networks, router gateways.
fn arb_v8_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (1u128..4, any::<bool>(), arb_qos_id()).prop_map(|(n, external, qos_policy_id)| {
            Command::CreateVpcV8 {
                id: Id(n),
                project_id: PROJECT.into(),
                name: format!("vpc-{n}"),
                cidr: None,
                vni: None,
                mtu: None,
                admin_state_up: true,
                port_security_enabled: true,
                qos_policy_id,
                external,
            }
        }),
        (
            1u128..4,
            proptest::option::of(any::<bool>()),
            arb_expected()
        )
            .prop_map(|(n, external, expected_revision)| Command::UpdateVpcV8 {
                id: Id(n),
                name: None,
                mtu: None,
                admin_state_up: None,
                port_security_enabled: None,
                qos_policy_id: None,
                external,
                expected_revision,
            }),
        (70u128..72, proptest::option::of(arb_gateway())).prop_map(|(n, gateway)| {
            Command::CreateRouterV8 {
                id: Id(n),
                project_id: PROJECT.into(),
                name: "r".into(),
                routes: vec![],
                gateway,
            }
        }),
        (
            70u128..72,
            proptest::option::of(proptest::option::of(arb_gateway())),
            proptest::option::of(any::<bool>()),
            arb_expected(),
            any::<bool>(),
        )
            .prop_map(|(n, gateway, admin_state_up, expected_revision, v9)| {
                if v9 {
                    Command::UpdateRouterV9 {
                        id: Id(n),
                        name: None,
                        routes: None,
                        admin_state_up,
                        gateway,
                        expected_revision,
                    }
                } else {
                    Command::UpdateRouterV8 {
                        id: Id(n),
                        name: None,
                        routes: None,
                        admin_state_up,
                        gateway,
                        expected_revision,
                    }
                }
            }),
    ]
}

/// A compare-and-set revision now and then (commands in a history of 60 entries
/// have revisions below 60), mostly none.
fn arb_expected() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![4 => Just(None), 1 => (0u64..60).prop_map(Some)]
}

/// The deletes, updates and quota changes, in their own group so the common
/// creates keep their weight.
fn arb_rare_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (0..HOSTS.len(), arb_expected()).prop_map(|(h, expected_revision)| Command::DeleteHost {
            id: HOSTS[h].into(),
            expected_revision,
        }),
        (1u128..3, arb_expected()).prop_map(|(n, expected_revision)| Command::DeleteVpc {
            id: Id(n),
            expected_revision,
        }),
        (10u128..14, arb_subnet_update(), arb_expected()).prop_map(
            |(n, update, expected_revision)| Command::UpdateSubnet {
                id: Id(n),
                update,
                expected_revision,
            }
        ),
        (
            100u128..110,
            arb_port_status(),
            prop_oneof![2 => Just(None), 1 => (0..HOSTS.len()).prop_map(Some)],
            prop_oneof![2 => Just(None), 1 => (0u64..60).prop_map(Some)],
        )
            .prop_map(|(n, status, host, revision)| Command::SetPortStatus {
                id: Id(n),
                status,
                if_bound_to: host.map(|h| HOSTS[h].to_string()),
                if_revision_at_most: revision,
            }),
        (
            50u128..53,
            proptest::option::of(0u8..3),
            proptest::option::of(0u8..3),
            arb_expected()
        )
            .prop_map(|(n, name, description, expected_revision)| {
                Command::UpdateSecurityGroup {
                    id: Id(n),
                    name: name.map(|k| format!("sg-renamed-{k}")),
                    description: description.map(|k| format!("about {k}")),
                    expected_revision,
                }
            }),
        (50u128..53, arb_expected()).prop_map(|(n, expected_revision)| {
            Command::DeleteSecurityGroup {
                id: Id(n),
                expected_revision,
            }
        }),
        (
            70u128..72,
            proptest::option::of(0u8..3),
            proptest::option::of(arb_routes()),
            proptest::option::of(any::<bool>()),
            arb_expected(),
        )
            .prop_map(|(n, name, routes, admin_state_up, expected_revision)| {
                Command::UpdateRouter {
                    id: Id(n),
                    name: name.map(|k| format!("r-{k}")),
                    routes,
                    admin_state_up,
                    expected_revision,
                }
            }),
        (70u128..72, arb_expected()).prop_map(|(n, expected_revision)| Command::DeleteRouter {
            id: Id(n),
            expected_revision,
        }),
        (-1i64..12, -1i64..40).prop_map(|(small, ports)| Command::SetQuota {
            project_id: PROJECT.into(),
            quota: Quota {
                network: small,
                subnet: small,
                port: ports,
                router: small,
                security_group: small,
                security_group_rule: ports,
                floating_ip: small,
            },
        }),
        Just(Command::ResetQuota {
            project_id: PROJECT.into()
        }),
    ]
}

fn arb_port_status() -> impl Strategy<Value = PortStatus> {
    prop_oneof![
        Just(PortStatus::Down),
        Just(PortStatus::Active),
        (0u8..2).prop_map(|k| PortStatus::Error(Box::new(format!("agent error {k}")))),
    ]
}

fn arb_routes() -> impl Strategy<Value = Vec<Route>> {
    proptest::collection::vec(
        (0u8..3, 1u8..4).prop_map(|(dst, hop)| Route {
            destination: format!("192.168.{dst}.0/24").parse().unwrap(),
            nexthop: format!("10.1.0.{hop}").parse().unwrap(),
        }),
        0..3,
    )
}

/// Subnet updates over the addresses of the 10.1.0.0/28 family of `CIDRS`: some
/// land outside the subnet or on a used address and are rejected.
fn arb_subnet_update() -> impl Strategy<Value = SubnetUpdate> {
    (
        proptest::option::of(0u8..3),
        proptest::option::of(proptest::option::of(1u8..15)),
        proptest::option::of((1u8..15, 0u8..6)),
        proptest::option::of(any::<bool>()),
        proptest::option::of(proptest::collection::vec(1u8..4, 0..3)),
        proptest::option::of(arb_routes()),
    )
        .prop_map(|(name, gateway, pool, dhcp, dns, routes)| SubnetUpdate {
            name: name.map(|k| format!("subnet-renamed-{k}")),
            gateway_ip: gateway.map(|g| g.map(|last| format!("10.1.0.{last}").parse().unwrap())),
            allocation_pools: pool.map(|(start, len)| {
                vec![AllocationPool {
                    start: format!("10.1.0.{start}").parse().unwrap(),
                    end: format!("10.1.0.{}", start.saturating_add(len).min(14))
                        .parse()
                        .unwrap(),
                }]
            }),
            enable_dhcp: dhcp,
            dns_nameservers: dns.map(|servers| {
                servers
                    .into_iter()
                    .map(|k| format!("10.9.9.{k}").parse().unwrap())
                    .collect()
            }),
            host_routes: routes,
        })
}

/// Boxed, as are [`arb_simple_command`] and [`arb_step`]: unboxed, the
/// nested unions' `new_tree` frames overflowed a test thread's stack in
/// debug builds.
fn arb_command() -> BoxedStrategy<Command> {
    prop_oneof![
        8 => arb_simple_command(),
        1 => proptest::collection::vec(arb_simple_command(), 1..5).prop_map(Command::Batch),
        2 => (0u8..4, arb_simple_command()).prop_map(|(t, command)| Command::Idempotent {
            token: format!("tok-{t}"),
            command: Box::new(command),
        }),
        // Tags from a small pool, on any command: refused on the untaggable ones.
        2 => (proptest::collection::btree_set(0u8..4, 0..3), arb_simple_command()).prop_map(
            |(tags, command)| Command::WithTags {
                tags: tags.into_iter().map(|t| format!("tag-{t}")).collect(),
                command: Box::new(command),
            }
        ),
    ]
    .boxed()
}

/// One history step: usually one command, sometimes a client group or rule
/// under an ID that the next entry (a port create, which may create the
/// project's default group) would derive, the collision of issue 13.
fn arb_step() -> BoxedStrategy<Vec<Command>> {
    prop_oneof![
        12 => arb_command().prop_map(|command| vec![command]),
        1 => (1u32..6, arb_spec()).prop_map(|(seq, spec)| vec![
            Command::CreateSecurityGroup {
                id: Id::derived(AHEAD_MARK + 1, seq),
                project_id: PROJECT.into(),
                name: "trap".into(),
                description: String::new(),
            },
            Command::CreatePort(spec),
        ]),
    ]
    .boxed()
}

/// A small world most generated commands can act on: hosts, two VPCs with
/// subnets, two groups (one naming the other as remote group), a router and
/// its gateway on an external network.
fn prelude() -> Vec<Command> {
    let mut out: Vec<Command> = HOSTS[..3]
        .iter()
        .enumerate()
        .map(|(i, h)| host(h, &format!("172.16.0.{}", i + 1)))
        .collect();
    out.extend([
        vpc(1, None),
        vpc(2, None),
        subnet(10, 1, "10.1.0.0/28"),
        subnet(13, 2, "10.1.0.0/29"),
    ]);
    for sg in [50u128, 51] {
        out.push(Command::CreateSecurityGroup {
            id: Id(sg),
            project_id: PROJECT.into(),
            name: format!("sg{sg}"),
            description: String::new(),
        });
    }
    out.push(Command::CreateSecurityGroupRule {
        id: Id(60),
        project_id: PROJECT.into(),
        security_group_id: Id(50),
        direction: Direction::Ingress,
        ethertype: EtherType::Ipv4,
        protocol: Some(6),
        port_range_min: Some(22),
        port_range_max: Some(22),
        remote_ip_prefix: None,
        remote_group_id: Some(Id(51)),
    });
    out.push(Command::CreateRouter {
        id: Id(70),
        project_id: PROJECT.into(),
        name: "r".into(),
        routes: vec![],
    });
    out.push(Command::AddRouterInterface {
        router_id: Id(70),
        subnet_id: Id(10),
    });
    // An external network (3) with the router's gateway on it: floating IPs
    // of it reach the ports of subnet 10 and no others.
    out.push(Command::CreateVpcV8 {
        id: Id(3),
        project_id: "admin".into(),
        name: "ext".into(),
        cidr: None,
        vni: None,
        mtu: None,
        admin_state_up: true,
        port_security_enabled: true,
        qos_policy_id: None,
        external: true,
    });
    out.push(subnet(15, 3, "10.9.0.0/28"));
    out.push(Command::UpdateRouterV8 {
        id: Id(70),
        name: None,
        routes: None,
        admin_state_up: None,
        gateway: Some(Some(GatewayRequest {
            network_id: Id(3),
            enable_snat: true,
            port_id: Id(115),
            fixed_ips: Vec::new(),
        })),
        expected_revision: None,
    });
    out.push(Command::CreateQosPolicy {
        id: Id(20),
        project_id: PROJECT.into(),
        name: "qos".into(),
        description: String::new(),
        shared: false,
    });
    out.push(Command::CreateQosRule {
        policy_id: Id(20),
        rule: QosRule {
            id: Id(30),
            kind: QosRuleKind::DscpMarking { dscp_mark: 26 },
        },
    });
    out
}

/// A history from an empty state, or from the [`prelude`] (so that updates and
/// deletes more often find what they act on), of [`arb_step`]s, with every
/// "ahead" client ID resolved against the index its command is applied at.
fn arb_history() -> impl Strategy<Value = Vec<Command>> {
    (any::<bool>(), proptest::collection::vec(arb_step(), 1..50)).prop_map(
        |(with_prelude, steps)| {
            let prelude = if with_prelude { prelude() } else { Vec::new() };
            prelude
                .into_iter()
                .chain(steps.into_iter().flatten())
                .enumerate()
                .map(|(i, command)| resolve_ahead(command, i as u64 + 1))
                .collect()
        },
    )
}

fn check_ipam(state: &State) {
    let mut ips = BTreeSet::new();
    let mut macs = BTreeSet::new();
    for port in state.ports() {
        assert!(
            macs.insert((port.network_id, port.mac_address)),
            "MAC {} handed out twice",
            port.mac_address
        );
        for ip in &port.fixed_ips {
            assert!(
                ips.insert((ip.subnet_id, ip.ip_address)),
                "IP {} handed out twice",
                ip.ip_address
            );
            let subnet = state.subnet(&ip.subnet_id).expect("port's subnet exists");
            assert!(subnet.cidr.contains(&ip.ip_address));
            // Only a router's interface holds the gateway address.
            if Some(ip.ip_address) == subnet.gateway_ip {
                assert_eq!(
                    &*port.device_owner,
                    alcor_state_machine::model::DEVICE_OWNER_ROUTER_INTERFACE
                );
            }
        }
    }
}

/// The position of a command's variant in [`VARIANTS`]. The match has no
/// wildcard: a new `Command` variant does not compile until it is listed here,
/// and then `every_command_variant_is_generated` fails until a generator makes it.
fn variant(command: &Command) -> usize {
    match command {
        Command::CreateHost { .. } => 0,
        Command::UpdateHost { .. } => 1,
        Command::DeleteHost { .. } => 2,
        Command::CreateVpc { .. } => 3,
        Command::UpdateVpc { .. } => 4,
        Command::DeleteVpc { .. } => 5,
        Command::CreateSubnet { .. } => 6,
        Command::UpdateSubnet { .. } => 7,
        Command::DeleteSubnet { .. } => 8,
        Command::CreatePort(_) => 9,
        Command::CreatePorts(_) => 10,
        Command::UpdatePort { .. } => 11,
        Command::SetPortStatus { .. } => 12,
        Command::DeletePort { .. } => 13,
        Command::CreateSecurityGroup { .. } => 14,
        Command::UpdateSecurityGroup { .. } => 15,
        Command::DeleteSecurityGroup { .. } => 16,
        Command::CreateSecurityGroupRule { .. } => 17,
        Command::DeleteSecurityGroupRule { .. } => 18,
        Command::CreateRouter { .. } => 19,
        Command::UpdateRouter { .. } => 20,
        Command::DeleteRouter { .. } => 21,
        Command::AddRouterInterface { .. } => 22,
        Command::RemoveRouterInterface { .. } => 23,
        Command::CreateFloatingIp { .. } => 24,
        Command::UpdateFloatingIp { .. } => 25,
        Command::DeleteFloatingIp { .. } => 26,
        Command::SetQuota { .. } => 27,
        Command::ResetQuota { .. } => 28,
        Command::Idempotent { .. } => 29,
        Command::WithTags { .. } => 30,
        Command::Batch(_) => 31,
        Command::CreateVpcV5 { .. } => 32,
        Command::UpdateVpcV5 { .. } => 33,
        Command::CreatePortV5(_) => 34,
        Command::CreatePortsV5(_) => 35,
        Command::UpdatePortV5 { .. } => 36,
        Command::CreatePortV6(_) => 37,
        Command::CreatePortsV6(_) => 38,
        Command::UpdatePortV6 { .. } => 39,
        Command::AddRouterInterfaceV6 { .. } => 40,
        Command::RemoveRouterInterfaceV6 { .. } => 41,
        Command::CreateQosPolicy { .. } => 42,
        Command::UpdateQosPolicy { .. } => 43,
        Command::DeleteQosPolicy { .. } => 44,
        Command::CreateQosRule { .. } => 45,
        Command::UpdateQosRule { .. } => 46,
        Command::DeleteQosRule { .. } => 47,
        Command::CreateVpcV7 { .. } => 48,
        Command::UpdateVpcV7 { .. } => 49,
        Command::CreatePortV7 { .. } => 50,
        Command::UpdatePortV7 { .. } => 51,
        Command::CreateVpcV8 { .. } => 52,
        Command::UpdateVpcV8 { .. } => 53,
        Command::CreateRouterV8 { .. } => 54,
        Command::UpdateRouterV8 { .. } => 55,
        Command::UpdateRouterV9 { .. } => 56,
    }
}

/// Number of `Command` variants; [`variant`] maps onto `0..VARIANTS`.
const VARIANTS: usize = 57;

/// Marks the variants of a command and of the commands it wraps.
fn mark_variants(command: &Command, seen: &mut [bool; VARIANTS]) {
    seen[variant(command)] = true;
    match command {
        Command::Idempotent { command, .. } | Command::WithTags { command, .. } => {
            mark_variants(command, seen)
        }
        Command::Batch(commands) => commands.iter().for_each(|c| mark_variants(c, seen)),
        _ => {}
    }
}

#[test]
fn every_command_variant_is_generated() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = arb_command();
    let mut seen = [false; VARIANTS];
    // Each variant has a weight of at least 1/300 or so; 20,000 draws miss one
    // with a probability far below 1e-20.
    for _ in 0..20_000 {
        let command = strategy.new_tree(&mut runner).unwrap().current();
        mark_variants(&command, &mut seen);
    }
    let missing: Vec<usize> = (0..VARIANTS).filter(|v| !seen[*v]).collect();
    assert!(missing.is_empty(), "variants never generated: {missing:?}");
}

/// The log is bincode, which names a variant by its position: [`variant`]'s
/// numbers are those positions, and a variant inserted anywhere but at the
/// end would move them (old log entries would apply as other commands).
#[test]
fn command_variants_keep_their_log_positions() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = arb_command();
    let mut seen = [false; VARIANTS];
    fn check(command: &Command, seen: &mut [bool; VARIANTS]) {
        let bytes = bincode::serde::encode_to_vec(command, bincode::config::standard()).unwrap();
        assert_eq!(usize::from(bytes[0]), variant(command), "{command:?}");
        seen[variant(command)] = true;
        match command {
            Command::Idempotent { command, .. } | Command::WithTags { command, .. } => {
                check(command, seen)
            }
            Command::Batch(commands) => commands.iter().for_each(|c| check(c, seen)),
            _ => {}
        }
    }
    for _ in 0..20_000 {
        check(
            &strategy.new_tree(&mut runner).unwrap().current(),
            &mut seen,
        );
    }
    assert!(seen.iter().all(|s| *s));
}

/// Every associated floating IP of an external network reaches its port
/// through a router with its gateway on that network; every gateway is on
/// an external network through its own port.
fn check_external_paths(state: &State) {
    for router in state.routers() {
        if let Some(gateway) = state.router_gateway(router.id) {
            assert!(state.network_is_external(gateway.network_id));
            let port = state.port(&gateway.port_id).expect("gateway port exists");
            assert_eq!(state.gateway_router(port), Some(router.id));
            assert_eq!(&*port.fixed_ips, &gateway.external_fixed_ips[..]);
        }
    }
    for fip in state.floating_ips() {
        if fip.port_id.is_none() || !state.network_is_external(fip.floating_network_id) {
            continue;
        }
        let router = state
            .floating_ip_router(fip)
            .expect("an external floating IP reaches its port through a router");
        let gateway = state
            .router_gateway(router)
            .expect("the router has a gateway");
        assert_eq!(gateway.network_id, fip.floating_network_id);
    }
}

/// A port without port security has no security groups and no pairs.
fn check_port_security(state: &State) {
    for port in state.ports() {
        if !port.port_security_enabled {
            assert!(
                port.security_groups.is_empty(),
                "port {} has groups",
                port.id
            );
            assert!(
                port.allowed_address_pairs.is_empty(),
                "port {} has pairs",
                port.id
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(96), ..ProptestConfig::default() })]

    #[test]
    fn random_histories_keep_every_invariant(commands in arb_history()) {
        let mut w = World::new();
        let mut twin = State::new();
        let mut snapshots = Vec::new();
        let mid = commands.len() / 2;
        let mut frozen = None;
        for (i, command) in commands.iter().enumerate() {
            let before = w.state.clone();
            let outcome = w.apply(command.clone());
            // The twin replays without diffs: the same result, changes and state.
            let twin_outcome = twin.apply_without_diffs(w.index, &alcor_state_machine::Proposal { time_ms: 1_700_000_000_000 + w.index, command: command.clone() });
            prop_assert_eq!(&outcome.result, &twin_outcome.result);
            prop_assert_eq!(&outcome.changes, &twin_outcome.changes);
            prop_assert!(twin_outcome.diffs.is_empty());
            if outcome.result.is_err() {
                prop_assert!(w.state.same_content(&before), "rejected command {} changed state", i);
                prop_assert!(outcome.diffs.is_empty());
            }
            check_ipam(&w.state);
            check_port_security(&w.state);
            check_external_paths(&w.state);
            prop_assert!(w.state.tag_index_is_consistent(), "tag index drifted at command {}", i);
            prop_assert!(w.state.indexes_are_consistent(), "indexes drifted at command {}: {:?}", i, command);
            snapshots.push((w.index, w.state.snapshot()));
            if i == mid {
                frozen = Some(w.state.freeze());
            }
        }
        // A state frozen mid-history still encodes as it was then, whatever
        // the later commands replaced or deleted.
        let frozen = frozen.expect("a history has at least one command");
        prop_assert_eq!(frozen.applied_index(), snapshots[mid].0);
        prop_assert_eq!(&frozen.snapshot(), &snapshots[mid].1);
        // Determinism: byte-identical snapshots.
        prop_assert_eq!(w.state.snapshot(), twin.snapshot());
        // Diffs add up to the goal state on every host (and on a host ports
        // wait for).
        for host in HOSTS.iter().chain(&UNREGISTERED_HOSTS) {
            prop_assert_eq!(w.table(host), w.state.goal_state(host), "host {}", host);
        }
        // Snapshot round trip, and indexes rebuilt from scratch agree with the live ones.
        let restored = State::restore(&w.state.snapshot()).expect("restore");
        prop_assert_eq!(restored.snapshot(), w.state.snapshot());
        for host in HOSTS {
            prop_assert_eq!(restored.goal_state(host), w.state.goal_state(host));
        }
        // Restoring a mid-history snapshot and applying the rest gives the same state.
        let (mid_index, mid_bytes) = &snapshots[mid];
        let mut resumed = State::restore(mid_bytes).expect("restore mid");
        for (offset, command) in commands.iter().enumerate().skip(mid + 1) {
            let index = offset as u64 + 1;
            prop_assert!(index > *mid_index);
            resumed.apply(index, &alcor_state_machine::Proposal { time_ms: 1_700_000_000_000 + index, command: command.clone() });
        }
        prop_assert_eq!(resumed.snapshot(), w.state.snapshot());
    }
}

/// A history focused on floating IPs: ports move and die under them.
fn arb_fip_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (100u128..106, 0..HOSTS.len()).prop_map(|(n, h)| port(n, 1, Some(HOSTS[h]))),
        (100u128..106, arb_host()).prop_map(|(n, host)| Command::UpdatePort {
            id: Id(n),
            update: PortUpdate {
                binding_host: Some(host.map(str::to_string)),
                ..PortUpdate::default()
            },
            expected_revision: None,
        }),
        (100u128..106).prop_map(|n| Command::DeletePort {
            id: Id(n),
            expected_revision: None
        }),
        (80u128..84, proptest::option::of(100u128..106)).prop_map(|(n, port)| {
            Command::CreateFloatingIp {
                id: Id(n),
                project_id: PROJECT.into(),
                floating_network_id: Id(2),
                floating_ip_address: None,
                port_id: port.map(Id),
                fixed_ip_address: None,
                description: String::new(),
            }
        }),
        (80u128..84, proptest::option::of(100u128..106)).prop_map(|(n, port)| {
            Command::UpdateFloatingIp {
                id: Id(n),
                port_id: Some(port.map(Id)),
                fixed_ip_address: None,
                description: None,
                expected_revision: None,
            }
        }),
        (80u128..84).prop_map(|n| Command::DeleteFloatingIp {
            id: Id(n),
            expected_revision: None
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]

    #[test]
    fn floating_ips_follow_their_ports_in_random_histories(commands in proptest::collection::vec(arb_fip_command(), 1..40)) {
        let mut w = World::new();
        w.ok(unlimited());
        for (i, h) in HOSTS.iter().enumerate() {
            w.ok(host(h, &format!("172.16.0.{}", i + 1)));
        }
        w.ok(vpc(1, None));
        w.ok(subnet(10, 1, "10.1.0.0/24"));
        w.ok(vpc(2, None));
        w.ok(subnet(20, 2, "203.0.113.0/28"));
        for command in commands {
            let before = w.state.clone();
            let outcome = w.apply(command);
            if outcome.result.is_err() {
                prop_assert!(w.state.same_content(&before));
            }
            check_ipam(&w.state);
        }
        for host in HOSTS {
            prop_assert_eq!(w.table(host), w.state.goal_state(host), "host {}", host);
        }
        let restored = State::restore(&w.state.snapshot()).expect("restore");
        prop_assert_eq!(restored.snapshot(), w.state.snapshot());
        for host in HOSTS {
            prop_assert_eq!(restored.goal_state(host), w.state.goal_state(host));
        }
    }
}
