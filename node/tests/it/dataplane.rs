//! The Linux dataplane end to end (needs root): "hosts" are network
//! namespaces on an underlay bridge, each running `alcor agent --dataplane
//! linux` against a 3-member cluster whose API listens on the bridge.
//! Ports created through the public API become veth pairs and namespaces,
//! and real pings between them follow the VPCs: every pair in one VPC is
//! reachable (across hosts and on one host), nothing crosses to the other
//! VPC even where both use the same addresses. A deleted port's objects
//! go and pings to it fail; a port the kernel refuses shows ERROR with the
//! reason; a killed agent leaves the dataplane working,
//! and its restart recreates nothing (interface indexes are unchanged).
//!
//! Security groups are enforced (`dataplane_sg.rs` tests them); every port
//! here is in its project's default group, which admits its members, so
//! the pings follow the VPCs only.
//!
//! Everything the test creates (bridge, host namespaces, port namespaces,
//! agent processes) is named after this test process and removed by a
//! drop guard, failure or not.

use std::collections::BTreeMap;
use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alcor_dataplane::plan as names;
use alcor_proto::api::v1 as pb;
use alcor_state_machine::Id;
use tonic::Code;

use crate::cluster::{ProcessCluster, BIN, WAIT_MS_MAX};
use crate::workload::{req, uuid, write, PROJECT};

/// Hosts (network namespaces with an agent each).
pub(crate) const N_HOSTS: usize = 3;

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

/// The test's network: an underlay bridge in the root namespace and one
/// namespace per host with a veth onto it; removed on drop.
pub(crate) struct Underlay {
    /// Short, unique per test process (names must fit 15 bytes).
    run: String,
    /// Third byte of the underlay network 198.19.X.0/24.
    subnet: u8,
    pub(crate) host_ids: Vec<String>,
    agents: BTreeMap<usize, Child>,
    log_dir: tempfile::TempDir,
}

impl Underlay {
    pub(crate) fn bridge(&self) -> String {
        format!("dpt{}", self.run)
    }

    pub(crate) fn host_netns(&self, host: usize) -> String {
        format!("dpt{}-h{host}", self.run)
    }

    pub(crate) fn bridge_ip(&self) -> String {
        format!("198.19.{}.254", self.subnet)
    }

    pub(crate) fn host_ip(&self, host: usize) -> String {
        format!("198.19.{}.{}", self.subnet, host + 1)
    }

    pub(crate) fn create() -> Underlay {
        // Unique per process and per underlay (tests of one binary run
        // side by side).
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10;
        let pid = std::process::id();
        let underlay = Underlay {
            run: format!("{:04x}{n}", pid % 0x1_0000),
            subnet: u8::try_from((pid + 97 * n) % 250).expect("below 250"),
            host_ids: (0..N_HOSTS).map(|h| format!("dp-{pid}-{n}-h{h}")).collect(),
            agents: BTreeMap::new(),
            log_dir: tempfile::tempdir().expect("tempdir"),
        };
        let bridge = underlay.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", underlay.bridge_ip()),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        for host in 0..N_HOSTS {
            let netns = underlay.host_netns(host);
            let outside = format!("dpt{}h{host}", underlay.run);
            let inside = format!("dpt{}u{host}", underlay.run);
            ip(&["netns", "add", &netns]);
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ]);
            ip(&["link", "set", &inside, "netns", &netns]);
            ip(&["link", "set", &outside, "master", &bridge, "up"]);
            let address = format!("{}/24", underlay.host_ip(host));
            ip(&["-n", &netns, "addr", "add", &address, "dev", &inside]);
            ip(&["-n", &netns, "link", "set", &inside, "up"]);
            ip(&["-n", &netns, "link", "set", "lo", "up"]);
        }
        underlay
    }

    /// Starts (again) host `host`'s agent in its namespace.
    pub(crate) fn start_agent(&mut self, host: usize, endpoints: &str) {
        let log = self.agent_log(host);
        let stderr = File::options()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&log)
            .expect("agent log");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.host_netns(host)))
            .arg(BIN)
            .args(["agent", "--host-id", &self.host_ids[host]])
            .args(["--endpoints", endpoints])
            .args(["--dataplane", "linux", "--underlay-ip", &self.host_ip(host)])
            .env("ALCOR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn agent");
        assert!(self.agents.insert(host, child).is_none());
    }

    /// SIGKILLs host `host`'s agent.
    pub(crate) fn kill_agent(&mut self, host: usize) {
        let mut child = self.agents.remove(&host).expect("agent running");
        child.kill().expect("kill agent");
        child.wait().expect("reap agent");
    }

    pub(crate) fn agent_log(&self, host: usize) -> std::path::PathBuf {
        self.log_dir.path().join(format!("agent-{host}.log"))
    }

    pub(crate) fn agent_logs(&self) -> String {
        let mut out = String::new();
        for host in 0..N_HOSTS {
            let text = std::fs::read_to_string(self.agent_log(host)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            out.push_str(&format!("--- agent {host} ---\n{tail}\n"));
        }
        out
    }

    fn port_netns(&self, port: &TestPort, id: &str) -> String {
        let id: Id = id.parse().expect("uuid");
        names::netns_name(&self.host_ids[port.host], id)
    }
}

