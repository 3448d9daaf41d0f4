//! The set checker: unique `add`s and whole-set `read`s on one key (a grow-only set).
//!
//! For every ok read `r` (linear-time sweep over reads sorted by invocation):
//! - **lost**: an ok add that returned before `r` was invoked, or an element present in
//!   a read that returned before `r` was invoked, is missing from `r` (elements are never
//!   removed, so both were in the set before `r`'s linearization point);
//! - **unexpected**: an element no ok or indeterminate add could have produced (never
//!   added, or only by failed adds);
//! - **duplicate**: an element listed twice.
//!
//! *Final* reads are the ok reads invoked after every determinate add returned; with adds
//! but no final read, durability of acknowledged adds is not established: unknown.
//! Indeterminate adds may be present or absent anywhere.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::ops::{Op, Outcome};

/// Most problems reported per key (the count of all is kept).
pub const PROBLEMS_MAX: usize = 64;

/// An operation the set workload cannot interpret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// `f` is not add or read.
    #[error("operation #{index}: set f must be add or read, got {f:?}")]
    UnsupportedOp {
        /// Invocation index.
        index: u64,
        /// The name.
        f: String,
    },
    /// An ok read whose value is not an array.
    #[error("operation #{index}: set read must return an array, got {value}")]
    BadRead {
        /// Invocation index.
        index: u64,
        /// The value given.
        value: String,
    },
}

/// One problem found, by invocation indices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SetProblem {
    /// A read missing an element it must contain.
    Lost {
        /// The read.
        read: u64,
        /// The element.
        element: String,
        /// The ok add, or the earlier read, that proves it was present.
        because: u64,
    },
    /// A read containing an element no successful or indeterminate add produced.
    Unexpected {
        /// The read.
        read: u64,
        /// The element.
        element: String,
    },
    /// A read listing an element twice.
    Duplicate {
        /// The read.
        read: u64,
        /// The element.
        element: String,
    },
}

/// Result for one set key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SetSummary {
    /// Up to [`PROBLEMS_MAX`] problems.
    pub problems: Vec<SetProblem>,
    /// Count of all problems.
    pub total: usize,
    /// Acknowledged adds.
    pub acknowledged: usize,
    /// Indeterminate adds.
    pub indeterminate: usize,
    /// Indeterminate adds present in the last final read.
    pub indeterminate_present: usize,
    /// Number of final reads.
    pub final_reads: usize,
}

impl SetSummary {
    fn push(&mut self, p: SetProblem) {
        self.total += 1;
        if self.problems.len() < PROBLEMS_MAX {
            self.problems.push(p);
        }
    }
}

/// Checks one set key.
pub fn check_set(ops: &[Op]) -> Result<SetSummary, SetError> {
    let mut out = SetSummary::default();
    // element -> (best outcome seen among its adds, an add index)
    let mut adds: BTreeMap<String, (Outcome, u64)> = BTreeMap::new();
    let mut acked: Vec<(u64, String, u64)> = Vec::new(); // (ret, element, add index)
    let mut reads: Vec<(&Op, Vec<String>)> = Vec::new();
    let mut last_add_ret = 0u64;
    let mut any_add = false;
    for op in ops {
        match (op.f.as_str(), op.outcome) {
            ("add", outcome) => {
                any_add = true;
                let element = op.input.to_string();
                if let Some(ret) = op.ret {
                    last_add_ret = last_add_ret.max(ret);
                }
                match outcome {
                    Outcome::Ok => {
                        out.acknowledged += 1;
                        acked.push((op.ret.unwrap_or(u64::MAX), element.clone(), op.index));
                    }
                    Outcome::Info => out.indeterminate += 1,
                    Outcome::Fail => {}
                }
                let rank = |o: Outcome| match o {
                    Outcome::Ok => 2,
                    Outcome::Info => 1,
                    Outcome::Fail => 0,
                };
                let slot = adds.entry(element).or_insert((outcome, op.index));
                if rank(outcome) > rank(slot.0) {
                    *slot = (outcome, op.index);
                }
            }
            ("read", Outcome::Ok) => {
                let items = op.output.as_array().ok_or_else(|| SetError::BadRead {
                    index: op.index,
                    value: op.output.to_string(),
                })?;
                reads.push((op, items.iter().map(|v| v.to_string()).collect()));
            }
            ("read", _) => {}
            (f, _) => {
                return Err(SetError::UnsupportedOp {
                    index: op.index,
                    f: f.to_owned(),
                })
            }
        }
    }
    acked.sort_unstable();
    reads.sort_by_key(|(op, _)| (op.call, op.index));
    let mut by_ret: Vec<usize> = (0..reads.len()).collect();
    by_ret.sort_by_key(|&i| reads[i].0.ret);
    // Elements that must be present, with the operation proving it.
    let mut must: BTreeMap<String, u64> = BTreeMap::new();
    let (mut next_add, mut next_read) = (0, 0);
    let mut last_final: Option<usize> = None;
    for (ri, (read, items)) in reads.iter().enumerate() {
        while next_add < acked.len() && acked[next_add].0 < read.call {
            let (_, element, index) = &acked[next_add];
            must.entry(element.clone()).or_insert(*index);
            next_add += 1;
        }
        while next_read < by_ret.len()
            && reads[by_ret[next_read]]
                .0
                .ret
                .is_some_and(|t| t < read.call)
        {
            let (earlier, earlier_items) = &reads[by_ret[next_read]];
            for element in earlier_items {
                must.entry(element.clone()).or_insert(earlier.index);
            }
            next_read += 1;
        }
        let mut present: BTreeSet<&str> = BTreeSet::new();
        for element in items {
            if !present.insert(element) {
                out.push(SetProblem::Duplicate {
                    read: read.index,
                    element: element.clone(),
                });
            }
            if adds.get(element).is_none_or(|(o, _)| *o == Outcome::Fail) {
                out.push(SetProblem::Unexpected {
                    read: read.index,
                    element: element.clone(),
                });
            }
        }
        for (element, because) in &must {
            if !present.contains(element.as_str()) {
                out.push(SetProblem::Lost {
                    read: read.index,
                    element: element.clone(),
                    because: *because,
                });
            }
        }
        if read.call > last_add_ret || !any_add {
            out.final_reads += 1;
            last_final = Some(ri);
        }
    }
    if let Some(ri) = last_final {
        let items: BTreeSet<&String> = reads[ri].1.iter().collect();
        out.indeterminate_present = adds
            .iter()
            .filter(|(e, (o, _))| *o == Outcome::Info && items.contains(e))
            .count();
    }
    Ok(out)
}
