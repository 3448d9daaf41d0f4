//! `alcor agent`: a host agent that keeps its host's goal state in memory,
//! acks each revision, and prints a status line now and then; with
//! `--dataplane linux` it also programs each new table into the kernel
//! (crate `alcor-dataplane`) before acking it.
//! `alcor agent-sim`: many of them in one process (each on its own stream,
//! `--agents-per-connection` of them sharing an HTTP/2 connection),
//! with a periodic summary that checks every agent's digest against the
//! controller's.

use std::time::Duration;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use alcor_dataplane::Reconciler;
use alcor_host_push::{
    Dataplane, Programmed, ProgrammedDigest, SharedConnections, SimAgent, SimAgentConfig,
};
use alcor_proto::identity::{BearerToken, AUTHORIZATION_HEADER};
use alcor_state_machine::{GoalObject, GoalState};

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::cluster_client::ClusterClient;
use anyhow::Context;
use tonic::transport::{ClientTlsConfig, Endpoint};

use crate::cli::{AgentArgs, AgentSimArgs, DataplaneKind};

/// The Linux dataplane behind host-push's [`Dataplane`]: each table is
/// planned and reconciled, one pass at a time; what it programmed is the
/// plan without the ports that failed (`alcor_dataplane::programmed_digest`).
#[derive(Debug)]
struct LinuxDataplane {
    host_id: String,
    underlay_ip: IpAddr,
    /// One pass at a time (a pass reads, then changes, the kernel).
    reconciler: Arc<tokio::sync::Mutex<Reconciler>>,
}

impl Dataplane for LinuxDataplane {
    fn program(&self, goal: GoalState) -> Pin<Box<dyn Future<Output = Programmed> + Send>> {
        let plan = alcor_dataplane::plan(&goal, &self.host_id, self.underlay_ip);
        let reconciler = self.reconciler.clone();
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            let outcome = reconciler.lock().await.reconcile(&plan).await;
            tracing::info!(
                ports = plan.ports.len(),
                routers = plan.routers.len(),
                remote_entries = plan.fdb.len() + plan.neighbours.len(),
                filtered_ports = plan.firewall.ports.len(),
                remote_groups = plan.firewall.groups.len(),
                changes = outcome.n_changes,
                full_pass = outcome.full,
                failed = outcome.failed.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "dataplane reconciled"
            );
            for (port, reason) in &outcome.failed {
                tracing::warn!(%port, reason, "port not programmed");
            }
            // Hashed when a digest report reads it, not before the ack.
            let failed = outcome.failed.clone();
            Programmed {
                digest: ProgrammedDigest::deferred(move || {
                    alcor_dataplane::programmed_digest(&plan, &failed)
                }),
                failed: outcome.failed,
            }
        })
    }
}

/// Runs one agent until SIGINT/SIGTERM.
pub(crate) async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let mut config = SimAgentConfig::new(args.host_id.clone(), args.endpoints.clone());
    config.tls = args.tls.tonic_tls()?;
    config.token = args.credentials.token()?;
    if args.dataplane == DataplaneKind::Linux {
        // What the kernel was told goes to stderr (`ALCOR_LOG`, default info).
        let filter = std::env::var("ALCOR_LOG").unwrap_or_else(|_| "info".to_string());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_new(&filter)?)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .try_init();
        let underlay_ip = args
            .underlay_ip
            .context("--underlay-ip is required with --dataplane linux")?;
        let reconciler = Arc::new(tokio::sync::Mutex::new(
            Reconciler::new(&args.host_id).context("netlink")?,
        ));
        config.dataplane = Some(Arc::new(LinuxDataplane {
            host_id: args.host_id.clone(),
            underlay_ip,
            reconciler: reconciler.clone(),
        }));
        // Removed ports whose pairs outlive their namespaces (a process
        // holds one) are deleted between passes too, not at the next change.
        tokio::spawn(async move {
            let period = Duration::from_millis(alcor_dataplane::limits::TEARDOWN_MS_MAX);
            let mut ticker = tokio::time::interval(period);
            loop {
                ticker.tick().await;
                if let Err(e) = reconciler.lock().await.tidy().await {
                    tracing::warn!("tidying removed ports: {e}");
                }
            }
        });
    }
    let agent = SimAgent::new(config)?;
    let mut runner = {
        let agent = agent.clone();
        tokio::spawn(async move { agent.run(crate::server::shutdown_signal()).await })
    };
    let mut ticker = tokio::time::interval(Duration::from_secs(args.report_interval_s.max(1)));
    // Ends as soon as the agent does (a signal), not at the next tick.
    loop {
        tokio::select! {
            _ = ticker.tick() => out!("{}", status_line(&agent)),
            ended = &mut runner => break ended?,
        }
    }
    out!("{}", status_line(&agent));
    Ok(())
}

/// One line: host, revision, object counts by kind, digest prefix, counters.
pub(crate) fn status_line(agent: &SimAgent) -> String {
    let (revision, digest) = agent.revision_and_digest();
    let counters = agent.counters();
    format!(
        "{host:<10} revision {revision:>6}  {counts}  digest {digest}  full-syncs {full} diff-batches {batches} reconnects {reconnects} gaps {gaps}",
        host = agent.host_id(),
        counts = counts(&agent.table()),
        digest = hex_prefix(&digest),
        full = counters.full_syncs,
        batches = counters.diff_batches,
        reconnects = counters.reconnects,
        gaps = counters.gaps,
    )
}

