//! The shared topology of the Linux dataplane tests (needs root): an
//! underlay bridge with one network namespace per "host", a 3-member
//! cluster whose API listens on the bridge, the hosts registered and one
//! `alcor agent --dataplane linux` per host ([`Topology::start`]); writes
//! of VPCs, subnets, routers and ports through the public API; and the
//! probes (pings, waits with a bounded deadline) the tests judge the
//! kernel by.
//!
//! Everything the topology creates (bridge, host namespaces, port and
//! router namespaces, agent processes) is named after this test process
//! and removed by a drop guard, failure or not.

use std::collections::BTreeMap;
use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alcor_dataplane::plan as names;
use alcor_proto::api::v1 as pb;
use alcor_state_machine::{goal_digest, GoalState, Id};
use tonic::Code;

use crate::cluster::{ProcessCluster, BIN, WAIT_MS_MAX};
use crate::push::{agent_config, converges, RunningAgent};
use crate::workload::{req, write, PROJECT};

/// Hosts (network namespaces with an agent each).
pub(crate) const N_HOSTS: usize = 3;

/// A change must show in the kernel's behaviour within this (issue 14)...
pub(crate) const CHANGE_MS_MAX: u64 = 1_000;
/// ...plus this much for a loaded 2-core machine: a probe round takes
/// up to a probe's bound and the first matching round must start before
/// the sum.
pub(crate) const CHANGE_SLACK_MS: u64 = 1_500;

/// The cluster, the underlay and the agents of one test.
pub(crate) struct Topology {
    /// The cluster (dropped before the underlay).
    pub(crate) cluster: ProcessCluster,
    /// Its members.
    pub(crate) all: Vec<u64>,
    /// Their API addresses, comma-separated (the agents' `--endpoints`).
    pub(crate) endpoints: String,
    /// Hosts and agents.
    pub(crate) underlay: Underlay,
}

/// One port to create.
pub(crate) struct PortSpec<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) vpc: &'a str,
    pub(crate) subnet: &'a str,
    pub(crate) address: &'a str,
    pub(crate) host: usize,
    /// `None`: the project's default group.
    pub(crate) groups: Option<Vec<String>>,
    pub(crate) secured: bool,
}

impl Topology {
    /// The underlay, a 3-member cluster, every host registered and its
    /// agent started.
    pub(crate) async fn start() -> Topology {
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
        Topology {
            cluster,
            all,
            endpoints,
            underlay,
        }
    }

    pub(crate) async fn create_vpc(&self, id: &str, cidr: &str) {
        let message = pb::CreateVpcRequest {
            id: id.into(),
            project_id: PROJECT.into(),
            name: "vpc".into(),
            cidr: cidr.into(),
            ..Default::default()
        };
        write(
            &self.cluster,
            &self.all,
            "create vpc",
            &[Code::AlreadyExists],
            |mut c| {
                let message = message.clone();
                async move { c.create_vpc(req(message)).await }
            },
        )
        .await;
    }

    pub(crate) async fn create_subnet(&self, id: &str, vpc: &str, cidr: &str, gateway: &str) {
        let message = pb::CreateSubnetRequest {
            id: id.into(),
            project_id: PROJECT.into(),
            network_id: vpc.into(),
            cidr: cidr.into(),
            gateway_ip: gateway.into(),
            ..Default::default()
        };
        write(
            &self.cluster,
            &self.all,
            "create subnet",
            &[Code::AlreadyExists],
            |mut c| {
                let message = message.clone();
                async move { c.create_subnet(req(message)).await }
            },
        )
        .await;
    }

    pub(crate) async fn create_router(&self, id: &str) {
        let message = pb::CreateRouterRequest {
            id: id.into(),
            project_id: PROJECT.into(),
            name: "router".into(),
            ..Default::default()
        };
        write(
            &self.cluster,
            &self.all,
            "create router",
            &[Code::AlreadyExists],
            |mut c| {
                let message = message.clone();
                async move { c.create_router(req(message)).await }
            },
        )
        .await;
    }

    /// Attaches subnet `subnet` to router `router` on its gateway address.
    pub(crate) async fn add_router_interface(&self, router: &str, subnet: &str) {
        let message = pb::RouterInterfaceRequest {
            router_id: router.into(),
            subnet_id: subnet.into(),
            ..Default::default()
        };
        write(
            &self.cluster,
            &self.all,
            "add router interface",
            &[],
            |mut c| {
                let message = message.clone();
                async move { c.add_router_interface(req(message)).await }
            },
        )
        .await
        .expect("interface added");
    }

