//! Safety checks of a chaos run over a grow-only set (unique host creates):
//! every acknowledged add survives, nothing appears that was never added,
//! linearizable reads respect real time, and all nodes end byte-identical.
//!
//! Each check is sound for a linearizable grow-only set: an add acknowledged
//! before a read began must be in it; a read cannot contain an add invoked
//! after the read returned; a read that began after another ended sees a
//! superset. Indeterminate adds may or may not be present.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged; reads carry what they saw.
    Ok(Option<BTreeSet<u64>>),
    /// Proven not applied.
    Fail,
    /// Unknown (timeout, lost connection, crashed node).
    Info,
}

/// One client operation with its real-time bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// `Some(value)` for an add, `None` for a read.
    pub add: Option<u64>,
    /// When the client invoked it, from the start of the run.
    pub invoke: Duration,
    /// When it returned (for `Info`, when the client gave up).
    pub complete: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

/// A broken safety property.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// An acknowledged add is missing from a node's final state.
    #[error("acknowledged add {value} missing on node {node} at the end")]
    LostWrite {
        /// The value.
        value: u64,
        /// The node whose final state lacks it.
        node: u64,
    },
    /// A value no client ever added.
    #[error("value {value} present on node {node} but never added")]
    Phantom {
        /// The value.
        value: u64,
        /// Where it was found.
        node: u64,
    },
    /// A read missed an add acknowledged before the read began.
    #[error("read invoked at {read_invoke:?} misses {value}, acknowledged at {acked:?}")]
    StaleRead {
        /// The missed value.
        value: u64,
        /// When the read began.
        read_invoke: Duration,
        /// When the add was acknowledged.
        acked: Duration,
    },
    /// A read saw an add invoked only after the read returned.
    #[error("read that returned at {read_complete:?} saw {value}, invoked at {invoked:?}")]
    FutureRead {
        /// The value.
        value: u64,
        /// When the read returned.
        read_complete: Duration,
        /// When the add was invoked.
        invoked: Duration,
    },
    /// Two reads in real-time order went backwards.
    #[error("read at {later:?} lost {value}, seen by a read that ended at {earlier:?}")]
    NonMonotonic {
        /// The value that disappeared.
        value: u64,
        /// When the earlier read ended.
        earlier: Duration,
        /// When the later read began.
        later: Duration,
    },
    /// Two nodes ended with different state-machine bytes.
    #[error("nodes {a} and {b} ended with different state")]
    Diverged {
        /// One node.
        a: u64,
        /// The other.
        b: u64,
    },
}

