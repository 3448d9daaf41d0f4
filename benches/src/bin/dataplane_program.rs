//! Times the Linux dataplane of one host (needs root, like the agent): the
//! agent's own plan and reconcile (`alcor-dataplane`) against real kernel
//! objects in a network namespace this binary creates and removes.
//!
//! - **FullSync**: `--ports` ports (default 1,000) bound to the host, in
//!   the project's default group, programmed from an empty kernel: one
//!   namespace, veth pair, addresses and routes per port, the VPC's bridge
//!   and VXLAN device, and the nftables tables.
//! - **An idle pass**: the same plan again (what a reconnect costs).
//! - **Single-port changes**, `--settle-s` after the FullSync (the ports
//!   just brought up flood the bridge with IPv6 router solicitations, MLD
//!   reports and DAD probes for ~12 s): `--changes` ports created and then
//!   deleted one at a time, each followed by the agent's pass (plan of the
//!   whole table, then reconcile); p50 / p99 / max.
//! - **A security-group change touching every port**: a rule added to the
//!   default group that all the ports share, `--rules` times.
//! - **Teardown**: every port deleted in one change (a VPC emptied, a host
//!   drained), one pass (with `--teardown-after-restart`, a fresh
//!   reconciler's full pass); then how long until the kernel holds none
//!   of their links, and the next (idle) pass.
//!
//! Times are from "the agent has the new table" to "the kernel is
//! programmed"; the push from the controller is measured by `push_fanout`.
//!
//! Usage (root): `dataplane_program [--ports 1000] [--changes 50] [--rules 5] [--settle-s 15] [--teardown-after-restart]`

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use alcor_benches::{fill_ports, host_name, port_id, port_spec, vpc_fixture, Driver};
use alcor_state_machine::model::{Direction, EtherType};
use alcor_state_machine::{Command, Id};
use anyhow::{bail, Context};
use clap::Parser;

/// The allocator of the `alcor` binary (the agent), so the figures match it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Set in the child that runs inside the benchmark's namespace.
const INSIDE_ENV: &str = "ALCOR_DATAPLANE_BENCH_INSIDE";

#[derive(Parser, Debug)]
struct Args {
    /// Ports on the host for the FullSync.
    #[arg(long, default_value_t = 1_000)]
    ports: usize,
    /// Single-port creations (each later deleted) timed.
    #[arg(long, default_value_t = 50)]
    changes: usize,
    /// Security-group rules added, one pass each.
    #[arg(long, default_value_t = 5)]
    rules: usize,
    /// Seconds to wait after the FullSync before the single-port changes:
    /// the ports just brought up flood the bridge with IPv6 router
    /// solicitations, MLD reports and DAD probes for ~12 s.
    #[arg(long, default_value_t = 15)]
    settle_s: u64,
    /// The teardown pass is a fresh reconciler's full pass (the agent
    /// restarted while the ports were deleted), not an incremental one.
    #[arg(long)]
    teardown_after_restart: bool,
}

/// The fixture's only host and its underlay address (`vpc_fixture`).
fn host() -> (String, IpAddr) {
    (host_name(0), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let status = Process::new("ip").args(args).status().context("run ip")?;
    if !status.success() {
        bail!("ip {} failed", args.join(" "));
    }
    Ok(())
}

/// Outside: creates the host namespace (with the underlay address on a
/// veth link), runs this binary in it, then removes every namespace the
/// run created, whatever its outcome.
fn outside() -> anyhow::Result<()> {
    let netns = format!("alcbench-{}", std::process::id());
    ip(&["netns", "add", &netns])?;
    let (host_id, underlay) = host();
    let address = format!("{underlay}/24");
    // This kernel has no dummy links: the underlay is one end of a veth
    // pair whose two ends stay in the namespace.
    let setup = ip(&[
        "-n", &netns, "link", "add", "u0", "type", "veth", "peer", "name", "u1",
    ])
    .and_then(|()| ip(&["-n", &netns, "addr", "add", &address, "dev", "u0"]))
    .and_then(|()| ip(&["-n", &netns, "link", "set", "u0", "up"]))
    .and_then(|()| ip(&["-n", &netns, "link", "set", "u1", "up"]))
    .and_then(|()| ip(&["-n", &netns, "link", "set", "lo", "up"]));
    let ran = setup.and_then(|()| {
        let me = std::env::current_exe().context("own path")?;
        let status = Process::new("ip")
            .args(["netns", "exec", &netns])
            .arg(me)
            .args(std::env::args().skip(1))
            .env(INSIDE_ENV, "1")
            .status()
            .context("run inside the namespace")?;
        if !status.success() {
            bail!("the run inside {netns} failed");
        }
        Ok(())
    });
    let prefixes = [
        alcor_dataplane::plan::netns_prefix(&host_id),
        alcor_dataplane::plan::router_netns_prefix(&host_id),
    ];
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if prefixes.iter().any(|p| name.starts_with(p)) {
                let _ = ip(&["netns", "del", &name]);
            }
        }
    }
    let _ = ip(&["netns", "del", &netns]);
    ran
}

