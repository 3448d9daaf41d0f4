//! Port status driven by agent acks. Each node runs one status-proposer
//! task; the agent readers hand it acks without ever waiting.
//!
//! Rules, for an ack `(R, statuses)` from the agent of host `H`: every port
//! bound to `H` whose current `meta.revision <= R` (the agent applied its
//! current version) should be `Error(reason)` if the ack lists it as failed
//! and `Active` otherwise (an ack is a statement about the agent's whole
//! table: an object it does not list as failed was applied). Ports whose
//! status already is what it should be are left alone, so acks that change
//! nothing propose nothing. Ports with a newer revision wait for a later ack.
//!
//! Flow: [`StatusFeed::offer`] keeps the latest ack per host in a bounded
//! map (`STATUS_PENDING_HOSTS_MAX`; a newer ack replaces an older one of
//! the same host, so a host never has more than one waiting) and wakes the
//! proposer through a one-slot channel. The proposer takes up to
//! `STATUS_HOSTS_PER_ROUND_MAX` hosts, plans against the node's applied
//! state (no round trip), and only if something differs plans again on a
//! linearizable read (so a port the leader has meanwhile moved or updated
//! is not judged by this node's lagging copy), then proposes all changes as
//! one `Command::Batch` (or the single command) through
//! `RaftNode::client_write`, which forwards to the leader. One proposal is
//! in flight at a time; acks arriving meanwhile coalesce per host. A failed
//! read or write puts the hosts back (unless newer acks came) and retries
//! after `STATUS_RETRY_MS`.
//!
//! Each command is conditional (`if_bound_to` the acking host,
//! `if_revision_at_most` the acked revision), so a port moved or updated
//! between the read and the commit is left alone by the state machine.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use alcor_raft_core::RaftNode;
use alcor_state_machine::limits::{BATCH_COMMANDS_MAX, NAME_BYTES_MAX};
use alcor_state_machine::model::PortStatus;
use alcor_state_machine::{Command, GoalKey, HostId, Id, Proposal, Reply, State};
use tokio::sync::{mpsc, watch};

use crate::limits;
use crate::message::Ack;

/// What the status proposer of one node did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounters {
    /// Acks handed to the proposer.
    pub acks: u64,
    /// Acks dropped because `STATUS_PENDING_HOSTS_MAX` hosts were waiting.
    pub acks_dropped: u64,
    /// Rounds completed (each plans the acks taken, proposing or not).
    pub rounds: u64,
    /// Writes proposed (each one `SetPortStatus` or one `Batch` of them).
    pub proposals: u64,
    /// `SetPortStatus` commands in those writes.
    pub commands: u64,
    /// Reads or writes that failed (the hosts were retried).
    pub failures: u64,
}

/// The latest ack of one host, reduced to what status needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostAck {
    revision: u64,
    /// Ports the agent failed to apply, with the (sanitized) reason.
    failed: BTreeMap<Id, String>,
}

impl HostAck {
    pub(crate) fn from_ack(ack: &Ack) -> HostAck {
        let mut failed = BTreeMap::new();
        for status in &ack.statuses {
            let GoalKey::Port(id) = status.key else {
                continue;
            };
            match &status.result {
                Ok(()) => {
                    failed.remove(&id);
                }
                Err(reason) => {
                    failed.insert(id, sanitize_reason(reason));
                }
            }
        }
        HostAck {
            revision: ack.revision,
            failed,
        }
    }
}

/// An agent's reason made acceptable to the state machine: control
/// characters become spaces, and it is cut to `NAME_BYTES_MAX` bytes on a
/// character boundary. An empty reason becomes a placeholder.
pub(crate) fn sanitize_reason(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len().min(NAME_BYTES_MAX));
    for c in reason.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > NAME_BYTES_MAX {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        out.push_str("failed (no reason given)");
    }
    out
}

