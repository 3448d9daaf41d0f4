//! One run from start to verdict: sweep leftovers, build the topology,
//! start the servers, create the fixtures, run clients and nemesis, heal and
//! demand recovery, read the final state on every node, check, summarize.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alcor_proto::api::v1 as pb;
use alcor_proto::api::v1::orchestrator_client::OrchestratorClient;
use anyhow::{anyhow, bail, Context, Result};
use comfy_table::Table;
use serde_json::{json, Value};
use tokio::time::Instant;
use tonic::Code;

use alcor_jepsen_checker::check::{check_events, CheckOptions, Report, Verdict as CheckedVerdict};
use alcor_jepsen_checker::ops::Workload as CheckedWorkload;

use crate::checks::{self, PortSeen, Verdict};
use crate::cluster::{self, channel, Processes};
use crate::convergence::{self, Convergence};
use crate::history::{Event, History, Op, OpType, Process};
use crate::nemesis::{Fault, Nemesis, Schedule};
use crate::pki::{self, Pki};
use crate::topology::{self, Topology};
use crate::workloads::{self, register_id, Ctx, Fixtures, Workload, CALL_TIMEOUT, PROJECT};
use crate::RunArgs;

/// Register keys in use at a time.
const KEYS_PER_PERIOD: usize = 4;
/// How long one group of register keys is used.
const KEY_PERIOD: Duration = Duration::from_secs(5);
/// Register clients at most (Knossos-style checkers want <= 10 per key).
const REGISTER_CLIENTS_MAX: u64 = 10;
/// Longest wait for the first leader and for fixtures.
const STARTUP_WAIT: Duration = Duration::from_secs(60);
/// Longest wait for one node's final read.
const FINAL_READ_WAIT: Duration = Duration::from_secs(30);
/// Taken by every run (one run per machine at a time).
const RUN_LOCK: &str = "/tmp/alcor-jepsen-run.lock";
/// Concurrent creates while building the register keys.
const SETUP_PARALLELISM: usize = 8;

