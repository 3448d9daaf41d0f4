//! The mutation switches: deliberate bugs for mutation testing of the fault
//! suites (`chaos-tests`, `jepsen/`).
//!
//! Outside raft-core, [`Mutation`] can be named (and so
//! `RaftNodeConfig::mutation` set, or a switch parsed from text) only with
//! the cargo feature `unsafe-mutations`. The fault suites enable it; a
//! default build, release binaries included, cannot turn a switch on.

/// Deliberate bugs for mutation testing: each breaks a guarantee on
/// purpose, and the fault suites (`chaos-tests`, `jepsen/`) must catch it.
/// Never set in production (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// "Linearizable" reads are served from local state, without ReadIndex.
    StaleReads,
    /// The leader acknowledges a write as soon as it is appended locally,
    /// before a quorum has it (the reply carries no resource).
    AckBeforeCommit,
    /// Log appends are acknowledged without fsync.
    SkipFsync,
    /// Request tokens are dropped before proposing, so a retried create is
    /// applied again instead of returning the first result.
    DoubleApply,
    /// A linearizable read that arrives while a shared ReadIndex round is in
    /// flight takes that round's answer instead of waiting for the next
    /// one: its read index may predate writes acknowledged before it began.
    ReadJoinsRoundInFlight,
}

#[cfg(feature = "unsafe-mutations")]
impl std::str::FromStr for Mutation {
    type Err = String;

    fn from_str(s: &str) -> Result<Mutation, String> {
        match s {
            "stale-reads" => Ok(Mutation::StaleReads),
            "ack-before-commit" => Ok(Mutation::AckBeforeCommit),
            "skip-fsync" => Ok(Mutation::SkipFsync),
            "double-apply" => Ok(Mutation::DoubleApply),
            "read-joins-round-in-flight" => Ok(Mutation::ReadJoinsRoundInFlight),
            other => Err(format!(
                "unknown mutation {other:?} (stale-reads, ack-before-commit, skip-fsync, double-apply, read-joins-round-in-flight)"
            )),
        }
    }
}