/// One agent pass over the host's whole table, as `alcor agent` does it
/// before its ack (plan, reconcile); the digest of what was programmed is
/// hashed when a digest report reads it, so it is not timed.
async fn pass(
    reconciler: &mut alcor_dataplane::Reconciler,
    d: &Driver,
) -> anyhow::Result<(Duration, u64)> {
    let (host_id, underlay) = host();
    // The table is what the agent holds already: not timed.
    let goal = d.state.goal_state(&host_id);
    let started = Instant::now();
    let plan = alcor_dataplane::plan(&goal, &host_id, underlay);
    let outcome = reconciler.reconcile(&plan).await;
    let took = started.elapsed();
    if let Some((port, reason)) = outcome.failed.iter().next() {
        bail!(
            "{} ports not programmed, e.g. {port}: {reason}",
            outcome.failed.len()
        );
    }
    Ok((took, outcome.n_changes))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn inside(args: Args) -> anyhow::Result<()> {
    let (host_id, _) = host();
    let mut d = vpc_fixture(1);
    fill_ports(&mut d, args.ports, 1, 1_000, 1);
    let mut reconciler = alcor_dataplane::Reconciler::new(&host_id).context("netlink")?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before: {}", load.trim());

    let (full, changes) = pass(&mut reconciler, &d).await?;
    println!(
        "fullsync: {} ports programmed in {:.0} ms ({changes} kernel changes, {:.2} ms per port)",
        args.ports,
        ms(full),
        ms(full) / args.ports.max(1) as f64
    );
    let (idle, changes) = pass(&mut reconciler, &d).await?;
    println!("idle pass: {:.1} ms ({changes} kernel changes)", ms(idle));
    if changes != 0 {
        bail!("an unchanged table changed the kernel");
    }

    println!(
        "settling for {} s before the single-port changes",
        args.settle_s
    );
    tokio::time::sleep(Duration::from_secs(args.settle_s)).await;
    let mut times = Vec::new();
    let (mut creates, mut deletes) = (Vec::new(), Vec::new());
    let first = (args.ports + 1) as u128;
    for n in first..first + args.changes as u128 {
        d.must(Command::CreatePorts(vec![port_spec(n, 1, &host_id)]));
        creates.push(pass(&mut reconciler, &d).await?.0);
        d.must(Command::DeletePort {
            id: port_id(n),
            expected_revision: None,
        });
        deletes.push(pass(&mut reconciler, &d).await?.0);
    }
    creates.sort();
    deletes.sort();
    for (what, sorted) in [("create", &creates), ("delete", &deletes)] {
        if !sorted.is_empty() {
            println!(
                "  {what}: p50 {:.1} ms, max {:.1} ms",
                ms(quantile(sorted, 0.5)),
                ms(quantile(sorted, 1.0)),
            );
        }
    }
    times.extend(creates);
    times.extend(deletes);
    times.sort();
    if !times.is_empty() {
        println!(
            "single-port change (create or delete, {} passes over {} ports): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            times.len(),
            args.ports,
            ms(quantile(&times, 0.5)),
            ms(quantile(&times, 0.99)),
            ms(quantile(&times, 1.0)),
        );
    }

    let group = d
        .state
        .default_security_group(alcor_benches::PROJECT)
        .context("the default group")?;
    let mut rule_times = Vec::new();
    for r in 0..args.rules {
        d.must(Command::CreateSecurityGroupRule {
            id: Id(0x5e00 + r as u128),
            project_id: alcor_benches::PROJECT.to_string(),
            security_group_id: group,
            direction: Direction::Ingress,
            ethertype: EtherType::Ipv4,
            protocol: Some(6),
            port_range_min: Some(8000 + r as u16),
            port_range_max: Some(8000 + r as u16),
            remote_ip_prefix: Some("192.0.2.0/24".parse().context("prefix")?),
            remote_group_id: None,
        });
        rule_times.push(pass(&mut reconciler, &d).await?.0);
    }
    rule_times.sort();
    if !rule_times.is_empty() {
        println!(
            "security-group rule added (every one of {} ports filtered by it, {} passes): p50 {:.1} ms, max {:.1} ms",
            args.ports,
            rule_times.len(),
            ms(quantile(&rule_times, 0.5)),
            ms(quantile(&rule_times, 1.0)),
        );
    }

    for n in 1..=args.ports as u128 {
        d.must(Command::DeletePort {
            id: port_id(n),
            expected_revision: None,
        });
    }
    if args.teardown_after_restart {
        reconciler = alcor_dataplane::Reconciler::new(&host_id).context("netlink")?;
    }
    let (teardown, changes) = pass(&mut reconciler, &d).await?;
    let started = Instant::now();
    while port_links()? > 0 {
        if started.elapsed() > TEARDOWN_WAIT_MAX {
            bail!("port links left {TEARDOWN_WAIT_MAX:?} after the teardown pass");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gone = started.elapsed();
    let (next, _) = pass(&mut reconciler, &d).await?;
    println!(
        "teardown: {} ports deleted in one {} pass: {:.0} ms ({changes} kernel changes); \
         their links gone {:.0} ms after it; the next pass {:.1} ms",
        args.ports,
        if args.teardown_after_restart {
            "full (restarted agent)"
        } else {
            "incremental"
        },
        ms(teardown),
        ms(gone),
        ms(next),
    );
    Ok(())
}

/// How long the teardown row waits for the kernel to delete the ports'
/// links.
const TEARDOWN_WAIT_MAX: Duration = Duration::from_secs(120);

/// Port host ends in this namespace (`ip -o link`, polled every 20 ms).
fn port_links() -> anyhow::Result<usize> {
    let output = Process::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .context("run ip")?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .filter(|name| name.starts_with(alcor_dataplane::plan::VETH_PREFIX))
        .count())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if std::env::var_os(INSIDE_ENV).is_none() {
        return outside();
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(inside(args))
}
