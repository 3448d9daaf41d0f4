//! "List 1,000 ports filtered by host out of 1,000,000", at the state-machine
//! level: loads N ports (default 1,000,000) spread over H hosts (default
//! 1,000, so 1,000 ports per host) into one state, then times reading one
//! host's ports from the host index (what `ListPorts { host, limit: 1000 }`
//! runs inside the gateway's read, before protobuf rendering), against a full
//! scan for comparison.
//!
//! Usage: `cargo run --release -p alcor-benches --bin list_by_host -- [n_ports] [n_hosts]`

use std::time::{Duration, Instant};

use alcor_benches::{fill_ports, host_name, vpc_fixture};
use alcor_state_machine::model::Port;

/// Timed list calls per variant.
const ROUNDS: usize = 200;
/// Page size, the gateway's `LIST_PAGE_MAX`.
const PAGE: usize = 1_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what}: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms ({} rounds)",
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        samples.len()
    );
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
    let started = Instant::now();
    fill_ports(&mut d, n_ports, n_hosts, 1_000, 1_000_000);
    println!(
        "loaded {n_ports} ports on {n_hosts} hosts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let state = &d.state;
    let mut indexed = Vec::with_capacity(ROUNDS);
    let mut total = 0usize;
    for round in 0..ROUNDS {
        let host = host_name((round * 7919) % n_hosts);
        let t = Instant::now();
        let page: Vec<Port> = state.ports_of_host(&host).take(PAGE).cloned().collect();
        indexed.push(t.elapsed());
        total += page.len();
    }
    println!("ports per listed host: {}", total / ROUNDS);
    report("host index, 1 page (clone of each port)", indexed);
    let mut scanned = Vec::new();
    for round in 0..5 {
        let host = host_name((round * 7919) % n_hosts);
        let t = Instant::now();
        let page: Vec<Port> = state
            .ports()
            .filter(|p| p.binding_host.as_deref() == Some(host.as_str()))
            .take(PAGE)
            .cloned()
            .collect();
        scanned.push(t.elapsed());
        assert!(!page.is_empty());
    }
    report("full scan for comparison", scanned);
}