impl Drop for Underlay {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.agents) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let prefixes: Vec<String> = self
            .host_ids
            .iter()
            .map(|h| names::netns_prefix(h))
            .collect();
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if prefixes.iter().any(|p| name.starts_with(p)) {
                    let _ = run("ip", &["netns", "del", &name]);
                }
            }
        }
        for host in 0..N_HOSTS {
            let _ = run("ip", &["netns", "del", &self.host_netns(host)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }
}

/// Runs `program args`; its stdout on success, else stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).to_string())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

pub(crate) fn ip(args: &[&str]) -> String {
    run("ip", args).expect("ip command")
}

/// Whether one ping from namespace `netns` to `address` is answered
/// within a second.
fn ping(netns: &str, address: &str) -> bool {
    run(
        "ip",
        &["netns", "exec", netns, "ping", "-c1", "-W1", "-q", address],
    )
    .is_ok()
}

/// Pings every `(from netns, to address)` at once; the answered ones.
fn ping_all(pairs: &[(String, String)]) -> Vec<bool> {
    let children: Vec<_> = pairs
        .iter()
        .map(|(netns, address)| {
            Command::new("ip")
                .args(["netns", "exec", netns, "ping", "-c1", "-W1", "-q", address])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn ping")
        })
        .collect();
    children
        .into_iter()
        .map(|mut c| c.wait().is_ok_and(|s| s.success()))
        .collect()
}

/// Interface name → index of the links in namespace `netns` named `alc…`.
pub(crate) fn owned_ifindexes(netns: &str) -> BTreeMap<String, u32> {
    let text = ip(&["-n", netns, "-o", "link", "show"]);
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(": ");
            let index = fields.next()?.trim().parse().ok()?;
            let name = fields.next()?.split('@').next()?.to_string();
            name.starts_with(names::OWNED_PREFIX)
                .then_some((name, index))
        })
        .collect()
}

