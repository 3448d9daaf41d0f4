//! Routing between subnets of a VPC end to end (needs root): the topology
//! of `dataplane_fixture.rs`, VPC a with three subnets (two attached to a
//! router at first) and VPC b with the same CIDR and its own router, ports
//! spread over the hosts. The ping matrix between every pair of ports must
//! equal what the model in this file implies: same VPC and either one
//! subnet or both subnets on the VPC's router, both ports with a security
//! group (a port without one is unreachable also when routed), nothing
//! across VPCs. Two ports of different subnets on one host are routed on
//! that host (the VXLAN devices send nothing meanwhile, and the gateway
//! answers with the host's own router MAC). After each change (a port
//! deleted, a port moved to another host, a subnet added to the router)
//! the matrix must match within `CHANGE_MS_MAX` plus `CHANGE_SLACK_MS`.
//! A routed ping across a restart of its host's agent loses at most one
//! probe, and the restarted agent's first pass changes nothing; a ping
//! across hosts loses at most one probe across a kill of the leader; and
//! once the whole controller is down and every agent restarted without it,
//! the matrix is unchanged.

use std::process::{Command, Stdio};
use std::time::Instant;

use alcor_dataplane::plan as names;
use alcor_state_machine::Id;

use crate::dataplane_fixture::{
    await_pings, ip, wait_for, PortSpec, Topology, CHANGE_MS_MAX, CHANGE_SLACK_MS, N_HOSTS,
};
use crate::workload::uuid;

/// One port: name, VPC, subnet (index into `SUBNETS`), last byte of its
/// address, host, whether it has a group (else none: nothing passes).
struct RoutedPort {
    name: &'static str,
    subnet: usize,
    last: u8,
    host: usize,
    grouped: bool,
}

/// Subnets: (VPC, third byte of 10.0.X.0/24).
const SUBNETS: [(usize, u8); 5] = [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2)];
/// Probes (every 100 ms) of a ping that runs across an agent restart or a
/// leader kill.
const PING_PROBES: u32 = 50;

/// The subnet of VPC a that joins the router later.
const LATE_SUBNET: usize = 2;

const PORTS: [RoutedPort; 9] = [
    RoutedPort {
        name: "a1",
        subnet: 0,
        last: 10,
        host: 0,
        grouped: true,
    },
    RoutedPort {
        name: "a2",
        subnet: 0,
        last: 11,
        host: 1,
        grouped: true,
    },
    // Another subnet on a1's host: routed there.
    RoutedPort {
        name: "a3",
        subnet: 1,
        last: 20,
        host: 0,
        grouped: true,
    },
    // The only port of VPC a on host 2 (deleted, then a2 moves there).
    RoutedPort {
        name: "a4",
        subnet: 1,
        last: 21,
        host: 2,
        grouped: true,
    },
    RoutedPort {
        name: "a5",
        subnet: LATE_SUBNET,
        last: 30,
        host: 1,
        grouped: true,
    },
    // No security group: routed traffic is filtered too.
    RoutedPort {
        name: "a6",
        subnet: 1,
        last: 22,
        host: 1,
        grouped: false,
    },
    // VPC b: a1's and a4's addresses, and one of its own.
    RoutedPort {
        name: "b1",
        subnet: 3,
        last: 10,
        host: 1,
        grouped: true,
    },
    RoutedPort {
        name: "b2",
        subnet: 4,
        last: 21,
        host: 0,
        grouped: true,
    },
    RoutedPort {
        name: "b3",
        subnet: 3,
        last: 40,
        host: 2,
        grouped: true,
    },
];

fn vpc_of(port: usize) -> usize {
    SUBNETS[PORTS[port].subnet].0
}

fn address(port: usize) -> String {
    format!(
        "10.0.{}.{}",
        SUBNETS[PORTS[port].subnet].1, PORTS[port].last
    )
}

/// What the test believes the controller holds.
struct Model {
    alive: Vec<bool>,
    hosts: Vec<usize>,
    routed: Vec<bool>,
}

