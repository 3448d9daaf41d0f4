//! Hand-made register histories: classic anomalies must be rejected (by the pre-checks and
//! by the search alone), tricky-but-linearizable ones accepted.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod common;

use std::time::Duration;

use alcor_jepsen_checker::precheck::Anomaly;
use alcor_jepsen_checker::{check_events, CheckOptions, Detail, Event, EventType, Report, Verdict};
use common::Builder;

fn check(events: &[Event], prechecks: bool) -> Report {
    let options = CheckOptions {
        prechecks,
        ..CheckOptions::default()
    };
    check_events(events, &options).expect("well-formed history")
}

/// Both with and without pre-checks.
fn verdicts(events: &[Event]) -> (Verdict, Verdict) {
    (check(events, true).verdict, check(events, false).verdict)
}

fn anomalies(events: &[Event]) -> Vec<Anomaly> {
    match &check(events, true).keys[0].detail {
        Detail::Anomalies(pre) => pre.anomalies.clone(),
        other => panic!("expected pre-check anomalies, got {other:?}"),
    }
}

#[test]
fn stale_read_after_a_newer_write_completed_is_rejected() {
    let h = Builder::default()
        .write(1, "k", 1, 0, 10)
        .write(2, "k", 2, 20, 30)
        .read(3, "k", Some(1), 40, 50)
        .build();
    assert_eq!(verdicts(&h), (Verdict::Invalid, Verdict::Invalid));
    assert!(
        matches!(
            anomalies(&h)[0],
            Anomaly::StaleRead {
                read: 4,
                after: 2,
                ..
            }
        ),
        "{:?}",
        anomalies(&h)
    );
}

#[test]
fn acknowledged_write_lost_to_a_later_empty_read_is_rejected() {
    let h = Builder::default()
        .write(1, "k", 1, 0, 10)
        .read(2, "k", None, 20, 30)
        .build();
    assert_eq!(verdicts(&h), (Verdict::Invalid, Verdict::Invalid));
    assert!(matches!(
        anomalies(&h)[0],
        Anomaly::StaleRead { read: 2, .. }
    ));
}

#[test]
fn cas_succeeding_on_a_stale_value_is_rejected() {
    let h = Builder::default()
        .write(1, "k", 1, 0, 10)
        .write(2, "k", 2, 20, 30)
        .cas(3, "k", 1, 3, EventType::Ok, 40, 50)
        .build();
    assert_eq!(verdicts(&h), (Verdict::Invalid, Verdict::Invalid));
}

#[test]
fn read_from_the_future_is_rejected() {
    let h = Builder::default()
        .read(1, "k", Some(1), 0, 10)
        .write(2, "k", 1, 20, 30)
        .build();
    assert_eq!(verdicts(&h), (Verdict::Invalid, Verdict::Invalid));
    assert!(matches!(
        anomalies(&h)[0],
        Anomaly::FutureRead {
            read: 0,
            write: 2,
            ..
        }
    ));
}

#[test]
fn read_of_a_value_nobody_wrote_is_rejected() {
    let h = Builder::default()
        .write(1, "k", 1, 0, 10)
        .op(2, "write", "k", 7.into(), 7.into(), EventType::Fail, 0, 10)
        .read(3, "k", Some(7), 20, 30)
        .build();
    assert_eq!(verdicts(&h), (Verdict::Invalid, Verdict::Invalid));
    assert!(matches!(
        anomalies(&h)[0],
        Anomaly::PhantomRead { read: 4, .. }
    ));
}

#[test]
fn two_concurrent_writes_read_in_both_orders_after_they_completed_is_rejected() {
    // Not provable by the pre-checks (the writes are concurrent): the search must do it.
    let h = Builder::default()
        .write(1, "k", 1, 0, 100)
        .write(2, "k", 2, 0, 100)
        .read(3, "k", Some(1), 110, 120)
        .read(3, "k", Some(2), 130, 140)
        .build();
    assert_eq!(verdicts(&h), (Verdict::Invalid, Verdict::Invalid));
    assert!(matches!(
        check(&h, true).keys[0].detail,
        Detail::NotLinearizable(_)
    ));
}

#[test]
fn value_flapping_between_two_concurrent_writes_is_rejected() {
    let h = Builder::default()
        .write(1, "k", 1, 0, 100)
        .write(2, "k", 2, 0, 100)
        .read(3, "k", Some(1), 10, 20)
        .read(3, "k", Some(2), 30, 40)
        .read(3, "k", Some(1), 50, 60)
        .build();
    assert_eq!(verdicts(&h), (Verdict::Invalid, Verdict::Invalid));
}

