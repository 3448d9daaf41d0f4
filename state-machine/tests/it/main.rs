//! Integration tests of the state machine: one binary, one module per concern.

mod diffs;
mod props;
mod purity;
mod rules;
mod support;