impl Model {
    fn initial() -> Model {
        Model {
            alive: vec![true; PORTS.len()],
            hosts: PORTS.iter().map(|p| p.host).collect(),
            routed: (0..SUBNETS.len()).map(|s| s != LATE_SUBNET).collect(),
        }
    }

    fn reaches(&self, from: usize, to: usize) -> bool {
        let (a, b) = (&PORTS[from], &PORTS[to]);
        vpc_of(from) == vpc_of(to)
            && a.grouped
            && b.grouped
            && (a.subnet == b.subnet || (self.routed[a.subnet] && self.routed[b.subnet]))
    }

    /// Every (from namespace, to address) to ping with its expected
    /// answer: every live pair, except an address of the other VPC that
    /// the prober's own VPC also uses (that is its own VPC's port).
    fn matrix(&self, topology: &Topology, ids: &[String]) -> (Vec<(String, String)>, Vec<bool>) {
        let mut pairs = Vec::new();
        let mut want = Vec::new();
        for from in (0..PORTS.len()).filter(|i| self.alive[*i]) {
            for to in (0..PORTS.len()).filter(|j| self.alive[*j] && *j != from) {
                let shadowed = vpc_of(from) != vpc_of(to)
                    && (0..PORTS.len()).any(|k| {
                        self.alive[k] && vpc_of(k) == vpc_of(from) && address(k) == address(to)
                    });
                if shadowed {
                    continue;
                }
                pairs.push((
                    topology.port_netns(self.hosts[from], &ids[from]),
                    address(to),
                ));
                want.push(self.reaches(from, to));
            }
        }
        (pairs, want)
    }
}

/// A ping of `PING_PROBES` probes, 100 ms apart, running in the background.
struct Pinger(std::process::Child);

impl Pinger {
    fn start(netns: &str, address: &str) -> Pinger {
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "ping", "-q", "-i0.1", "-W1"])
            .args(["-c", &PING_PROBES.to_string(), address])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ping");
        Pinger(child)
    }

    /// Waits for the ping to end; fails unless at most one probe was lost
    /// across `what`.
    fn lost_at_most_one(self, what: &str) {
        let output = self.0.wait_with_output().expect("ping");
        let summary = String::from_utf8_lossy(&output.stdout);
        let received = summary
            .split(", ")
            .find_map(|part| part.strip_suffix(" received"))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no ping summary: {summary}"));
        assert!(
            received + 1 >= PING_PROBES,
            "{what} lost {} of {PING_PROBES} probes: {summary}",
            PING_PROBES - received
        );
    }
}