#[test]
fn failure_window_names_the_blocked_read_and_the_prefix_before_it() {
    let h = Builder::default()
        .write(1, "k", 1, 0, 10)
        .write(2, "k", 2, 20, 30)
        .read(3, "k", Some(1), 40, 50)
        .build();
    let report = check(&h, false);
    let Detail::NotLinearizable(w) = &report.keys[0].detail else {
        panic!("{:?}", report.keys[0].detail)
    };
    assert_eq!(w.prefix_len, 2);
    assert_eq!(w.state, "2");
    assert!(
        w.blocked.starts_with("#4 ") && w.blocked.contains("read -> 1"),
        "{w:?}"
    );
    let text = report.to_string();
    assert!(
        text.contains("INVALID") && text.contains("cannot place: #4"),
        "{text}"
    );
}

#[test]
fn overlapping_operations_linearized_out_of_invocation_order_are_accepted() {
    let h = Builder::default()
        .write(1, "k", 1, 0, 100)
        .write(2, "k", 2, 10, 50)
        .read(3, "k", Some(2), 20, 30)
        .read(3, "k", Some(1), 60, 70)
        .cas(4, "k", 1, 3, EventType::Ok, 65, 200)
        .read(3, "k", Some(3), 210, 220)
        .build();
    assert_eq!(verdicts(&h), (Verdict::Valid, Verdict::Valid));
}

#[test]
fn indeterminate_write_taking_effect_long_after_its_invocation_is_accepted() {
    let mut b = Builder::default();
    b.write(1, "k", 1, 0, 10);
    b.push(2, EventType::Invoke, "write", "k", 2.into(), 20);
    b.push(2, EventType::Info, "write", "k", 2.into(), 25);
    b.read(3, "k", Some(1), 30, 40)
        .read(3, "k", Some(1), 500, 510)
        .read(3, "k", Some(2), 1000, 1010);
    assert_eq!(verdicts(&b.build()), (Verdict::Valid, Verdict::Valid));
}

#[test]
fn indeterminate_write_that_never_took_effect_is_accepted() {
    let mut b = Builder::default();
    b.write(1, "k", 1, 0, 10);
    b.push(2, EventType::Invoke, "write", "k", 2.into(), 20); // never completes
    b.read(3, "k", Some(1), 30, 40)
        .read(3, "k", Some(1), 1000, 1010);
    assert_eq!(verdicts(&b.build()), (Verdict::Valid, Verdict::Valid));
}

#[test]
fn indeterminate_cas_may_apply_late_but_not_before_its_invocation() {
    let mut late = Builder::default();
    late.write(1, "k", 1, 0, 10);
    late.push(
        2,
        EventType::Invoke,
        "cas",
        "k",
        serde_json::json!([1, 5]),
        20,
    );
    late.push(2, EventType::Info, "cas", "k", serde_json::Value::Null, 30);
    late.read(3, "k", Some(1), 40, 50)
        .read(3, "k", Some(5), 60, 70);
    assert_eq!(verdicts(&late.build()), (Verdict::Valid, Verdict::Valid));

    let mut early = Builder::default();
    early.write(1, "k", 1, 0, 10).read(3, "k", Some(5), 12, 15);
    early.push(
        2,
        EventType::Invoke,
        "cas",
        "k",
        serde_json::json!([1, 5]),
        20,
    );
    assert_eq!(
        verdicts(&early.build()),
        (Verdict::Invalid, Verdict::Invalid)
    );
}

#[test]
fn failed_and_indeterminate_reads_are_ignored() {
    let mut b = Builder::default();
    b.write(1, "k", 1, 0, 10);
    b.op(
        2,
        "read",
        "k",
        serde_json::Value::Null,
        9.into(),
        EventType::Fail,
        20,
        30,
    );
    b.op(
        3,
        "read",
        "k",
        serde_json::Value::Null,
        8.into(),
        EventType::Info,
        20,
        30,
    );
    assert_eq!(verdicts(&b.build()), (Verdict::Valid, Verdict::Valid));
}

#[test]
fn operations_whose_intervals_touch_count_as_concurrent() {
    let h = Builder::default()
        .read(1, "k", Some(1), 0, 10)
        .write(2, "k", 1, 10, 20)
        .build();
    assert_eq!(verdicts(&h), (Verdict::Valid, Verdict::Valid));
}

#[test]
fn failed_cas_is_an_observation_only_when_asked() {
    // A failed cas(1, 3) while the value is provably 1: impossible if failures are trusted.
    let h = Builder::default()
        .write(1, "k", 1, 0, 10)
        .cas(2, "k", 1, 3, EventType::Fail, 20, 30)
        .read(3, "k", Some(1), 40, 50)
        .build();
    assert_eq!(check(&h, true).verdict, Verdict::Valid);
    let trusted = CheckOptions {
        failed_cas_observes: true,
        ..CheckOptions::default()
    };
    assert_eq!(
        check_events(&h, &trusted).unwrap().verdict,
        Verdict::Invalid
    );
}