/// Server flags of every node: short request timeout (so clients see the
/// server's verdict before their own deadline), frequent snapshots.
fn server_args() -> Vec<String> {
    [
        "--request-timeout-ms",
        "2000",
        "--snapshot-logs-since-last",
        "500",
        "--snapshot-logs-to-keep",
        "100",
        "--log",
        "info,openraft=warn",
        // Every kill -9 then also loses the un-fsynced writes, as a power
        // cut would: the "lost un-fsynced writes" disk fault.
        "--wal-buffered-until-sync",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn utc_stamp() -> String {
    topology::sh("date", &["-u", "+%Y%m%dT%H%M%SZ"])
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "run".to_string())
}

/// Calls `f` on each node in turn until one succeeds (or answers
/// ALREADY_EXISTS, which for a create with a fixed id means it is done).
pub(crate) async fn on_any<T, F, Fut>(nodes: usize, f: F) -> Result<Option<T>>
where
    F: Fn(OrchestratorClient<tonic::transport::Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let deadline = Instant::now() + STARTUP_WAIT;
    let mut last = String::new();
    let mut slot = 1;
    while Instant::now() < deadline {
        let client = OrchestratorClient::new(channel(slot, CALL_TIMEOUT)?);
        match f(client).await {
            Ok(response) => return Ok(Some(response.into_inner())),
            Err(status) if status.code() == Code::AlreadyExists => return Ok(None),
            Err(status) => last = format!("n{slot}: {}", status.message()),
        }
        slot = slot % nodes + 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("setup call failed for {STARTUP_WAIT:?}: {last}")
}

pub(crate) fn fixed_id(kind: u32, n: u64) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

/// Creates the quota, the register VPCs, and a VPC + subnet per port workload.
async fn setup(nodes: usize, register_keys: usize) -> Result<Fixtures> {
    on_any(nodes, |mut c| async move {
        c.set_quota(pb::SetQuotaRequest {
            project_id: PROJECT.to_string(),
            network: Some(-1),
            subnet: Some(-1),
            port: Some(-1),
            router: Some(-1),
            security_group: Some(-1),
            security_group_rule: Some(-1),
        })
        .await
    })
    .await?;
    let vpc = |id: String, name: &str| pb::CreateVpcRequest {
        id,
        project_id: PROJECT.to_string(),
        name: name.to_string(),
        ..Default::default()
    };
    let mut port_nets = BTreeMap::new();
    for (i, workload) in [Workload::Set, Workload::Unique, Workload::Idempotent]
        .into_iter()
        .enumerate()
    {
        let vpc_id = fixed_id(1, i as u64 + 1);
        let subnet_id = fixed_id(2, i as u64 + 1);
        let request = vpc(vpc_id.clone(), workload.name());
        on_any(nodes, |mut c| {
            let request = request.clone();
            async move { c.create_vpc(request).await }
        })
        .await?;
        let request = pb::CreateSubnetRequest {
            id: subnet_id.clone(),
            project_id: PROJECT.to_string(),
            network_id: vpc_id.clone(),
            cidr: format!("10.{}.0.0/16", i + 1),
            ..Default::default()
        };
        on_any(nodes, |mut c| {
            let request = request.clone();
            async move { c.create_subnet(request).await }
        })
        .await?;
        port_nets.insert(workload, (vpc_id, subnet_id));
    }
    let canary = fixed_id(3, 1);
    let request = vpc(canary.clone(), "canary");
    on_any(nodes, |mut c| {
        let request = request.clone();
        async move { c.create_vpc(request).await }
    })
    .await?;
    let keys: Vec<String> = (0..register_keys).map(register_id).collect();
    for chunk in keys.chunks(SETUP_PARALLELISM) {
        let creates = chunk.iter().map(|id| {
            let request = vpc(id.clone(), "");
            async move {
                on_any(nodes, |mut c| {
                    let request = request.clone();
                    async move { c.create_vpc(request).await }
                })
                .await
                .map(|_| ())
            }
        });
        for result in cluster::futures_join_all(creates).await {
            result?;
        }
    }
    Ok(Fixtures {
        register_keys: keys,
        port_nets,
        canary,
    })
}

/// After healing: the time until a write to the canary VPC succeeds, or an
/// error when the deadline passes.
async fn recover(nodes: usize, canary: &str, deadline: Duration) -> Result<Duration> {
    let started = Instant::now();
    let mut attempt = 0u64;
    while started.elapsed() < deadline {
        attempt += 1;
        let slot = (attempt as usize % nodes) + 1;
        let mut client = OrchestratorClient::new(channel(slot, CALL_TIMEOUT)?);
        let mut request = tonic::Request::new(pb::UpdateVpcRequest {
            id: canary.to_string(),
            name: Some(format!("probe-{attempt}")),
            ..Default::default()
        });
        request.set_timeout(CALL_TIMEOUT);
        if let Ok(Ok(_)) = tokio::time::timeout(CALL_TIMEOUT, client.update_vpc(request)).await {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("no write accepted within {deadline:?} after healing")
}

/// Lists a VPC's ports on `slot`, retrying until `FINAL_READ_WAIT`.
async fn final_list(slot: usize, vpc: &str) -> Result<Vec<pb::Port>> {
    let started = Instant::now();
    loop {
        match workloads::list_ports(slot, vpc).await {
            Ok(ports) => return Ok(ports),
            Err(error) if started.elapsed() > FINAL_READ_WAIT => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Final reads of the port workloads on every node. Set-like keys are
/// recorded in the history as `read`s; the unique pool's reads are returned
/// for the survival check.
async fn final_reads(
    history: &History,
    nodes: usize,
    fixtures: &Fixtures,
    workloads: &[Workload],
    next_process: &mut u64,
) -> (
    BTreeMap<Workload, Vec<(String, Vec<u64>)>>,
    Vec<(String, Vec<PortSeen>)>,
    Vec<String>,
) {
    let mut sets = BTreeMap::new();
    let mut unique = Vec::new();
    let mut problems = Vec::new();
    for &workload in workloads {
        let Some((vpc, _)) = fixtures.port_nets.get(&workload) else {
            continue;
        };
        for slot in 1..=nodes {
            let node = format!("n{slot}");
            let process = Process::Client(*next_process);
            *next_process += 1;
            let set_like = workload != Workload::Unique;
            let event = |kind, value, error| Event {
                process,
                kind,
                f: "read",
                key: Some(workload.name().to_string()),
                value,
                workload: Some(workload.checker()),
                node: Some(node.clone()),
                error,
            };
            if set_like {
                history.record(event(OpType::Invoke, Value::Null, None));
            }
            match final_list(slot, vpc).await {
                Ok(ports) => {
                    if set_like {
                        let elements: Vec<u64> = ports
                            .iter()
                            .filter_map(|p| {
                                let name = p.name.strip_prefix("idem-").unwrap_or(&p.name);
                                name.parse().ok()
                            })
                            .collect();
                        history.record(event(OpType::Ok, json!(elements), None));
                        sets.entry(workload)
                            .or_insert_with(Vec::new)
                            .push((node.clone(), elements));
                    } else {
                        let seen = ports
                            .iter()
                            .filter_map(|p| PortSeen::from_value(&workloads::port_identity(p)))
                            .collect();
                        unique.push((node.clone(), seen));
                    }
                }
                Err(error) => {
                    if set_like {
                        history.record(event(
                            OpType::Fail,
                            Value::Null,
                            Some(format!("{error:#}")),
                        ));
                    }
                    problems.push(format!(
                        "{} final read on {node}: {error:#}",
                        workload.name()
                    ));
                }
            }
        }
    }
    (sets, unique, problems)
}

/// Lines with a panic in the node logs.
fn panics_in_logs(run_dir: &Path, nodes: usize) -> Vec<String> {
    let mut found = Vec::new();
    for slot in 1..=nodes {
        let path = run_dir.join(format!("n{slot}.log"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for line in text.lines().filter(|l| l.contains("panicked at")) {
            found.push(format!("n{slot}: {line}"));
        }
    }
    found
}

/// Which workload a client op belongs to (by key).
fn workload_of(op: &Op) -> Option<Workload> {
    if !matches!(op.process, Process::Client(_)) {
        return None;
    }
    if op.workload.as_deref() == Some(Workload::Convergence.checker()) {
        return Some(Workload::Convergence);
    }
    match op.key.as_deref() {
        Some("set") => Some(Workload::Set),
        Some("unique") => Some(Workload::Unique),
        Some("idempotent") => Some(Workload::Idempotent),
        Some(_) if op.workload.as_deref() == Some("register") => Some(Workload::Register),
        _ => None,
    }
}

/// Outcome counts per workload: (invocations, ok, fail, info).
fn counts(history: &[Op]) -> BTreeMap<Workload, [u64; 4]> {
    let mut out: BTreeMap<Workload, [u64; 4]> = BTreeMap::new();
    for op in history {
        let Some(workload) = workload_of(op) else {
            continue;
        };
        let slot = match op.kind {
            OpType::Invoke => 0,
            OpType::Ok => 1,
            OpType::Fail => 2,
            OpType::Info => 3,
        };
        out.entry(workload).or_default()[slot] += 1;
    }
    out
}

/// The whole run; returns the exit code.
pub async fn run(args: RunArgs) -> Result<u8> {
    if !nix::unistd::geteuid().is_root() {
        bail!("needs root (network namespaces, iptables)");
    }
    topology::check_tools()?;
    // Runs share fixed namespaces and addresses: a second one would sweep
    // the first's servers. Held until this function returns.
    let lock = std::fs::File::create(RUN_LOCK).with_context(|| format!("create {RUN_LOCK}"))?;
    if lock.try_lock().is_err() {
        bail!("another alcor-jepsen run holds {RUN_LOCK}");
    }
    let bin = std::fs::canonicalize(&args.alcor_bin)
        .with_context(|| format!("--alcor-bin {}", args.alcor_bin.display()))?;
    let swept = topology::sweep()?;
    if swept > 0 {
        println!("swept {swept} leftovers of an earlier run");
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let stamp = utc_stamp();
    let run_dir = args.results.join(&stamp);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("create {}", run_dir.display()))?;
    let data_root = std::env::temp_dir().join(format!("{}{stamp}", topology::DATA_PREFIX));
    std::fs::create_dir_all(&data_root)?;
    let faults: Vec<Fault> = if args.no_nemesis {
        Vec::new()
    } else if args.nemesis.is_empty() {
        Fault::ALL
            .into_iter()
            .filter(|f| f.applies_to(args.nodes))
            .collect()
    } else {
        args.nemesis.clone()
    };
    let fiu_available =
        topology::sh("sh", &["-c", "command -v fiu-run && command -v fiu-ctrl"]).is_ok();
    let faults: Vec<Fault> = if faults.contains(&Fault::FsyncError) && !fiu_available {
        if args.nemesis.contains(&Fault::FsyncError) {
            bail!("the fsync-error fault needs libfiu's fiu-run and fiu-ctrl (apt-get install fiu-utils)");
        }
        println!("fsync-error left out: fiu-run not found (apt-get install fiu-utils)");
        faults
            .into_iter()
            .filter(|f| *f != Fault::FsyncError)
            .collect()
    } else {
        faults
    };
    println!(
        "run {stamp}: {} nodes, {:?}, seed {seed}, workloads {:?}, faults {:?}\nresults: {}",
        args.nodes,
        args.duration,
        args.workloads.iter().map(|w| w.name()).collect::<Vec<_>>(),
        faults.iter().map(|f| f.name()).collect::<Vec<_>>(),
        run_dir.display()
    );

    let pki = (!args.insecure).then(|| Pki::new(&bin, data_root.join("tls")));
    if let Some(pki) = &pki {
        pki::use_client_tls(pki.admin_client()?);
    }
    let topology = Topology::create(args.nodes)?;
    let start = std::time::Instant::now();
    let history = Arc::new(History::create(&run_dir.join("history.jsonl"), start)?);
    let processes = Arc::new(Mutex::new(Processes::start(
        &bin,
        topology.nodes(),
        &run_dir,
        &data_root,
        server_args(),
        faults.contains(&Fault::FsyncError),
        pki.clone(),
    )?));
    let slots: Vec<usize> = (1..=args.nodes).collect();
    let until = Instant::now() + STARTUP_WAIT;
    while cluster::leader(&slots).await.is_none() {
        if Instant::now() > until {
            bail!(
                "no leader within {STARTUP_WAIT:?}; see {}",
                run_dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let register_keys =
        (args.duration.as_secs() / KEY_PERIOD.as_secs() + 2) as usize * KEYS_PER_PERIOD;
    let fixtures = setup(args.nodes, register_keys).await?;
    let convergence_setup = if args.workloads.contains(&Workload::Convergence) {
        Some(convergence::setup(args.nodes).await?)
    } else {
        None
    };
    println!("fixtures ready: {register_keys} register keys; running clients");

    let per_workload = |w: Workload| match w {
        Workload::Register => (args.clients * 2).min(REGISTER_CLIENTS_MAX),
        Workload::Convergence => 0,
        _ => args.clients,
    };
    let workers: u64 = args.workloads.iter().map(|&w| per_workload(w)).sum();
    let started = Instant::now();
    let deadline = started + args.duration;
    let ctx = Arc::new(Ctx {
        history: history.clone(),
        nodes: args.nodes,
        workers,
        deadline,
        started,
        keys_per_period: KEYS_PER_PERIOD,
        key_period: KEY_PERIOD,
        counter: AtomicU64::new(1),
        think: args.think,
        fixtures: fixtures.clone(),
        seed,
    });
    let mut tasks = Vec::new();
    let mut worker = 0;
    for &workload in &args.workloads {
        for _ in 0..per_workload(workload) {
            tasks.push(tokio::spawn(workloads::run_worker(
                ctx.clone(),
                workload,
                worker,
            )));
            worker += 1;
        }
    }
    let convergence = match convergence_setup {
        Some(setup) => Some(Convergence::start(
            history.clone(),
            args.nodes,
            setup,
            &bin,
            &run_dir,
            workers * 3_000_000,
            deadline,
            args.think,
            seed,
            pki.as_ref(),
        )?),
        None => None,
    };
    let mut nemesis = Nemesis::new(history.clone(), processes.clone(), seed);
    let schedule = Schedule {
        quiet: args.quiet,
        hold: args.hold,
        combined: args.combined,
    };
    let nemesis = tokio::spawn(async move {
        nemesis.run(&faults, schedule, deadline).await;
        nemesis
    });
    let mut harness_problems = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => harness_problems.push(format!("client: {error:#}")),
            Err(error) => harness_problems.push(format!("client task: {error}")),
        }
    }
    let nemesis = nemesis.await.map_err(|e| anyhow!("nemesis task: {e}"))?;

    // Heal and demand recovery.
    println!("clients done; healing");
    nemesis.heal_network()?;
    {
        let mut p = processes.lock().unwrap_or_else(|e| e.into_inner());
        p.reap_crashed();
        p.restore_all()?;
    }
    let recovery = recover(args.nodes, &fixtures.canary, args.recovery_deadline).await;
    let convergence = match convergence {
        Some(c) => Some(c.finish().await),
        None => None,
    };
    let mut next_process = workers * 1_000_000;
    let (sets, unique_finals, read_problems) = final_reads(
        &history,
        args.nodes,
        &fixtures,
        &args.workloads,
        &mut next_process,
    )
    .await;
    let crashed = {
        let mut p = processes.lock().unwrap_or_else(|e| e.into_inner());
        p.reap_crashed();
        let crashed = p.crashed.clone();
        p.kill_all();
        crashed
    };
    history.flush()?;
    drop(topology);
    let panics = panics_in_logs(&run_dir, args.nodes);
    if !args.keep_data {
        let _ = std::fs::remove_dir_all(&data_root);
    }

    // Check: the checker crate on the whole history (register
    // linearizability, set and unique), plus the harness's own final-read
    // checks (every node agrees; acknowledged allocations survive).
    let ops = history.ops();
    let report = check_history(&ops, args.check_deadline);
    if let Ok(report) = &report {
        let json = serde_json::to_string_pretty(report).unwrap_or_default();
        std::fs::write(run_dir.join("checker-report.json"), json)?;
    }
    let mut verdicts: BTreeMap<Workload, Verdict> = BTreeMap::new();
    for &workload in &args.workloads {
        let local = match workload {
            Workload::Register | Workload::Convergence => Verdict::Valid,
            Workload::Unique => checks::check_unique(&ops, &unique_finals),
            Workload::Set => checks::check_set(
                &ops,
                workload.name(),
                sets.get(&workload).map(Vec::as_slice).unwrap_or_default(),
            ),
            Workload::Idempotent => worst(
                checks::check_set(
                    &ops,
                    workload.name(),
                    sets.get(&workload).map(Vec::as_slice).unwrap_or_default(),
                ),
                checks::check_tokens(&ops, workload.name()),
            ),
        };
        let checked = match &report {
            _ if workload == Workload::Convergence => match &convergence {
                Some(outcome) => outcome.verdict.clone(),
                None => Verdict::Unknown("not run".to_string()),
            },
            Ok(report) => verdict_of(report, workload),
            Err(error) => Verdict::Unknown(error.clone()),
        };
        verdicts.insert(workload, worst(checked, local));
    }

    // Summary.
    let tally = counts(&ops);
    let mut table = Table::new();
    table.set_header(vec!["workload", "ops", "ok", "fail", "info", "verdict"]);
    for &workload in &args.workloads {
        let c = tally.get(&workload).copied().unwrap_or_default();
        let verdict = verdicts
            .get(&workload)
            .map(Verdict::word)
            .unwrap_or("UNKNOWN");
        table.add_row(vec![
            workload.name().to_string(),
            c[0].to_string(),
            c[1].to_string(),
            c[2].to_string(),
            c[3].to_string(),
            verdict.to_string(),
        ]);
    }
    let mut faults_table = Table::new();
    faults_table.set_header(vec!["fault", "injected", "verified", "last unverified"]);
    for (fault, t) in &nemesis.tallies {
        faults_table.add_row(vec![
            fault.name().to_string(),
            t.injected.to_string(),
            t.verified.to_string(),
            t.last_miss
                .as_deref()
                .and_then(|m| m.lines().next())
                .map(|m| m.chars().take(90).collect::<String>())
                .unwrap_or_default(),
        ]);
    }
    let mut lines = Vec::new();
    let mut invalid = false;
    let mut unknown = false;
    for (workload, verdict) in &verdicts {
        match verdict {
            Verdict::Valid => {}
            Verdict::Invalid(problems) => {
                invalid = true;
                for p in problems {
                    lines.push(format!("{}: {p}", workload.name()));
                }
            }
            Verdict::Unknown(why) => {
                unknown = true;
                lines.push(format!("{}: unknown: {why}", workload.name()));
            }
        }
    }
    lines.extend(convergence.iter().flat_map(|c| c.notes.iter().cloned()));
    match &recovery {
        Ok(took) => lines.push(format!(
            "recovery: a write succeeded {:.1}s after healing",
            took.as_secs_f64()
        )),
        Err(error) => {
            unknown = true;
            lines.push(format!("recovery: MISSED: {error:#}"));
        }
    }
    for problem in read_problems
        .iter()
        .chain(&harness_problems)
        .chain(&crashed)
        .chain(&panics)
    {
        unknown = true;
        lines.push(problem.clone());
    }
    let unverified: u32 = nemesis
        .tallies
        .values()
        .map(|t| t.injected - t.verified)
        .sum();
    if unverified > 0 {
        lines.push(format!("{unverified} fault(s) injected but not verified"));
        if args.require_verified {
            unknown = true;
        }
    }
    let verdict = if invalid {
        "INVALID"
    } else if unknown {
        "FAILED (unknown / unverified / not recovered / crash)"
    } else {
        "PASS"
    };
    let summary = format!(
        "run {stamp} seed {seed}: {} nodes, {:?}\n{table}\n{faults_table}\n{}\nverdict: {verdict}\n",
        args.nodes,
        args.duration,
        lines.join("\n")
    );
    println!("{summary}");
    std::fs::write(run_dir.join("summary.txt"), &summary)?;
    println!("history and node logs: {}", run_dir.display());
    Ok(if invalid {
        1
    } else if unknown {
        2
    } else {
        0
    })
}

/// Runs the checker crate over the history.
fn check_history(ops: &[Op], deadline: Duration) -> Result<Report, String> {
    let options = CheckOptions {
        deadline: Some(deadline),
        // Not every failed cas is an observation of "value != expected":
        // one whose read failed, or whose update was refused with NO_LEADER,
        // observed nothing. So failed cas operations are dropped.
        failed_cas_observes: false,
        ..CheckOptions::default()
    };
    check_events(ops, &options).map_err(|e| format!("checker: {e}"))
}

/// The checker's verdict on `workload`'s keys, with the failing keys.
fn verdict_of(report: &Report, workload: Workload) -> Verdict {
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let mut keys = 0;
    for key in &report.keys {
        let mine = match workload {
            Workload::Register => key.workload == CheckedWorkload::Register,
            _ => key.key == workload.name(),
        };
        if !mine {
            continue;
        }
        keys += 1;
        let mut detail = format!("{:?}", key.detail);
        detail.truncate(400);
        match key.verdict {
            CheckedVerdict::Valid => {}
            CheckedVerdict::Invalid => problems.push(format!("key {}: {detail}", key.key)),
            CheckedVerdict::Unknown => unknown.push(format!("key {}: {detail}", key.key)),
        }
    }
    if !problems.is_empty() {
        Verdict::Invalid(problems)
    } else if !unknown.is_empty() {
        Verdict::Unknown(unknown.join("; "))
    } else if keys == 0 {
        Verdict::Unknown("no key of this workload in the history".to_string())
    } else {
        Verdict::Valid
    }
}

/// The worse of two verdicts (invalid > unknown > valid), problems joined.
fn worst(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Verdict::Invalid(mut x), Verdict::Invalid(y)) => {
            x.extend(y);
            Verdict::Invalid(x)
        }
        (v @ Verdict::Invalid(_), _) | (_, v @ Verdict::Invalid(_)) => v,
        (v @ Verdict::Unknown(_), _) | (_, v @ Verdict::Unknown(_)) => v,
        _ => Verdict::Valid,
    }
}
