//! The set checker (acknowledged adds present, nothing unexpected), the unique-allocation
//! checker, and the grow-only set model driven through the search.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod common;

use alcor_jepsen_checker::model::{Entry, SetModel};
use alcor_jepsen_checker::set::SetProblem;
use alcor_jepsen_checker::wgl::{search, Limits, Outcome};
use alcor_jepsen_checker::{check_events, CheckOptions, Detail, Event, EventType, Report, Verdict};
use common::Builder;
use serde_json::json;

fn check(events: &[Event]) -> Report {
    check_events(events, &CheckOptions::default()).expect("well-formed history")
}

fn set_problems(report: &Report) -> Vec<SetProblem> {
    match &report.keys[0].detail {
        Detail::Set(s) => s.problems.clone(),
        other => panic!("not a set report: {other:?}"),
    }
}

fn add(b: &mut Builder, p: u64, e: i64, kind: EventType, call: u64, ret: u64) {
    b.op(p, "add", "s", e.into(), e.into(), kind, call, ret);
}

fn read(b: &mut Builder, p: u64, items: serde_json::Value, call: u64, ret: u64) {
    b.op(
        p,
        "read",
        "s",
        serde_json::Value::Null,
        items,
        EventType::Ok,
        call,
        ret,
    );
}

#[test]
fn set_with_every_acknowledged_add_and_some_indeterminate_ones_is_valid() {
    let mut b = Builder::default();
    add(&mut b, 1, 1, EventType::Ok, 0, 10);
    add(&mut b, 2, 2, EventType::Info, 0, 10);
    add(&mut b, 3, 3, EventType::Info, 0, 10);
    add(&mut b, 4, 4, EventType::Fail, 0, 10);
    read(&mut b, 5, json!([1, 2]), 20, 30);
    read(&mut b, 6, json!([2, 1]), 20, 30);
    let report = check(&b.build());
    assert_eq!(report.verdict, Verdict::Valid, "{report}");
    let Detail::Set(s) = &report.keys[0].detail else {
        unreachable!()
    };
    assert_eq!(
        (
            s.acknowledged,
            s.indeterminate,
            s.indeterminate_present,
            s.final_reads
        ),
        (1, 2, 1, 2)
    );
}

#[test]
fn set_missing_an_acknowledged_add_in_the_final_read_is_invalid() {
    let mut b = Builder::default();
    add(&mut b, 1, 1, EventType::Ok, 0, 10);
    add(&mut b, 2, 2, EventType::Ok, 0, 10);
    read(&mut b, 3, json!([1]), 20, 30);
    let report = check(&b.build());
    assert_eq!(report.verdict, Verdict::Invalid);
    assert_eq!(
        set_problems(&report),
        vec![SetProblem::Lost {
            read: 4,
            element: "2".into(),
            because: 2
        }]
    );
}

#[test]
fn set_with_an_element_only_a_failed_add_produced_is_invalid() {
    let mut b = Builder::default();
    add(&mut b, 1, 1, EventType::Ok, 0, 10);
    add(&mut b, 2, 2, EventType::Fail, 0, 10);
    read(&mut b, 3, json!([1, 2, 9]), 20, 30);
    let report = check(&b.build());
    let unexpected: Vec<String> = set_problems(&report)
        .into_iter()
        .filter_map(|p| match p {
            SetProblem::Unexpected { element, .. } => Some(element),
            _ => None,
        })
        .collect();
    assert_eq!(unexpected, vec!["2".to_owned(), "9".to_owned()]);
}

#[test]
fn set_element_vanishing_after_an_earlier_read_saw_it_is_invalid() {
    let mut b = Builder::default();
    add(&mut b, 1, 1, EventType::Info, 0, 10);
    read(&mut b, 2, json!([1]), 20, 30);
    read(&mut b, 2, json!([]), 40, 50);
    let report = check(&b.build());
    assert!(matches!(
        set_problems(&report)[..],
        [SetProblem::Lost {
            read: 4,
            because: 2,
            ..
        }]
    ));
}