/// Checks a history against the final state of every node: its set of
/// values and its state-machine snapshot bytes.
pub fn check(
    ops: &[Op],
    finals: &BTreeMap<u64, (BTreeSet<u64>, Vec<u8>)>,
) -> Result<(), Violation> {
    let mut invoked: BTreeMap<u64, Duration> = BTreeMap::new();
    let mut acked: BTreeMap<u64, Duration> = BTreeMap::new();
    for op in ops {
        if let Some(value) = op.add {
            // A proven non-application must never show up: not "invoked".
            if op.outcome == Outcome::Fail {
                continue;
            }
            invoked.insert(value, op.invoke);
            if matches!(op.outcome, Outcome::Ok(_)) {
                acked.insert(value, op.complete);
            }
        }
    }
    let mut reads: Vec<(&Op, &BTreeSet<u64>)> = ops
        .iter()
        .filter_map(|op| match (&op.add, &op.outcome) {
            (None, Outcome::Ok(Some(seen))) => Some((op, seen)),
            _ => None,
        })
        .collect();
    for (read, seen) in &reads {
        for (value, at) in &acked {
            if *at < read.invoke && !seen.contains(value) {
                return Err(Violation::StaleRead {
                    value: *value,
                    read_invoke: read.invoke,
                    acked: *at,
                });
            }
        }
        for value in seen.iter() {
            match invoked.get(value) {
                None => {
                    return Err(Violation::Phantom {
                        value: *value,
                        node: 0,
                    })
                }
                Some(at) if *at > read.complete => {
                    return Err(Violation::FutureRead {
                        value: *value,
                        read_complete: read.complete,
                        invoked: *at,
                    })
                }
                Some(_) => {}
            }
        }
    }
    reads.sort_by_key(|(op, _)| op.invoke);
    for (i, (earlier, seen_before)) in reads.iter().enumerate() {
        for (later, seen_after) in reads.iter().skip(i + 1) {
            if earlier.complete >= later.invoke {
                continue;
            }
            if let Some(value) = seen_before.difference(seen_after).next() {
                return Err(Violation::NonMonotonic {
                    value: *value,
                    earlier: earlier.complete,
                    later: later.invoke,
                });
            }
        }
    }
    let mut first: Option<(u64, &Vec<u8>)> = None;
    for (node, (values, bytes)) in finals {
        if let Some(value) = acked.keys().find(|v| !values.contains(v)) {
            return Err(Violation::LostWrite {
                value: *value,
                node: *node,
            });
        }
        if let Some(value) = values.iter().find(|v| !invoked.contains_key(v)) {
            return Err(Violation::Phantom {
                value: *value,
                node: *node,
            });
        }
        match first {
            None => first = Some((*node, bytes)),
            Some((a, a_bytes)) if a_bytes != bytes => {
                return Err(Violation::Diverged { a, b: *node })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
    fn add(value: u64, invoke: u64, complete: u64, outcome: Outcome) -> Op {
        Op {
            add: Some(value),
            invoke: ms(invoke),
            complete: ms(complete),
            outcome,
        }
    }
    fn read(invoke: u64, complete: u64, seen: &[u64]) -> Op {
        Op {
            add: None,
            invoke: ms(invoke),
            complete: ms(complete),
            outcome: Outcome::Ok(Some(seen.iter().copied().collect())),
        }
    }
    fn finals(values: &[u64]) -> BTreeMap<u64, (BTreeSet<u64>, Vec<u8>)> {
        let set: BTreeSet<u64> = values.iter().copied().collect();
        (1..=3).map(|n| (n, (set.clone(), vec![1, 2]))).collect()
    }

    #[test]
    fn valid_history_with_indeterminate_adds_passes() {
        let ops = vec![
            add(1, 0, 10, Outcome::Ok(None)),
            add(2, 5, 30, Outcome::Info),
            add(3, 5, 30, Outcome::Info),
            read(12, 20, &[1]),
            read(25, 40, &[1, 2]),
        ];
        assert_eq!(check(&ops, &finals(&[1, 2])), Ok(()));
    }

    #[test]
    fn lost_acknowledged_write_is_caught() {
        let ops = vec![
            add(1, 0, 10, Outcome::Ok(None)),
            add(2, 0, 10, Outcome::Ok(None)),
        ];
        assert!(matches!(
            check(&ops, &finals(&[1])),
            Err(Violation::LostWrite { value: 2, .. })
        ));
    }

    #[test]
    fn stale_read_after_an_acknowledged_add_is_caught() {
        let ops = vec![add(1, 0, 10, Outcome::Ok(None)), read(11, 12, &[])];
        assert!(matches!(
            check(&ops, &finals(&[1])),
            Err(Violation::StaleRead { value: 1, .. })
        ));
    }

    #[test]
    fn read_from_the_future_and_phantoms_are_caught() {
        let ops = vec![read(0, 5, &[1]), add(1, 6, 10, Outcome::Ok(None))];
        assert!(matches!(
            check(&ops, &finals(&[1])),
            Err(Violation::FutureRead { value: 1, .. })
        ));
        let ops = vec![add(1, 0, 10, Outcome::Ok(None))];
        assert!(matches!(
            check(&ops, &finals(&[1, 9])),
            Err(Violation::Phantom { value: 9, .. })
        ));
    }

    #[test]
    fn reads_going_backwards_are_caught() {
        let ops = vec![
            add(1, 0, 50, Outcome::Info),
            read(1, 2, &[1]),
            read(3, 4, &[]),
        ];
        assert!(matches!(
            check(&ops, &finals(&[1])),
            Err(Violation::NonMonotonic { value: 1, .. })
        ));
    }

    #[test]
    fn diverged_final_states_are_caught() {
        let mut f = finals(&[]);
        if let Some(entry) = f.get_mut(&2) {
            entry.1 = vec![9];
        }
        assert!(matches!(check(&[], &f), Err(Violation::Diverged { .. })));
    }
}
