//! Loads N ports (default 1,000,000) into one state machine and reports memory per
//! port, indexes included: jemalloc's allocated bytes (what the state holds, in
//! jemalloc's size classes, as in the `alcor` binary, which uses jemalloc too) and
//! the resident set, plus the apply rate of 1,000-port batches and the slowest
//! of them; then takes a snapshot and times `State::restore` of it (what a
//! restarting member does before it replays its log tail), with the restored
//! state's heap per port.
//!
//! Usage: `cargo run --release -p alcor-benches --bin sm_memory -- [n_ports] [n_hosts]`

use alcor_benches::{fill_ports, vpc_fixture};
use std::time::Instant;

/// The allocator of the `alcor` binary, so the figures match a member's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Bytes allocated and not yet freed, per jemalloc (refreshed first).
fn allocated_bytes() -> usize {
    if tikv_jemalloc_ctl::epoch::advance().is_err() {
        return 0;
    }
    tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0)
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
    let heap_before = allocated_bytes();
    let started = Instant::now();
    let (slowest_at, slowest) = fill_ports(&mut d, n_ports, n_hosts, 1_000, 1_000_000);
    let elapsed = started.elapsed();
    let after = rss_kib();
    let heap_after = allocated_bytes();
    let per_port = (after.saturating_sub(before) * 1024) as f64 / n_ports as f64;
    let heap_per_port = heap_after.saturating_sub(heap_before) as f64 / n_ports as f64;
    println!("ports: {n_ports}  hosts: {n_hosts}");
    println!(
        "apply: {:.0} ports/s in 1,000-port batches ({:.2} s)",
        n_ports as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "slowest batch: {:.1} ms, at {slowest_at} ports (what a member's apply holds readers off)",
        slowest.as_secs_f64() * 1e3
    );
    println!("heap: {heap_per_port:.0} bytes allocated per port (jemalloc stats.allocated)");
    println!("rss: {before} KiB before, {after} KiB after: {per_port:.0} bytes per port (indexes included)");
    assert_eq!(d.state.port_count(), n_ports);

    let started = Instant::now();
    let frozen = d.state.freeze();
    let freeze_s = started.elapsed().as_secs_f64();
    drop(frozen);
    let started = Instant::now();
    let bytes = d.state.snapshot();
    let encode_s = started.elapsed().as_secs_f64();
    let digest = d.state.digest();
    drop(d);
    let heap_before = allocated_bytes();
    let started = Instant::now();
    let restored = match alcor_state_machine::State::restore(&bytes) {
        Ok(state) => state,
        Err(e) => panic!("restore of a fresh snapshot failed: {e}"),
    };
    let restore_s = started.elapsed().as_secs_f64();
    let heap_after = allocated_bytes();
    println!(
        "snapshot: {} bytes, frozen in {freeze_s:.3} s (what a build holds applies off), \
         encoded in {encode_s:.2} s, restored in {restore_s:.2} s",
        bytes.len()
    );
    println!(
        "restored heap: {:.0} bytes allocated per port",
        heap_after.saturating_sub(heap_before) as f64 / n_ports as f64
    );
    assert_eq!(restored.port_count(), n_ports);
    assert_eq!(
        restored.digest(),
        digest,
        "restore gives back the same state"
    );
}
