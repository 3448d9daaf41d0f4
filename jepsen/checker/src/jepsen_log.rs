//! Converts Jepsen's early text logs (`INFO  jepsen.util - 3 :ok :cas [1 4]`, the format of
//! Porcupine's published etcd corpus) into history events on one key, so old corpora can
//! be checked. Lines without the `jepsen.util -` marker are skipped. Times are the line
//! numbers: only the order of events is known.

use std::io::BufRead;

use crate::history::{Event, EventType, Process, LINE_BYTES_MAX};

const MARKER: &str = "jepsen.util -";

/// A log line that has the marker but not the expected shape.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The reader failed.
    #[error("log i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A malformed line.
    #[error("line {line}: {reason}: {text:?}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
        /// The line (truncated).
        text: String,
    },
}

fn parse_value(text: &str) -> Option<serde_json::Value> {
    let text = text.trim();
    if text == "nil" || text.starts_with(':') {
        return Some(serde_json::Value::Null);
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let items: Option<Vec<serde_json::Value>> =
            inner.split_whitespace().map(parse_value).collect();
        return items.map(serde_json::Value::Array);
    }
    text.parse::<i64>().ok().map(serde_json::Value::from)
}

/// Reads a Jepsen text log into events on `key`.
pub fn read_jepsen_log(reader: impl BufRead, key: &str) -> Result<Vec<Event>, LogError> {
    let mut events = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        let line_no = n + 1;
        let Some(at) = line.find(MARKER) else {
            continue;
        };
        let malformed = |reason| LogError::Malformed {
            line: line_no,
            reason,
            text: line.chars().take(LINE_BYTES_MAX.min(200)).collect(),
        };
        let mut fields = line[at + MARKER.len()..].split_whitespace();
        let process: u64 = fields
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| malformed("process is not a number"))?;
        let kind = match fields.next() {
            Some(":invoke") => EventType::Invoke,
            Some(":ok") => EventType::Ok,
            Some(":fail") => EventType::Fail,
            Some(":info") => EventType::Info,
            _ => return Err(malformed("type is not :invoke/:ok/:fail/:info")),
        };
        let f = fields
            .next()
            .and_then(|f| f.strip_prefix(':'))
            .ok_or_else(|| malformed("f is not a keyword"))?
            .to_owned();
        let rest: Vec<&str> = fields.collect();
        let value = parse_value(&rest.join(" "))
            .ok_or_else(|| malformed("value is not nil, a number or [a b]"))?;
        events.push(Event {
            index: events.len() as u64,
            process: Process::Client(process),
            kind,
            f,
            key: Some(key.to_owned()),
            value,
            time: line_no as u64,
            workload: None,
            node: None,
            error: None,
        });
    }
    Ok(events)
}
