//! The Linux dataplane end to end (needs root): "hosts" are network
//! namespaces on an underlay bridge, each running `alcor agent --dataplane
//! linux` against a 3-member cluster whose API listens on the bridge.
//! Ports created through the public API become veth pairs and namespaces,
//! and real pings between them follow the VPCs: every pair in one VPC is
//! reachable (across hosts and on one host), nothing crosses to the other
//! VPC even where both use the same addresses. A deleted port's objects
//! go and pings to it fail; a port the kernel refuses shows ERROR with the
//! reason; an agent reports the digest of what it programmed (the plan of
//! its goal state, without a refused port while it is refused); a killed
//! agent leaves the dataplane working,
//! and its restart recreates nothing (interface indexes are unchanged).
//!
//! Security groups are enforced (`dataplane_sg.rs` tests them); every port
//! here is in its project's default group, which admits its members, so
//! the pings follow the VPCs only.
//!
//! The topology (hosts, cluster, agents) is `dataplane_fixture.rs`'s.

use std::collections::BTreeMap;

use alcor_dataplane::plan as names;
use alcor_dataplane::programmed_digest;
use alcor_proto::api::v1 as pb;
use alcor_state_machine::Id;

use crate::dataplane_fixture::{
    ip, owned_ifindexes, ping, ping_all, run, wait_for, PortSpec, Topology,
};
use crate::workload::{req, uuid};

/// One port of the test: its name, VPC index, host index, last byte of its address.
struct TestPort {
    name: &'static str,
    vpc: usize,
    host: usize,
    last: u8,
}

