//! The run's history in Jepsen's model, one JSON object per line:
//! `{"index","process","type","f","key","value","time"}` with `time` in
//! nanoseconds from one monotonic clock (the harness's start instant). The
//! event type is the checker crate's (`alcor_jepsen_checker::history`), so
//! the file is exactly what `alcor-check` reads. Every event is written to
//! `history.jsonl` as it happens and kept in memory for the checkers.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::Value;

pub use alcor_jepsen_checker::history::{Event as Op, EventType as OpType, Process};

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
    /// The key (numbers are written as text, as the checker reads them).
    pub key: Option<String>,
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