pub(crate) async fn wait_for(what: &str, underlay: &Underlay, mut probe: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    while !probe() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT_MS_MAX} ms waiting for {what}\n{}",
            underlay.agent_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_dataplane_connects_ports_of_one_vpc_isolates_vpcs_and_survives_agent_restarts() {
    let mut underlay = Underlay::create();
    let cluster = ProcessCluster::start_with_api_host(3, &[], &underlay.bridge_ip());
    let all = cluster.ids();
    cluster.leader(&all).await;
    let endpoints: Vec<String> = all.iter().map(|id| cluster.api_addr(*id)).collect();
    let endpoints = endpoints.join(",");

    for host in 0..N_HOSTS {
        let message = pb::CreateHostRequest {
            id: underlay.host_ids[host].clone(),
            project_id: PROJECT.into(),
            underlay_ip: underlay.host_ip(host),
            ..Default::default()
        };
        write(
            &cluster,
            &all,
            "create host",
            &[Code::AlreadyExists],
            |mut c| {
                let message = message.clone();
                async move { c.create_host(req(message)).await }
            },
        )
        .await;
        underlay.start_agent(host, &endpoints);
    }
    let vpcs = [uuid(0xd0), uuid(0xd1)];
    let subnets = [uuid(0xe0), uuid(0xe1)];
    for (vpc, subnet) in vpcs.iter().zip(&subnets) {
        let message = pb::CreateVpcRequest {
            id: vpc.clone(),
            project_id: PROJECT.into(),
            name: "vpc".into(),
            cidr: "10.0.0.0/16".into(),
            ..Default::default()
        };
        write(
            &cluster,
            &all,
            "create vpc",
            &[Code::AlreadyExists],
            |mut c| {
                let message = message.clone();
                async move { c.create_vpc(req(message)).await }
            },
        )
        .await;
        let message = pb::CreateSubnetRequest {
            id: subnet.clone(),
            project_id: PROJECT.into(),
            network_id: vpc.clone(),
            cidr: "10.0.1.0/24".into(),
            gateway_ip: "10.0.1.1".into(),
            ..Default::default()
        };
        write(
            &cluster,
            &all,
            "create subnet",
            &[Code::AlreadyExists],
            |mut c| {
                let message = message.clone();
                async move { c.create_subnet(req(message)).await }
            },
        )
        .await;
    }
    let mut ids = Vec::new();
    let mut macs = Vec::new();
    for (i, port) in PORTS.iter().enumerate() {
        let id = uuid(0xf0 + i as u64);
        let message = pb::CreatePortRequest {
            id: id.clone(),
            project_id: PROJECT.into(),
            network_id: vpcs[port.vpc].clone(),
            fixed_ips: vec![pb::FixedIpRequest {
                subnet_id: subnets[port.vpc].clone(),
                ip_address: format!("10.0.1.{}", port.last),
            }],
            binding_host: underlay.host_ids[port.host].clone(),
            name: port.name.into(),
            ..Default::default()
        };
        let created = write(&cluster, &all, "create port", &[], |mut c| {
            let message = message.clone();
            async move { c.create_port(req(message)).await }
        })
        .await
        .expect("port created");
        ids.push(id);
        macs.push(created.mac_address);
    }
    let netns: Vec<String> = PORTS
        .iter()
        .zip(&ids)
        .map(|(p, id)| underlay.port_netns(p, id))
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
    wait_for("every pair of one VPC to answer pings", &underlay, || {
        ping_all(&same_vpc).iter().all(|ok| *ok)
    })
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

    // A port the kernel refuses (a foreign link squats its interface name
    // on host 2) is acked as failed: ERROR with the kernel's reason.
    let squatted = uuid(0xff);
    let squatted_id: Id = squatted.parse().expect("uuid");
    let host_netns = underlay.host_netns(2);
    ip(&[
        "-n",
        &host_netns,
        "link",
        "add",
        &names::veth_name(squatted_id),
        "type",
        "bridge",
    ]);
    let message = pb::CreatePortRequest {
        id: squatted.clone(),
        project_id: PROJECT.into(),
        network_id: vpcs[0].clone(),
        fixed_ips: vec![pb::FixedIpRequest {
            subnet_id: subnets[0].clone(),
            ip_address: "10.0.1.30".into(),
        }],
        binding_host: underlay.host_ids[2].clone(),
        ..Default::default()
    };
    write(&cluster, &all, "create port", &[], |mut c| {
        let message = message.clone();
        async move { c.create_port(req(message)).await }
    })
    .await
    .expect("port created");
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
    assert!(
        ping(&netns[0], &address(2)),
        "one refused port broke its VPC"
    );

    // Delete a-12 (host 2): its namespace, its veth and every remote entry
    // of it go, and pings to it fail; the rest of its VPC still answers.
    let deleted = 2;
    let message = pb::DeletePortRequest {
        id: ids[deleted].clone(),
        expected_revision: None,
    };
    write(&cluster, &all, "delete port", &[Code::NotFound], |mut c| {
        let message = message.clone();
        async move { c.delete_port(req(message)).await }
    })
    .await;
    let id: Id = ids[deleted].parse().expect("uuid");
    let host_netns = underlay.host_netns(PORTS[deleted].host);
    wait_for("the deleted port's objects to go", &underlay, || {
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
    underlay.kill_agent(host);
    assert!(
        ping(&netns[0], &address(1)),
        "a dead agent stopped the dataplane"
    );
    underlay.start_agent(host, &endpoints);
    let log = underlay.agent_log(host);
    wait_for("the restarted agent to reconcile", &underlay, || {
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
    drop(cluster);
    drop(underlay);
}