/// Two VPCs with one CIDR: `b-10` has `a-10`'s address; `a-*` and `b-*`
/// spread over the hosts, two of VPC a on host 0.
const PORTS: [TestPort; 7] = [
    TestPort {
        name: "a-10",
        vpc: 0,
        host: 0,
        last: 10,
    },
    TestPort {
        name: "a-11",
        vpc: 0,
        host: 1,
        last: 11,
    },
    TestPort {
        name: "a-12",
        vpc: 0,
        host: 2,
        last: 12,
    },
    TestPort {
        name: "a-13",
        vpc: 0,
        host: 0,
        last: 13,
    },
    TestPort {
        name: "b-10",
        vpc: 1,
        host: 0,
        last: 10,
    },
    TestPort {
        name: "b-21",
        vpc: 1,
        host: 1,
        last: 21,
    },
    TestPort {
        name: "b-22",
        vpc: 1,
        host: 2,
        last: 22,
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_dataplane_connects_ports_of_one_vpc_isolates_vpcs_and_survives_agent_restarts() {
    let mut topology = Topology::start().await;
    let vpcs = [uuid(0xd0), uuid(0xd1)];
    let subnets = [uuid(0xe0), uuid(0xe1)];
    for (vpc, subnet) in vpcs.iter().zip(&subnets) {
        topology.create_vpc(vpc, "10.0.0.0/16").await;
        topology
            .create_subnet(subnet, vpc, "10.0.1.0/24", "10.0.1.1")
            .await;
    }
    let mut ids = Vec::new();
    let mut macs = Vec::new();
    for (i, port) in PORTS.iter().enumerate() {
        let id = uuid(0xf0 + i as u64);
        let created = topology
            .create_port(&PortSpec {
                id: &id,
                name: port.name,
                vpc: &vpcs[port.vpc],
                subnet: &subnets[port.vpc],
                address: &format!("10.0.1.{}", port.last),
                host: port.host,
                groups: None,
                secured: true,
            })
            .await;
        ids.push(id);
        macs.push(created.mac_address);
    }
    let netns: Vec<String> = PORTS
        .iter()
        .zip(&ids)
        .map(|(p, id)| topology.port_netns(p.host, id))
        .collect();
    let address = |i: usize| format!("10.0.1.{}", PORTS[i].last);

    // Every pair of one VPC answers, across hosts and on one host.
    let mut same_vpc = Vec::new();
    let mut other_vpc = Vec::new();
    for (i, from) in PORTS.iter().enumerate() {
        for (j, to) in PORTS.iter().enumerate() {
            if i == j {
                continue;
            }
            let own_vpc_has_it = PORTS.iter().any(|p| p.vpc == from.vpc && p.last == to.last);
            if from.vpc == to.vpc {
                same_vpc.push((netns[i].clone(), address(j)));
            } else if !own_vpc_has_it {
                other_vpc.push((netns[i].clone(), address(j)));
            }
        }
    }
    wait_for(
        "every pair of one VPC to answer pings",
        &topology.underlay,
        || ping_all(&same_vpc).iter().all(|ok| *ok),
    )
    .await;
    // Nothing crosses VPCs, even to an address the other VPC uses.
    let answered = ping_all(&other_vpc);
    let crossed: Vec<_> = other_vpc
        .iter()
        .zip(&answered)
        .filter(|(_, ok)| **ok)
        .collect();
    assert!(crossed.is_empty(), "pings crossed VPCs: {crossed:?}");
    // b-21 reaches 10.0.1.10 in its own VPC: b-10's MAC, not a-10's.
    assert!(ping(&netns[5], "10.0.1.10"));
    let neighbour = ip(&["-n", &netns[5], "neigh", "show", "10.0.1.10"]);
    assert!(neighbour.contains(&macs[4]), "{neighbour}");
    assert!(!neighbour.contains(&macs[0]), "{neighbour}");

    // Host 2's agent reports the digest of what it programmed: the plan
    // of its goal state, every port in.
    let underlay_ip: std::net::IpAddr = topology.underlay.host_ip(2).parse().expect("address");
    let host_id = topology.underlay.host_ids[2].clone();
    let (goal, report) = topology.agent_report(2, BTreeMap::new()).await;
    let planned = alcor_dataplane::plan(&goal, &host_id, underlay_ip);
    assert!(!planned.ports.is_empty());
    let everything = programmed_digest(&planned, &BTreeMap::new()).to_vec();
    assert_eq!(report.programmed_digest, everything);

    // A port the kernel refuses (a foreign link squats its interface name
    // on host 2) is acked as failed: ERROR with the kernel's reason.
    let squatted = uuid(0xff);
    let squatted_id: Id = squatted.parse().expect("uuid");
    let host_netns = topology.underlay.host_netns(2);
    ip(&[
        "-n",
        &host_netns,
        "link",
        "add",
        &names::veth_name(squatted_id),
        "type",
        "bridge",
    ]);
    topology
        .create_port(&PortSpec {
            id: &squatted,
            name: "squatted",
            vpc: &vpcs[0],
            subnet: &subnets[0],
            address: "10.0.1.30",
            host: 2,
            groups: None,
            secured: true,
        })
        .await;
    let (cluster, all) = (&topology.cluster, &topology.all);
    let detail = cluster
        .eventually("the refused port to show ERROR with the reason", || async {
            let mut client = cluster.client(all[0]).await?;
            let message = pb::GetPortRequest {
                id: squatted.clone(),
                stale: false,
                ..Default::default()
            };
            let port = client.get_port(req(message)).await.ok()?.into_inner();
            (port.status == pb::PortStatus::Error as i32).then_some(port.status_detail)
        })
        .await;
    assert!(detail.contains(&names::veth_name(squatted_id)), "{detail}");
    // While it is refused, what the agent reports as programmed is the
    // plan without it.
    let refused = BTreeMap::from([(squatted_id, detail.clone())]);
    let (goal, report) = topology.agent_report(2, refused.clone()).await;
    let planned = alcor_dataplane::plan(&goal, &host_id, underlay_ip);
    assert!(planned.ports.values().any(|p| p.port_id == squatted_id));
    assert_ne!(
        report.programmed_digest,
        programmed_digest(&planned, &BTreeMap::new()).to_vec(),
        "a refused port counted as programmed"
    );
    assert_eq!(
        report.programmed_digest,
        programmed_digest(&planned, &refused).to_vec()
    );
    assert!(
        ping(&netns[0], &address(2)),
        "one refused port broke its VPC"
    );

    // Delete a-12 (host 2): its namespace, its veth and every remote entry
    // of it go, and pings to it fail; the rest of its VPC still answers.
    let deleted = 2;
    topology.delete_port(&ids[deleted]).await;
    let id: Id = ids[deleted].parse().expect("uuid");
    let underlay = &topology.underlay;
    let host_netns = underlay.host_netns(PORTS[deleted].host);
    wait_for("the deleted port's objects to go", underlay, || {
        // Static VXLAN entries name their VTEP (`dst`); the bridge's own
        // learned entries age out by themselves.
        let fdb =
            run("bridge", &["-n", &underlay.host_netns(0), "fdb", "show"]).unwrap_or_default();
        let tunnelled = fdb
            .lines()
            .any(|l| l.contains(&macs[deleted]) && l.contains(" dst "));
        let neighbours = ip(&["-n", &underlay.host_netns(0), "neigh", "show"]);
        !std::path::Path::new(&format!("/run/netns/{}", netns[deleted])).exists()
            && !owned_ifindexes(&host_netns).contains_key(&names::veth_name(id))
            && !tunnelled
            && !neighbours.contains(&address(deleted))
    })
    .await;
    assert!(!ping(&netns[0], &address(deleted)));
    assert!(ping(&netns[0], &address(1)));

    // Kill host 1's agent: the kernel keeps forwarding without it. Its
    // restart reconciles without recreating anything.
    let host = 1;
    let before = owned_ifindexes(&underlay.host_netns(host));
    assert!(before.len() >= 2 + 2 + 2, "{before:?}");
    topology.underlay.kill_agent(host);
    assert!(
        ping(&netns[0], &address(1)),
        "a dead agent stopped the dataplane"
    );
    let endpoints = topology.endpoints.clone();
    topology.underlay.start_agent(host, &endpoints);
    let underlay = &topology.underlay;
    let log = underlay.agent_log(host);
    wait_for("the restarted agent to reconcile", underlay, || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("dataplane reconciled"))
    })
    .await;
    assert!(ping(&netns[0], &address(1)));
    assert!(ping(&netns[5], &address(6)));
    let after = owned_ifindexes(&underlay.host_netns(host));
    assert_eq!(before, after, "the restart recreated interfaces");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("changes=0"),
        "the restart changed the kernel:\n{text}"
    );
    drop(topology);
}
