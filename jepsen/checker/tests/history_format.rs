//! The JSONL history format: round trips, line-numbered errors, and pairing rules.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod common;

use alcor_jepsen_checker::history::{read_history, write_history, HistoryError, LINE_BYTES_MAX};
use alcor_jepsen_checker::ops::{pair, Outcome, PairError};
use alcor_jepsen_checker::{Event, EventType, Process};

#[test]
fn written_history_reads_back_identical() {
    let mut events = common::Builder::default()
        .cas(1, "k", 1, 2, EventType::Ok, 10, 20)
        .read(2, "k", None, 11, 12)
        .build();
    events.push(Event {
        index: 99,
        process: Process::Nemesis,
        kind: EventType::Info,
        f: "partition-start".into(),
        key: None,
        value: serde_json::json!({"isolated": ["n1"]}),
        time: 30,
        workload: None,
        node: Some("n1".into()),
        error: Some("timeout".into()),
    });
    let mut buf = Vec::new();
    write_history(&mut buf, &events).unwrap();
    let text = String::from_utf8(buf.clone()).unwrap();
    assert_eq!(text.lines().count(), events.len());
    assert!(text.contains(r#""process":"nemesis""#), "{text}");
    assert!(text.contains(r#""type":"invoke""#), "{text}");
    assert_eq!(read_history(&buf[..]).unwrap(), events);
}

#[test]
fn jepsen_style_lines_parse_with_numeric_keys_and_missing_optionals() {
    let text = "\n{\"index\":0,\"process\":3,\"type\":\"invoke\",\"f\":\"write\",\"key\":7,\"value\":5,\"time\":1}\n\n{\"index\":1,\"process\":3,\"type\":\"ok\",\"f\":\"write\",\"key\":7,\"value\":5,\"time\":2,\"extra\":true}\n";
    let events = read_history(text.as_bytes()).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].key.as_deref(), Some("7"));
    assert_eq!(events[1].kind, EventType::Ok);
}

#[test]
fn malformed_line_is_reported_with_its_line_number() {
    let text = "{\"index\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"time\":1}\n\n{\"index\":1,\"process\":1,\"type\":\"okay\",\"f\":\"read\",\"time\":2}\n";
    match read_history(text.as_bytes()) {
        Err(HistoryError::Parse { line, .. }) => assert_eq!(line, 3),
        other => panic!("expected a parse error, got {other:?}"),
    }
    let bad_process =
        "{\"index\":0,\"process\":\"bob\",\"type\":\"invoke\",\"f\":\"read\",\"time\":1}\n";
    let err = read_history(bad_process.as_bytes()).unwrap_err();
    assert!(err.to_string().starts_with("line 1:"), "{err}");
}

#[test]
fn overlong_line_is_rejected_without_reading_it_whole() {
    let text = format!("{}\n", "x".repeat(LINE_BYTES_MAX + 10));
    assert!(matches!(
        read_history(text.as_bytes()),
        Err(HistoryError::LineTooLong { line: 1 })
    ));
}

#[test]
fn pairing_turns_uncompleted_invocations_into_indeterminate_ops() {
    let mut b = common::Builder::default();
    b.push(1, EventType::Invoke, "write", "k", 1.into(), 5);
    b.write(2, "k", 2, 6, 7);
    let ops = pair(&b.build()).unwrap();
    assert_eq!(ops.len(), 2);
    let open = ops.iter().find(|o| o.process == 1).unwrap();
    assert_eq!(open.outcome, Outcome::Info);
    assert_eq!(open.ret, None);
}

#[test]
fn pairing_rejects_completion_without_invocation_and_double_invocation() {
    let mut b = common::Builder::default();
    b.push(1, EventType::Ok, "read", "k", 1.into(), 5);
    assert!(matches!(
        pair(&b.build()),
        Err(PairError::CompletionWithoutInvoke { process: 1, .. })
    ));

    let mut b = common::Builder::default();
    b.push(
        1,
        EventType::Invoke,
        "read",
        "k",
        serde_json::Value::Null,
        5,
    );
    b.push(
        1,
        EventType::Invoke,
        "read",
        "k",
        serde_json::Value::Null,
        6,
    );
    assert!(matches!(
        pair(&b.build()),
        Err(PairError::InvokeWhileOpen { open: 0, .. })
    ));

    let mut b = common::Builder::default();
    b.push(
        1,
        EventType::Invoke,
        "read",
        "k",
        serde_json::Value::Null,
        5,
    );
    b.push(1, EventType::Ok, "write", "k", 1.into(), 6);
    assert!(matches!(pair(&b.build()), Err(PairError::Mismatch { .. })));
}

#[test]
fn nemesis_events_are_not_paired_as_client_operations() {
    let mut events = common::Builder::default().write(1, "k", 1, 0, 1).build();
    for (i, kind) in [EventType::Info, EventType::Info].into_iter().enumerate() {
        events.push(Event {
            index: 10 + i as u64,
            process: Process::Nemesis,
            kind,
            f: "kill".into(),
            key: None,
            value: serde_json::Value::Null,
            time: 2 + i as u64,
            workload: None,
            node: None,
            error: None,
        });
    }
    assert_eq!(pair(&events).unwrap().len(), 1);
}

#[test]
fn operations_of_the_harness_judged_convergence_workload_are_skipped() {
    let mut events = common::Builder::default().write(1, "k", 1, 0, 1).build();
    for (i, kind) in [EventType::Invoke, EventType::Info].into_iter().enumerate() {
        events.push(Event {
            index: 10 + i as u64,
            process: Process::Client(7),
            kind,
            f: "watch".into(),
            key: Some("watch-0".into()),
            value: serde_json::json!({"from": 3}),
            time: 2 + i as u64,
            workload: Some("convergence".into()),
            node: None,
            error: None,
        });
    }
    let options = alcor_jepsen_checker::check::CheckOptions::default();
    let report = alcor_jepsen_checker::check::check_events(&events, &options).unwrap();
    assert_eq!(report.keys.len(), 1);
    assert_eq!(report.keys[0].key, "k");
    let mut unknown = events.clone();
    unknown[2].workload = Some("elsewhere".into());
    unknown[3].workload = Some("elsewhere".into());
    assert!(alcor_jepsen_checker::check::check_events(&unknown, &options).is_err());
}
