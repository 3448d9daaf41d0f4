//! Linearizability checker for Jepsen-style histories (being built by the fault-testing issue).
