//! The run's history in Jepsen's model, one JSON object per line:
//! `{"index","process","type","f","key","value","time"}` with `time` in
//! nanoseconds from one monotonic clock (the harness's start instant). Every
//! event is written to `history.jsonl` as it happens and kept in memory for
//! the checkers.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Outcome of an operation (`invoke` opens it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The call is about to be sent.
    Invoke,
    /// It took effect (or the read returned).
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Unknown: it may or may not have taken effect.
    Info,
}

/// Who performed an event: a client process number or `"nemesis"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    /// A client (a new number after each `info`).
    Client(u64),
    /// The fault injector.
    Named(String),
}

/// One history event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, from 0.
    pub index: u64,
    /// The process.
    pub process: Process,
    /// invoke / ok / fail / info.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The function: read, write, cas, add, create, start, stop, ...
    pub f: String,
    /// The independent key (register key, set name, ...).
    pub key: Value,
    /// The argument or the result; `[expected, new]` for a CAS.
    pub value: Value,
    /// Nanoseconds since the harness started (one monotonic clock).
    pub time: u64,
    /// `register`, `set` or `unique`: the checker to use for this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Which node served it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why it failed, for fail and info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

struct Inner {
    writer: BufWriter<File>,
    ops: Vec<Op>,
}

/// An append-only history shared by every client and the nemesis.
pub struct History {
    start: Instant,
    inner: Mutex<Inner>,
}

/// What a caller fills in; the history adds index and time.
pub struct Event {
    /// The process.
    pub process: Process,
    /// Its type.
    pub kind: OpType,
    /// The function.
    pub f: &'static str,
    /// The key.
    pub key: Value,
    /// The value.
    pub value: Value,
    /// The checker of this key (`register`, `set`, `unique`).
    pub workload: Option<&'static str>,
    /// The node that served it.
    pub node: Option<String>,
    /// The error, for fail and info.
    pub error: Option<String>,
}

impl History {
    /// Creates `path` and starts the clock.
    pub fn create(path: &Path, start: Instant) -> Result<History> {
        let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
        Ok(History {
            start,
            inner: Mutex::new(Inner {
                writer: BufWriter::new(file),
                ops: Vec::new(),
            }),
        })
    }

    /// Appends one event, stamped now, and returns it.
    pub fn record(&self, event: Event) -> Op {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Stamped under the lock, so index order is time order.
        let time = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let op = Op {
            index: inner.ops.len() as u64,
            process: event.process,
            kind: event.kind,
            f: event.f.to_string(),
            key: event.key,
            value: event.value,
            time,
            workload: event.workload.map(str::to_string),
            node: event.node,
            error: event.error,
        };
        if let Ok(line) = serde_json::to_string(&op) {
            // A failed write of the file shows up at flush; the in-memory copy
            // is what the checkers use.
            let _ = writeln!(inner.writer, "{line}");
        }
        inner.ops.push(op.clone());
        op
    }

    /// Flushes the file.
    pub fn flush(&self) -> Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.writer.flush().context("flush history")
    }

    /// Every event so far.
    pub fn ops(&self) -> Vec<Op> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ops
            .clone()
    }
}
