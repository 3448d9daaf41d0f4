//! The `alcor-check` binary: verdict lines and exit status per outcome.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may unwrap

mod common;

use std::path::PathBuf;
use std::process::Command;

use alcor_jepsen_checker::history::write_history;
use alcor_jepsen_checker::Event;
use common::Builder;

fn write_file(name: &str, events: &[Event]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("alcor-check-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    write_history(std::fs::File::create(&path).unwrap(), events).unwrap();
    path
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_alcor-check"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn valid_history_exits_zero_with_a_verdict_per_key() {
    let h = Builder::default()
        .write(1, "a", 1, 0, 10)
        .read(2, "a", Some(1), 20, 30)
        .write(3, "b", 5, 0, 10)
        .build();
    let path = write_file("valid.jsonl", &h);
    let (code, out, _) = run(&[path.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("valid")).count(),
        2,
        "{out}"
    );
    assert!(out.contains("verdict: valid"), "{out}");
}

#[test]
fn invalid_history_exits_one_and_names_the_operations() {
    let h = Builder::default()
        .write(1, "k", 1, 0, 10)
        .write(2, "k", 2, 20, 30)
        .read(3, "k", Some(1), 40, 50)
        .build();
    let path = write_file("invalid.jsonl", &h);
    let (code, out, _) = run(&[path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("stale-read") && out.contains("\"read\":4"),
        "{out}"
    );
    let (code, out, _) = run(&[path.to_str().unwrap(), "--no-prechecks", "--json"]);
    assert_eq!(code, 1, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["verdict"], "invalid");
    assert_eq!(json["keys"][0]["detail"]["kind"], "not-linearizable");
}

#[test]
fn unfinished_search_exits_two() {
    let mut b = Builder::default();
    for p in 0..14 {
        b.write(p, "k", p as i64 + 1, 0, 100);
    }
    b.read(100, "k", Some(1), 110, 120)
        .read(100, "k", Some(2), 130, 140);
    let path = write_file("hard.jsonl", &b.build());
    let (code, out, _) = run(&[
        path.to_str().unwrap(),
        "--no-prechecks",
        "--deadline-secs",
        "0",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("UNKNOWN") && out.contains("deadline"), "{out}");
}

#[test]
fn malformed_history_exits_three_naming_the_line() {
    let dir = std::env::temp_dir().join(format!("alcor-check-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("malformed.jsonl");
    std::fs::write(
        &path,
        "{\"index\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"time\":1}\nnot json\n",
    )
    .unwrap();
    let (code, _, err) = run(&[path.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("line 2"), "{err}");
}
