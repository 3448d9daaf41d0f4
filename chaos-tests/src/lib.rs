//! Seeded, in-process fault runs (to be filled by the fault-testing issue).
//!
//! This crate will drive several raft-core nodes inside one process with a
//! seed-derived schedule of partitions, crashes and restarts, check safety
//! invariants (no acknowledged write lost, linearizable histories) during the
//! faults and liveness after healing, and print the command that replays a failing
//! seed. It holds no code yet: the black-box, multi-process counterpart lives in
//! `jepsen/`, outside the workspace.
