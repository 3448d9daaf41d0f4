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

/// What a read finds after `ruleset` was applied in full.
fn applied(ruleset: &Ruleset) -> Existing {
    ruleset
        .tables
        .iter()
        .map(|(family, spec)| {
            let table = ExistingTable {
                chains: spec
                    .chains
                    .iter()
                    .map(|(n, c)| (n.clone(), c.rules.iter().map(|r| r.1.clone()).collect()))
                    .collect(),
                sets: spec
                    .sets
                    .iter()
                    .map(|(n, s)| (n.clone(), s.elements.clone()))
                    .collect(),
            };
            (*family, table)
        })
        .collect()
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
