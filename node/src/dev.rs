//! `alcor dev`: the README's main job. Starts a local cluster of `alcor server`
//! processes (data under `--data-dir`, reused by the next run), simulated host
//! agents in this process, writes a demo VPC, subnet and a batch of ports spread
//! over the hosts, prints what each agent received, and serves until Ctrl-C.
//!
//! Secure like a production cluster, with no set-up: every run generates a
//! throwaway CA under `DATA_DIR/tls/` and signs a certificate for each member
//! (`alcor://peer/ID`, server names `localhost` and `127.0.0.1`), one for the
//! CLI (`alcor://admin`) and one per simulated host (`alcor://agent/HOST`);
//! members serve TLS with them and the CLI calls and agents present them.

use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use alcor_client::types as pb;
use alcor_client::Client;
use alcor_host_push::{SimAgent, SimAgentConfig};
use alcor_state_machine::GoalObject;
use anyhow::{bail, Context};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::agent::{hex_prefix, status_line};
use crate::cli::{ClientTlsArgs, DevArgs};
use crate::ctl;
use alcor_proto::identity::Principal;
use alcor_tls::dev::DevCa;
use alcor_tls::TlsFiles;

/// Project the demo resources belong to.
const DEMO_PROJECT: &str = "demo";
/// Name of the demo VPC; its presence means the data is being reused.
const DEMO_VPC: &str = "dev-vpc";
/// Bound on waiting for a leader after start.
const LEADER_WAIT_MAX: Duration = Duration::from_secs(60);
/// Bound on waiting for agents to reach the demo's revision.
const CONVERGE_WAIT_MAX: Duration = Duration::from_secs(30);
/// Bound on waiting for a member to exit after SIGTERM.
const STOP_WAIT_MAX: Duration = Duration::from_secs(15);
/// Hosts the demo can simulate.
const HOSTS_MAX: usize = 250;

/// A member process; killed if still running when dropped.
struct Member {
    id: u64,
    child: Child,
}

