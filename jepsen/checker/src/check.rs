//! Runs the right checker on every (workload, key) partition and gathers one report:
//! register keys get the pre-checks, then the linearizability search (partitions spread
//! over threads, all bounded by one deadline); set and unique keys their linear checks.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::history::{Event, Process};
use crate::model::{Entry, Model, RegisterModel, RegisterOp};
use crate::ops::{self, Op, Workload};
use crate::precheck::{precheck, Precheck};
use crate::register::{self, RegisterError};
use crate::set::{check_set, SetError, SetSummary};
use crate::unique::{check_unique, UniqueError, UniqueSummary};
use crate::wgl::{self, Limits};

/// Operations shown before the failure point in a window.
pub const WINDOW_PREFIX_TAIL_MAX: usize = 12;
/// Concurrent operations shown at the failure point.
pub const WINDOW_CONCURRENT_MAX: usize = 32;
/// Most search threads.
pub const THREADS_MAX: usize = 64;

/// How to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Give up after this long (keys not finished are `unknown`, which is a failure).
    pub deadline: Option<Duration>,
    /// Run the O(n log n) register pre-checks before searching.
    pub prechecks: bool,
    /// Treat a failed cas as the observation "value != expected" instead of dropping it.
    pub failed_cas_observes: bool,
    /// Search threads; 0 = available parallelism.
    pub threads: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            deadline: Some(Duration::from_secs(300)),
            prechecks: true,
            failed_cas_observes: false,
            threads: 0,
        }
    }
}

/// A history the checkers cannot interpret.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Events do not pair up.
    #[error(transparent)]
    Pair(#[from] ops::PairError),
    /// An unknown explicit workload.
    #[error(transparent)]
    Workload(#[from] ops::UnknownWorkload),
    /// A malformed register operation.
    #[error("register key {key:?}: {source}")]
    Register {
        /// The key.
        key: String,
        /// What is wrong.
        source: RegisterError,
    },
    /// A malformed set operation.
    #[error("set key {key:?}: {source}")]
    Set {
        /// The key.
        key: String,
        /// What is wrong.
        source: SetError,
    },
    /// A malformed allocation.
    #[error("unique key {key:?}: {source}")]
    Unique {
        /// The key.
        key: String,
        /// What is wrong.
        source: UniqueError,
    },
}

/// The verdict on a key, or on a whole history (the worst of its keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No violation.
    Valid,
    /// The checker gave up: counts as a failure.
    Unknown,
    /// A violation was proven.
    Invalid,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Verdict::Valid => "valid",
            Verdict::Unknown => "UNKNOWN",
            Verdict::Invalid => "INVALID",
        })
    }
}

/// Where the linearizability search failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Length of the longest linearizable prefix found.
    pub prefix_len: usize,
    /// Its last operations, in linearization order.
    pub prefix_tail: Vec<String>,
    /// The register state after the prefix.
    pub state: String,
    /// The first-returning operation that could not be placed after the prefix.
    pub blocked: String,
    /// Operations not in the prefix that were concurrent with it (all failed there).
    pub concurrent: Vec<String>,
    /// How many there were.
    pub concurrent_total: usize,
}

/// What was found on one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Detail {
    /// Linearizable register.
    Linearizable,
    /// Pre-check anomalies (the search was skipped).
    Anomalies(Precheck),
    /// The search proved no linearization exists.
    NotLinearizable(Window),
    /// The search gave up.
    GaveUp {
        /// Deadline, cancellation or memory limit.
        reason: String,
        /// Steps taken.
        steps: u64,
    },
    /// Set checker result.
    Set(SetSummary),
    /// Unique-allocation checker result.
    Unique(UniqueSummary),
}

/// One key's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyReport {
    /// Its workload.
    pub workload: Workload,
    /// The key.
    pub key: String,
    /// Operations in the partition (including dropped ones).
    pub ops: usize,
    /// Verdict.
    pub verdict: Verdict,
    /// Evidence.
    pub detail: Detail,
}

/// The whole history's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Worst verdict over all keys (`valid` when there are none).
    pub verdict: Verdict,
    /// Per key, ordered by (workload, key).
    pub keys: Vec<KeyReport>,
    /// Client operations.
    pub ops: usize,
    /// Nemesis events.
    pub nemesis_events: usize,
    /// Wall time spent checking.
    pub elapsed_ms: u64,
}

