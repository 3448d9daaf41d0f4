//! Shared test helpers: locating Porcupine's etcd corpus (shipped in the `porcupine-rs`
//! dev-dependency's source), its published verdicts, and small history builders.

#![allow(dead_code)] // each test binary uses a subset
#![allow(clippy::too_many_arguments)] // builders mirror the event fields

use std::path::PathBuf;

use alcor_jepsen_checker::{Event, EventType, Process};

/// Directory of `etcd_NNN.log` in the registry source of the `porcupine-rs` version
/// pinned in the workspace's Cargo.lock (cargo unpacks every dependency's source under
/// `$CARGO_HOME/registry/src/<index>/<name>-<version>/` before building it).
pub fn etcd_corpus_dir() -> PathBuf {
    let lock_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    let lock = std::fs::read_to_string(lock_path).expect("read the workspace Cargo.lock");
    let version = lock
        .split("[[package]]")
        .find(|block| block.contains("name = \"porcupine-rs\""))
        .and_then(|block| block.lines().find_map(|l| l.strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("porcupine-rs in Cargo.lock");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME or CARGO_HOME")).join(".cargo")
        });
    let sources = std::fs::read_dir(cargo_home.join("registry/src")).expect("registry sources");
    sources
        .flatten()
        .map(|index| {
            index
                .path()
                .join(format!("porcupine-rs-{version}/test_data/jepsen"))
        })
        .find(|dir| dir.join("etcd_000.log").is_file())
        .expect("porcupine-rs test_data/jepsen in the registry sources")
}

/// Porcupine's published verdicts (`porcupine_test.go`, identical in porcupine-rs's
/// `tests/etcd_jepsen.rs`): the linearizable logs. All others in 0..=102 are not, except
/// 95, which both skip (etcd failed to start in that run).
pub const ETCD_LINEARIZABLE: &[u32] = &[
    2, 5, 7, 18, 25, 31, 38, 45, 48, 49, 51, 53, 56, 67, 75, 76, 80, 87, 92, 98, 100, 101, 102,
];
/// The log Porcupine skips.
pub const ETCD_SKIPPED: u32 = 95;

/// Loads one corpus log as history events.
pub fn load_etcd(dir: &std::path::Path, n: u32) -> Vec<Event> {
    let path = dir.join(format!("etcd_{n:03}.log"));
    let file = std::fs::File::open(&path).expect("open corpus log");
    alcor_jepsen_checker::jepsen_log::read_jepsen_log(std::io::BufReader::new(file), "etcd")
        .expect("parse corpus log")
}

/// Builds histories by hand: `h.invoke(p, f, key, value, t)` / `h.complete(...)`.
#[derive(Default)]
pub struct Builder {
    pub events: Vec<Event>,
}

impl Builder {
    pub fn push(
        &mut self,
        process: u64,
        kind: EventType,
        f: &str,
        key: &str,
        value: serde_json::Value,
        time: u64,
    ) -> &mut Self {
        let index = self.events.len() as u64;
        self.events.push(Event {
            index,
            process: Process::Client(process),
            kind,
            f: f.to_owned(),
            key: Some(key.to_owned()),
            value,
            time,
            workload: None,
            node: None,
            error: None,
        });
        self
    }

    /// A complete operation `[call, ret]` with `kind` as completion.
    pub fn op(
        &mut self,
        process: u64,
        f: &str,
        key: &str,
        input: serde_json::Value,
        output: serde_json::Value,
        kind: EventType,
        call: u64,
        ret: u64,
    ) -> &mut Self {
        self.push(process, EventType::Invoke, f, key, input, call);
        self.push(process, kind, f, key, output, ret)
    }

    pub fn write(&mut self, p: u64, key: &str, v: i64, call: u64, ret: u64) -> &mut Self {
        self.op(
            p,
            "write",
            key,
            v.into(),
            v.into(),
            EventType::Ok,
            call,
            ret,
        )
    }

    pub fn read(&mut self, p: u64, key: &str, v: Option<i64>, call: u64, ret: u64) -> &mut Self {
        let out = v.map_or(serde_json::Value::Null, Into::into);
        self.op(
            p,
            "read",
            key,
            serde_json::Value::Null,
            out,
            EventType::Ok,
            call,
            ret,
        )
    }

    pub fn cas(
        &mut self,
        p: u64,
        key: &str,
        from: i64,
        to: i64,
        kind: EventType,
        call: u64,
        ret: u64,
    ) -> &mut Self {
        let v = serde_json::json!([from, to]);
        self.op(p, "cas", key, v.clone(), v, kind, call, ret)
    }

    /// Events sorted by time (stable), as a harness would write them.
    pub fn build(&self) -> Vec<Event> {
        let mut events = self.events.clone();
        events.sort_by_key(|e| e.time);
        events
    }
}
