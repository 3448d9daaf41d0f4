//! The unique-allocation checker: no two ok `allocate` operations on one key (pool) may
//! return the same value. A scalar value is one namespace; an object's fields are each
//! their own namespace (`{"ip": .., "mac": ..}`: IPs unique, MACs unique). Failed and
//! indeterminate allocations returned nothing and are not compared. (That acknowledged
//! allocations survive is a set check: read the pool at the end as a set workload.)

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ops::{Op, Outcome};

/// Most duplicates reported per key (the count of all is kept).
pub const DUPLICATES_MAX: usize = 64;

/// An operation the unique workload cannot interpret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("operation #{index}: unique-allocation f must be allocate, got {f:?}")]
pub struct UniqueError {
    /// Invocation index.
    pub index: u64,
    /// The name.
    pub f: String,
}

/// Two ok allocations that returned the same value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    /// Object field, or empty for scalar values.
    pub field: String,
    /// The value.
    pub value: String,
    /// The first allocation that returned it.
    pub first: u64,
    /// A later one that returned it again.
    pub again: u64,
}

/// Result for one allocation key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UniqueSummary {
    /// Up to [`DUPLICATES_MAX`] duplicates.
    pub duplicates: Vec<Duplicate>,
    /// Count of all duplicates.
    pub total: usize,
    /// Ok allocations compared.
    pub allocations: usize,
}

/// Checks one allocation key.
pub fn check_unique(ops: &[Op]) -> Result<UniqueSummary, UniqueError> {
    let mut out = UniqueSummary::default();
    let mut first: BTreeMap<(String, String), u64> = BTreeMap::new();
    for op in ops {
        if op.f != "allocate" {
            return Err(UniqueError {
                index: op.index,
                f: op.f.clone(),
            });
        }
        if op.outcome != Outcome::Ok {
            continue;
        }
        out.allocations += 1;
        let fields: Vec<(String, String)> = match &op.output {
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            other => vec![(String::new(), other.to_string())],
        };
        for (field, value) in fields {
            match first.get(&(field.clone(), value.clone())) {
                Some(&earlier) => {
                    out.total += 1;
                    if out.duplicates.len() < DUPLICATES_MAX {
                        out.duplicates.push(Duplicate {
                            field,
                            value,
                            first: earlier,
                            again: op.index,
                        });
                    }
                }
                None => {
                    first.insert((field, value), op.index);
                }
            }
        }
    }
    Ok(out)
}