/// Checks a whole history.
pub fn check_events(events: &[Event], options: &CheckOptions) -> Result<Report, CheckError> {
    let started = Instant::now();
    let nemesis_events = events
        .iter()
        .filter(|e| e.process == Process::Nemesis)
        .count();
    let ops = ops::pair(events)?;
    let mut report = check_ops(ops, options)?;
    report.nemesis_events = nemesis_events;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

struct RegisterJob {
    slot: usize,
    model: RegisterModel,
    entries: Vec<Entry<RegisterOp>>,
}

/// Checks paired operations.
pub fn check_ops(ops: Vec<Op>, options: &CheckOptions) -> Result<Report, CheckError> {
    let started = Instant::now();
    let deadline = options.deadline.map(|d| started + d);
    let n_ops = ops.len();
    let parts = ops::partition(ops)?;
    let mut keys: Vec<KeyReport> = Vec::with_capacity(parts.len());
    let mut jobs: Vec<RegisterJob> = Vec::new();
    for ((workload, key), ops) in parts {
        let (verdict, detail) = match workload {
            Workload::Register => {
                let (model, entries) = register::compile(&ops, options.failed_cas_observes)
                    .map_err(|source| CheckError::Register {
                        key: key.clone(),
                        source,
                    })?;
                let pre = if options.prechecks {
                    precheck(&model, &entries)
                } else {
                    Precheck::default()
                };
                if pre.total > 0 {
                    (Verdict::Invalid, Detail::Anomalies(pre))
                } else {
                    jobs.push(RegisterJob {
                        slot: keys.len(),
                        model,
                        entries,
                    });
                    (
                        Verdict::Unknown,
                        Detail::GaveUp {
                            reason: "not run".into(),
                            steps: 0,
                        },
                    )
                }
            }
            Workload::Set => {
                let summary = check_set(&ops).map_err(|source| CheckError::Set {
                    key: key.clone(),
                    source,
                })?;
                let verdict = if summary.total > 0 {
                    Verdict::Invalid
                } else if summary.final_reads == 0 && !ops.is_empty() {
                    Verdict::Unknown
                } else {
                    Verdict::Valid
                };
                (verdict, Detail::Set(summary))
            }
            Workload::Unique => {
                let summary = check_unique(&ops).map_err(|source| CheckError::Unique {
                    key: key.clone(),
                    source,
                })?;
                let verdict = if summary.total > 0 {
                    Verdict::Invalid
                } else {
                    Verdict::Valid
                };
                (verdict, Detail::Unique(summary))
            }
        };
        keys.push(KeyReport {
            workload,
            key,
            ops: ops.len(),
            verdict,
            detail,
        });
    }
    for (slot, verdict, detail) in run_searches(jobs, deadline, options.threads) {
        keys[slot].verdict = verdict;
        keys[slot].detail = detail;
    }
    let verdict = keys
        .iter()
        .map(|k| k.verdict)
        .max()
        .unwrap_or(Verdict::Valid);
    Ok(Report {
        verdict,
        keys,
        ops: n_ops,
        nemesis_events: 0,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

fn run_searches(
    mut jobs: Vec<RegisterJob>,
    deadline: Option<Instant>,
    threads: usize,
) -> Vec<(usize, Verdict, Detail)> {
    // Largest partitions first, so one big key does not start last.
    jobs.sort_by_key(|j| std::cmp::Reverse(j.entries.len()));
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, THREADS_MAX)
    .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let at = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(at) else { break };
                let (verdict, detail) = search_one(job, deadline);
                if let Ok(mut results) = results.lock() {
                    results.push((job.slot, verdict, detail));
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn describe(model: &RegisterModel, entry: &Entry<RegisterOp>) -> String {
    let ret = entry
        .ret
        .map_or_else(|| "never".to_owned(), |t| t.to_string());
    format!(
        "#{} [{}..{}] {}",
        entry.index,
        entry.call,
        ret,
        model.describe_op(&entry.op)
    )
}

/// The entries without the indeterminate writes and compare-and-sets whose
/// new value nobody observed (no read returned it, no successful
/// compare-and-set expected it). Such an operation may legally never have
/// taken effect, so if the rest is linearizable the whole history is; the
/// converse does not hold (an unobserved write may be what made a
/// compare-and-set fail), which is why a failed pruned search falls back
/// to the full one.
fn without_unobserved_indeterminate(entries: &[Entry<RegisterOp>]) -> Vec<Entry<RegisterOp>> {
    let observed: rustc_hash::FxHashSet<_> = entries
        .iter()
        .filter_map(|e| match e.op {
            RegisterOp::Read(v) => Some(v),
            RegisterOp::CasOk { expected, .. } => Some(expected),
            _ => None,
        })
        .collect();
    entries
        .iter()
        .filter(|e| {
            let written = match e.op {
                RegisterOp::Write(v) | RegisterOp::CasUnknown { new: v, .. } => Some(v),
                _ => None,
            };
            !(e.ret.is_none() && written.is_some_and(|v| !observed.contains(&v)))
        })
        .cloned()
        .collect()
}

fn search_one(job: &RegisterJob, deadline: Option<Instant>) -> (Verdict, Detail) {
    // Indeterminate operations are what makes the search explode (each may
    // take effect at any later point or never); a key that saw many
    // timeouts during a partition is first tried without the unobserved
    // ones, within half of the remaining time.
    let pruned = without_unobserved_indeterminate(&job.entries);
    if pruned.len() < job.entries.len() {
        let now = Instant::now();
        let half = deadline.map(|d| now + d.saturating_duration_since(now) / 2);
        let limits = Limits {
            deadline: half,
            cancel: None,
        };
        if let wgl::Outcome::Linearizable(_) = wgl::search(&job.model, &pruned, limits) {
            return (Verdict::Valid, Detail::Linearizable);
        }
    }
    let limits = Limits {
        deadline,
        cancel: None,
    };
    match wgl::search(&job.model, &job.entries, limits) {
        wgl::Outcome::Linearizable(_) => (Verdict::Valid, Detail::Linearizable),
        wgl::Outcome::Unknown { reason, steps } => (
            Verdict::Unknown,
            Detail::GaveUp {
                reason: reason.to_owned(),
                steps,
            },
        ),
        wgl::Outcome::NotLinearizable(failure) => {
            let d = |i: &usize| describe(&job.model, &job.entries[*i]);
            let tail_from = failure.prefix.len().saturating_sub(WINDOW_PREFIX_TAIL_MAX);
            let window = Window {
                prefix_len: failure.prefix.len(),
                prefix_tail: failure.prefix[tail_from..].iter().map(d).collect(),
                state: job.model.describe_state(&failure.state),
                blocked: d(&failure.blocked),
                concurrent: failure
                    .concurrent
                    .iter()
                    .take(WINDOW_CONCURRENT_MAX)
                    .map(d)
                    .collect(),
                concurrent_total: failure.concurrent.len(),
            };
            (Verdict::Invalid, Detail::NotLinearizable(window))
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for k in &self.keys {
            writeln!(
                f,
                "{:<8} {:<9} key {:<24} ops {:>7}",
                k.verdict, k.workload, k.key, k.ops
            )?;
            if k.verdict != Verdict::Valid {
                write_detail(f, &k.detail)?;
            }
        }
        let count = |v: Verdict| self.keys.iter().filter(|k| k.verdict == v).count();
        writeln!(
            f,
            "verdict: {} ({} keys: {} valid, {} invalid, {} unknown; {} ops, {} nemesis events, {} ms)",
            self.verdict,
            self.keys.len(),
            count(Verdict::Valid),
            count(Verdict::Invalid),
            count(Verdict::Unknown),
            self.ops,
            self.nemesis_events,
            self.elapsed_ms
        )
    }
}

fn write_detail(f: &mut fmt::Formatter<'_>, detail: &Detail) -> fmt::Result {
    match detail {
        Detail::Linearizable => Ok(()),
        Detail::Anomalies(pre) => {
            writeln!(f, "    {} pre-check anomalies:", pre.total)?;
            for a in &pre.anomalies {
                writeln!(
                    f,
                    "    - {}",
                    serde_json::to_string(a).map_err(|_| fmt::Error)?
                )?;
            }
            Ok(())
        }
        Detail::NotLinearizable(w) => {
            writeln!(
                f,
                "    not linearizable; longest linearizable prefix: {} ops, ending:",
                w.prefix_len
            )?;
            for op in &w.prefix_tail {
                writeln!(f, "      {op}")?;
            }
            writeln!(f, "    state after prefix: {}", w.state)?;
            writeln!(f, "    cannot place: {}", w.blocked)?;
            writeln!(
                f,
                "    concurrent candidates ({} in all), none legal here:",
                w.concurrent_total
            )?;
            for op in &w.concurrent {
                writeln!(f, "      {op}")?;
            }
            Ok(())
        }
        Detail::GaveUp { reason, steps } => {
            writeln!(f, "    gave up: {reason} after {steps} steps")
        }
        Detail::Set(s) => {
            writeln!(
                f,
                "    {} problems; {} acknowledged, {} indeterminate ({} present), {} final reads",
                s.total, s.acknowledged, s.indeterminate, s.indeterminate_present, s.final_reads
            )?;
            for p in &s.problems {
                writeln!(
                    f,
                    "    - {}",
                    serde_json::to_string(p).map_err(|_| fmt::Error)?
                )?;
            }
            if s.final_reads == 0 {
                writeln!(
                    f,
                    "    no read after the last add returned: durability not established"
                )?;
            }
            Ok(())
        }
        Detail::Unique(u) => {
            writeln!(
                f,
                "    {} duplicates among {} allocations",
                u.total, u.allocations
            )?;
            for d in &u.duplicates {
                writeln!(
                    f,
                    "    - {}",
                    serde_json::to_string(d).map_err(|_| fmt::Error)?
                )?;
            }
            Ok(())
        }
    }
}