/// Runs the demo cluster until SIGINT/SIGTERM (or right after the demo with
/// `--exit-after-demo`).
pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    if args.nodes != 3 && args.nodes != 5 {
        bail!("--nodes: a cluster has 3 or 5 members");
    }
    if args.hosts == 0 || args.hosts > HOSTS_MAX {
        bail!("--hosts: 1 to {HOSTS_MAX}");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("create {}", args.data_dir.display()))?;
    let addrs: Vec<(u64, String, String)> = (1..=args.nodes)
        .map(|i| {
            let api = format!("127.0.0.1:{}", u64::from(args.base_port) + i);
            let raft = format!("127.0.0.1:{}", u64::from(args.base_port) + 100 + i);
            (i, raft, api)
        })
        .collect();
    let initial_cluster: Vec<String> = addrs
        .iter()
        .map(|(i, raft, api)| format!("{i}={raft}/{api}"))
        .collect();
    let endpoints: Vec<String> = addrs.iter().map(|(_, _, api)| api.clone()).collect();

    let hosts: Vec<String> = (1..=args.hosts).map(|h| format!("host-{h}")).collect();
    let certs = DevCerts::generate(&args.data_dir.join("tls"), args.nodes, &hosts)?;
    let exe = std::env::current_exe().context("locate the alcor binary")?;
    let mut members = Vec::new();
    for (id, raft, api) in &addrs {
        let member_tls = certs.member(*id);
        let dir = args.data_dir.join(format!("node-{id}"));
        let log_path = args.data_dir.join(format!("node-{id}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let child = Command::new(&exe)
            .args([
                "server",
                "--id",
                &id.to_string(),
                "--raft-addr",
                raft,
                "--api-addr",
                api,
            ])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--initial-cluster", &initial_cluster.join(",")])
            .arg("--tls-cert")
            .arg(&member_tls.cert)
            .arg("--tls-key")
            .arg(&member_tls.key)
            .arg("--tls-ca")
            .arg(&member_tls.ca)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start member {id}"))?;
        out!(
            "member {id}: api {api}  raft {raft}  data {}  log {}",
            dir.display(),
            log_path.display()
        );
        members.push(Member { id: *id, child });
    }
    let result = demo(&args, &endpoints, &hosts, &certs).await;
    let (stop_tx, agents) = match result {
        Ok(ok) => ok,
        Err(e) => {
            stop_members(&mut members).await;
            return Err(e);
        }
    };
    if !args.exit_after_demo {
        out!("\nserving; API endpoints {}", endpoints.join(","));
        let admin = &certs.admin;
        out!(
            "try: alcor ctl --endpoints {} --ca-file {} --cert-file {} --key-file {} ports list",
            endpoints.join(","),
            admin.ca.display(),
            admin.cert.display(),
            admin.key.display()
        );
        out!(
            "Ctrl-C stops the cluster (data stays in {})",
            args.data_dir.display()
        );
        crate::server::shutdown_signal().await;
        for agent in &agents {
            out!("{}", status_line(agent));
        }
    }
    let _ = stop_tx.send(true);
    stop_members(&mut members).await;
    out!("stopped");
    Ok(())
}

/// Everything after the members started: returns the agents and their stop signal.
async fn demo(
    args: &DevArgs,
    endpoints: &[String],
    hosts: &[String],
    certs: &DevCerts,
) -> anyhow::Result<(watch::Sender<bool>, Vec<SimAgent>)> {
    let client = ctl::client(
        endpoints,
        Duration::from_secs(5),
        &certs.client_args(&certs.admin),
        None,
    )?;
    let leader = wait_for_leader(&client).await?;
    out!("leader: member {leader}");

    for (h, host) in hosts.iter().enumerate() {
        let message = pb::CreateHostRequest {
            id: host.clone(),
            project_id: "admin".to_string(),
            underlay_ip: format!("192.0.2.{}", h + 1),
            ..Default::default()
        };
        match client.hosts().create(message).await {
            Ok(_) => out!("registered {host}"),
            Err(alcor_client::Error::Conflict(_)) => out!("{host} already registered"),
            Err(e) => return Err(e.into()),
        }
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut agents = Vec::new();
    for (h, host) in hosts.iter().enumerate() {
        // Spread the agents over the members; each lists all of them for failover.
        let mut list = endpoints.to_vec();
        list.rotate_left(h % endpoints.len());
        let mut config = SimAgentConfig::new(host.clone(), list);
        config.tls = certs.client_args(&certs.agents[h]).tonic_tls()?;
        let agent = SimAgent::new(config)?;
        let mut stop = stop_rx.clone();
        let runner = agent.clone();
        tokio::spawn(async move {
            runner
                .run(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        });
        agents.push(agent);
    }

    let target = match find_demo_vpc(&client).await? {
        Some(vpc) => {
            out!("reusing data: VPC {} ({}) exists", vpc.name, vpc.id);
            let status = client.cluster().status().await?;
            status.applied_index.unwrap_or(0)
        }
        None => create_demo(&client, args.ports, hosts).await?,
    };

    let deadline = Instant::now() + CONVERGE_WAIT_MAX;
    for agent in &agents {
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, agent.wait_for_revision(target))
            .await
            .is_err()
        {
            bail!(
                "agent {} did not reach revision {target} in {CONVERGE_WAIT_MAX:?}",
                agent.host_id()
            );
        }
    }
    out!("\nwhat each agent received (revision >= {target}):");
    for agent in &agents {
        out!("{}", status_line(agent));
        let table = agent.table();
        let own: Vec<String> = table
            .values()
            .filter_map(|o| match o {
                GoalObject::Port(p) => Some(format!(
                    "{} {}",
                    p.fixed_ips
                        .first()
                        .map(|f| f.ip_address.to_string())
                        .unwrap_or_default(),
                    p.mac_address
                )),
                _ => None,
            })
            .take(3)
            .collect();
        out!("           first ports: {}", own.join(", "));
    }
    let digests: Vec<String> = agents.iter().map(|a| hex_prefix(&a.digest())).collect();
    out!("agent digests: {}", digests.join(" "));
    Ok((stop_tx, agents))
}

/// The certificates of one `alcor dev` run (see the module docs).
struct DevCerts {
    members: Vec<TlsFiles>,
    admin: TlsFiles,
    /// One per simulated host, in host order.
    agents: Vec<TlsFiles>,
}

impl DevCerts {
    /// A new CA in `dir` and every certificate the run needs.
    fn generate(dir: &Path, n_members: u64, hosts: &[String]) -> anyhow::Result<DevCerts> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let ca = DevCa::new("alcor dev CA")?;
        ca.write_ca(dir)?;
        let localhost = ["localhost".to_string()];
        let loopback = [IpAddr::from([127, 0, 0, 1])];
        let members = (1..=n_members)
            .map(|id| {
                let peer = Principal::Peer { member: id };
                ca.write_issued(dir, &format!("member-{id}"), &peer, &localhost, &loopback)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let admin = ca.write_issued(dir, "admin", &Principal::Admin, &[], &[])?;
        let agents = hosts
            .iter()
            .map(|host| {
                let agent = Principal::Agent { host: host.clone() };
                ca.write_issued(dir, &format!("agent-{host}"), &agent, &[], &[])
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DevCerts {
            members,
            admin,
            agents,
        })
    }

    /// Member `id`'s files (ids start at 1).
    fn member(&self, id: u64) -> &TlsFiles {
        &self.members[usize::try_from(id - 1).unwrap_or(0)]
    }

    /// `files` as a client's TLS flags.
    fn client_args(&self, files: &TlsFiles) -> ClientTlsArgs {
        ClientTlsArgs {
            ca_file: Some(files.ca.clone()),
            cert_file: Some(files.cert.clone()),
            key_file: Some(files.key.clone()),
        }
    }
}

async fn wait_for_leader(client: &Client) -> anyhow::Result<u64> {
    let deadline = Instant::now() + LEADER_WAIT_MAX;
    loop {
        let status = client.cluster().status().await;
        if let Ok(pb::StatusResponse {
            leader_id: Some(leader),
            ..
        }) = status
        {
            return Ok(leader);
        }
        if Instant::now() > deadline {
            bail!("no leader within {LEADER_WAIT_MAX:?}; see the members' logs");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn find_demo_vpc(client: &Client) -> anyhow::Result<Option<pb::Vpc>> {
    let message = pb::ListVpcsRequest {
        project_id: DEMO_PROJECT.to_string(),
        limit: 1000,
        marker: String::new(),
        stale: false,
        ..Default::default()
    };
    let list = client.vpcs().list(message).await?;
    Ok(list.items.into_iter().find(|v| v.name == DEMO_VPC))
}

/// Creates the demo VPC, subnet and one batch of ports; returns the batch's revision.
async fn create_demo(client: &Client, n_ports: usize, hosts: &[String]) -> anyhow::Result<u64> {
    let vpc = client
        .vpcs()
        .create(pb::CreateVpcRequest {
            project_id: DEMO_PROJECT.to_string(),
            name: DEMO_VPC.to_string(),
            cidr: "10.0.0.0/16".to_string(),
            ..Default::default()
        })
        .await?;
    out!("created VPC {} ({}) vni {}", vpc.name, vpc.id, vpc.vni);
    let subnet = client
        .subnets()
        .create(pb::CreateSubnetRequest {
            project_id: DEMO_PROJECT.to_string(),
            network_id: vpc.id.clone(),
            name: "dev-subnet".to_string(),
            cidr: "10.0.1.0/24".to_string(),
            ..Default::default()
        })
        .await?;
    out!("created subnet {} {}", subnet.id, subnet.cidr);
    let ports = (0..n_ports)
        .map(|i| pb::CreatePortRequest {
            project_id: DEMO_PROJECT.to_string(),
            network_id: vpc.id.clone(),
            name: format!("vm-{i}-eth0"),
            binding_host: hosts[i % hosts.len()].clone(),
            device_id: format!("vm-{i}"),
            device_owner: "compute:nova".to_string(),
            ..Default::default()
        })
        .collect();
    let created = client.ports().create_many(ports).await?;
    let revision = created.first().map(|p| p.revision).unwrap_or(0);
    out!(
        "created {} ports in one batch at revision {revision}",
        created.len()
    );
    Ok(revision)
}

/// SIGTERM each member, wait for it, SIGKILL what does not stop in time.
async fn stop_members(members: &mut [Member]) {
    for member in members.iter() {
        if let Some(pid) = member.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }
    for member in members.iter_mut() {
        match tokio::time::timeout(STOP_WAIT_MAX, member.child.wait()).await {
            Ok(Ok(status)) => out!("member {} exited ({status})", member.id),
            _ => {
                let _ = member.child.kill().await;
                out!("member {} killed after {STOP_WAIT_MAX:?}", member.id);
            }
        }
    }
}
