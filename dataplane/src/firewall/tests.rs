//! Unit and property tests of the firewall plan and its diff.

use std::net::{IpAddr, Ipv4Addr};

use alcor_state_machine::goal::{PortConfig, RuleConfig, SgMember, SubnetConfig, VpcConfig};
use alcor_state_machine::model::{AddressPair, FixedIp, Mac};
use proptest::prelude::*;

use super::*;
use crate::plan::{plan, Plan};
use alcor_state_machine::GoalKey;

const HOST: &str = "host-a";
const UNDERLAY: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address")
}

fn base() -> Vec<GoalObject> {
    vec![
        GoalObject::Vpc(VpcConfig {
            id: Id(1),
            vni: 100,
            mtu: 1450,
            cidr: None,
            admin_state_up: true,
        }),
        GoalObject::Subnet(SubnetConfig {
            id: Id(11),
            network_id: Id(1),
            cidr: "10.0.1.0/24".parse().expect("cidr"),
            gateway_ip: Some(ip("10.0.1.1")),
            enable_dhcp: false,
            dns_nameservers: Vec::new(),
            host_routes: Vec::new(),
        }),
    ]
}

fn port(id: u128, address: &str, groups: &[u128]) -> GoalObject {
    GoalObject::Port(PortConfig {
        id: Id(id),
        project_id: "p1".into(),
        network_id: Id(1),
        fixed_ips: vec![FixedIp {
            subnet_id: Id(11),
            ip_address: ip(address),
        }],
        mac_address: Mac([0xfa, 0x16, 0x3e, 0, 0, id as u8]),
        device_id: String::new(),
        device_owner: String::new(),
        security_groups: groups.iter().map(|g| Id(*g)).collect(),
        allowed_address_pairs: Vec::new(),
        admin_state_up: true,
        port_security_enabled: true,
        qos: None,
    })
}

fn sg_rule(id: u128, group: u128, direction: Direction) -> RuleConfig {
    RuleConfig {
        id: Id(id),
        security_group_id: Id(group),
        direction,
        ethertype: EtherType::Ipv4,
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: None,
    }
}

fn member(group: u128, port: u128, address: &str) -> GoalObject {
    GoalObject::SgMember(SgMember {
        group_id: Id(group),
        port_id: Id(port),
        ips: vec![ip(address)],
    })
}

fn goal(objects: Vec<GoalObject>) -> GoalState {
    objects.into_iter().map(|o| (o.key(), o)).collect()
}

/// Two ports in group 50: TCP 22-80 from 10.0.0.0/8, everything from the
/// group, egress anywhere.
fn example() -> Vec<GoalObject> {
    let mut objects = base();
    objects.push(port(21, "10.0.1.5", &[50]));
    objects.push(port(22, "10.0.1.6", &[50]));
    let mut tcp = sg_rule(61, 50, Direction::Ingress);
    tcp.protocol = Some(6);
    tcp.port_range_min = Some(22);
    tcp.port_range_max = Some(80);
    tcp.remote_ip_prefix = Some("10.0.0.0/8".parse().expect("net"));
    let mut from_group = sg_rule(62, 50, Direction::Ingress);
    from_group.remote_group_id = Some(Id(50));
    let mut icmp = sg_rule(63, 50, Direction::Ingress);
    icmp.protocol = Some(1);
    icmp.port_range_min = Some(8);
    objects.extend(
        [tcp, from_group, icmp, sg_rule(64, 50, Direction::Egress)].map(GoalObject::SgRule),
    );
    objects.push(member(50, 21, "10.0.1.5"));
    objects.push(member(50, 22, "10.0.1.6"));
    objects.push(member(50, 23, "10.0.1.7"));
    objects
}

fn planned(objects: Vec<GoalObject>) -> Plan {
    plan(&goal(objects), HOST, UNDERLAY)
}

