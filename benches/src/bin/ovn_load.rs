//! Load generator for the OVN Northbound peer benchmark: starts a 3-member
//! clustered `ovsdb-server` (Raft) with the OVN_Northbound schema on loopback,
//! by hand (`ovsdb-tool create-cluster` / `join-cluster`, not systemd), and
//! times logical switch port creation four ways, each on a fresh cluster:
//!
//! - `nbctl serial`: one `ovn-nbctl lsp-add … -- lsp-set-addresses …` per port;
//! - `nbctl x100`: one `ovn-nbctl` transaction per 100 ports;
//! - `raw serial` and `raw x100`: the same inserts as JSON transactions through
//!   `ovsdb-client transact` to the leader, the database's own speed without
//!   the CLI's overhead (each call is still a new process and connection).
//!
//! One row per method: transactions/s, ports/s, latency per transaction, CPU of
//! the three servers. The figures compare with `cluster_load`'s `create_port`
//! and `create_ports` rows.
//!
//! Usage: `cargo run --release -p alcor-benches --bin ovn_load -- [--quick]
//! [--serial-ports 1000] [--batch-ports 5000] [--raw-batch-ports 20000]`
//!
//! Output: a table on stdout and `benches/results/ovn_load-<date>.json`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use alcor_benches::load::{
    cpu_between, cpu_sample, fsync_probe, machine, print_header, utc_now, write_json, Row,
};
use anyhow::{anyhow, bail, Context};
use clap::Parser;
use serde_json::{json, Value};

/// Members of the cluster.
const MEMBERS: usize = 3;
/// Schema shipped by Debian's `ovn-central`.
const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
/// Bound on the cluster forming (all members joined, one leader).
const FORM_WAIT_MAX: Duration = Duration::from_secs(30);
/// Ports per batched transaction.
const BATCH: u64 = 100;
/// Bound on the ports of one method.
const PORTS_MAX: u64 = 1_000_000;
/// Error messages kept per row.
const ERROR_SAMPLES_MAX: usize = 5;

#[derive(Debug, Parser)]
#[command(
    about = "Time OVN Northbound logical switch port creation on a 3-member OVSDB Raft cluster"
)]
struct Args {
    /// Ports created one transaction each (ovn-nbctl and ovsdb-client).
    #[arg(long, default_value_t = 1_000)]
    serial_ports: u64,
    /// Ports created through ovn-nbctl in transactions of 100.
    #[arg(long, default_value_t = 5_000)]
    batch_ports: u64,
    /// Ports created through ovsdb-client in transactions of 100.
    #[arg(long, default_value_t = 20_000)]
    raw_batch_ports: u64,
    /// Smoke run: 50 serial ports, 500 batched.
    #[arg(long)]
    quick: bool,
    /// Member i: Raft on BASE+i, clients on BASE+100+i.
    #[arg(long, default_value_t = 27_600)]
    base_port: u16,
    /// Parent of the temp data dirs (also where the fsync probe runs).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// JSON output path; default benches/results/ovn_load-<date>.json.
    #[arg(long)]
    out: Option<PathBuf>,
}

// ------------------------------------------------------------- cluster --

/// Three `ovsdb-server` processes (children, not daemons) in a temp dir;
/// killed and removed on drop.
struct Cluster {
    dir: PathBuf,
    remotes: Vec<String>,
    children: Vec<Child>,
    // Dropped after `Drop::drop` has killed the members.
    _root: tempfile::TempDir,
}