/// The `SetPortStatus` commands that bring the ports of the hosts in
/// `acks` to what their acks say, read from `state`.
pub(crate) fn plan(state: &State, acks: &BTreeMap<HostId, HostAck>) -> Vec<Command> {
    let mut commands = Vec::new();
    for (host, ack) in acks {
        for port in state.ports_of_host(host) {
            if port.meta.revision > ack.revision {
                continue;
            }
            let want = match ack.failed.get(&port.id) {
                Some(reason) => PortStatus::Error(Box::new(reason.clone())),
                None => PortStatus::Active,
            };
            if port.status != want {
                commands.push(Command::SetPortStatus {
                    id: port.id,
                    status: want,
                    if_bound_to: Some(host.clone()),
                    if_revision_at_most: Some(ack.revision),
                });
            }
        }
    }
    commands
}

/// The ack side of the proposer: shared by the agent readers.
#[derive(Debug)]
pub(crate) struct StatusFeed {
    pending: Mutex<BTreeMap<HostId, HostAck>>,
    /// One slot: a full slot already means "look at `pending`".
    wake: mpsc::Sender<()>,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    acks: AtomicU64,
    acks_dropped: AtomicU64,
    rounds: AtomicU64,
    proposals: AtomicU64,
    commands: AtomicU64,
    failures: AtomicU64,
}

impl StatusFeed {
    /// A feed and the receiver its proposer waits on.
    pub(crate) fn new() -> (Arc<StatusFeed>, mpsc::Receiver<()>) {
        let (wake, woken) = mpsc::channel(limits::STATUS_WAKE_MAX);
        let feed = StatusFeed {
            pending: Mutex::new(BTreeMap::new()),
            wake,
            counters: Counters::default(),
        };
        (Arc::new(feed), woken)
    }

    fn pending(&self) -> MutexGuard<'_, BTreeMap<HostId, HostAck>> {
        // Plain map inserts and removals: ignore poisoning.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `host`'s ack to the proposer; never waits. A waiting ack of
    /// the same host is replaced (acks are cumulative).
    pub(crate) fn offer(&self, host: &str, ack: &Ack) {
        let ack = HostAck::from_ack(ack);
        {
            let mut pending = self.pending();
            if let Some(waiting) = pending.get_mut(host) {
                *waiting = ack;
            } else if pending.len() < limits::STATUS_PENDING_HOSTS_MAX {
                pending.insert(host.to_string(), ack);
            } else {
                self.counters.acks_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(host, "status queue full: ack dropped");
                return;
            }
        }
        self.counters.acks.fetch_add(1, Ordering::Relaxed);
        // Full: a wake-up is already pending. Closed: the proposer stopped.
        let _ = self.wake.try_send(());
    }

    /// Takes up to `max` waiting hosts, in host order.
    fn take(&self, max: usize) -> BTreeMap<HostId, HostAck> {
        let mut pending = self.pending();
        if pending.len() <= max {
            return std::mem::take(&mut *pending);
        }
        let mut taken = BTreeMap::new();
        while taken.len() < max {
            let Some((host, ack)) = pending.pop_first() else {
                break;
            };
            taken.insert(host, ack);
        }
        taken
    }

    /// Puts back hosts whose round failed, unless a newer ack came.
    fn put_back(&self, acks: BTreeMap<HostId, HostAck>) {
        let mut pending = self.pending();
        for (host, ack) in acks {
            if pending.len() >= limits::STATUS_PENDING_HOSTS_MAX {
                break;
            }
            pending.entry(host).or_insert(ack);
        }
    }

    fn has_pending(&self) -> bool {
        !self.pending().is_empty()
    }

    pub(crate) fn counters(&self) -> StatusCounters {
        let c = &self.counters;
        StatusCounters {
            acks: c.acks.load(Ordering::Relaxed),
            acks_dropped: c.acks_dropped.load(Ordering::Relaxed),
            rounds: c.rounds.load(Ordering::Relaxed),
            proposals: c.proposals.load(Ordering::Relaxed),
            commands: c.commands.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
        }
    }
}

/// The proposer task of one node: runs until `stop` is set or every
/// [`StatusFeed`] handle is gone.
pub(crate) async fn run_proposer(
    feed: Arc<StatusFeed>,
    raft: Arc<RaftNode>,
    mut woken: mpsc::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if !feed.has_pending() {
            tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => return,
                wake = woken.recv() => if wake.is_none() { return },
            }
        }
        let acks = feed.take(limits::STATUS_HOSTS_PER_ROUND_MAX);
        if acks.is_empty() {
            continue;
        }
        let round = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => return,
            round = propose_round(&feed, &raft, &acks) => round,
        };
        match round {
            Ok(()) => {
                feed.counters.rounds.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                feed.counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("port status round failed, retrying: {e}");
                feed.put_back(acks);
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stopped| *stopped) => return,
                    _ = tokio::time::sleep(Duration::from_millis(limits::STATUS_RETRY_MS)) => {}
                }
            }
        }
    }
}

