//! Loads N ports (default 1,000,000) into one state machine and reports resident
//! memory per port, indexes included, plus the apply rate of 1,000-port batches.
//!
//! Usage: `cargo run --release -p alcor-benches --bin sm_memory -- [n_ports] [n_hosts]`

use alcor_benches::{fill_ports, vpc_fixture};
use std::time::Instant;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n_ports: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let n_hosts: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000);
    let mut d = vpc_fixture(n_hosts);
    let before = rss_kib();
    let started = Instant::now();
    fill_ports(&mut d, n_ports, n_hosts, 1_000, 1_000_000);
    let elapsed = started.elapsed();
    let after = rss_kib();
    let per_port = (after.saturating_sub(before) * 1024) as f64 / n_ports as f64;
    println!("ports: {n_ports}  hosts: {n_hosts}");
    println!(
        "apply: {:.0} ports/s in 1,000-port batches ({:.2} s)",
        n_ports as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!("rss: {before} KiB before, {after} KiB after: {per_port:.0} bytes per port (indexes included)");
    assert_eq!(d.state.port_count(), n_ports);
}