fn counts(table: &GoalState) -> String {
    let (mut ports, mut neighbors, mut subnets, mut vpcs, mut rules, mut members) =
        (0, 0, 0, 0, 0, 0);
    for object in table.values() {
        match object {
            GoalObject::Port(_) => ports += 1,
            GoalObject::Neighbor(_) => neighbors += 1,
            GoalObject::Subnet(_) => subnets += 1,
            GoalObject::Vpc(_) => vpcs += 1,
            GoalObject::SgRule(_) => rules += 1,
            GoalObject::SgMember(_) => members += 1,
            GoalObject::Router(_) | GoalObject::FloatingIp(_) => {}
        }
    }
    format!("ports {ports:>3} neighbors {neighbors:>3} vpcs {vpcs} subnets {subnets} rules {rules} sg-members {members:>3}")
}

/// The first 6 bytes of a digest in hex.
pub(crate) fn hex_prefix(digest: &[u8; 32]) -> String {
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `args.agents` simulated agents until SIGINT/SIGTERM (or until they
/// all match the controller, with `--exit-when-converged-s`).
pub(crate) async fn run_sim(args: AgentSimArgs) -> anyhow::Result<()> {
    if args.endpoints.is_empty() {
        anyhow::bail!("--endpoints is empty");
    }
    let n_endpoints = args.endpoints.len();
    let token = args.credentials.token()?;
    let mut agents = Vec::new();
    let mut tasks = Vec::new();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let per_connection = u64::from(args.agents_per_connection);
    let tls = args.tls.tonic_tls()?;
    let mut shared = None;
    for i in 0..args.agents {
        let first = usize::try_from(i).unwrap_or(0) % n_endpoints;
        let endpoints = (0..n_endpoints)
            .map(|k| args.endpoints[(first + k) % n_endpoints].clone())
            .collect();
        let host = format!("{}{i:05}", args.host_prefix);
        let mut config = SimAgentConfig::new(host, endpoints);
        config.tls = tls.clone();
        config.token.clone_from(&token);
        if per_connection > 1 {
            if i % per_connection == 0 {
                shared = Some(SharedConnections::new(&args.endpoints, tls.as_ref())?);
            }
            config.shared = shared.clone();
        }
        let agent = SimAgent::new(config)?;
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn({
            let agent = agent.clone();
            async move {
                agent
                    .run(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            }
        }));
        agents.push(agent);
    }
    let started = tokio::time::Instant::now();
    let deadline = args
        .exit_when_converged_s
        .map(|s| started + Duration::from_secs(s));
    let mut ticker = tokio::time::interval(Duration::from_secs(args.report_interval_s.max(1)));
    let signal = crate::server::shutdown_signal();
    tokio::pin!(signal);
    let outcome = loop {
        tokio::select! {
            _ = &mut signal => break Ok(()),
            _ = ticker.tick() => {}
        }
        let matching = matching(&args.endpoints, tls.as_ref(), &agents, token.as_ref()).await;
        out!("{}", summary(&agents, matching, started.elapsed()));
        if deadline.is_some() && matching == agents.len() {
            break Ok(());
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break Err(anyhow::anyhow!(
                "{} of {} agents match the controller after {:?}",
                matching,
                agents.len(),
                started.elapsed()
            ));
        }
    };
    let _ = stop.send(true);
    for task in tasks {
        task.await?;
    }
    outcome
}

/// How many agents hold exactly the controller's goal state for their host
/// (the controller read through the first endpoint that answers).
async fn matching(
    endpoints: &[String],
    tls: Option<&ClientTlsConfig>,
    agents: &[SimAgent],
    token: Option<&BearerToken>,
) -> usize {
    let mut client = None;
    for endpoint in endpoints {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let Ok(mut dial) = Endpoint::from_shared(format!("{scheme}://{endpoint}")) else {
            continue;
        };
        if let Some(tls) = tls {
            let Ok(with_tls) = dial.tls_config(tls.clone()) else {
                continue;
            };
            dial = with_tls;
        }
        if let Ok(channel) = dial.connect().await {
            client = Some(ClusterClient::new(channel));
            break;
        }
    }
    let Some(mut client) = client else {
        return 0;
    };
    let mut n_matching = 0;
    for agent in agents {
        let mut request = tonic::Request::new(pb::HostDigestRequest {
            host: agent.host_id().to_string(),
            stale: true,
        });
        if let Some(value) = token.and_then(|t| t.header_value().parse().ok()) {
            request.metadata_mut().insert(AUTHORIZATION_HEADER, value);
        }
        let Ok(expected) = client
            .host_digest(request)
            .await
            .context("host digest")
            .map(tonic::Response::into_inner)
        else {
            continue;
        };
        let (revision, digest) = agent.revision_and_digest();
        if revision >= expected.revision && digest.as_slice() == expected.digest.as_slice() {
            n_matching += 1;
        }
    }
    n_matching
}

/// One line: agents matching, revisions, message and error counts.
fn summary(agents: &[SimAgent], matching: usize, elapsed: Duration) -> String {
    let (mut min, mut max) = (u64::MAX, 0);
    let (mut full, mut batches, mut reconnects, mut gaps) = (0, 0, 0, 0);
    for agent in agents {
        let revision = agent.revision();
        min = min.min(revision);
        max = max.max(revision);
        let c = agent.counters();
        full += c.full_syncs;
        batches += c.diff_batches;
        reconnects += c.reconnects;
        gaps += c.gaps;
    }
    format!(
        "t={:>6.1}s agents {} matching {matching} revisions {min}..{max} full-syncs {full} diff-batches {batches} reconnects {reconnects} gaps {gaps}",
        elapsed.as_secs_f64(),
        agents.len(),
    )
}
