//! Turns the operations of one register key into search entries: values are interned,
//! failed operations and indeterminate reads are dropped, indeterminate writes and
//! compare-and-sets get an unbounded return time.

use rustc_hash::FxHashMap;

use crate::model::{Entry, RegisterModel, RegisterOp, ValueId, NIL};
use crate::ops::{Op, Outcome};

/// Most distinct values one key may hold (ids are `u32`).
pub const VALUES_MAX: usize = (u32::MAX / 2) as usize;

/// An operation the register workload cannot interpret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// `f` is not read, write or cas.
    #[error("operation #{index}: register f must be read, write or cas, got {f:?}")]
    UnsupportedOp {
        /// Invocation index.
        index: u64,
        /// The name.
        f: String,
    },
    /// A cas whose value is not `[expected, new]`.
    #[error("operation #{index}: cas value must be [expected, new], got {value}")]
    BadCas {
        /// Invocation index.
        index: u64,
        /// The value given.
        value: String,
    },
    /// More than [`VALUES_MAX`] distinct values.
    #[error("more than {VALUES_MAX} distinct values on one key")]
    TooManyValues,
}

#[derive(Default)]
struct Interner {
    ids: FxHashMap<String, ValueId>,
    values: Vec<String>,
}

impl Interner {
    fn new() -> Self {
        let mut me = Self::default();
        me.values.push("null".to_owned());
        me
    }

    fn id(&mut self, value: &serde_json::Value) -> Result<ValueId, RegisterError> {
        if value.is_null() {
            return Ok(NIL);
        }
        let text = value.to_string();
        if let Some(id) = self.ids.get(&text) {
            return Ok(*id);
        }
        if self.values.len() >= VALUES_MAX {
            return Err(RegisterError::TooManyValues);
        }
        let id = self.values.len() as ValueId;
        self.values.push(text.clone());
        self.ids.insert(text, id);
        Ok(id)
    }
}

/// Compiles one key's operations (any order) into a model and its entries, sorted by call.
///
/// `failed_cas_observes`: keep a failed cas as the observation "the value was not
/// `expected`" (sound only when the server evaluates the comparison linearizably and a
/// failure proves it did); otherwise a failed cas is dropped like every failed operation.
pub fn compile(
    ops: &[Op],
    failed_cas_observes: bool,
) -> Result<(RegisterModel, Vec<Entry<RegisterOp>>), RegisterError> {
    let mut interner = Interner::new();
    let mut entries = Vec::with_capacity(ops.len());
    for op in ops {
        let ret = match op.outcome {
            Outcome::Ok | Outcome::Fail => op.ret,
            Outcome::Info => None,
        };
        let compiled = match (op.f.as_str(), op.outcome) {
            ("read", Outcome::Ok) => Some(RegisterOp::Read(interner.id(&op.output)?)),
            ("read", _) | ("write", Outcome::Fail) => None,
            ("write", _) => Some(RegisterOp::Write(interner.id(&op.input)?)),
            ("cas", outcome) => {
                let pair = op
                    .input
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or_else(|| RegisterError::BadCas {
                        index: op.index,
                        value: op.input.to_string(),
                    })?;
                let expected = interner.id(&pair[0])?;
                let new = interner.id(&pair[1])?;
                match outcome {
                    Outcome::Ok => Some(RegisterOp::CasOk { expected, new }),
                    Outcome::Info => Some(RegisterOp::CasUnknown { expected, new }),
                    Outcome::Fail if failed_cas_observes => {
                        Some(RegisterOp::CasFailed { expected })
                    }
                    Outcome::Fail => None,
                }
            }
            (f, _) => {
                return Err(RegisterError::UnsupportedOp {
                    index: op.index,
                    f: f.to_owned(),
                })
            }
        };
        if let Some(op_kind) = compiled {
            entries.push(Entry {
                index: op.index,
                call: op.call,
                ret,
                op: op_kind,
            });
        }
    }
    entries.sort_by_key(|e| (e.call, e.index));
    Ok((
        RegisterModel {
            values: interner.values,
        },
        entries,
    ))
}
