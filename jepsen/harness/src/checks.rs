//! Checks of the port workloads against the history and the final reads on
//! every node: `set` and `idempotent` (acknowledged adds present everywhere,
//! nothing that was never attempted, no element twice, i.e. no token with
//! two ports, every node the same), `unique` (no IP or MAC handed out twice;
//! acknowledged ports survive with their addresses on every node).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::history::{Op, OpType};

/// A checker's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No anomaly found.
    Valid,
    /// Anomalies, described.
    Invalid(Vec<String>),
    /// The check could not be completed (counts as a failure).
    Unknown(String),
}

impl Verdict {
    /// One word for the summary table.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid(_) => "INVALID",
            Verdict::Unknown(_) => "UNKNOWN",
        }
    }

    fn from_problems(problems: Vec<String>) -> Verdict {
        if problems.is_empty() {
            Verdict::Valid
        } else {
            Verdict::Invalid(problems)
        }
    }
}

/// Anomalies listed per check, at most this many.
const PROBLEMS_MAX: usize = 20;

fn push(problems: &mut Vec<String>, problem: String) {
    if problems.len() < PROBLEMS_MAX {
        problems.push(problem);
    }
}

/// Client ops of one key in history order.
fn ops_of<'a>(history: &'a [Op], key: &'a str) -> impl Iterator<Item = &'a Op> + 'a {
    history.iter().filter(move |op| {
        op.key.as_deref() == Some(key) && matches!(op.process, crate::history::Process::Client(_))
    })
}

/// The idempotent workload's reply check: a create retried with its
/// request token must get the first attempt's result back, never
/// ALREADY_EXISTS for the resource that attempt created.
pub fn check_tokens(history: &[Op], key: &str) -> Verdict {
    let mut problems = Vec::new();
    for op in ops_of(history, key) {
        let Some(error) = &op.error else { continue };
        if error.starts_with(crate::workloads::TOKEN_NOT_HONOURED) {
            push(
                &mut problems,
                format!(
                    "element {}: a retry with the same request token was answered ALREADY_EXISTS, not with the first result ({error})",
                    op.value
                ),
            );
        }
    }
    Verdict::from_problems(problems)
}

/// The set check of `key` (the set and idempotent workloads).
/// `finals` holds each node's final read (node name, elements).
pub fn check_set(history: &[Op], key: &str, finals: &[(String, Vec<u64>)]) -> Verdict {
    let mut attempted = BTreeSet::new();
    let mut acked = BTreeSet::new();
    for op in ops_of(history, key).filter(|op| op.f == "add") {
        let Some(e) = op.value.as_u64() else { continue };
        match op.kind {
            OpType::Invoke => {
                attempted.insert(e);
            }
            OpType::Ok => {
                acked.insert(e);
            }
            _ => {}
        }
    }
    if finals.is_empty() {
        return Verdict::Unknown("no final read".to_string());
    }
    let mut problems = Vec::new();
    let first: BTreeSet<u64> = finals[0].1.iter().copied().collect();
    for (node, read) in finals {
        let set: BTreeSet<u64> = read.iter().copied().collect();
        if set.len() != read.len() {
            push(
                &mut problems,
                format!("{node}: duplicate elements in the final read"),
            );
        }
        let lost: Vec<_> = acked.difference(&set).take(10).collect();
        if !lost.is_empty() {
            push(
                &mut problems,
                format!("{node}: acknowledged adds missing: {lost:?}"),
            );
        }
        let phantom: Vec<_> = set.difference(&attempted).take(10).collect();
        if !phantom.is_empty() {
            push(
                &mut problems,
                format!("{node}: never-attempted elements present: {phantom:?}"),
            );
        }
        if set != first {
            push(
                &mut problems,
                format!("{node}: final read differs from {}'s", finals[0].0),
            );
        }
    }
    Verdict::from_problems(problems)
}

/// A port as the unique and idempotent checks see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortSeen {
    /// Port id.
    pub id: String,
    /// Its first fixed IP.
    pub ip: String,
    /// Its MAC.
    pub mac: String,
}

impl PortSeen {
    /// From a `port_identity` JSON value.
    pub fn from_value(value: &Value) -> Option<PortSeen> {
        Some(PortSeen {
            id: value.get("id")?.as_str()?.to_string(),
            ip: value.get("ip")?.as_str()?.to_string(),
            mac: value.get("mac")?.as_str()?.to_string(),
        })
    }
}

/// Reports every IP or MAC held by two different ports in `ports`.
fn duplicates(ports: &[PortSeen], what: &str, problems: &mut Vec<String>) {
    let mut by_ip: BTreeMap<&str, &str> = BTreeMap::new();
    let mut by_mac: BTreeMap<&str, &str> = BTreeMap::new();
    for port in ports {
        if let Some(other) = by_ip.insert(&port.ip, &port.id) {
            if other != port.id {
                push(
                    problems,
                    format!("{what}: IP {} held by {other} and {}", port.ip, port.id),
                );
            }
        }
        if let Some(other) = by_mac.insert(&port.mac, &port.id) {
            if other != port.id {
                push(
                    problems,
                    format!("{what}: MAC {} held by {other} and {}", port.mac, port.id),
                );
            }
        }
    }
}

