//! The `push-kernel` scenario (root): controller to kernel through the
//! whole path. A 3-member cluster, one "host" (a network namespace with an
//! underlay address on a veth pair to this namespace) and a real
//! `alcor agent --dataplane linux` in it, streaming from the leader.
//!
//! - **FullSync**: `--push-kernel-ports` ports bound to the host before the
//!   agent starts; from starting the agent to its ack of the last revision.
//! - **Single-port changes**, once the host has settled
//!   (`--push-kernel-settle-s` after the FullSync: the ports just brought
//!   up flood the VPC's bridge with IPv6 router solicitations, MLD reports
//!   and DAD probes for ~12 s, and a change measured during that storm
//!   measures the storm): `--push-kernel-changes` ports created one at
//!   a time, then deleted one at a time. For each: from sending the write to
//!   the client's acknowledgement (committed and applied on the leader), and
//!   from that acknowledgement to the host's ack of the write's revision,
//!   which the agent sends only after its pass programmed the kernel.
//! - **A security-group rule** added to the default group every port is in,
//!   the same two spans.
//!
//! A delete's reply carries no revision, so the scenario reads the leader's
//! applied revision (a linearizable list) right after the acknowledgement;
//! that read's ~1 ms may count towards the kernel span. The host's acks are
//! polled every `ACK_POLL` from the leader (`Cluster.AckedRevisions`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alcor_dataplane::plan as names;
use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_client::ClusterClient;
use anyhow::{bail, Context};
use serde_json::{json, Value};
use tonic::transport::Channel;

use super::{connect, find_leader, orch, req, vpc_with_subnet, Args, Cluster, SETUP_TIMEOUT};

/// The underlay: this namespace's end and the host namespace's end.
const ROOT_IP: &str = "198.19.252.1";
const HOST_IP: &str = "198.19.252.2";
/// How often the host's acked revision is read.
const ACK_POLL: Duration = Duration::from_millis(1);
/// Bound on one change reaching the kernel.
const CHANGE_WAIT_MAX: Duration = Duration::from_secs(30);
/// Bound on the FullSync.
const FULL_SYNC_WAIT_MAX: Duration = Duration::from_secs(600);
/// Ports per request while building the host's table.
const PRELOAD_BATCH: usize = 500;
/// The project of the scenario's ports.
const PROJECT: &str = "pk";
/// Ports of one VPC on the host at most: the VPC's Linux bridge holds
/// `BRIDGE_PORTS_MAX` ports and one is its VXLAN device; a port past it
/// fails (`DataplaneError::BridgeFull`), and this scenario times ports that
/// can be programmed (two spare).
const VPC_PORTS_MAX: usize = alcor_dataplane::limits::BRIDGE_PORTS_MAX - 3;

/// The host namespace, its veth pair and the agent in it; all removed on
/// drop (the agent first, then every namespace it made for ports and routers).
/// The agent's log (info: a line per pass) stays in the work dir.
struct Host {
    id: String,
    netns: String,
    veth_root: String,
    agent: Option<Child>,
    agent_log: std::path::PathBuf,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("run ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Host {
    fn create(work: &Path) -> anyhow::Result<Host> {
        let pid = std::process::id();
        let host = Host {
            id: format!("pk-host-{pid}"),
            netns: format!("pk-{pid}"),
            veth_root: format!("pkr{pid}"),
            agent: None,
            agent_log: work.join(format!("push-kernel-agent-{pid}.log")),
        };
        let inside = format!("pki{pid}");
        ip(&["netns", "add", &host.netns])?;
        ip(&[
            "link",
            "add",
            &host.veth_root,
            "type",
            "veth",
            "peer",
            "name",
            &inside,
        ])?;
        ip(&["link", "set", &inside, "netns", &host.netns])?;
        ip(&[
            "addr",
            "add",
            &format!("{ROOT_IP}/30"),
            "dev",
            &host.veth_root,
        ])?;
        ip(&["link", "set", &host.veth_root, "up"])?;
        let addr = format!("{HOST_IP}/30");
        ip(&["-n", &host.netns, "addr", "add", &addr, "dev", &inside])?;
        ip(&["-n", &host.netns, "link", "set", &inside, "up"])?;
        ip(&["-n", &host.netns, "link", "set", "lo", "up"])?;
        Ok(host)
    }

    fn start_agent(&mut self, alcor: &Path, endpoint: &str) -> anyhow::Result<()> {
        let log = std::fs::File::create(&self.agent_log)?;
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg(alcor)
            .args(["agent", "--host-id", &self.id, "--endpoints", endpoint])
            .args(["--dataplane", "linux", "--underlay-ip", HOST_IP])
            .env("ALCOR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start the agent (nsenter)")?;
        self.agent = Some(child);
        Ok(())
    }

    fn agent_log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.agent_log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
        let prefixes = [
            names::netns_prefix(&self.id),
            names::router_netns_prefix(&self.id),
        ];
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                    let _ = ip(&["netns", "del", &name]);
                }
            }
        }
        let _ = ip(&["netns", "del", &self.netns]);
        let _ = ip(&["link", "del", &self.veth_root]);
    }
}