#[test]
fn keys_are_checked_independently() {
    let h = Builder::default()
        .write(1, "a", 1, 0, 10)
        .read(2, "a", Some(1), 20, 30)
        .write(3, "b", 1, 0, 10)
        .read(4, "b", None, 20, 30)
        .build();
    let report = check(&h, true);
    let by_key: Vec<(&str, Verdict)> = report
        .keys
        .iter()
        .map(|k| (k.key.as_str(), k.verdict))
        .collect();
    assert_eq!(by_key, vec![("a", Verdict::Valid), ("b", Verdict::Invalid)]);
    assert_eq!(report.verdict, Verdict::Invalid);
}

/// 14 fully concurrent writes, then two reads that disagree: exhaustive search needed.
pub fn hard_invalid_history() -> Vec<Event> {
    let mut b = Builder::default();
    for p in 0..14 {
        b.write(p, "k", p as i64 + 1, 0, 100);
    }
    b.read(100, "k", Some(1), 110, 120)
        .read(100, "k", Some(2), 130, 140);
    b.build()
}

#[test]
fn deadline_turns_an_unfinished_search_into_unknown() {
    let options = CheckOptions {
        deadline: Some(Duration::ZERO),
        prechecks: false,
        ..CheckOptions::default()
    };
    let report = check_events(&hard_invalid_history(), &options).unwrap();
    assert_eq!(report.verdict, Verdict::Unknown);
    assert!(
        matches!(&report.keys[0].detail, Detail::GaveUp { reason, .. } if reason == "deadline")
    );
    // Given time, the same history is proven invalid.
    assert_eq!(
        check(&hard_invalid_history(), false).verdict,
        Verdict::Invalid
    );
}

#[test]
fn malformed_register_operations_are_typed_errors() {
    let h = Builder::default()
        .op(1, "cas", "k", 5.into(), 5.into(), EventType::Ok, 0, 1)
        .build();
    let err = check_events(&h, &CheckOptions::default()).unwrap_err();
    assert!(err.to_string().contains("[expected, new]"), "{err}");
    let h = Builder::default()
        .op(1, "delete", "k", 5.into(), 5.into(), EventType::Ok, 0, 1)
        .build();
    assert!(check_events(&h, &CheckOptions::default()).is_err());
}

/// A partition's worth of timed-out writes on one key: 40 indeterminate
/// writes nobody ever read, interleaved with reads of acknowledged values.
fn key_with_many_unobserved_indeterminate_writes(stale_read_at_end: bool) -> Vec<Event> {
    let mut b = Builder::default();
    b.write(1, "k", 1, 0, 10);
    for i in 0..40u64 {
        let p = 100 + i;
        b.push(
            p,
            EventType::Invoke,
            "write",
            "k",
            (1_000 + i).into(),
            20 + i,
        );
        b.push(
            p,
            EventType::Info,
            "write",
            "k",
            (1_000 + i).into(),
            5_000 + i,
        );
    }
    b.read(2, "k", Some(1), 100, 110)
        .write(3, "k", 2, 200, 210)
        .read(2, "k", Some(2), 300, 310);
    if stale_read_at_end {
        // 1 was overwritten by 2 before this read began: not linearizable,
        // whatever the indeterminate writes did.
        b.read(4, "k", Some(1), 6_000, 6_010);
    } else {
        b.read(4, "k", Some(2), 6_000, 6_010);
    }
    b.build()
}

#[test]
fn many_unobserved_indeterminate_writes_do_not_exhaust_the_search_deadline() {
    let options = CheckOptions {
        prechecks: false,
        deadline: Some(Duration::from_secs(5)),
        ..CheckOptions::default()
    };
    let report = check_events(
        &key_with_many_unobserved_indeterminate_writes(false),
        &options,
    )
    .expect("well-formed history");
    assert_eq!(report.verdict, Verdict::Valid, "{report}");
}

#[test]
fn pruning_unobserved_indeterminate_writes_never_hides_a_stale_read() {
    let options = CheckOptions {
        prechecks: false,
        deadline: Some(Duration::from_secs(5)),
        ..CheckOptions::default()
    };
    let report = check_events(
        &key_with_many_unobserved_indeterminate_writes(true),
        &options,
    )
    .expect("well-formed history");
    // Invalid, or unknown if the full search ran out of time; never valid.
    assert_ne!(report.verdict, Verdict::Valid, "{report}");
}
