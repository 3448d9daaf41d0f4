//! Fast (sort + sweep, O(n log n)) pre-checks on one register key that find common
//! anomalies before the exponential search, and name the operations involved.
//!
//! # Soundness: a pre-check never rejects a linearizable history
//!
//! Notation: `lin(o)` is the linearization point of `o` in an assumed linearization, with
//! `call(o) <= lin(o) <= ret(o)` for completed operations and `call(o) <= lin(o)` for
//! indeterminate ones that took effect. An *observer* of value `v` is an ok read returning
//! `v` or an ok cas expecting `v`: the register held `v` at `lin(o)`. A *writer* of `v` is
//! an ok or indeterminate write of `v` or cas to `v` (failed ones are dropped: they did not
//! take effect). The register starts absent (`null`). Each check assumes a linearization
//! exists and derives a contradiction:
//!
//! 1. **Phantom read** — an observer of `v != null` and no writer of `v`. Values only come
//!    from writers or the initial `null`, so the register never held `v`.
//! 2. **Read from the future** — an observer `o` of `v != null` with
//!    `ret(o) < call(w)` for every writer `w` of `v`. Some writer `w` took effect before
//!    `o`: `lin(w) < lin(o) <= ret(o) < call(w) <= lin(w)`.
//! 3. **Value going backwards** — only when writes are unique per key (each value has at
//!    most one writer, none writes `null`). Then each value is held during one contiguous
//!    interval starting at `lin(w_v)` (`-inf` for `null`) and never again once replaced.
//!    Let `seen(a)` be the least `ret` of an ok observer or ok writer of `a` (`-inf` for
//!    `null`), so `lin(w_a) <= seen(a)`. Flag an observer `r2` of `a` when some ok
//!    operation `r1` *establishes* `b != a` — an ok observer of `b`, or `b`'s ok writer —
//!    with `ret(r1) < call(r2)` and `seen(a) < call(w_b)`. Then
//!    `lin(w_a) <= seen(a) < call(w_b) <= lin(w_b)`, so `w_b` replaced `a` (or a later
//!    value) at `lin(w_b)`, `b` was observed at `lin(r1) >= lin(w_b)`, and
//!    `lin(r2) > ret(r1) >= lin(r1)`: `r2` cannot see `a` any more. (Without unique writes
//!    `a` could be written again, so the check is skipped.)
//!
//! Strict inequalities throughout: operations whose times touch are concurrent, as in the
//! search. Anything the pre-checks flag the search would also reject (the property tests
//! check both directions on generated histories).

use serde::Serialize;

use crate::model::{Entry, RegisterModel, RegisterOp, ValueId, NIL};

/// Most anomalies reported per key (the count of all is kept).
pub const ANOMALIES_MAX: usize = 64;

/// One proven anomaly, naming operations by invocation index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Anomaly {
    /// An observed value nobody wrote.
    PhantomRead {
        /// The observing operation.
        read: u64,
        /// The value.
        value: String,
    },
    /// An observed value whose every writer was invoked after the observer returned.
    FutureRead {
        /// The observing operation.
        read: u64,
        /// The value.
        value: String,
        /// Its earliest-invoked writer.
        write: u64,
    },
    /// A value observed after a later one was established.
    StaleRead {
        /// The observer of the old value.
        read: u64,
        /// The old value.
        value: String,
        /// The operation that established the newer value before `read` was invoked.
        after: u64,
        /// The newer value.
        newer: String,
        /// Its writer, invoked after the old value was already seen.
        newer_write: u64,
    },
}

/// Pre-check result for one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Precheck {
    /// Up to [`ANOMALIES_MAX`] anomalies.
    pub anomalies: Vec<Anomaly>,
    /// How many were found in all.
    pub total: usize,
    /// Whether writes were unique, enabling the backwards check.
    pub unique_writes: bool,
}

impl Precheck {
    fn push(&mut self, a: Anomaly) {
        self.total += 1;
        if self.anomalies.len() < ANOMALIES_MAX {
            self.anomalies.push(a);
        }
    }
}

fn written(op: &RegisterOp) -> Option<ValueId> {
    match *op {
        RegisterOp::Write(v)
        | RegisterOp::CasOk { new: v, .. }
        | RegisterOp::CasUnknown { new: v, .. } => Some(v),
        RegisterOp::Read(_) | RegisterOp::CasFailed { .. } => None,
    }
}