/// Waits until `host`'s agent acked `revision` on the leader; the time it
/// was seen.
async fn kernel_at(
    cluster: &mut ClusterClient<Channel>,
    host: &str,
    revision: u64,
    wait_max: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + wait_max;
    loop {
        let acked = cluster
            .acked_revisions(req(pb::AckedRevisionsRequest {}, SETUP_TIMEOUT))
            .await?
            .into_inner()
            .acked;
        if acked.get(host).is_some_and(|a| *a >= revision) {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("host {host} did not ack revision {revision} within {wait_max:?} (acked: {acked:?})");
        }
        tokio::time::sleep(ACK_POLL).await;
    }
}

/// Milliseconds between two instants.
fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

/// p50 / p99 / max of `v` (sorted here), in ms.
fn summary(v: &mut [f64]) -> Value {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    if v.is_empty() {
        return Value::Null;
    }
    json!({
        "n": v.len(),
        "p50_ms": super::round2(at(0.5)),
        "p99_ms": super::round2(at(0.99)),
        "max_ms": super::round2(at(1.0)),
    })
}

/// One timed change: the write's acknowledgement and the kernel after it.
#[derive(Default)]
struct Spans {
    ack: Vec<f64>,
    kernel: Vec<f64>,
}

impl Spans {
    fn push(&mut self, sent: Instant, acked: Instant, kernel: Instant) {
        self.ack.push(ms(sent, acked));
        self.kernel.push(ms(acked, kernel));
    }

    fn report(&mut self, label: &str) -> Value {
        let ack = summary(&mut self.ack);
        let kernel = summary(&mut self.kernel);
        let text = |v: &Value| {
            format!(
                "p50 {} / p99 {} / max {} ms",
                v["p50_ms"], v["p99_ms"], v["max_ms"]
            )
        };
        println!(
            "push-kernel {label:<30} write acked {}; acked -> kernel {} (n = {})",
            text(&ack),
            text(&kernel),
            kernel["n"]
        );
        json!({ "write_acked": ack, "acked_to_kernel": kernel })
    }
}

