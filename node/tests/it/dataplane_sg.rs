//! Security groups and anti-spoofing of the Linux dataplane end to end
//! (needs root): the hosts, cluster and agents of `dataplane_fixture.rs`, ports in
//! two VPCs with one CIDR over the 3 hosts, and security groups created
//! through the public API with a port-range rule, a prefix rule and
//! remote-group rules, and one port with port security off. A probe matrix (ping, TCP to an allowed and a
//! denied port, UDP) between every pair of ports must equal what a model
//! of the policy in this file implies: every allowed pair reachable, every
//! denied one unreachable, nothing across VPCs. After each change (a rule
//! added, a rule removed, a port taken out of a group) the matrix must
//! match the new policy within `CHANGE_MS_MAX` (1 s) plus
//! `CHANGE_SLACK_MS` for a 2-core CI machine. A port that sends from
//! another IP or MAC than its own reaches nobody.
//!
//! TCP and UDP probes run on threads of this process that enter the
//! port's namespace (`setns`) and use std sockets; each port has TCP
//! listeners on `TCP_OPEN` and `TCP_SHUT` and a UDP echo on `UDP_PORT`,
//! stopped by a flag on drop. Every probe is bounded by `PROBE_MS`.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alcor_dataplane::plan as names;
use alcor_proto::api::v1 as pb;
use alcor_state_machine::Id;
use tonic::Code;

use crate::cluster::ProcessCluster;
use crate::dataplane_fixture::{
    ip, wait_for, PortSpec, Topology, Underlay, CHANGE_MS_MAX, CHANGE_SLACK_MS,
};
use crate::workload::{req, uuid, write, PROJECT};

/// TCP port the "web" rule opens (range 8000-8001).
const TCP_OPEN: u16 = 8000;
/// TCP port outside that range (a listener answers, the rule does not).
const TCP_SHUT: u16 = 8002;
/// UDP port the "db" rule opens to members of "web".
const UDP_PORT: u16 = 9000;
/// Bound of one probe (ping, connect, UDP reply).
const PROBE_MS: u64 = 500;

/// Groups.
const WEB: usize = 0;
const DB: usize = 1;
const ADM: usize = 2;
const N_GROUPS: usize = 3;

/// One port: name, VPC, host, last byte of its address in 10.0.1.0/24,
/// groups, port security.
struct SgPort {
    name: &'static str,
    vpc: usize,
    host: usize,
    last: u8,
    groups: &'static [usize],
    secured: bool,
}

