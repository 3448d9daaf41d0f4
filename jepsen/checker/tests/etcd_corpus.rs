//! Porcupine's published etcd corpus (102 Jepsen logs shipped in `porcupine-rs`'s
//! `test_data/`): our verdicts must equal the published ones.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod common;

use alcor_jepsen_checker::{check_events, CheckOptions, Detail, Verdict};

fn verdicts(options: &CheckOptions) -> Vec<(u32, Verdict, Detail)> {
    let dir = common::etcd_corpus_dir();
    (0..=102)
        .filter(|&n| n != common::ETCD_SKIPPED)
        .map(|n| {
            let report = check_events(&common::load_etcd(&dir, n), options).expect("check");
            assert_eq!(report.keys.len(), 1);
            (n, report.verdict, report.keys[0].detail.clone())
        })
        .collect()
}

fn expected(n: u32) -> Verdict {
    if common::ETCD_LINEARIZABLE.contains(&n) {
        Verdict::Valid
    } else {
        Verdict::Invalid
    }
}

#[test]
fn etcd_corpus_verdicts_match_porcupines_published_ones() {
    let options = CheckOptions {
        failed_cas_observes: true, // Porcupine's etcd model: a failed cas saw another value
        ..CheckOptions::default()
    };
    let got = verdicts(&options);
    assert_eq!(got.len(), 102);
    for (n, verdict, detail) in &got {
        assert_eq!(*verdict, expected(*n), "etcd_{n:03}: {detail:?}");
    }
}

#[test]
fn etcd_corpus_search_alone_gives_the_same_verdicts_as_with_prechecks() {
    let options = CheckOptions {
        failed_cas_observes: true,
        prechecks: false,
        ..CheckOptions::default()
    };
    for (n, verdict, detail) in verdicts(&options) {
        assert_eq!(verdict, expected(n), "etcd_{n:03}: {detail:?}");
        if verdict == Verdict::Invalid {
            assert!(
                matches!(detail, Detail::NotLinearizable(_)),
                "etcd_{n:03}: {detail:?}"
            );
        }
    }
}

#[test]
fn etcd_corpus_invalid_logs_report_a_failure_window() {
    let options = CheckOptions {
        failed_cas_observes: true,
        prechecks: false,
        ..CheckOptions::default()
    };
    let (_, _, detail) = verdicts(&options)
        .into_iter()
        .find(|(n, _, _)| *n == 0)
        .expect("etcd_000");
    let Detail::NotLinearizable(window) = detail else {
        panic!("etcd_000 should fail the search: {detail:?}")
    };
    assert!(window.prefix_len > 0);
    assert!(!window.concurrent.is_empty());
    assert!(window.concurrent.contains(&window.blocked), "{window:?}");
}

#[test]
fn etcd_corpus_dropping_failed_cas_never_turns_a_linearizable_log_invalid() {
    // Dropping observations can only remove constraints.
    for (n, verdict, detail) in verdicts(&CheckOptions::default()) {
        if expected(n) == Verdict::Valid {
            assert_eq!(verdict, Verdict::Valid, "etcd_{n:03}: {detail:?}");
        }
        assert_ne!(verdict, Verdict::Unknown, "etcd_{n:03}");
    }
}
