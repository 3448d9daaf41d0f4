//! Jepsen-style black-box fault testing of real `alcor` processes (to be filled by
//! the fault-testing issue).
//!
//! Planned: each node in its own network namespace on a harness-made bridge,
//! nemeses (iptables partitions, kill -9, SIGSTOP, packet loss, membership
//! changes) scheduled during client workloads (register, set, unique allocation,
//! idempotent create, agent convergence), and a linearizability checker over the
//! recorded history. Nothing is implemented here yet.
