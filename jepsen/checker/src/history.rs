//! The history format shared by the harness (writer) and the checkers (reader): one JSON
//! object per line, Jepsen's model.
//!
//! ```text
//! {"index":0,"process":3,"type":"invoke","f":"cas","key":"k7","value":[12,13],"time":120034}
//! {"index":1,"process":3,"type":"ok","f":"cas","key":"k7","value":[12,13],"time":981233}
//! {"index":2,"process":"nemesis","type":"info","f":"partition-start","value":"leader","time":990000}
//! ```
//!
//! - `index`: position in the history, unique; reports name operations by the `index` of
//!   their invocation.
//! - `process`: a client number, or `"nemesis"`. A process runs one operation at a time;
//!   after an `info` completion it must not be reused (Jepsen gives the worker a new id).
//! - `type`: `invoke`, then one of `ok` (took effect), `fail` (proven not to have taken
//!   effect) or `info` (indeterminate). An invocation without completion is `info`.
//! - `f`, `key`, `value`: the operation. Register: `read` (value on `ok` = the value read,
//!   `null` = absent), `write` (value = written), `cas` (value = `[expected, new]`). Set:
//!   `add` (value = element), `read` (value on `ok` = array of elements). Unique
//!   allocation: `allocate` (value on `ok` = the allocated value, or an object whose
//!   fields are each unique, e.g. `{"ip":..,"mac":..}`).
//! - `time`: nanoseconds from one monotonic clock in the harness.
//! - optional `workload` (`register` | `set` | `unique`; inferred from `f` when absent),
//!   `node` and `error` (free text, carried for humans). Unknown fields are ignored.

use std::fmt;
use std::io::{BufRead, Write};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted line; a longer one is a parse error, not an allocation.
pub const LINE_BYTES_MAX: usize = 1 << 20;
/// Most events one history may hold (the checkers keep the whole history in memory).
pub const EVENTS_MAX: usize = 20_000_000;

/// Who issued an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// A client worker, by number.
    Client(u64),
    /// The fault injector; its events are ignored by the checkers.
    Nemesis,
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(n) => s.serialize_u64(*n),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Process::Client(n)),
            Raw::Text(t) if t == "nemesis" => Ok(Process::Nemesis),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "process must be a number or \"nemesis\", got {t:?}"
            ))),
        }
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(n) => write!(f, "{n}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

/// Jepsen's event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The operation was sent.
    Invoke,
    /// It took effect.
    Ok,
    /// It provably did not take effect.
    Fail,
    /// It may or may not have taken effect, at any time after its invocation.
    Info,
}

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the history (unique).
    pub index: u64,
    /// Issuing process.
    pub process: Process,
    /// invoke / ok / fail / info.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Operation name (`read`, `write`, `cas`, `add`, `allocate`, or a nemesis action).
    pub f: String,
    /// The key (register name, set name, allocation pool); numbers are read as text.
    #[serde(
        default,
        deserialize_with = "key_from_text_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub key: Option<String>,
    /// Operation argument or result (see the module doc).
    #[serde(default)]
    pub value: serde_json::Value,
    /// Nanoseconds from the harness's monotonic clock.
    pub time: u64,
    /// `register`, `set` or `unique`; inferred from `f` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Node the client talked to (for humans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Error text of a `fail`/`info` completion (for humans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn key_from_text_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
        Uint(u64),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None => None,
        Some(Raw::Text(t)) => Some(t),
        Some(Raw::Int(n)) => Some(n.to_string()),
        Some(Raw::Uint(n)) => Some(n.to_string()),
    })
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The underlying reader or writer failed.
    #[error("history i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a valid event.
    #[error("line {line}: {source}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What serde_json reported.
        source: serde_json::Error,
    },
    /// A line is longer than [`LINE_BYTES_MAX`].
    #[error("line {line}: longer than {LINE_BYTES_MAX} bytes")]
    LineTooLong {
        /// 1-based line number.
        line: usize,
    },
    /// More than [`EVENTS_MAX`] events.
    #[error("more than {EVENTS_MAX} events")]
    TooManyEvents,
}

/// Reads a JSONL history; blank lines are skipped, any malformed line is an error naming
/// its line number.
pub fn read_history(mut reader: impl BufRead) -> Result<Vec<Event>, HistoryError> {
    let mut events = Vec::new();
    let mut buf = Vec::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        line += 1;
        let limit = (LINE_BYTES_MAX + 1) as u64;
        let n = std::io::Read::take(&mut reader, limit).read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(events);
        }
        if n > LINE_BYTES_MAX && buf.last() != Some(&b'\n') {
            return Err(HistoryError::LineTooLong { line });
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if events.len() >= EVENTS_MAX {
            return Err(HistoryError::TooManyEvents);
        }
        let event =
            serde_json::from_slice(&buf).map_err(|source| HistoryError::Parse { line, source })?;
        events.push(event);
    }
}

/// Reads a history file.
pub fn read_history_file(path: &std::path::Path) -> Result<Vec<Event>, HistoryError> {
    let file = std::fs::File::open(path)?;
    read_history(std::io::BufReader::new(file))
}

/// Writes events one per line. The harness owns ordering and indexing; this only encodes.
#[derive(Debug)]
pub struct HistoryWriter<W: Write> {
    out: W,
}

impl<W: Write> HistoryWriter<W> {
    /// Wraps a writer (give it a `BufWriter` for files).
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Appends one event as one line.
    pub fn write_event(&mut self, event: &Event) -> Result<(), HistoryError> {
        serde_json::to_writer(&mut self.out, event).map_err(std::io::Error::from)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> Result<(), HistoryError> {
        self.out.flush()?;
        Ok(())
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> Result<W, HistoryError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes a whole history.
pub fn write_history(out: impl Write, events: &[Event]) -> Result<(), HistoryError> {
    let mut writer = HistoryWriter::new(out);
    for event in events {
        writer.write_event(event)?;
    }
    writer.flush()
}