pub(super) async fn push_kernel(args: &Args, work: &Path) -> anyhow::Result<Value> {
    // SAFETY-free check of the effective user: the agent needs root.
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        })
        .unwrap_or_default();
    if uid != "0" {
        bail!("--scenarios push-kernel needs root (it creates network namespaces)");
    }
    let mut host = Host::create(work)?;
    let cluster = Cluster::start_on(args, work, ROOT_IP)?;
    let (li, _) = find_leader(&cluster).await?;
    let leader = cluster.members[li].api.clone();
    let channel = connect(&leader).await?;
    let mut c = orch(channel.clone());
    let mut acks = ClusterClient::new(channel);
    c.set_quota(req(
        pb::SetQuotaRequest {
            project_id: PROJECT.into(),
            port: Some(10_000_000),
            ..Default::default()
        },
        SETUP_TIMEOUT,
    ))
    .await
    .context("set the quota")?;
    c.create_host(req(
        pb::CreateHostRequest {
            id: host.id.clone(),
            project_id: PROJECT.into(),
            underlay_ip: HOST_IP.into(),
            ..Default::default()
        },
        SETUP_TIMEOUT,
    ))
    .await
    .context("create the host")?;
    let vpc = vpc_with_subnet(&mut c, PROJECT, "10.0.0.0/16").await?;
    let host_id = host.id.clone();
    let port = |n: usize| pb::CreatePortRequest {
        project_id: PROJECT.into(),
        network_id: vpc.id.clone(),
        name: format!("pk-{n}"),
        binding_host: host_id.clone(),
        device_id: format!("vm-{n}"),
        device_owner: "compute:nova".into(),
        ..Default::default()
    };
    let total = args.push_kernel_ports.max(1);
    let changes = args.push_kernel_changes.clamp(1, 1_000);
    if total + changes > VPC_PORTS_MAX {
        bail!("--push-kernel-ports + --push-kernel-changes: at most {VPC_PORTS_MAX} (one VPC's bridge)");
    }
    let mut last = 0;
    for first in (0..total).step_by(PRELOAD_BATCH) {
        let ports = (first..(first + PRELOAD_BATCH).min(total))
            .map(port)
            .collect();
        let reply = c
            .create_ports(req(
                pb::CreatePortsRequest {
                    ports,
                    ..Default::default()
                },
                SETUP_TIMEOUT,
            ))
            .await
            .context("create the host's ports")?
            .into_inner();
        last = reply.ports.iter().map(|p| p.revision).max().unwrap_or(last);
    }

    let started = Instant::now();
    host.start_agent(&cluster.alcor, &leader)?;
    let synced = kernel_at(&mut acks, &host.id, last, FULL_SYNC_WAIT_MAX)
        .await
        .with_context(|| format!("FullSync\n{}", host.agent_log_tail()))?;
    let full_sync_ms = ms(started, synced);
    println!("push-kernel FullSync of {total} ports: agent started -> kernel programmed {full_sync_ms:.0} ms");
    let settle = Duration::from_secs(args.push_kernel_settle_s);
    println!("push-kernel settling for {settle:?} before the single-port changes");
    tokio::time::sleep(settle).await;

    let (mut creates, mut deletes, mut rules) =
        (Spans::default(), Spans::default(), Spans::default());
    let mut created = Vec::new();
    for n in 0..changes {
        let sent = Instant::now();
        let p = c
            .create_port(req(port(total + n), SETUP_TIMEOUT))
            .await
            .context("create a port")?
            .into_inner();
        let acked = Instant::now();
        let at = kernel_at(&mut acks, &host.id, p.revision, CHANGE_WAIT_MAX).await?;
        creates.push(sent, acked, at);
        created.push(p.id);
    }
    for id in created {
        let sent = Instant::now();
        c.delete_port(req(
            pb::DeletePortRequest {
                id,
                ..Default::default()
            },
            SETUP_TIMEOUT,
        ))
        .await
        .context("delete a port")?;
        let acked = Instant::now();
        let revision = c
            .list_vpcs(req(
                pb::ListVpcsRequest {
                    limit: 1,
                    ..Default::default()
                },
                SETUP_TIMEOUT,
            ))
            .await
            .context("read the applied revision")?
            .into_inner()
            .revision;
        let at = kernel_at(&mut acks, &host.id, revision, CHANGE_WAIT_MAX).await?;
        deletes.push(sent, acked, at);
    }
    let groups = c
        .list_security_groups(req(
            pb::ListSecurityGroupsRequest {
                project_id: PROJECT.into(),
                ..Default::default()
            },
            SETUP_TIMEOUT,
        ))
        .await
        .context("list the groups")?
        .into_inner()
        .security_groups;
    let group = groups
        .into_iter()
        .find(|g| g.is_default)
        .context("the project's default group")?;
    for n in 0..args.push_kernel_rules.clamp(1, 100) {
        let sent = Instant::now();
        let rule = c
            .create_security_group_rule(req(
                pb::CreateSecurityGroupRuleRequest {
                    project_id: PROJECT.into(),
                    security_group_id: group.id.clone(),
                    direction: pb::Direction::Ingress as i32,
                    protocol: "tcp".into(),
                    port_range_min: Some(10_000 + n as u32),
                    port_range_max: Some(10_000 + n as u32),
                    ..Default::default()
                },
                SETUP_TIMEOUT,
            ))
            .await
            .context("add a rule")?
            .into_inner();
        let acked = Instant::now();
        let at = kernel_at(&mut acks, &host.id, rule.revision, CHANGE_WAIT_MAX).await?;
        rules.push(sent, acked, at);
    }
    let leader_id = cluster.members[li].id;
    println!(
        "push-kernel the agent's log (a line per pass): {}",
        host.agent_log.display()
    );
    Ok(json!({
        "ports": total,
        "leader": leader_id,
        "full_sync_ms": super::round2(full_sync_ms),
        "settle_s": args.push_kernel_settle_s,
        "create_port": creates.report("create_port"),
        "delete_port": deletes.report("delete_port"),
        "rule_over_all_ports": rules.report(&format!("rule over {total} ports")),
    }))
}