/// Plans and proposes the status changes of `acks`.
async fn propose_round(
    feed: &StatusFeed,
    raft: &RaftNode,
    acks: &BTreeMap<HostId, HostAck>,
) -> Result<(), String> {
    let stale = raft
        .read_stale(|state| plan(state, acks))
        .map_err(|e| e.to_string())?;
    if stale.is_empty() {
        return Ok(());
    }
    let commands = raft
        .read_linearizable(|state| plan(state, acks))
        .await
        .map_err(|e| e.to_string())?;
    let mut commands = commands.into_iter().peekable();
    while commands.peek().is_some() {
        let mut chunk: Vec<Command> = commands.by_ref().take(BATCH_COMMANDS_MAX).collect();
        let n_commands = chunk.len() as u64;
        let command = if chunk.len() == 1 {
            chunk.remove(0)
        } else {
            Command::Batch(chunk)
        };
        feed.counters.proposals.fetch_add(1, Ordering::Relaxed);
        feed.counters
            .commands
            .fetch_add(n_commands, Ordering::Relaxed);
        let response = raft
            .client_write(Proposal {
                time_ms: now_ms(),
                command,
            })
            .await
            .map_err(|e| e.to_string())?;
        match response.result {
            Ok(Reply::Batch(results)) => {
                for rejection in results.iter().filter_map(|r| r.as_ref().err()) {
                    // A port deleted meanwhile, typically.
                    tracing::debug!("port status change rejected: {rejection:?}");
                }
            }
            Ok(_) => {}
            Err(rejection) => {
                tracing::debug!("port status change rejected: {rejection:?}");
            }
        }
    }
    Ok(())
}

/// Wall-clock milliseconds for the proposal's `updated_at` stamp (the
/// gateway stamps its proposals the same way).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ResourceStatus;

    #[test]
    fn reason_is_cut_to_the_state_machine_limit_on_a_char_boundary() {
        let long = "é".repeat(300);
        let cut = sanitize_reason(&long);
        assert!(cut.len() <= NAME_BYTES_MAX);
        assert_eq!(cut.len(), NAME_BYTES_MAX - 1, "127 two-byte chars");
        assert_eq!(sanitize_reason("a\nb\tc"), "a b c");
        assert!(!sanitize_reason("").is_empty());
    }

    #[test]
    fn later_status_of_a_port_in_one_ack_wins_and_other_keys_are_ignored() {
        let ack = Ack {
            revision: 7,
            statuses: vec![
                ResourceStatus {
                    key: GoalKey::Port(Id(1)),
                    result: Err("boom".to_string()),
                },
                ResourceStatus {
                    key: GoalKey::Vpc(Id(2)),
                    result: Err("vpc".to_string()),
                },
                ResourceStatus {
                    key: GoalKey::Port(Id(3)),
                    result: Err("first".to_string()),
                },
                ResourceStatus {
                    key: GoalKey::Port(Id(3)),
                    result: Ok(()),
                },
            ],
        };
        let host_ack = HostAck::from_ack(&ack);
        assert_eq!(host_ack.revision, 7);
        assert_eq!(
            host_ack.failed,
            BTreeMap::from([(Id(1), "boom".to_string())])
        );
    }

    #[test]
    fn feed_keeps_only_the_latest_ack_per_host() {
        let (feed, _woken) = StatusFeed::new();
        for revision in 1..=5 {
            feed.offer(
                "h1",
                &Ack {
                    revision,
                    statuses: Vec::new(),
                },
            );
        }
        feed.offer(
            "h2",
            &Ack {
                revision: 9,
                statuses: Vec::new(),
            },
        );
        let taken = feed.take(10);
        assert_eq!(taken.len(), 2);
        assert_eq!(taken["h1"].revision, 5);
        assert_eq!(feed.counters().acks, 6);
        assert!(!feed.has_pending());
    }
}
