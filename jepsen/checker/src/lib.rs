//! Checkers for Jepsen-style histories of the Alcor cluster, usable on their own on a
//! history file (`alcor-check history.jsonl`) or as a library by the harness.
//!
//! # Layout
//! - [`history`]: the JSONL event format (serde types, reader with line-numbered errors,
//!   writer) — the contract with the harness.
//! - [`ops`]: pairs invocations with completions and partitions by (workload, key).
//! - [`model`]: the [`model::Model`] trait (sequential specifications) with a register
//!   and a grow-only set.
//! - [`register`]: register operations → search entries (interning, dropping failed ops
//!   and indeterminate reads, unbounded returns for indeterminate mutations).
//! - [`precheck`]: sound O(n log n) anomaly checks (phantom, future and stale reads), with
//!   their proofs.
//! - [`wgl`]: the Wing–Gong/Lowe search with memoization (Porcupine's algorithm).
//! - [`set`], [`unique`]: the set and unique-allocation checkers.
//! - [`check`]: runs everything per key under one deadline and builds the [`Report`].
//! - [`jepsen_log`]: reads Jepsen's early text logs (Porcupine's etcd corpus).
//! - [`synth`]: linearizable-by-construction histories for benchmarks and tests.
//!
//! # Semantics
//! `ok` operations took effect between invocation and completion; `fail` ones did not and
//! are dropped; `info` (or never completed) mutations may take effect at any time after
//! their invocation, or never; `info` reads are dropped. Verdicts are `valid`, `invalid`
//! or `unknown`, and `unknown` (deadline) is a failure.

pub mod check;
pub mod history;
pub mod jepsen_log;
pub mod model;
pub mod ops;
pub mod precheck;
pub mod register;
pub mod set;
pub mod synth;
pub mod unique;
pub mod wgl;

pub use check::{
    check_events, check_ops, CheckError, CheckOptions, Detail, KeyReport, Report, Verdict,
};
pub use history::{
    read_history, read_history_file, write_history, Event, EventType, HistoryWriter, Process,
};