#[test]
fn set_read_concurrent_with_an_add_may_miss_it_but_a_later_one_may_not() {
    let mut b = Builder::default();
    add(&mut b, 1, 1, EventType::Ok, 0, 30);
    read(&mut b, 2, json!([]), 10, 20);
    read(&mut b, 3, json!([1]), 40, 50);
    assert_eq!(check(&b.build()).verdict, Verdict::Valid);
}

#[test]
fn set_without_a_read_after_the_last_add_is_unknown() {
    let mut b = Builder::default();
    add(&mut b, 1, 1, EventType::Ok, 0, 30);
    read(&mut b, 2, json!([]), 10, 20);
    assert_eq!(check(&b.build()).verdict, Verdict::Unknown);
}

#[test]
fn set_read_listing_an_element_twice_is_invalid() {
    let mut b = Builder::default();
    add(&mut b, 1, 1, EventType::Ok, 0, 10);
    read(&mut b, 2, json!([1, 1]), 20, 30);
    assert!(matches!(
        set_problems(&check(&b.build()))[..],
        [SetProblem::Duplicate { .. }]
    ));
}

fn allocate(b: &mut Builder, p: u64, out: serde_json::Value, kind: EventType) {
    b.op(
        p,
        "allocate",
        "pool",
        serde_json::Value::Null,
        out,
        kind,
        p * 10,
        p * 10 + 5,
    );
}

#[test]
fn allocations_with_distinct_values_per_field_are_valid() {
    let mut b = Builder::default();
    allocate(
        &mut b,
        1,
        json!({"ip": "10.0.0.2", "mac": "aa"}),
        EventType::Ok,
    );
    allocate(
        &mut b,
        2,
        json!({"ip": "10.0.0.3", "mac": "bb"}),
        EventType::Ok,
    );
    allocate(
        &mut b,
        3,
        json!({"ip": "10.0.0.2", "mac": "aa"}),
        EventType::Fail,
    );
    let report = check(&b.build());
    assert_eq!(report.verdict, Verdict::Valid, "{report}");
}

#[test]
fn two_ok_allocations_sharing_a_value_are_invalid() {
    let mut b = Builder::default();
    allocate(
        &mut b,
        1,
        json!({"ip": "10.0.0.2", "mac": "aa"}),
        EventType::Ok,
    );
    allocate(
        &mut b,
        2,
        json!({"ip": "10.0.0.3", "mac": "aa"}),
        EventType::Ok,
    );
    allocate(&mut b, 3, json!("scalar"), EventType::Ok);
    allocate(&mut b, 4, json!("scalar"), EventType::Ok);
    let report = check(&b.build());
    assert_eq!(report.verdict, Verdict::Invalid);
    let Detail::Unique(u) = &report.keys[0].detail else {
        unreachable!()
    };
    let dups: Vec<(&str, u64, u64)> = u
        .duplicates
        .iter()
        .map(|d| (d.field.as_str(), d.first, d.again))
        .collect();
    assert_eq!(dups, vec![("mac", 0, 2), ("", 4, 6)]);
}

#[test]
fn set_model_plugs_into_the_search() {
    let model = SetModel {
        elements: vec!["a".into(), "b".into()],
    };
    let entry = |index, call, ret, op| Entry {
        index,
        call,
        ret: Some(ret),
        op,
    };
    let add_a = entry(0, 0, 10, alcor_jepsen_checker::model::SetOp::Add(0));
    let add_b = entry(1, 5, 15, alcor_jepsen_checker::model::SetOp::Add(1));
    let read_a = entry(2, 6, 8, model.read_of(&[0]));
    let read_b_only = entry(3, 20, 30, model.read_of(&[1]));
    let read_both = entry(3, 20, 30, model.read_of(&[0, 1]));
    let ok = [add_a.clone(), add_b.clone(), read_a.clone(), read_both];
    assert!(matches!(
        search(&model, &ok, Limits::default()),
        Outcome::Linearizable(_)
    ));
    let lost = [add_a, add_b, read_a, read_b_only];
    assert!(matches!(
        search(&model, &lost, Limits::default()),
        Outcome::NotLinearizable(_)
    ));
}
