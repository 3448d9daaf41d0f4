//! Sequential specifications for the linearizability search, and the search's input type.
//!
//! A model is a deterministic state machine: [`Model::step`] says whether an operation,
//! *with the result it observed*, is legal in a state, and what state follows. The search
//! memoizes (linearized set, state) pairs, so states must be `Eq + Hash`; keep them small
//! (interned ids, bitsets) because the cache stores one per visited configuration.

use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    /// The abstract state (small, cheap to clone and hash).
    type State: Clone + Eq + Hash + Debug;
    /// An operation together with what it observed.
    type Op: Debug;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// The state after `op`, or `None` when `op` (with its observed result) is not legal in
    /// `state`.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
    /// Human-readable operation, for reports.
    fn describe_op(&self, op: &Self::Op) -> String;
    /// Human-readable state, for reports.
    fn describe_state(&self, state: &Self::State) -> String;
}

/// One operation of a partition as the search sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<O> {
    /// History index of the invocation (for reports).
    pub index: u64,
    /// Invocation time.
    pub call: u64,
    /// Completion time; `None` = indeterminate, may take effect any time after `call` or
    /// never.
    pub ret: Option<u64>,
    /// The operation and its observed result.
    pub op: O,
}

/// Interned register value: 0 is "absent" (`null`), others index [`RegisterModel::values`].
pub type ValueId = u32;
/// The absent value (a key never written, or read as `null`).
pub const NIL: ValueId = 0;

/// What a register operation observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOp {
    /// A read that returned the value.
    Read(ValueId),
    /// A write (ok, or indeterminate: effects are the same, only timing differs).
    Write(ValueId),
    /// A compare-and-set that succeeded.
    CasOk {
        /// Expected value.
        expected: ValueId,
        /// Value written.
        new: ValueId,
    },
    /// A compare-and-set of unknown outcome: writes `new` if the value was `expected`.
    CasUnknown {
        /// Expected value.
        expected: ValueId,
        /// Value written on a match.
        new: ValueId,
    },
    /// A compare-and-set whose comparison failed (only kept when failed CAS results are
    /// trusted as observations): the value was not `expected`.
    CasFailed {
        /// Expected value.
        expected: ValueId,
    },
}

/// A read/write/compare-and-set register whose values are interned per key.
#[derive(Debug, Clone, Default)]
pub struct RegisterModel {
    /// Canonical JSON text of each value id (`values[0]` is `null`).
    pub values: Vec<String>,
}

impl Model for RegisterModel {
    type State = ValueId;
    type Op = RegisterOp;

    fn init(&self) -> ValueId {
        NIL
    }

    fn step(&self, state: &ValueId, op: &RegisterOp) -> Option<ValueId> {
        let state = *state;
        match *op {
            RegisterOp::Read(v) => (v == state).then_some(state),
            RegisterOp::Write(v) => Some(v),
            RegisterOp::CasOk { expected, new } => (expected == state).then_some(new),
            RegisterOp::CasUnknown { expected, new } => {
                Some(if expected == state { new } else { state })
            }
            RegisterOp::CasFailed { expected } => (expected != state).then_some(state),
        }
    }

    fn describe_op(&self, op: &RegisterOp) -> String {
        let v = |id: &ValueId| self.describe_state(id);
        match op {
            RegisterOp::Read(x) => format!("read -> {}", v(x)),
            RegisterOp::Write(x) => format!("write {}", v(x)),
            RegisterOp::CasOk { expected, new } => format!("cas {} -> {}", v(expected), v(new)),
            RegisterOp::CasUnknown { expected, new } => {
                format!("cas {} -> {} (unknown outcome)", v(expected), v(new))
            }
            RegisterOp::CasFailed { expected } => format!("cas {} (compare failed)", v(expected)),
        }
    }

    fn describe_state(&self, state: &ValueId) -> String {
        self.values
            .get(*state as usize)
            .cloned()
            .unwrap_or_else(|| format!("<value #{state}>"))
    }
}

/// A grow-only set of unique elements with whole-set reads, for histories small enough
/// to search (the O(n) [`crate::set`] checker is the default for the set workload).
/// Elements are interned to bit positions; the state is a bitset.
#[derive(Debug, Clone, Default)]
pub struct SetModel {
    /// Canonical JSON text of each element, by bit position.
    pub elements: Vec<String>,
}

/// What a set operation observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOp {
    /// Add one element (ok or indeterminate).
    Add(u32),
    /// A read that returned exactly these elements (a bitset).
    Read(Vec<u64>),
}

impl SetModel {
    fn words(&self) -> usize {
        self.elements.len().div_ceil(64)
    }

    /// A read's bitset from element positions.
    pub fn read_of(&self, elements: &[u32]) -> SetOp {
        let mut bits = vec![0u64; self.words()];
        for e in elements {
            bits[*e as usize / 64] |= 1 << (e % 64);
        }
        SetOp::Read(bits)
    }
}

impl Model for SetModel {
    type State = Vec<u64>;
    type Op = SetOp;

    fn init(&self) -> Vec<u64> {
        vec![0; self.words()]
    }

    fn step(&self, state: &Vec<u64>, op: &SetOp) -> Option<Vec<u64>> {
        match op {
            SetOp::Add(e) => {
                let mut next = state.clone();
                *next.get_mut(*e as usize / 64)? |= 1 << (e % 64);
                Some(next)
            }
            SetOp::Read(bits) => (bits == state).then(|| state.clone()),
        }
    }

    fn describe_op(&self, op: &SetOp) -> String {
        match op {
            SetOp::Add(e) => format!("add {}", self.elements.get(*e as usize).map_or("?", |s| s)),
            SetOp::Read(bits) => format!("read -> {}", self.describe_state(bits)),
        }
    }

    fn describe_state(&self, state: &Vec<u64>) -> String {
        let members: Vec<&str> = (0..self.elements.len())
            .filter(|i| state.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0))
            .map(|i| self.elements[i].as_str())
            .collect();
        format!("[{}]", members.join(", "))
    }
}
