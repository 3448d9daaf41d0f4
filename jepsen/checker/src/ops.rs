//! Pairs invocations with completions into operations and partitions them by workload and
//! key (P-compositionality: single-key operations on different keys are checked apart).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::history::{Event, EventType, Process};

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Took effect between `call` and `ret`.
    Ok,
    /// Provably did not take effect.
    Fail,
    /// Indeterminate: may take effect at any time after `call`, or never.
    Info,
}

/// One invocation with its completion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    /// `index` of the invocation; reports name operations by it.
    pub index: u64,
    /// Client process number.
    pub process: u64,
    /// Operation name.
    pub f: String,
    /// Key (empty when the history gives none).
    pub key: String,
    /// Explicit workload of the invocation, if any.
    pub workload: Option<String>,
    /// Argument, from the invocation.
    pub input: serde_json::Value,
    /// Result, from the completion (`null` when there is none).
    pub output: serde_json::Value,
    /// How it ended.
    pub outcome: Outcome,
    /// Invocation time (ns).
    pub call: u64,
    /// Completion time (ns); `None` for indeterminate operations, whose effect may come
    /// arbitrarily late.
    pub ret: Option<u64>,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} p{} {}", self.index, self.process, self.f)?;
        match self.f.as_str() {
            "read" => write!(f, " -> {}", self.output)?,
            _ => write!(f, " {}", self.input)?,
        }
        match self.outcome {
            Outcome::Ok => Ok(()),
            Outcome::Fail => f.write_str(" (fail)"),
            Outcome::Info => f.write_str(" (info)"),
        }
    }
}

/// A history whose events do not pair up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    /// A completion with no open invocation on its process.
    #[error("event {index}: {kind:?} on process {process} which has no open invocation")]
    CompletionWithoutInvoke {
        /// Event index.
        index: u64,
        /// Its process.
        process: u64,
        /// Its type.
        kind: EventType,
    },
    /// An invocation while the process still has one open.
    #[error("event {index}: invoke on process {process} while #{open} is still open")]
    InvokeWhileOpen {
        /// Event index.
        index: u64,
        /// Its process.
        process: u64,
        /// The open invocation's index.
        open: u64,
    },
    /// A completion whose `f` or `key` differ from its invocation's.
    #[error("event {index}: completes #{invoke} but its f/key differ ({detail})")]
    Mismatch {
        /// Event index.
        index: u64,
        /// The invocation's index.
        invoke: u64,
        /// What differs.
        detail: String,
    },
    /// A completion timed before its invocation.
    #[error("event {index}: completes #{invoke} at time {time} before its invocation at {call}")]
    CompletionBeforeInvoke {
        /// Event index.
        index: u64,
        /// The invocation's index.
        invoke: u64,
        /// Completion time.
        time: u64,
        /// Invocation time.
        call: u64,
    },
}

/// Pairs client events into operations (nemesis events are skipped), in invocation order.
/// An invocation that never completes is indeterminate.
pub fn pair(events: &[Event]) -> Result<Vec<Op>, PairError> {
    let mut ops: Vec<Op> = Vec::with_capacity(events.len() / 2 + 1);
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    for event in events {
        let Process::Client(process) = event.process else {
            continue;
        };
        let key = event.key.clone().unwrap_or_default();
        if event.kind == EventType::Invoke {
            if let Some(&slot) = open.get(&process) {
                return Err(PairError::InvokeWhileOpen {
                    index: event.index,
                    process,
                    open: ops[slot].index,
                });
            }
            open.insert(process, ops.len());
            ops.push(Op {
                index: event.index,
                process,
                f: event.f.clone(),
                key,
                workload: event.workload.clone(),
                input: event.value.clone(),
                output: serde_json::Value::Null,
                outcome: Outcome::Info,
                call: event.time,
                ret: None,
            });
            continue;
        }
        let Some(slot) = open.remove(&process) else {
            return Err(PairError::CompletionWithoutInvoke {
                index: event.index,
                process,
                kind: event.kind,
            });
        };
        let op = &mut ops[slot];
        if op.f != event.f || (event.key.is_some() && op.key != key) {
            return Err(PairError::Mismatch {
                index: event.index,
                invoke: op.index,
                detail: format!("{} {:?} vs {} {:?}", op.f, op.key, event.f, key),
            });
        }
        if event.time < op.call {
            return Err(PairError::CompletionBeforeInvoke {
                index: event.index,
                invoke: op.index,
                time: event.time,
                call: op.call,
            });
        }
        op.output = event.value.clone();
        match event.kind {
            EventType::Ok => {
                op.outcome = Outcome::Ok;
                op.ret = Some(event.time);
            }
            EventType::Fail => {
                op.outcome = Outcome::Fail;
                op.ret = Some(event.time);
            }
            EventType::Info | EventType::Invoke => op.outcome = Outcome::Info,
        }
    }
    Ok(ops)
}

/// The kinds of check a key can get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// read / write / cas, checked for linearizability.
    Register,
    /// unique adds and reads of the whole set.
    Set,
    /// allocations whose ok values must all differ.
    Unique,
}

impl Workload {
    /// Parses the `workload` field.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "register" => Some(Self::Register),
            "set" => Some(Self::Set),
            "unique" => Some(Self::Unique),
            _ => None,
        }
    }

    /// Infers the workload of a key from its operation names: `add` means a set,
    /// `allocate` a unique allocation, anything else a register.
    pub fn infer(ops: &[Op]) -> Self {
        if ops.iter().any(|op| op.f == "add") {
            Self::Set
        } else if ops.iter().any(|op| op.f == "allocate") {
            Self::Unique
        } else {
            Self::Register
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Register => "register",
            Self::Set => "set",
            Self::Unique => "unique",
        })
    }
}

/// An explicit `workload` the checkers do not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("operation #{index}: unknown workload {name:?} (expected register, set or unique)")]
pub struct UnknownWorkload {
    /// Invocation index.
    pub index: u64,
    /// The name given.
    pub name: String,
}

/// Workloads recorded in the same history but judged elsewhere (the harness's
/// `convergence` workload: watch streams and host agents); their operations are
/// skipped here.
pub const EXTERNAL_WORKLOADS: [&str; 1] = ["convergence"];

/// Splits operations into independent partitions by (workload, key), each in invocation
/// order. Operations of an [`EXTERNAL_WORKLOADS`] workload are left out.
pub fn partition(ops: Vec<Op>) -> Result<BTreeMap<(Workload, String), Vec<Op>>, UnknownWorkload> {
    let mut explicit: BTreeMap<(Option<Workload>, String), Vec<Op>> = BTreeMap::new();
    for op in ops {
        let workload = match &op.workload {
            None => None,
            Some(name) if EXTERNAL_WORKLOADS.contains(&name.as_str()) => continue,
            Some(name) => Some(Workload::parse(name).ok_or_else(|| UnknownWorkload {
                index: op.index,
                name: name.clone(),
            })?),
        };
        explicit
            .entry((workload, op.key.clone()))
            .or_default()
            .push(op);
    }
    let mut parts: BTreeMap<(Workload, String), Vec<Op>> = BTreeMap::new();
    for ((workload, key), ops) in explicit {
        let workload = workload.unwrap_or_else(|| Workload::infer(&ops));
        parts.entry((workload, key)).or_default().extend(ops);
    }
    for ops in parts.values_mut() {
        ops.sort_by_key(|op| (op.call, op.index));
    }
    Ok(parts)
}