    /// Creates a port; the controller's view of it.
    pub(crate) async fn create_port(&self, spec: &PortSpec<'_>) -> pb::Port {
        let message = pb::CreatePortRequest {
            id: spec.id.into(),
            project_id: PROJECT.into(),
            network_id: spec.vpc.into(),
            fixed_ips: vec![pb::FixedIpRequest {
                subnet_id: spec.subnet.into(),
                ip_address: spec.address.into(),
            }],
            binding_host: self.underlay.host_ids[spec.host].clone(),
            name: spec.name.into(),
            security_groups: spec.groups.clone().map(|ids| pb::IdList { ids }),
            port_security_enabled: Some(spec.secured),
            ..Default::default()
        };
        write(&self.cluster, &self.all, "create port", &[], |mut c| {
            let message = message.clone();
            async move { c.create_port(req(message)).await }
        })
        .await
        .expect("port created")
    }

    pub(crate) async fn delete_port(&self, id: &str) {
        let message = pb::DeletePortRequest {
            id: id.into(),
            expected_revision: None,
        };
        write(
            &self.cluster,
            &self.all,
            "delete port",
            &[Code::NotFound],
            |mut c| {
                let message = message.clone();
                async move { c.delete_port(req(message)).await }
            },
        )
        .await;
    }

    /// Binds port `id` to host `host`.
    pub(crate) async fn move_port(&self, id: &str, host: usize) {
        let message = pb::UpdatePortRequest {
            id: id.into(),
            binding_host: Some(self.underlay.host_ids[host].clone()),
            ..Default::default()
        };
        write(&self.cluster, &self.all, "move port", &[], |mut c| {
            let message = message.clone();
            async move { c.update_port(req(message)).await }
        })
        .await
        .expect("port moved");
    }

    /// Host `host`'s goal state as the controller has it, and the latest
    /// digest report of its agent whose table is that goal state (asked
    /// of every member: an agent reports to the one it streams from). The
    /// goal state comes from a simulated agent of the same host (no digest
    /// reports of its own; it acks `fail_ports` as failed, as the real
    /// agent does, so it leaves port statuses alone).
    pub(crate) async fn agent_report(
        &self,
        host: usize,
        fail_ports: BTreeMap<Id, String>,
    ) -> (GoalState, pb::AgentDigestReport) {
        let host_id = self.underlay.host_ids[host].clone();
        let endpoints = self.endpoints.split(',').map(String::from).collect();
        let mut config = agent_config(&host_id, endpoints);
        config.digest_interval = None;
        config.fail_ports = fail_ports;
        let reader = RunningAgent::start(config);
        converges(&self.cluster, &self.all, &reader.agent).await;
        let goal = reader.agent.table();
        let digest = goal_digest(&goal).to_vec();
        let report = self
            .cluster
            .eventually(
                &format!("{host_id}'s agent to report a table equal to the controller's"),
                || async {
                    for id in &self.all {
                        let mut client = self.cluster.cluster_client(*id).await?;
                        let message = pb::HostDigestRequest {
                            host: host_id.clone(),
                            stale: true,
                        };
                        let response = client.host_digest(req(message)).await.ok()?;
                        match response.into_inner().agent_report {
                            Some(report) if report.digest == digest => return Some(report),
                            _ => {}
                        }
                    }
                    None
                },
            )
            .await;
        (goal, report)
    }

    /// The namespace of port `id` on host `host`.
    pub(crate) fn port_netns(&self, host: usize, id: &str) -> String {
        let id: Id = id.parse().expect("uuid");
        names::netns_name(&self.underlay.host_ids[host], id)
    }
}

/// Pings every `(from netns, to address)` until the answered set equals
/// `want`; fails if no round that starts within `budget_ms` of `since`
/// matches. Returns how long after `since` the matching round started.
pub(crate) fn await_pings(
    what: &str,
    pairs: &[(String, String)],
    want: &[bool],
    since: Instant,
    budget_ms: u64,
    underlay: &Underlay,
) -> Duration {
    assert_eq!(pairs.len(), want.len());
    loop {
        let started = since.elapsed();
        let got = ping_all(pairs);
        if got == want {
            return started;
        }
        if started > Duration::from_millis(budget_ms) {
            let wrong: Vec<String> = pairs
                .iter()
                .zip(got.iter().zip(want))
                .filter(|(_, (g, w))| g != w)
                .map(|((n, a), (g, _))| format!("{n} -> {a}: answered {g}"))
                .collect();
            panic!(
                "{what}: the ping matrix differs {} ms after the change:\n{}\n{}",
                started.as_millis(),
                wrong.join("\n"),
                underlay.agent_logs()
            );
        }
    }
}

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
            .flat_map(|h| [names::netns_prefix(h), names::router_netns_prefix(h)])
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
pub(crate) fn ping(netns: &str, address: &str) -> bool {
    run(
        "ip",
        &[
            "netns", "exec", netns, "ping", "-c1", "-W0.5", "-q", address,
        ],
    )
    .is_ok()
}

/// Pings every `(from netns, to address)` at once (each waits half a
/// second for its answer); the answered ones.
pub(crate) fn ping_all(pairs: &[(String, String)]) -> Vec<bool> {
    let children: Vec<_> = pairs
        .iter()
        .map(|(netns, address)| {
            Command::new("ip")
                .args([
                    "netns", "exec", netns, "ping", "-c1", "-W0.5", "-q", address,
                ])
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