fn run_ok(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {cmd:?} (install it: apt-get install ovn-central)"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

impl Cluster {
    fn start(args: &Args, work: &Path) -> anyhow::Result<Cluster> {
        let root = tempfile::Builder::new()
            .prefix("ovn-load-")
            .tempdir_in(work)
            .context("create the temp data dir")?;
        let dir = root.path().to_path_buf();
        let raft = |i: usize| format!("tcp:127.0.0.1:{}", usize::from(args.base_port) + i);
        let db = |i: usize| dir.join(format!("nb{i}.db"));
        run_ok(
            Command::new("ovsdb-tool")
                .arg("create-cluster")
                .arg(db(1))
                .arg(NB_SCHEMA)
                .arg(raft(1)),
        )?;
        for i in 2..=MEMBERS {
            run_ok(
                Command::new("ovsdb-tool")
                    .arg("join-cluster")
                    .arg(db(i))
                    .arg("OVN_Northbound")
                    .arg(raft(i))
                    .arg(raft(1)),
            )?;
        }
        let mut cluster = Cluster {
            dir: dir.clone(),
            remotes: (1..=MEMBERS)
                .map(|i| format!("tcp:127.0.0.1:{}", usize::from(args.base_port) + 100 + i))
                .collect(),
            children: Vec::new(),
            _root: root,
        };
        for i in 1..=MEMBERS {
            let child = Command::new("ovsdb-server")
                .arg("--no-chdir")
                .arg(format!(
                    "--log-file={}",
                    dir.join(format!("nb{i}.log")).display()
                ))
                .arg(format!("--unixctl={}", cluster.ctl(i).display()))
                .arg(format!(
                    "--remote=punix:{}",
                    dir.join(format!("nb{i}.sock")).display()
                ))
                .arg(format!(
                    "--remote=ptcp:{}:127.0.0.1",
                    usize::from(args.base_port) + 100 + i
                ))
                .arg(db(i))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("start ovsdb-server (install it: apt-get install ovn-central)")?;
            cluster.children.push(child);
        }
        cluster.wait_formed()?;
        run_ok(
            Command::new("ovn-nbctl")
                .arg(cluster.db_arg())
                .args(["ls-add", "sw0"]),
        )?;
        Ok(cluster)
    }

    fn ctl(&self, i: usize) -> PathBuf {
        self.dir.join(format!("nb{i}.ctl"))
    }

    fn db_arg(&self) -> String {
        format!("--db={}", self.remotes.join(","))
    }

    /// `cluster/status` of member i.
    fn status(&self, i: usize) -> String {
        Command::new("ovs-appctl")
            .arg("-t")
            .arg(self.ctl(i))
            .args(["cluster/status", "OVN_Northbound"])
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default()
    }

    /// Waits until every member is a cluster member and one is leader;
    /// returns the leader's client remote.
    fn wait_formed(&self) -> anyhow::Result<String> {
        let deadline = Instant::now() + FORM_WAIT_MAX;
        loop {
            let statuses: Vec<String> = (1..=MEMBERS).map(|i| self.status(i)).collect();
            let joined = statuses
                .iter()
                .all(|s| s.contains("Status: cluster member"));
            let leader = statuses.iter().position(|s| s.contains("Role: leader"));
            if let (true, Some(l)) = (joined, leader) {
                return Ok(self.remotes[l].clone());
            }
            if Instant::now() > deadline {
                bail!(
                    "OVSDB cluster not formed within {FORM_WAIT_MAX:?}: {}",
                    statuses.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ------------------------------------------------------------ methods --

/// Port n's name and address: `pN`, `"0a:00:00:XX:YY:ZZ 10.X.Y.Z"`.
fn port(n: u64) -> (String, String) {
    let (a, b, c) = ((n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    (
        format!("p{n}"),
        format!("0a:00:00:{a:02x}:{b:02x}:{c:02x} 10.{a}.{b}.{c}"),
    )
}

/// `ovn-nbctl` arguments adding ports `first..first+count` in one transaction.
fn nbctl_args(db: &str, first: u64, count: u64) -> Vec<String> {
    let mut v = vec![db.to_string()];
    for n in first..first + count {
        let (name, addr) = port(n);
        if n > first {
            v.push("--".into());
        }
        v.extend(["lsp-add".into(), "sw0".into(), name.clone()]);
        v.extend(["--".into(), "lsp-set-addresses".into(), name, addr]);
    }
    v
}

/// An OVSDB transaction inserting ports `first..first+count` into sw0.
fn raw_txn(first: u64, count: u64) -> String {
    let mut ops = vec![json!("OVN_Northbound")];
    let mut refs = Vec::new();
    for n in first..first + count {
        let (name, addr) = port(n);
        let uuid_name = format!("row{n}");
        ops.push(json!({
            "op": "insert",
            "table": "Logical_Switch_Port",
            "row": {"name": name, "addresses": ["set", [addr]]},
            "uuid-name": uuid_name,
        }));
        refs.push(json!(["named-uuid", uuid_name]));
    }
    ops.push(json!({
        "op": "mutate",
        "table": "Logical_Switch",
        "where": [["name", "==", "sw0"]],
        "mutations": [["ports", "insert", ["set", refs]]],
    }));
    Value::from(ops).to_string()
}

#[derive(Debug, Clone, Copy)]
enum Method {
    NbctlSerial,
    NbctlBatch,
    RawSerial,
    RawBatch,
}

impl Method {
    fn label(self) -> &'static str {
        match self {
            Method::NbctlSerial => "ovn-nbctl lsp-add, 1 per txn",
            Method::NbctlBatch => "ovn-nbctl lsp-add, 100 per txn",
            Method::RawSerial => "ovsdb-client transact, 1/txn",
            Method::RawBatch => "ovsdb-client transact, 100/txn",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Method::NbctlSerial => "nbctl_serial",
            Method::NbctlBatch => "nbctl_batch100",
            Method::RawSerial => "raw_serial",
            Method::RawBatch => "raw_batch100",
        }
    }
}

/// Creates `ports` ports by `method` on a fresh cluster; one row.
fn measure(args: &Args, work: &Path, method: Method, ports: u64) -> anyhow::Result<Row> {
    let cluster = Cluster::start(args, work)?;
    let leader = cluster.wait_formed()?;
    let db = cluster.db_arg();
    let per_txn = match method {
        Method::NbctlSerial | Method::RawSerial => 1,
        Method::NbctlBatch | Method::RawBatch => BATCH,
    };
    let mut lat_us = Vec::new();
    let mut errors = std::collections::BTreeMap::new();
    let mut error_samples = Vec::new();
    let mut done = 0u64;
    let pids = cluster.pids();
    let a = cpu_sample(&pids);
    let started = Instant::now();
    let mut first = 0;
    while first < ports {
        let count = per_txn.min(ports - first);
        let mut cmd = match method {
            Method::NbctlSerial | Method::NbctlBatch => {
                let mut c = Command::new("ovn-nbctl");
                c.args(nbctl_args(&db, first, count));
                c
            }
            Method::RawSerial | Method::RawBatch => {
                let mut c = Command::new("ovsdb-client");
                c.args(["transact", &leader, &raw_txn(first, count)]);
                c
            }
        };
        let t0 = Instant::now();
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .context("run the client")?;
        let us = t0.elapsed().as_micros();
        // ovsdb-client prints per-operation results; an error object means the
        // transaction was aborted.
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && !stdout.contains("\"error\"") {
            done += count;
            lat_us.push(u32::try_from(us).unwrap_or(u32::MAX));
        } else {
            *errors.entry("failed".to_string()).or_insert(0u64) += 1;
            if error_samples.len() < ERROR_SAMPLES_MAX {
                error_samples.push(format!(
                    "{} {}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    stdout.chars().take(200).collect::<String>()
                ));
            }
        }
        first += count;
    }
    let secs = started.elapsed().as_secs_f64();
    let b = cpu_sample(&pids);
    lat_us.sort_unstable();
    let row = Row {
        scenario: format!("ovn {}", method.name()),
        label: method.label().to_string(),
        clients: 1,
        connections: 1,
        ops: lat_us.len() as u64,
        items: done,
        secs,
        lat_us,
        errors,
        error_samples,
        cpu: cpu_between(a, b),
    };
    row.print();
    Ok(row)
}

fn ovn_versions() -> String {
    Command::new("ovn-nbctl")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .take(2)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

fn run(args: Args) -> anyhow::Result<()> {
    if !Path::new(NB_SCHEMA).exists() {
        bail!("{NB_SCHEMA} missing: apt-get install ovn-central");
    }
    let (serial, batch, raw_batch) = if args.quick {
        (50, 500, 500)
    } else {
        (
            args.serial_ports.clamp(1, PORTS_MAX),
            args.batch_ports.clamp(1, PORTS_MAX),
            args.raw_batch_ports.clamp(1, PORTS_MAX),
        )
    };
    let work = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let (date, now) = utc_now();
    let machine = machine();
    let fsync = fsync_probe(&work)?;
    let version = ovn_versions();
    println!("ovn: {version}");
    println!("machine: {machine}");
    println!("fsync probe ({}): {fsync}", work.display());
    println!("one fresh 3-member cluster per row; 1 client process per transaction, serial\n");
    print_header();
    let mut rows = Vec::new();
    for (method, ports) in [
        (Method::NbctlSerial, serial),
        (Method::NbctlBatch, batch),
        (Method::RawSerial, serial),
        (Method::RawBatch, raw_batch),
    ] {
        rows.push(measure(&args, &work, method, ports)?);
    }
    let report = json!({
        "bench": "ovn_load",
        "date": now,
        "machine": machine,
        "fsync_probe": fsync,
        "config": {
            "members": MEMBERS,
            "ovn_version": version,
            "serial_ports": serial,
            "batch_ports": batch,
            "raw_batch_ports": raw_batch,
            "ports_per_batch": BATCH,
            "quick": args.quick,
        },
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
    });
    let out = args.out.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results")
            .join(format!("ovn_load-{date}.json"))
    });
    write_json(&out, &report)
}

fn main() -> anyhow::Result<()> {
    run(Args::parse()).map_err(|e| anyhow!("{e:#}"))
}