/// A throwaway network namespace (removed on drop) to run `nft` in.
struct Scratch(String);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let name = format!("alct-{tag}-{}", std::process::id());
        let status = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add");
        assert!(status.success(), "ip netns add {name}");
        Scratch(name)
    }

    /// Runs `nft ARGS` in the namespace with `input` on stdin; stdout.
    fn nft(&self, args: &[&str], input: &str) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &self.0, "nft"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nft");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        let output = child.wait_with_output().expect("nft output");
        assert!(
            output.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    fn apply(&self, batch: &Batch) {
        if !batch.commands.is_empty() {
            let document = json!({ "nftables": batch.commands }).to_string();
            self.nft(&["-j", "-f", "-"], &document);
        }
    }

    fn read(&self) -> Existing {
        let mut out = Existing::new();
        for family in [Family::Inet, Family::Bridge] {
            let text = self.nft(&["-j", "list", "table", family.as_str(), TABLE], "");
            let value: Value = serde_json::from_str(&text).expect("json");
            out.insert(family, parse_table(&value));
        }
        out
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// The test's ruleset after a change: group 50 loses its TCP rule and
/// member 23, port 22 leaves, port 24 (another MAC, an allowed pair)
/// arrives.
fn changed() -> Vec<GoalObject> {
    let mut objects: Vec<GoalObject> = example()
        .into_iter()
        .filter(|o| {
            !matches!(o.key(), GoalKey::SgRule(Id(61)) | GoalKey::Port(Id(22)))
                && o.key()
                    != GoalKey::SgMember {
                        group_id: Id(50),
                        port_id: Id(23),
                    }
        })
        .collect();
    let mut with_pair = port(24, "10.0.1.8", &[50]);
    if let GoalObject::Port(p) = &mut with_pair {
        p.allowed_address_pairs.push(AddressPair {
            ip_address: "10.0.1.100/32".parse().expect("net"),
            mac_address: None,
        });
    }
    objects.push(with_pair);
    objects
}

#[test]
fn the_kernel_takes_each_batch_and_reads_back_what_was_planned() {
    let scratch = Scratch::new("fw");
    let first = ruleset(&planned(example()).firewall);
    scratch.apply(&diff(&first, &Existing::new()));
    let found = scratch.read();
    assert_eq!(found, applied(&first));
    assert_eq!(
        diff(&first, &found),
        Batch::default(),
        "a second pass changes nothing"
    );
    let second = ruleset(&planned(changed()).firewall);
    let batch = diff(&second, &found);
    scratch.apply(&batch);
    let found = scratch.read();
    assert_eq!(found, applied(&second));
    assert_eq!(diff(&second, &found), Batch::default());
    // Back to nothing: the tables stay, empty of ports and groups.
    let empty = ruleset(&Firewall::default());
    scratch.apply(&diff(&empty, &found));
    assert_eq!(scratch.read(), applied(&empty));
}

fn inet(ruleset: &Ruleset) -> &TableSpec {
    &ruleset.tables[&Family::Inet]
}

fn chain_text(ruleset: &Ruleset, family: Family, name: &str) -> String {
    ruleset.tables[&family].chains[name]
        .rules
        .iter()
        .map(|(statements, _)| statements.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_port_without_groups_sends_and_receives_nothing_but_established_traffic() {
    let mut objects = base();
    objects.push(port(21, "10.0.1.5", &[]));
    let ruleset = ruleset(&planned(objects).firewall);
    for prefix in [EGRESS_PREFIX, INGRESS_PREFIX] {
        let chain = &inet(&ruleset).chains[&format!("{prefix}{}", Id(21))];
        // The stateful head, then the drop.
        assert_eq!(chain.rules.len(), stateful_head().len() + 1);
        assert_eq!(chain.rules.last().expect("rule").0, json!([{"drop": null}]));
    }
}

#[test]
fn rules_become_matches_on_protocol_ports_prefix_and_member_sets() {
    let plan = planned(example());
    let ruleset = ruleset(&plan.firewall);
    // The rules are in the group's chain, which each member's chain jumps to.
    let ingress = chain_text(
        &ruleset,
        Family::Inet,
        &format!("{GROUP_INGRESS_PREFIX}{}", Id(50)),
    );
    for port in [21, 22] {
        let chain = chain_text(
            &ruleset,
            Family::Inet,
            &format!("{INGRESS_PREFIX}{}", Id(port)),
        );
        let jump = format!(
            r#"{{"jump":{{"target":"{GROUP_INGRESS_PREFIX}{}"}}}}"#,
            Id(50)
        );
        assert!(chain.contains(&jump), "{chain}");
        // The rule's port range is in the group's chain only.
        assert!(!chain.contains(r#"{"range":[22,80]}"#), "{chain}");
    }
    assert!(ingress.ends_with(r#"{"accept":null}]"#), "{ingress}");
    assert!(ingress.contains(r#"{"range":[22,80]}"#), "{ingress}");
    assert!(ingress.contains(r#""protocol":"th""#), "{ingress}");
    assert!(
        ingress.contains(r#"{"prefix":{"addr":"10.0.0.0","len":8}}"#),
        "{ingress}"
    );
    assert!(
        ingress.contains(&format!("@{GROUP4_PREFIX}{}", Id(50))),
        "{ingress}"
    );
    assert!(
        ingress.contains(
            r#"{"match":{"left":{"payload":{"field":"type","protocol":"icmp"}},"op":"==","right":8}}"#
        ),
        "{ingress}"
    );
    // Ingress matches the source, egress the destination.
    assert!(ingress.contains(r#""field":"saddr""#) && !ingress.contains(r#""field":"daddr""#));
    let egress = chain_text(
        &ruleset,
        Family::Inet,
        &format!("{EGRESS_PREFIX}{}", Id(21)),
    );
    assert!(egress.ends_with(r#"[{"drop":null}]"#), "{egress}");
    // An egress rule that matches goes on to the destination's ingress
    // chain (a `return` would leave only the group's chain).
    let group_egress = chain_text(
        &ruleset,
        Family::Inet,
        &format!("{GROUP_EGRESS_PREFIX}{}", Id(50)),
    );
    assert!(
        group_egress.ends_with(&format!(r#"{{"goto":{{"target":"{TO_INGRESS}"}}}}]"#)),
        "{group_egress}"
    );
    let to_ingress = chain_text(&ruleset, Family::Inet, TO_INGRESS);
    assert!(to_ingress.contains(r#""data":"@ingress""#), "{to_ingress}");
    assert!(to_ingress.ends_with(r#"[{"accept":null}]"#), "{to_ingress}");
    // Members of group 50 (the local two and a remote one), IPv4 only.
    let members = &inet(&ruleset).sets[&format!("{GROUP4_PREFIX}{}", Id(50))];
    let keys: Vec<&str> = members.elements.keys().map(|k| k[0].as_str()).collect();
    assert_eq!(keys, ["10.0.1.5", "10.0.1.6", "10.0.1.7"]);
    assert!(inet(&ruleset).sets[&format!("{GROUP6_PREFIX}{}", Id(50))]
        .elements
        .is_empty());
    // Dispatch: both ports by (bridge, MAC).
    let egress_map = &inet(&ruleset).sets["egress"];
    assert_eq!(egress_map.elements.len(), 2);
    assert_eq!(
        egress_map.elements[&vec!["alcb000064".to_string(), "fa:16:3e:00:00:15".to_string()]],
        format!("{EGRESS_PREFIX}{}", Id(21))
    );
}

#[test]
fn a_port_may_send_only_from_its_mac_fixed_ips_and_allowed_pairs() {
    let plan = planned(changed());
    let filter = &plan.firewall.ports[&Id(24)];
    let own = [0xfa, 0x16, 0x3e, 0, 0, 24];
    assert_eq!(
        filter.sources,
        vec![
            (own, "10.0.1.8/32".parse().expect("net")),
            (own, "10.0.1.100/32".parse().expect("net")),
        ]
    );
    let ruleset = ruleset(&plan.firewall);
    let spoof = chain_text(
        &ruleset,
        Family::Bridge,
        &format!("{SPOOF_PREFIX}{}", Id(24)),
    );
    assert!(spoof.contains(r#""right":"10.0.1.100""#), "{spoof}");
    assert!(
        spoof.contains(
            r#"{"match":{"left":{"payload":{"field":"saddr ip","protocol":"arp"}},"op":"==","right":"10.0.1.8"}}"#
        ),
        "{spoof}"
    );
    assert!(
        !spoof.contains("10.0.1.5"),
        "another port's address: {spoof}"
    );
    assert!(spoof.ends_with(r#"[{"drop":null}]"#), "{spoof}");
    assert_eq!(
        ruleset.tables[&Family::Bridge].sets["ports"].elements[&vec![filter.veth.clone()]],
        format!("{SPOOF_PREFIX}{}", Id(24))
    );
}

#[test]
fn a_new_member_is_one_element_added_and_nothing_else() {
    let before = ruleset(&planned(example()).firewall);
    let mut objects = example();
    objects.push(member(50, 25, "10.0.1.9"));
    let after = ruleset(&planned(objects).firewall);
    let batch = diff(&after, &applied(&before));
    assert_eq!(batch.n_changes, 1, "{:?}", batch.commands);
    assert_eq!(batch.commands.len(), 1);
    assert!(batch.commands[0]["add"]["element"]["elem"] == json!(["10.0.1.9"]));
}

#[test]
fn a_removed_rule_rewrites_only_its_groups_chain_of_its_direction() {
    let before = ruleset(&planned(example()).firewall);
    let objects: Vec<GoalObject> = example()
        .into_iter()
        .filter(|o| o.key() != GoalKey::SgRule(Id(61)))
        .collect();
    let after = ruleset(&planned(objects).firewall);
    let batch = diff(&after, &applied(&before));
    // The group's ingress chain: flushed and refilled, nothing else.
    assert_eq!(batch.n_changes, 1, "{:?}", batch.commands);
    let flushed: Vec<&str> = batch
        .commands
        .iter()
        .filter_map(|c| c["flush"]["chain"]["name"].as_str())
        .collect();
    assert_eq!(flushed, [format!("{GROUP_INGRESS_PREFIX}{}", Id(50))]);
    assert!(batch
        .commands
        .iter()
        .all(|c| c.get("flush").is_some() || c["add"].get("rule").is_some()));
}

#[test]
fn a_rule_added_to_a_group_of_many_ports_rewrites_one_chain() {
    let mut objects = base();
    for id in 100..300 {
        objects.push(port(id, &format!("10.0.1.{}", id - 90), &[50]));
    }
    objects.push(GoalObject::SgRule(sg_rule(61, 50, Direction::Ingress)));
    let before = planned(objects.clone()).firewall;
    let mut tcp = sg_rule(62, 50, Direction::Ingress);
    tcp.protocol = Some(6);
    tcp.port_range_min = Some(443);
    objects.push(GoalObject::SgRule(tcp));
    let after = planned(objects).firewall;
    let batch = diff(&ruleset(&after), &applied(&ruleset(&before)));
    assert_eq!(batch.n_changes, 1, "{:?}", batch.commands);
    // Flush and two rules.
    assert_eq!(batch.commands.len(), 3, "{:?}", batch.commands);
    // The incremental pass builds that one chain and the fixed ones.
    let scope = Scope::between(&before, &after);
    assert!(scope.ports.is_empty() && scope.groups.is_empty());
    assert_eq!(scope.rules, BTreeSet::from([Id(50)]));
}

/// Applies `batch` to `existing` as the kernel would, checking what the
/// kernel checks (chains empty and unreferenced before deletion, jump
/// targets and sets present, everything in the agent's tables).
fn simulate(existing: &Existing, batch: &Batch) -> Existing {
    let mut out = existing.clone();
    for command in &batch.commands {
        let (verb, body) = command
            .as_object()
            .and_then(|o| o.iter().next())
            .expect("command");
        let (kind, object) = body
            .as_object()
            .and_then(|o| o.iter().next())
            .expect("object");
        let family = match object["family"].as_str().expect("family") {
            "inet" => Family::Inet,
            "bridge" => Family::Bridge,
            other => panic!("family {other}"),
        };
        let table_name = object.get("table").unwrap_or(&object["name"]);
        assert_eq!(table_name, TABLE, "{command}");
        if kind == "table" {
            assert_eq!(verb, "add");
            out.entry(family).or_default();
            continue;
        }
        let table = out.get_mut(&family).expect("table exists");
        let name = object
            .get("name")
            .or_else(|| object.get("chain"))
            .and_then(Value::as_str)
            .expect("name")
            .to_string();
        match (verb.as_str(), kind.as_str()) {
            ("add", "chain") => assert!(table.chains.insert(name, Vec::new()).is_none()),
            ("add", "set") | ("add", "map") => {
                assert!(table.sets.insert(name, BTreeMap::new()).is_none())
            }
            ("add", "rule") => table
                .chains
                .get_mut(&name)
                .expect("chain")
                .push(object["comment"].as_str().expect("comment").to_string()),
            ("flush", "chain") => table.chains.get_mut(&name).expect("chain").clear(),
            ("delete", "chain") => {
                assert!(
                    table.chains[&name].is_empty(),
                    "deleting non-empty chain {name}"
                );
                assert!(
                    table.sets.values().all(|s| s.values().all(|t| *t != name)),
                    "deleting referenced chain {name}"
                );
                table.chains.remove(&name);
            }
            ("delete", "set") | ("delete", "map") => {
                assert!(table.sets.remove(&name).is_some());
            }
            (verb, "element") => {
                let elements = object["elem"].as_array().expect("elem");
                for element in elements {
                    let (key, target) = parse_element(element).expect("element");
                    if !target.is_empty() {
                        assert!(
                            table.chains.contains_key(&target),
                            "jump to missing chain {target}"
                        );
                    }
                    let set = table.sets.get_mut(&name).expect("set");
                    if verb == "add" {
                        assert!(set.insert(key, target).is_none(), "element exists");
                    } else {
                        assert_eq!(set.remove(&key), Some(target), "element missing");
                    }
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

#[test]
fn the_simulator_agrees_with_the_kernel_on_the_example() {
    let first = ruleset(&planned(example()).firewall);
    let second = ruleset(&planned(changed()).firewall);
    let found = simulate(&Existing::new(), &diff(&first, &Existing::new()));
    assert_eq!(found, applied(&first));
    assert_eq!(simulate(&found, &diff(&second, &found)), applied(&second));
}

/// A goal state of up to 6 local ports in up to 4 groups, with rules and
/// members drawn at random.
fn arbitrary_goal() -> impl Strategy<Value = Vec<GoalObject>> {
    let port_groups = proptest::collection::vec(proptest::collection::vec(0u128..4, 0..3), 0..6);
    let rules = proptest::collection::vec(
        (
            (0u128..4, any::<bool>(), any::<bool>()),
            proptest::option::of(prop_oneof![
                Just(1u8),
                Just(6u8),
                Just(17u8),
                Just(58u8),
                Just(132u8)
            ]),
            proptest::option::of(1u16..100),
            proptest::option::of(0u128..4),
            proptest::option::of(prop_oneof![
                Just("10.0.0.0/8"),
                Just("192.0.2.7/32"),
                Just("2001:db8::/32")
            ]),
        ),
        0..8,
    );
    let members = proptest::collection::vec((0u128..4, 0u8..30), 0..10);
    (port_groups, rules, members).prop_map(|(port_groups, rules, members)| {
        let mut objects = base();
        for (i, groups) in port_groups.iter().enumerate() {
            let groups: Vec<u128> = groups.iter().map(|g| 50 + g).collect();
            objects.push(port(21 + i as u128, &format!("10.0.1.{}", 5 + i), &groups));
        }
        for (i, ((group, ingress, ipv6), protocol, min, remote, prefix)) in
            rules.into_iter().enumerate()
        {
            let direction = if ingress {
                Direction::Ingress
            } else {
                Direction::Egress
            };
            let mut rule = sg_rule(60 + i as u128, 50 + group, direction);
            if ipv6 {
                rule.ethertype = EtherType::Ipv6;
            }
            rule.remote_ip_prefix = prefix.map(|p| p.parse().expect("net"));
            rule.protocol = protocol;
            rule.port_range_min = min.filter(|_| protocol.is_some());
            rule.port_range_max = rule.port_range_min.map(|m| m + 10);
            rule.remote_group_id = remote.map(|r| Id(50 + r)).filter(|_| prefix.is_none());
            objects.push(GoalObject::SgRule(rule));
        }
        for (i, (group, last)) in members.into_iter().enumerate() {
            objects.push(member(
                50 + group,
                100 + i as u128,
                &format!("10.0.2.{last}"),
            ));
        }
        objects
    })
}

proptest! {
    #[test]
    fn any_diff_leads_from_one_ruleset_to_the_other_and_repeats_as_nothing(
        a in arbitrary_goal(),
        b in arbitrary_goal(),
    ) {
        let first = ruleset(&planned(a).firewall);
        let second = ruleset(&planned(b).firewall);
        let found = simulate(&Existing::new(), &diff(&first, &Existing::new()));
        prop_assert_eq!(&found, &applied(&first));
        prop_assert_eq!(diff(&first, &found), Batch::default());
        let moved = simulate(&found, &diff(&second, &found));
        prop_assert_eq!(&moved, &applied(&second));
        prop_assert_eq!(diff(&second, &moved), Batch::default());
    }

    #[test]
    fn a_ruleset_built_on_the_chains_of_an_earlier_one_equals_one_built_afresh(
        a in arbitrary_goal(),
        b in arbitrary_goal(),
    ) {
        let mut cache = PortChains::default();
        let first = planned(a).firewall;
        let second = planned(b).firewall;
        prop_assert_eq!(ruleset_cached(&first, &mut cache), ruleset(&first));
        prop_assert_eq!(ruleset_cached(&second, &mut cache), ruleset(&second));
        prop_assert_eq!(ruleset_cached(&first, &mut cache), ruleset(&first));
    }

    #[test]
    fn every_port_chain_ends_in_drop_and_every_local_port_is_filtered(a in arbitrary_goal()) {
        let plan = planned(a);
        let ruleset = ruleset(&plan.firewall);
        prop_assert_eq!(plan.firewall.ports.len(), plan.ports.len());
        for (family, table) in &ruleset.tables {
            for (name, chain) in &table.chains {
                if PORT_PREFIXES.iter().any(|p| name.starts_with(p)) {
                    prop_assert_eq!(&chain.rules.last().expect("rule").0, &json!([{"drop": null}]), "{:?} {}", family, name);
                }
            }
        }
    }
}

proptest! {
    /// The incremental pass's firewall: the scoped batch is the full
    /// diff's batch, and the merged memory is what a read would find.
    #[test]
    fn a_scoped_diff_is_the_full_diff_and_its_memory_the_full_memory(
        a in arbitrary_goal(),
        b in arbitrary_goal(),
    ) {
        let first = planned(a).firewall;
        let second = planned(b).firewall;
        let mut cache = PortChains::default();
        let mut memory = applied(&ruleset_cached(&first, &mut cache));
        let scope = Scope::between(&first, &second);
        let part = ruleset_scoped(&second, &mut cache, &scope);
        let batch = diff(&part, &restrict(&memory, &scope));
        prop_assert_eq!(&batch, &diff(&ruleset(&second), &memory));
        merge(&mut memory, &scope, applied(&part));
        prop_assert_eq!(&memory, &applied(&ruleset(&second)));
        prop_assert_eq!(ruleset_cached(&second, &mut cache), ruleset(&second));
    }
}

#[test]
fn a_rule_whose_prefix_is_of_the_other_family_is_left_out() {
    let mut objects = base();
    objects.push(port(21, "10.0.1.5", &[50]));
    let mut rule = sg_rule(61, 50, Direction::Ingress);
    rule.remote_ip_prefix = Some("2001:db8::/32".parse().expect("net"));
    objects.push(GoalObject::SgRule(rule));
    let ruleset = ruleset(&planned(objects).firewall);
    let chain = &inet(&ruleset).chains[&format!("{GROUP_INGRESS_PREFIX}{}", Id(50))];
    assert!(chain.rules.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The kernel takes every batch the plan can produce and reads back
    /// what was planned (32 cases: each runs `nft` a few times).
    #[test]
    fn the_kernel_takes_any_planned_batch(a in arbitrary_goal(), b in arbitrary_goal()) {
        let scratch = Scratch::new("any");
        let first = ruleset(&planned(a).firewall);
        scratch.apply(&diff(&first, &Existing::new()));
        let found = scratch.read();
        prop_assert_eq!(&found, &applied(&first));
        let second = ruleset(&planned(b).firewall);
        scratch.apply(&diff(&second, &found));
        prop_assert_eq!(scratch.read(), applied(&second));
    }
}

#[test]
fn a_port_without_port_security_has_no_filter_and_no_dispatch_entry() {
    let mut objects = example();
    for object in &mut objects {
        if let GoalObject::Port(p) = object {
            if p.id == Id(22) {
                p.port_security_enabled = false;
            }
        }
    }
    let plan = planned(objects);
    assert!(
        plan.ports.values().any(|p| p.port_id == Id(22)),
        "still programmed"
    );
    assert!(!plan.firewall.ports.contains_key(&Id(22)));
    let ruleset = ruleset(&plan.firewall);
    let port = Id(22).to_string();
    for table in ruleset.tables.values() {
        assert!(table.chains.keys().all(|name| !name.ends_with(&port)));
        for set in table.sets.values() {
            assert!(set.elements.values().all(|target| !target.ends_with(&port)));
        }
    }
    assert!(plan.firewall.ports.contains_key(&Id(21)));
}
