//! Checker benchmarks: Porcupine's etcd corpus (102 Jepsen logs, all checked), and a
//! generated 100,000-operation history over 100 keys with 10 processes per key, and
//! 10,000 operations on a single key with 10 processes (no partitioning to help).

#![allow(missing_docs)] // criterion_group!/criterion_main! generate undocumented items

use std::time::Duration;

use alcor_jepsen_checker::synth::{register_history, SynthConfig};
use alcor_jepsen_checker::{check_events, CheckOptions, Verdict};
use criterion::{criterion_group, criterion_main, Criterion};

#[path = "../tests/common/mod.rs"]
mod common;

fn etcd_corpus(c: &mut Criterion) {
    let dir = common::etcd_corpus_dir();
    let logs: Vec<_> = (0..=102)
        .filter(|&n| n != common::ETCD_SKIPPED)
        .map(|n| common::load_etcd(&dir, n))
        .collect();
    let options = CheckOptions {
        failed_cas_observes: true,
        ..CheckOptions::default()
    };
    c.bench_function("etcd_corpus_102_logs", |b| {
        b.iter(|| {
            let invalid = logs
                .iter()
                .filter(|events| {
                    check_events(events, &options).expect("check").verdict == Verdict::Invalid
                })
                .count();
            assert_eq!(invalid, 102 - common::ETCD_LINEARIZABLE.len());
        })
    });
}

fn generated_100k(c: &mut Criterion) {
    let events = register_history(&SynthConfig {
        keys: 100,
        ops_per_key: 1_000,
        processes_per_key: 10,
        read_percent: 50,
        cas_percent: 30,
        info_percent: 2,
        latency_max: 30,
        seed: 7,
    });
    c.bench_function("register_100k_ops_100_keys_10_procs", |b| {
        b.iter(|| {
            let report = check_events(&events, &CheckOptions::default()).expect("check");
            assert_eq!(report.verdict, Verdict::Valid);
        })
    });
}

fn generated_10k_one_key(c: &mut Criterion) {
    let events = register_history(&SynthConfig {
        keys: 1,
        ops_per_key: 10_000,
        processes_per_key: 10,
        read_percent: 50,
        cas_percent: 30,
        info_percent: 2,
        latency_max: 30,
        seed: 11,
    });
    c.bench_function("register_10k_ops_1_key_10_procs", |b| {
        b.iter(|| {
            let report = check_events(&events, &CheckOptions::default()).expect("check");
            assert_eq!(report.verdict, Verdict::Valid);
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(20));
    targets = etcd_corpus, generated_100k, generated_10k_one_key
}
criterion_main!(benches);