/// Packets the VXLAN devices of namespace `netns` have sent.
fn tunnelled_packets(netns: &str) -> u64 {
    let text = ip(&["-n", netns, "-j", "-s", "link", "show", "type", "vxlan"]);
    let links: serde_json::Value = serde_json::from_str(&text).expect("ip -j");
    links
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["stats64"]["tx"]["packets"].as_u64().expect("tx packets"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_route_between_subnets_on_every_host_and_follow_each_change() {
    let mut topology = Topology::start().await;
    let vpcs = [uuid(0x9d0), uuid(0x9d1)];
    let routers = [uuid(0x9a0), uuid(0x9a1)];
    let subnets: Vec<String> = (0..SUBNETS.len()).map(|s| uuid(0x9e0 + s as u64)).collect();
    for vpc in &vpcs {
        topology.create_vpc(vpc, "10.0.0.0/16").await;
    }
    for (s, (vpc, third)) in SUBNETS.iter().enumerate() {
        let cidr = format!("10.0.{third}.0/24");
        let gateway = format!("10.0.{third}.1");
        topology
            .create_subnet(&subnets[s], &vpcs[*vpc], &cidr, &gateway)
            .await;
    }
    for router in &routers {
        topology.create_router(router).await;
    }
    for (s, (vpc, _)) in SUBNETS.iter().enumerate() {
        if s != LATE_SUBNET {
            topology
                .add_router_interface(&routers[*vpc], &subnets[s])
                .await;
        }
    }
    let mut ids = Vec::new();
    for (i, port) in PORTS.iter().enumerate() {
        let id = uuid(0x900 + i as u64);
        topology
            .create_port(&PortSpec {
                id: &id,
                name: port.name,
                vpc: &vpcs[vpc_of(i)],
                subnet: &subnets[port.subnet],
                address: &address(i),
                host: port.host,
                groups: (!port.grouped).then(Vec::new),
                secured: true,
            })
            .await;
        ids.push(id);
    }
    let mut model = Model::initial();
    let underlay = &topology.underlay;
    let (pairs, want) = model.matrix(&topology, &ids);
    // The matrix can tell routed from unrouted and open from closed.
    assert!(want.iter().any(|w| *w) && want.iter().any(|w| !*w));
    // Programming every host from scratch has the cluster's own bound.
    let took = await_pings(
        "initial",
        &pairs,
        &want,
        Instant::now(),
        crate::cluster::WAIT_MS_MAX,
        underlay,
    );
    eprintln!("initial matrix matched after {} ms", took.as_millis());

    // a1 -> a3 (two subnets, host 0) is routed on host 0: the gateway is
    // host 0's copy of the router (its MAC), and nothing is tunnelled.
    let (a1, a3) = (0, 2);
    let a1_netns = topology.port_netns(0, &ids[a1]);
    let host0 = underlay.host_netns(0);
    let before = tunnelled_packets(&host0);
    ip(&[
        "netns",
        "exec",
        &a1_netns,
        "ping",
        "-c3",
        "-i0.2",
        "-W1",
        "-q",
        &address(a3),
    ]);
    assert_eq!(
        tunnelled_packets(&host0),
        before,
        "routing on one host went through the tunnel"
    );
    // Control: a ping to a2 (host 1) is counted.
    let a2 = 1;
    ip(&[
        "netns",
        "exec",
        &a1_netns,
        "ping",
        "-c3",
        "-i0.2",
        "-W1",
        "-q",
        &address(a2),
    ]);
    assert!(
        tunnelled_packets(&host0) >= before + 3,
        "the counter missed the tunnel"
    );
    let router: Id = routers[0].parse().expect("uuid");
    let subnet: Id = subnets[0].parse().expect("uuid");
    let mac = names::router_mac(&underlay.host_ids[0], router, subnet);
    let gateway = ip(&["-n", &a1_netns, "neigh", "show", "10.0.1.1"]);
    assert!(
        gateway.contains(&alcor_dataplane::firewall::mac_text(&mac)),
        "the gateway is not host 0's router copy: {gateway}"
    );
    let budget = CHANGE_MS_MAX + CHANGE_SLACK_MS;

    // Delete a4, VPC a's only port on host 2 (its router copy goes too);
    // b1 -> 10.0.2.21 still reaches b2, a1 -> 10.0.2.21 now reaches nobody.
    let a4 = 3;
    topology.delete_port(&ids[a4]).await;
    let since = Instant::now();
    model.alive[a4] = false;
    let (pairs, want) = model.matrix(&topology, &ids);
    let took = await_pings("port deleted", &pairs, &want, since, budget, underlay);
    eprintln!("port deleted: matrix matched after {} ms", took.as_millis());

    // Move a2 from host 1 to host 2 (VPC a and its router come back there).
    topology.move_port(&ids[a2], 2).await;
    let since = Instant::now();
    model.hosts[a2] = 2;
    let (pairs, want) = model.matrix(&topology, &ids);
    let took = await_pings("port moved", &pairs, &want, since, budget, underlay);
    eprintln!("port moved: matrix matched after {} ms", took.as_millis());

    // Attach the third subnet: a5 becomes reachable from the other subnets.
    topology
        .add_router_interface(&routers[0], &subnets[LATE_SUBNET])
        .await;
    let since = Instant::now();
    model.routed[LATE_SUBNET] = true;
    let (pairs, want) = model.matrix(&topology, &ids);
    let took = await_pings("subnet added", &pairs, &want, since, budget, underlay);
    eprintln!(
        "subnet added to the router: matrix matched after {} ms",
        took.as_millis()
    );

    // Restart host 0's agent under a routed ping (a1 -> a3 on host 0):
    // at most one probe is lost, and the restart changes nothing.
    let pinger = Pinger::start(&a1_netns, &address(a3));
    topology.underlay.kill_agent(0);
    let endpoints = topology.endpoints.clone();
    topology.underlay.start_agent(0, &endpoints);
    let underlay = &topology.underlay;
    let log = underlay.agent_log(0);
    wait_for("the restarted agent to reconcile", underlay, || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("dataplane reconciled"))
    })
    .await;
    pinger.lost_at_most_one("the agent restart");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let first = text
        .lines()
        .find(|l| l.contains("dataplane reconciled"))
        .unwrap_or_default();
    assert!(
        first.contains("changes=0"),
        "the restart changed the kernel:\n{text}"
    );

    // Kill the leader under a ping across hosts (a1 on host 0 -> a2, now
    // on host 2): the kernel forwards without the controller, and the
    // agents, whose streams the kill cuts, are not flushed.
    let (pairs, want) = model.matrix(&topology, &ids);
    let across = pairs
        .iter()
        .position(|(netns, to)| *netns == a1_netns && *to == address(a2))
        .expect("a1 -> a2 is in the matrix");
    assert!(want[across], "a1 reaches a2 by the model");
    // Every agent streams from the leader first, so the kill cuts them all.
    let leader = topology.cluster.leader(&topology.all).await;
    let mut first: Vec<u64> = vec![leader];
    first.extend(topology.all.iter().copied().filter(|id| *id != leader));
    let leader_first: Vec<String> = first
        .iter()
        .map(|id| topology.cluster.api_addr(*id))
        .collect();
    let leader_first = leader_first.join(",");
    for host in 0..N_HOSTS {
        topology.underlay.kill_agent(host);
        topology.underlay.start_agent(host, &leader_first);
    }
    let underlay = &topology.underlay;
    wait_for("the agents to stream from the leader", underlay, || {
        (0..N_HOSTS).all(|host| {
            std::fs::read_to_string(underlay.agent_log(host))
                .is_ok_and(|t| t.contains("dataplane reconciled"))
        })
    })
    .await;
    let pinger = Pinger::start(&a1_netns, &address(a2));
    topology.cluster.kill(leader);
    let rest: Vec<u64> = topology
        .all
        .iter()
        .copied()
        .filter(|id| *id != leader)
        .collect();
    let new_leader = topology.cluster.leader(&rest).await;
    eprintln!("leader {leader} killed, {new_leader} leads");
    pinger.lost_at_most_one("the leader kill");

    // The controller down: every agent stops, the other members die, the
    // agents start again and find no controller. What the kernel was
    // told stays: the matrix is unchanged.
    for host in 0..N_HOSTS {
        topology.underlay.kill_agent(host);
    }
    for id in rest {
        topology.cluster.kill(id);
    }
    for host in 0..N_HOSTS {
        topology.underlay.start_agent(host, &endpoints);
    }
    let underlay = &topology.underlay;
    wait_for(
        "every restarted agent to find no controller",
        underlay,
        || {
            (0..N_HOSTS).all(|host| {
                std::fs::read_to_string(underlay.agent_log(host))
                    .is_ok_and(|t| t.matches("push stream ended").count() >= 3)
            })
        },
    )
    .await;
    let took = await_pings(
        "controller down, agents restarted",
        &pairs,
        &want,
        Instant::now(),
        CHANGE_MS_MAX + CHANGE_SLACK_MS,
        underlay,
    );
    eprintln!(
        "controller down, agents restarted: matrix unchanged ({} ms)",
        took.as_millis()
    );
    drop(topology);
}