fn observed(op: &RegisterOp) -> Option<ValueId> {
    match *op {
        RegisterOp::Read(v) | RegisterOp::CasOk { expected: v, .. } => Some(v),
        _ => None,
    }
}

/// Runs the pre-checks on one key's entries.
pub fn precheck(model: &RegisterModel, entries: &[Entry<RegisterOp>]) -> Precheck {
    let n_values = model.values.len();
    let text = |v: ValueId| model.values.get(v as usize).cloned().unwrap_or_default();
    // Earliest-invoked writer per value, and the writer count.
    let mut first_writer: Vec<Option<usize>> = vec![None; n_values];
    let mut writers = vec![0u32; n_values];
    for (i, e) in entries.iter().enumerate() {
        if let Some(v) = written(&e.op) {
            writers[v as usize] += 1;
            let slot = &mut first_writer[v as usize];
            if slot.is_none_or(|w| entries[w].call > e.call) {
                *slot = Some(i);
            }
        }
    }
    let mut out = Precheck {
        unique_writes: writers[NIL as usize] == 0 && writers.iter().all(|&c| c <= 1),
        ..Precheck::default()
    };
    for e in entries {
        let (Some(v), Some(ret)) = (observed(&e.op), e.ret) else {
            continue;
        };
        if v == NIL {
            continue;
        }
        match first_writer[v as usize] {
            None => out.push(Anomaly::PhantomRead {
                read: e.index,
                value: text(v),
            }),
            Some(w) if entries[w].call > ret => out.push(Anomaly::FutureRead {
                read: e.index,
                value: text(v),
                write: entries[w].index,
            }),
            Some(_) => {}
        }
    }
    if out.unique_writes && out.total == 0 {
        backwards(entries, &first_writer, &text, &mut out);
    }
    out
}

/// Check 3 (see the module doc); requires unique writes and no phantom/future reads.
fn backwards(
    entries: &[Entry<RegisterOp>],
    writer: &[Option<usize>],
    text: &dyn Fn(ValueId) -> String,
    out: &mut Precheck,
) {
    // seen(a): least ret of an ok observer or ok writer of a; None = -inf (null).
    let mut seen: Vec<Option<u64>> = vec![Some(u64::MAX); writer.len()];
    seen[NIL as usize] = None;
    // (ret, value established, entry) for every ok operation that establishes a value.
    let mut establish: Vec<(u64, ValueId, usize)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let Some(ret) = e.ret else { continue };
        for v in [observed(&e.op), written(&e.op)].into_iter().flatten() {
            if v != NIL {
                let s = &mut seen[v as usize];
                *s = s.map(|t| t.min(ret));
            }
        }
        let established: &[ValueId] = match &e.op {
            RegisterOp::Read(v) | RegisterOp::Write(v) => std::slice::from_ref(v),
            RegisterOp::CasOk { expected, new } => &[*expected, *new],
            _ => &[],
        };
        for &v in established.iter().filter(|&&v| v != NIL) {
            establish.push((ret, v, i));
        }
    }
    establish.sort_unstable();
    let mut observers: Vec<(u64, ValueId, usize)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.ret.is_some())
        .filter_map(|(i, e)| observed(&e.op).map(|v| (e.call, v, i)))
        .collect();
    observers.sort_unstable();
    // Sweep: best and second-best (by writer call) established values with distinct values.
    let writer_call = |v: ValueId| writer[v as usize].map_or(0, |w| entries[w].call);
    // The two established values with the latest-invoked writers, distinct values.
    let mut top: [Option<(u64, ValueId, usize)>; 2] = [None, None];
    let mut next = 0;
    for (call, a, r2) in observers {
        while next < establish.len() && establish[next].0 < call {
            let (_, b, r1) = establish[next];
            next += 1;
            if top.iter().flatten().any(|t| t.1 == b) {
                continue; // same value, same writer: nothing new
            }
            let cand = Some((writer_call(b), b, r1));
            if cand > top[0] {
                top = [cand, top[0]];
            } else if cand > top[1] {
                top[1] = cand;
            }
        }
        let Some((wcall, b, r1)) = top.into_iter().flatten().find(|t| t.1 != a) else {
            continue;
        };
        let stale = match seen[a as usize] {
            None => true,
            Some(s) => s < wcall,
        };
        if stale {
            out.push(Anomaly::StaleRead {
                read: entries[r2].index,
                value: text(a),
                after: entries[r1].index,
                newer: text(b),
                newer_write: writer[b as usize].map_or(0, |w| entries[w].index),
            });
        }
    }
}