const PORTS: [SgPort; 9] = [
    SgPort {
        name: "w1",
        vpc: 0,
        host: 0,
        last: 10,
        groups: &[WEB],
        secured: true,
    },
    SgPort {
        name: "w2",
        vpc: 0,
        host: 1,
        last: 11,
        groups: &[WEB],
        secured: true,
    },
    SgPort {
        name: "d1",
        vpc: 0,
        host: 2,
        last: 20,
        groups: &[DB],
        secured: true,
    },
    SgPort {
        name: "d2",
        vpc: 0,
        host: 0,
        last: 21,
        groups: &[DB],
        secured: true,
    },
    SgPort {
        name: "a1",
        vpc: 0,
        host: 1,
        last: 33,
        groups: &[ADM],
        secured: true,
    },
    SgPort {
        name: "n1",
        vpc: 0,
        host: 2,
        last: 12,
        groups: &[],
        secured: true,
    },
    SgPort {
        name: "b1",
        vpc: 1,
        host: 1,
        last: 10,
        groups: &[WEB, DB],
        secured: true,
    },
    SgPort {
        name: "b2",
        vpc: 1,
        host: 2,
        last: 20,
        groups: &[WEB, DB],
        secured: true,
    },
    // Port security off: nothing is enforced on it either way.
    SgPort {
        name: "o1",
        vpc: 0,
        host: 0,
        last: 40,
        groups: &[],
        secured: false,
    },
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Any,
    Icmp,
    Tcp(u16, u16),
    Udp(u16, u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Remote {
    Any,
    /// 10.0.1.X/len.
    Prefix(u8, u8),
    Group(usize),
}

/// An ingress rule of the model (every group also has the default egress
/// rules, so a port with a group may send anything).
#[derive(Clone, Copy, Debug)]
struct Rule {
    id: u64,
    group: usize,
    proto: Proto,
    remote: Remote,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Probe {
    Ping,
    Tcp(u16),
    Udp(u16),
}

const PROBES: [Probe; 4] = [
    Probe::Ping,
    Probe::Tcp(TCP_OPEN),
    Probe::Tcp(TCP_SHUT),
    Probe::Udp(UDP_PORT),
];

/// The policy as this test believes it is.
#[derive(Clone, Debug)]
struct Policy {
    rules: Vec<Rule>,
    groups: Vec<Vec<usize>>,
}

impl Policy {
    fn initial() -> Policy {
        Policy {
            rules: vec![
                // Port range: TCP 8000-8001 to web from anywhere.
                Rule {
                    id: 0x501,
                    group: WEB,
                    proto: Proto::Tcp(8000, 8001),
                    remote: Remote::Any,
                },
                // Prefix: anything to web from 10.0.1.32/28 (a1).
                Rule {
                    id: 0x502,
                    group: WEB,
                    proto: Proto::Any,
                    remote: Remote::Prefix(32, 28),
                },
                // Remote group: UDP 9000 to db from web.
                Rule {
                    id: 0x503,
                    group: DB,
                    proto: Proto::Udp(UDP_PORT, UDP_PORT),
                    remote: Remote::Group(WEB),
                },
                // Remote group: ping between db members.
                Rule {
                    id: 0x504,
                    group: DB,
                    proto: Proto::Icmp,
                    remote: Remote::Group(DB),
                },
            ],
            groups: PORTS.iter().map(|p| p.groups.to_vec()).collect(),
        }
    }

    fn member(&self, group: usize, last: u8) -> bool {
        PORTS
            .iter()
            .zip(&self.groups)
            .any(|(p, groups)| p.last == last && groups.contains(&group))
    }

    /// Whether `probe` from port `from` to port `to` (one VPC) passes.
    fn allows(&self, from: usize, to: usize, probe: Probe) -> bool {
        if PORTS[from].secured && self.groups[from].is_empty() {
            return false;
        }
        if !PORTS[to].secured {
            return true;
        }
        let source = PORTS[from].last;
        self.rules.iter().any(|rule| {
            let proto = match (rule.proto, probe) {
                (Proto::Any, _) | (Proto::Icmp, Probe::Ping) => true,
                (Proto::Tcp(min, max), Probe::Tcp(port))
                | (Proto::Udp(min, max), Probe::Udp(port)) => (min..=max).contains(&port),
                _ => false,
            };
            let remote = match rule.remote {
                Remote::Any => true,
                Remote::Prefix(base, len) => source >> (32 - len) == base >> (32 - len),
                Remote::Group(group) => self.member(group, source),
            };
            self.groups[to].contains(&rule.group) && proto && remote
        })
    }
}

/// Listeners of every port, stopped on drop.
struct Listeners {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Moves the calling thread into namespace `netns`.
fn enter(netns: &str) {
    let file = std::fs::File::open(format!("/run/netns/{netns}")).expect("open netns");
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

fn listen(netns: &[String]) -> Listeners {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for netns in netns {
        let netns = netns.clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            enter(&netns);
            let tcp: Vec<TcpListener> = [TCP_OPEN, TCP_SHUT]
                .iter()
                .map(|port| {
                    let l = TcpListener::bind(("0.0.0.0", *port)).expect("bind tcp");
                    l.set_nonblocking(true).expect("nonblocking");
                    l
                })
                .collect();
            let udp = UdpSocket::bind(("0.0.0.0", UDP_PORT)).expect("bind udp");
            udp.set_nonblocking(true).expect("nonblocking");
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                for listener in &tcp {
                    while let Ok((mut stream, _)) = listener.accept() {
                        let _ = stream.write_all(b"ok");
                    }
                }
                while let Ok((n, from)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(&buf[..n], from);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }
    Listeners { stop, threads }
}

/// Runs one probe from namespace `netns` to `address`; whether answered.
fn probe_one(netns: &str, address: &str, probe: Probe) -> bool {
    let timeout = Duration::from_millis(PROBE_MS);
    match probe {
        Probe::Ping => Command::new("ip")
            .args(["netns", "exec", netns, "ping", "-c1", "-q"])
            .args(["-W", &format!("{:.1}", PROBE_MS as f64 / 1000.0), address])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        Probe::Tcp(port) => {
            enter(netns);
            let target: SocketAddr = format!("{address}:{port}").parse().expect("addr");
            let Ok(mut stream) = TcpStream::connect_timeout(&target, timeout) else {
                return false;
            };
            let _ = stream.set_read_timeout(Some(timeout));
            let mut buf = [0u8; 2];
            stream.read_exact(&mut buf).is_ok()
        }
        Probe::Udp(port) => {
            enter(netns);
            let socket = UdpSocket::bind("0.0.0.0:0").expect("bind");
            let _ = socket.set_read_timeout(Some(timeout));
            if socket.send_to(b"probe", (address, port)).is_err() {
                return false;
            }
            let mut buf = [0u8; 16];
            socket.recv_from(&mut buf).is_ok()
        }
    }
}

/// One cell of the matrix: from port, to port, probe.
type Cell = (usize, usize, Probe);

/// Every pair to probe: one VPC, or across VPCs to an address the
/// prober's own VPC does not use (that would be its own VPC's port).
fn cells() -> Vec<Cell> {
    let mut out = Vec::new();
    for (i, from) in PORTS.iter().enumerate() {
        for (j, to) in PORTS.iter().enumerate() {
            let shadowed =
                from.vpc != to.vpc && PORTS.iter().any(|p| p.vpc == from.vpc && p.last == to.last);
            if i == j || shadowed {
                continue;
            }
            for probe in PROBES {
                out.push((i, j, probe));
            }
        }
    }
    out
}

fn expected(policy: &Policy, cells: &[Cell]) -> BTreeSet<Cell> {
    cells
        .iter()
        .filter(|(i, j, probe)| PORTS[*i].vpc == PORTS[*j].vpc && policy.allows(*i, *j, *probe))
        .copied()
        .collect()
}

/// Every cell probed at once; the answered ones.
fn probe_all(netns: &[String], cells: &[Cell]) -> BTreeSet<Cell> {
    let threads: Vec<_> = cells
        .iter()
        .map(|cell| {
            let (i, j, probe) = *cell;
            let netns = netns[i].clone();
            let address = format!("10.0.1.{}", PORTS[j].last);
            std::thread::spawn(move || probe_one(&netns, &address, probe))
        })
        .collect();
    cells
        .iter()
        .zip(threads)
        .filter_map(|(c, t)| t.join().unwrap_or(false).then_some(*c))
        .collect()
}

fn describe(cells: &BTreeSet<Cell>) -> Vec<String> {
    cells
        .iter()
        .map(|(i, j, p)| format!("{}->{} {p:?}", PORTS[*i].name, PORTS[*j].name))
        .collect()
}

/// Probes until the matrix equals `policy`'s; fails if no round that
/// starts within `budget_ms` of `since` matches. Returns how long after
/// `since` the matching round started.
fn await_matrix(
    what: &str,
    netns: &[String],
    policy: &Policy,
    since: Instant,
    budget_ms: u64,
    underlay: &Underlay,
) -> Duration {
    let cells = cells();
    let want = expected(policy, &cells);
    loop {
        let started = since.elapsed();
        let got = probe_all(netns, &cells);
        if got == want {
            return started;
        }
        if started > Duration::from_millis(budget_ms) {
            panic!(
                "{what}: the matrix differs from the policy {} ms after the change\n\
                 reachable but denied: {:?}\nallowed but unreachable: {:?}\n{}",
                started.as_millis(),
                describe(&got.difference(&want).copied().collect()),
                describe(&want.difference(&got).copied().collect()),
                underlay.agent_logs()
            );
        }
    }
}

async fn create_rule(cluster: &ProcessCluster, all: &[u64], groups: &[String], rule: &Rule) {
    let (protocol, min, max) = match rule.proto {
        Proto::Any => ("", None, None),
        Proto::Icmp => ("icmp", None, None),
        Proto::Tcp(min, max) => ("tcp", Some(u32::from(min)), Some(u32::from(max))),
        Proto::Udp(min, max) => ("udp", Some(u32::from(min)), Some(u32::from(max))),
    };
    let (prefix, remote_group) = match rule.remote {
        Remote::Any => (String::new(), String::new()),
        Remote::Prefix(base, len) => (format!("10.0.1.{base}/{len}"), String::new()),
        Remote::Group(group) => (String::new(), groups[group].clone()),
    };
    let message = pb::CreateSecurityGroupRuleRequest {
        id: uuid(rule.id),
        project_id: PROJECT.into(),
        security_group_id: groups[rule.group].clone(),
        direction: pb::Direction::Ingress as i32,
        ethertype: pb::EtherType::Ipv4 as i32,
        protocol: protocol.into(),
        port_range_min: min,
        port_range_max: max,
        remote_ip_prefix: prefix,
        remote_group_id: remote_group,
        ..Default::default()
    };
    write(
        cluster,
        all,
        "create rule",
        &[Code::AlreadyExists],
        |mut c| {
            let message = message.clone();
            async move { c.create_security_group_rule(req(message)).await }
        },
    )
    .await;
}

/// Runs `ip -n NETNS ARGS`.
fn ip_in(netns: &str, args: &[&str]) {
    let mut all = vec!["-n", netns];
    all.extend_from_slice(args);
    ip(&all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_and_anti_spoofing_shape_the_probe_matrix_and_follow_each_change() {
    let topology = Topology::start().await;
    let (cluster, all, underlay) = (&topology.cluster, &topology.all, &topology.underlay);
    let vpcs = [uuid(0x7d0), uuid(0x7d1)];
    let subnets = [uuid(0x7e0), uuid(0x7e1)];
    for (vpc, subnet) in vpcs.iter().zip(&subnets) {
        topology.create_vpc(vpc, "10.0.0.0/16").await;
        topology
            .create_subnet(subnet, vpc, "10.0.1.0/24", "10.0.1.1")
            .await;
    }
    let groups: Vec<String> = (0..N_GROUPS).map(|g| uuid(0x600 + g as u64)).collect();
    for (g, id) in groups.iter().enumerate() {
        let message = pb::CreateSecurityGroupRequest {
            id: id.clone(),
            project_id: PROJECT.into(),
            name: ["web", "db", "adm"][g].into(),
            ..Default::default()
        };
        write(
            cluster,
            all,
            "create group",
            &[Code::AlreadyExists],
            |mut c| {
                let message = message.clone();
                async move { c.create_security_group(req(message)).await }
            },
        )
        .await;
    }
    let mut policy = Policy::initial();
    // The policy allows and denies some of every probe kind, so the
    // matrix can catch a filter that is too open or too closed.
    let every_cell = cells();
    let allowed = expected(&policy, &every_cell);
    for probe in PROBES {
        let of_kind = every_cell.iter().filter(|c| c.2 == probe);
        let n_allowed = allowed.iter().filter(|c| c.2 == probe).count();
        assert!(n_allowed > 0 && n_allowed < of_kind.count(), "{probe:?}");
    }
    for rule in &policy.rules {
        create_rule(cluster, all, &groups, rule).await;
    }
    let mut ids = Vec::new();
    for (i, port) in PORTS.iter().enumerate() {
        let id = uuid(0x700 + i as u64);
        topology
            .create_port(&PortSpec {
                id: &id,
                name: port.name,
                vpc: &vpcs[port.vpc],
                subnet: &subnets[port.vpc],
                address: &format!("10.0.1.{}", port.last),
                host: port.host,
                groups: Some(port.groups.iter().map(|g| groups[*g].clone()).collect()),
                secured: port.secured,
            })
            .await;
        ids.push(id);
    }
    let netns: Vec<String> = PORTS
        .iter()
        .zip(&ids)
        .map(|(p, id)| topology.port_netns(p.host, id))
        .collect();
    wait_for("every port's namespace", underlay, || {
        netns
            .iter()
            .all(|n| std::path::Path::new(&format!("/run/netns/{n}")).exists())
    })
    .await;
    let _listeners = listen(&netns);
    // The first matrix: programming every port from scratch takes longer
    // than a change, so it has the cluster's own bound.
    let took = await_matrix(
        "initial policy",
        &netns,
        &policy,
        Instant::now(),
        crate::cluster::WAIT_MS_MAX,
        underlay,
    );
    eprintln!("initial matrix matched after {} ms", took.as_millis());

    // Anti-spoofing, each shown against a control that the policy allows.
    let (w2, d2, a1) = (1, 3, 4);
    assert!(
        probe_one(&netns[a1], "10.0.1.11", Probe::Ping),
        "control: a1 pings w2"
    );
    // d2 takes an address of the prefix web admits (a1's /28): w1
    // (same host) would answer it, but the bridge drops what d2 sends
    // from it (IP packets and ARP alike).
    let peer = |i: usize| names::peer_name(ids[i].parse::<Id>().expect("uuid"));
    ip_in(
        &netns[d2],
        &["addr", "del", "10.0.1.21/24", "dev", &peer(d2)],
    );
    ip_in(
        &netns[d2],
        &["addr", "add", "10.0.1.34/24", "dev", &peer(d2)],
    );
    assert!(
        !probe_one(&netns[d2], "10.0.1.10", Probe::Ping),
        "d2 reached w1 from a spoofed address"
    );
    ip_in(
        &netns[d2],
        &["addr", "del", "10.0.1.34/24", "dev", &peer(d2)],
    );
    ip_in(
        &netns[d2],
        &["addr", "add", "10.0.1.21/24", "dev", &peer(d2)],
    );
    ip_in(
        &netns[d2],
        &["route", "replace", "default", "via", "10.0.1.1"],
    );
    // a1 takes another MAC: w2 (same host) would learn it from a1's ARP
    // and answer, but the bridge drops every frame from it.
    ip_in(&netns[a1], &["neigh", "flush", "all"]);
    ip_in(&netns[w2], &["neigh", "flush", "all"]);
    ip_in(
        &netns[a1],
        &["link", "set", &peer(a1), "address", "02:00:00:aa:bb:cc"],
    );
    assert!(
        !probe_one(&netns[a1], "10.0.1.11", Probe::Ping),
        "a1 reached w2 from a spoofed MAC"
    );
    ip_in(
        &netns[a1],
        &[
            "link",
            "set",
            &peer(a1),
            "address",
            &mac_of(cluster, all, &ids[a1]).await,
        ],
    );
    ip_in(&netns[a1], &["neigh", "flush", "all"]);
    ip_in(&netns[w2], &["neigh", "flush", "all"]);
    assert!(
        probe_one(&netns[a1], "10.0.1.11", Probe::Ping),
        "a1 with its own MAC again"
    );

    // Add a rule: TCP 8000 to db from adm.
    let added = Rule {
        id: 0x505,
        group: DB,
        proto: Proto::Tcp(TCP_OPEN, TCP_OPEN),
        remote: Remote::Group(ADM),
    };
    create_rule(cluster, all, &groups, &added).await;
    let since = Instant::now();
    policy.rules.push(added);
    let budget = CHANGE_MS_MAX + CHANGE_SLACK_MS;
    let took = await_matrix("rule added", &netns, &policy, since, budget, underlay);
    eprintln!("rule added: matrix matched after {} ms", took.as_millis());

    // Remove a rule: web's TCP port range.
    let message = pb::DeleteSecurityGroupRuleRequest {
        id: uuid(0x501),
        expected_revision: None,
    };
    write(cluster, all, "delete rule", &[Code::NotFound], |mut c| {
        let message = message.clone();
        async move { c.delete_security_group_rule(req(message)).await }
    })
    .await;
    let since = Instant::now();
    policy.rules.retain(|r| r.id != 0x501);
    let took = await_matrix("rule removed", &netns, &policy, since, budget, underlay);
    eprintln!("rule removed: matrix matched after {} ms", took.as_millis());

    // Take w2 out of web (into adm): its ingress chain changes, and its
    // address (unlike w1's, which b1 shares in the other VPC) leaves web's
    // member set on the hosts of db's ports.
    let message = pb::UpdatePortRequest {
        id: ids[w2].clone(),
        security_groups: Some(pb::IdList {
            ids: vec![groups[ADM].clone()],
        }),
        ..Default::default()
    };
    write(cluster, all, "update port", &[], |mut c| {
        let message = message.clone();
        async move { c.update_port(req(message)).await }
    })
    .await
    .expect("port updated");
    let since = Instant::now();
    policy.groups[w2] = vec![ADM];
    let took = await_matrix(
        "port out of group",
        &netns,
        &policy,
        since,
        budget,
        underlay,
    );
    eprintln!(
        "port out of a group: matrix matched after {} ms",
        took.as_millis()
    );
    drop(topology);
}

/// The MAC the controller gave port `id`.
async fn mac_of(cluster: &ProcessCluster, all: &[u64], id: &str) -> String {
    let mut client = cluster.client(all[0]).await.expect("client");
    let message = pb::GetPortRequest {
        id: id.to_string(),
        stale: true,
        ..Default::default()
    };
    client
        .get_port(req(message))
        .await
        .expect("get port")
        .into_inner()
        .mac_address
}
