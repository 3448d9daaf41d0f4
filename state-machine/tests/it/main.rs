//! Integration tests of the state machine: one binary, one module per concern.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod binding;
mod derived_ids;
mod diffs;
mod external;
mod floating_ips;
mod props;
mod purity;
mod qos;
mod rejections;
mod router_ports;
mod rules;
mod snapshot_formats;
mod support;
mod tags;
