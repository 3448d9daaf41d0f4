//! Runs many seeded fault schedules against in-process clusters and fails
//! with the replay command of every failing seed.
//!
//! `CHAOS_SEED=<n>` runs one seed; `CHAOS_SEEDS=<count>` (default 100) and
//! `CHAOS_SEED_BASE=<n>` (default 1) choose a range; `CHAOS_PARALLEL`
//! (default 4) clusters run at once; `CHAOS_SECS` (default 2) is the fault
//! phase of each run.

use std::time::Duration;

use alcor_chaos_tests::{run_seed, RunConfig, RunError, RunReport};
use alcor_raft_core::Mutation;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_fault_runs_lose_no_acknowledged_write_and_converge() {
    let seeds: Vec<u64> = match std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(seed) => vec![seed],
        None => {
            let base = env_u64("CHAOS_SEED_BASE", 1);
            (base..base + env_u64("CHAOS_SEEDS", 100)).collect()
        }
    };
    let config = RunConfig {
        nodes: env_u64("CHAOS_NODES", 3),
        duration: Duration::from_secs(env_u64("CHAOS_SECS", 2)),
        clients: 4,
        mutation: None,
    };
    let parallel = env_u64("CHAOS_PARALLEL", 4) as usize;
    let mut reports: Vec<RunReport> = Vec::new();
    let mut failures = Vec::new();
    for chunk in seeds.chunks(parallel.max(1)) {
        let mut runs = tokio::task::JoinSet::new();
        for seed in chunk {
            let (seed, config) = (*seed, config.clone());
            runs.spawn(async move { (seed, run_seed(seed, &config).await) });
        }
        while let Some(done) = runs.join_next().await {
            match done {
                Ok((_, Ok(report))) => reports.push(report),
                Ok((seed, Err(e))) => failures.push(format!(
                    "seed {seed} failed: {e}\n  replay: CHAOS_SEED={seed} CHAOS_NODES={} \
                     CHAOS_SECS={} cargo test -p alcor-chaos-tests --test seeds",
                    config.nodes,
                    config.duration.as_secs()
                )),
                Err(e) => failures.push(format!("a run panicked: {e}")),
            }
        }
    }
    for line in &failures {
        eprintln!("{line}");
    }
    assert!(failures.is_empty(), "{} seed(s) failed", failures.len());
    let acked: usize = reports.iter().map(|r| r.adds_ok).sum();
    let faults: usize = reports.iter().map(|r| r.faults).sum();
    let crashes: usize = reports.iter().map(|r| r.crashes).sum();
    let reads: usize = reports.iter().map(|r| r.reads_ok).sum();
    let info: usize = reports.iter().map(|r| r.adds_info).sum();
    eprintln!(
        "{} seeds passed: {acked} acknowledged adds, {info} indeterminate, {reads} reads, \
         {faults} faults ({crashes} crash-restarts)",
        reports.len()
    );
    // The runs must have exercised something: writes got through and faults fired.
    assert!(acked > 0 && faults > 0 && reads > 0);
}

/// Seeds tried per mutation before declaring it missed.
const MUTATION_SEEDS_MAX: u64 = 16;

/// Runs seeds with `mutation` until one reports a safety violation.
async fn first_catching_seed(mutation: Mutation) -> Option<u64> {
    let config = RunConfig {
        nodes: 3,
        duration: Duration::from_secs(2),
        clients: 4,
        mutation: Some(mutation),
    };
    for seeds in (1..=MUTATION_SEEDS_MAX).collect::<Vec<_>>().chunks(4) {
        let mut runs = tokio::task::JoinSet::new();
        for seed in seeds {
            let (seed, config) = (*seed, config.clone());
            runs.spawn(async move { (seed, run_seed(seed, &config).await) });
        }
        let mut caught = None;
        while let Some(done) = runs.join_next().await {
            if let Ok((seed, Err(RunError::Violation(v)))) = done {
                eprintln!("{mutation:?} caught by seed {seed}: {v}");
                caught = caught.or(Some(seed));
            }
        }
        if caught.is_some() {
            return caught;
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_stale_reads_is_caught() {
    let caught = first_catching_seed(Mutation::StaleReads).await;
    assert!(
        caught.is_some(),
        "reads without ReadIndex passed {MUTATION_SEEDS_MAX} seeds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_read_joins_round_in_flight_is_caught() {
    let caught = first_catching_seed(Mutation::ReadJoinsRoundInFlight).await;
    assert!(
        caught.is_some(),
        "reads joining the ReadIndex round in flight passed {MUTATION_SEEDS_MAX} seeds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_ack_before_commit_is_caught() {
    let caught = first_catching_seed(Mutation::AckBeforeCommit).await;
    assert!(
        caught.is_some(),
        "acks before commit passed {MUTATION_SEEDS_MAX} seeds"
    );
}