/// The unique-allocation check.
pub fn check_unique(history: &[Op], finals: &[(String, Vec<PortSeen>)]) -> Verdict {
    let key = "unique";
    let acked: Vec<PortSeen> = ops_of(history, key)
        .filter(|op| op.kind == OpType::Ok)
        .filter_map(|op| PortSeen::from_value(&op.value))
        .collect();
    if finals.is_empty() {
        return Verdict::Unknown("no final read".to_string());
    }
    let mut problems = Vec::new();
    duplicates(&acked, "acknowledged creates", &mut problems);
    for (node, read) in finals {
        duplicates(read, node, &mut problems);
        let by_id: BTreeMap<&str, &PortSeen> = read.iter().map(|p| (p.id.as_str(), p)).collect();
        for port in &acked {
            match by_id.get(port.id.as_str()) {
                None => push(
                    &mut problems,
                    format!("{node}: acknowledged port {} lost", port.id),
                ),
                Some(seen) if seen.ip != port.ip || seen.mac != port.mac => push(
                    &mut problems,
                    format!(
                        "{node}: port {} acked with {}/{} reads {}/{}",
                        port.id, port.ip, port.mac, seen.ip, seen.mac
                    ),
                ),
                Some(_) => {}
            }
        }
        if read.len() != finals[0].1.len() {
            push(
                &mut problems,
                format!(
                    "{node}: {} ports, {} has {}",
                    read.len(),
                    finals[0].0,
                    finals[0].1.len()
                ),
            );
        }
    }
    Verdict::from_problems(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Process;
    use serde_json::json;

    fn op(index: u64, process: u64, kind: OpType, f: &str, key: &str, value: Value) -> Op {
        Op {
            index,
            process: Process::Client(process),
            kind,
            f: f.to_string(),
            key: Some(key.to_string()),
            value,
            time: index,
            workload: None,
            node: None,
            error: None,
        }
    }

    #[test]
    fn set_check_flags_a_lost_acknowledged_add_and_accepts_an_indeterminate_one() {
        let history = vec![
            op(0, 0, OpType::Invoke, "add", "set", json!(1)),
            op(1, 0, OpType::Ok, "add", "set", json!(1)),
            op(2, 1, OpType::Invoke, "add", "set", json!(2)),
            op(3, 1, OpType::Info, "add", "set", json!(2)),
        ];
        let good = vec![
            ("n1".to_string(), vec![1, 2]),
            ("n2".to_string(), vec![1, 2]),
        ];
        assert_eq!(check_set(&history, "set", &good), Verdict::Valid);
        let lost = vec![("n1".to_string(), vec![2])];
        assert!(matches!(
            check_set(&history, "set", &lost),
            Verdict::Invalid(_)
        ));
        let phantom = vec![("n1".to_string(), vec![1, 7])];
        assert!(matches!(
            check_set(&history, "set", &phantom),
            Verdict::Invalid(_)
        ));
    }

    #[test]
    fn token_check_flags_a_retry_answered_already_exists() {
        let mut retried = op(3, 1, OpType::Fail, "add", "idempotent", json!(4));
        retried.error = Some(format!(
            "{}: attempt 1: ALREADY_EXISTS",
            crate::workloads::TOKEN_NOT_HONOURED
        ));
        let mut timed_out = op(1, 0, OpType::Info, "add", "idempotent", json!(4));
        timed_out.error = Some("attempt 0: timeout".to_string());
        let fine = vec![
            op(0, 0, OpType::Invoke, "add", "idempotent", json!(4)),
            timed_out,
            op(2, 1, OpType::Invoke, "add", "idempotent", json!(4)),
            op(3, 1, OpType::Ok, "add", "idempotent", json!(4)),
        ];
        assert_eq!(check_tokens(&fine, "idempotent"), Verdict::Valid);
        let mut broken = fine.clone();
        broken[3] = retried;
        assert!(matches!(
            check_tokens(&broken, "idempotent"),
            Verdict::Invalid(_)
        ));
    }

    fn port(id: &str, ip: &str, mac: &str) -> PortSeen {
        PortSeen {
            id: id.to_string(),
            ip: ip.to_string(),
            mac: mac.to_string(),
        }
    }

    #[test]
    fn unique_check_flags_an_ip_held_by_two_ports() {
        let history = vec![
            op(0, 0, OpType::Invoke, "allocate", "unique", Value::Null),
            op(
                1,
                0,
                OpType::Ok,
                "allocate",
                "unique",
                json!({"id": "a", "ip": "10.0.0.2", "mac": "m1"}),
            ),
        ];
        let good = vec![("n1".to_string(), vec![port("a", "10.0.0.2", "m1")])];
        assert_eq!(check_unique(&history, &good), Verdict::Valid);
        let dup = vec![(
            "n1".to_string(),
            vec![port("a", "10.0.0.2", "m1"), port("b", "10.0.0.2", "m2")],
        )];
        assert!(matches!(check_unique(&history, &dup), Verdict::Invalid(_)));
    }
}
