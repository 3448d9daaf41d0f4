//! Whether this member is ready to serve, and `grpc.health.v1` reports of it.
//!
//! A member is **ready** while both hold:
//! - it sees a leader: as the leader, a quorum acknowledged it within the
//!   leader lease (`election_timeout_max`); as a follower or learner, the
//!   leader's last contact is within the lease (openraft's leader does not
//!   step down when it loses its quorum, and a follower whose pre-votes are
//!   refused keeps naming the old leader, so "has a leader id" is not
//!   enough);
//! - it has applied what was committed when it started: the larger of its
//!   own commit index at start and the commit index the leader reported
//!   when this member first saw one. This gate is passed once; lagging later
//!   does not make the member unready again (the leader check covers a
//!   member cut off from the cluster).
//!
//! [`decide`] is the decision (pure, tested below); [`track`] polls
//! openraft every heartbeat and publishes the verdict on a watch channel;
//! [`health_server`] turns that channel into a `grpc.health.v1.Health`
//! service for one listener. Liveness is not decided here: a process whose
//! event loop answers is alive, quorum or not.

use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::instant::Instant as _;
use openraft::async_runtime::watch::WatchReceiver;
use tokio::sync::watch;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

use crate::types::{NodeId, Raft, ServerState};

/// Why a member is not ready. `Display` is the short reason `/readyz`
/// answers with: no log index or member id, nothing an unauthenticated
/// caller should learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The first check has not run yet.
    Starting,
    /// No leader was heard from within the leader lease.
    NoLeader,
    /// Applied index below the start gate.
    CatchingUp {
        /// The last applied index.
        applied: Option<u64>,
        /// The index to reach.
        target: u64,
    },
    /// Raft has stopped (shutdown or a fatal error).
    Stopped,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotReady::Starting => "starting",
            NotReady::NoLeader => "no leader",
            NotReady::CatchingUp { .. } => "catching up with the log",
            NotReady::Stopped => "raft stopped",
        })
    }
}

/// A member's readiness: `Ok` when it serves.
pub type Readiness = Result<(), NotReady>;

/// What one check reads from openraft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    /// Time since the leader last proved itself to this member: a quorum's
    /// acknowledgement (leader) or the leader's contact (follower,
    /// learner); `None` when there is no such leader.
    pub(crate) since_leader: Option<Duration>,
    /// The last applied index.
    pub(crate) applied: Option<u64>,
    /// The commit index the leader reported last.
    pub(crate) cluster_committed: Option<u64>,
}

/// The start gate of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gate {
    /// This member's commit index when it started.
    start_committed: Option<u64>,
    /// The index to have applied, fixed when a leader is first seen (so
    /// the gate, once passed, stays open: the applied index only grows).
    target: Option<u64>,
}

impl Gate {
    /// The gate of a member whose commit index at start was
    /// `start_committed`.
    pub(crate) fn new(start_committed: Option<u64>) -> Gate {
        Gate {
            start_committed,
            target: None,
        }
    }
}

/// The readiness of a member that sees `probe`, with leader lease `lease`.
pub(crate) fn decide(probe: &Probe, lease: Duration, gate: &mut Gate) -> Readiness {
    if probe.since_leader.is_none_or(|since| since > lease) {
        return Err(NotReady::NoLeader);
    }
    let target = *gate.target.get_or_insert_with(|| {
        gate.start_committed
            .max(probe.cluster_committed)
            .unwrap_or(0)
    });
    if probe.applied.unwrap_or(0) < target {
        return Err(NotReady::CatchingUp {
            applied: probe.applied,
            target,
        });
    }
    Ok(())
}

/// Reads one [`Probe`] from `raft`; `None` once Raft has stopped.
async fn probe(raft: &Raft, id: NodeId) -> Option<Probe> {
    let (state, leader, applied, quorum_acked, single_voter) = {
        let metrics = raft.metrics();
        let m = metrics.borrow_watched();
        if m.running_state.is_err() {
            return None;
        }
        let mut voters = m.membership_config.membership().voter_ids();
        let single_voter = voters.next() == Some(id) && voters.next().is_none();
        (
            m.state,
            m.current_leader,
            m.last_applied.map(|l| l.index),
            m.last_quorum_acked.map(|at| at.elapsed()),
            single_voter,
        )
    };
    // The leader's contact and the commit index it reported, read
    // together: the first contact is never seen without its commit index.
    let (since_contact, cluster_committed) = raft
        .with_raft_state(|s| {
            let since_contact = s
                .vote_ref()
                .is_committed()
                .then(|| s.vote_last_modified().map(|at| at.elapsed()))
                .flatten();
            (since_contact, s.cluster_committed().map(|l| l.index))
        })
        .await
        .ok()?;
    let since_leader = match state {
        ServerState::Leader if single_voter => Some(Duration::ZERO),
        ServerState::Leader => quorum_acked,
        ServerState::Follower | ServerState::Learner if leader.is_some() => since_contact,
        ServerState::Follower | ServerState::Learner | ServerState::Candidate => None,
        ServerState::Shutdown => return None,
    };
    Some(Probe {
        since_leader,
        applied,
        cluster_committed,
    })
}

/// Checks `raft` every `every` and publishes the verdict on `verdict`
/// (logging each change) until Raft stops; then publishes
/// [`NotReady::Stopped`].
pub(crate) async fn track(
    raft: Raft,
    id: NodeId,
    lease: Duration,
    every: Duration,
    start_committed: Option<u64>,
    verdict: Arc<watch::Sender<Readiness>>,
) {
    let mut gate = Gate::new(start_committed);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(probe) = probe(&raft, id).await else {
            let _ = verdict.send_replace(Err(NotReady::Stopped));
            return;
        };
        let now = decide(&probe, lease, &mut gate);
        verdict.send_if_modified(|was| {
            if *was == now {
                return false;
            }
            match now {
                Ok(()) => tracing::info!("member ready"),
                Err(NotReady::CatchingUp { applied, target }) => {
                    tracing::info!(?applied, target, "member not ready: catching up")
                }
                Err(reason) => tracing::warn!(%reason, "member not ready"),
            }
            *was = now;
            true
        });
    }
}

/// A `grpc.health.v1.Health` service for a listener serving `services`
/// (fully qualified names): the overall status (`""`) and each of
/// `services` are SERVING while `readiness` says ready, NOT_SERVING
/// otherwise; `Watch` calls see every change. Names the listener does not
/// serve are NOT_FOUND. A task follows `readiness` until its sender is
/// gone, then reports NOT_SERVING.
pub async fn health_server(
    mut readiness: watch::Receiver<Readiness>,
    services: &[&str],
) -> HealthServer<HealthService> {
    let reporter = HealthReporter::new();
    let server = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
    let names: Vec<String> = std::iter::once("")
        .chain(services.iter().copied())
        .map(str::to_string)
        .collect();
    let status_of = |readiness: &Readiness| match readiness {
        Ok(()) => ServingStatus::Serving,
        Err(_) => ServingStatus::NotServing,
    };
    // tonic-health starts "" as SERVING: set every name before the server
    // can answer, so nothing reads SERVING before the first check.
    let first = status_of(&readiness.borrow_and_update());
    let statuses = reporter.clone();
    let initial = names.clone();
    let set_all = move |reporter: HealthReporter, names: Vec<String>, status: ServingStatus| async move {
        for name in &names {
            reporter.set_service_status(name, status).await;
        }
    };
    set_all(statuses, initial, first).await;
    tokio::spawn(async move {
        while readiness.changed().await.is_ok() {
            let status = status_of(&readiness.borrow_and_update());
            set_all(reporter.clone(), names.clone(), status).await;
        }
        set_all(reporter, names, ServingStatus::NotServing).await;
    });
    server
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(400);

    fn probe(since_ms: Option<u64>, applied: u64, cluster_committed: u64) -> Probe {
        Probe {
            since_leader: since_ms.map(Duration::from_millis),
            applied: Some(applied),
            cluster_committed: Some(cluster_committed),
        }
    }

    #[test]
    fn ready_only_while_a_leader_was_heard_within_the_lease() {
        let mut gate = Gate::new(Some(5));
        assert_eq!(decide(&probe(Some(50), 5, 5), LEASE, &mut gate), Ok(()));
        assert_eq!(
            decide(&probe(Some(401), 5, 5), LEASE, &mut gate),
            Err(NotReady::NoLeader)
        );
        assert_eq!(
            decide(&probe(None, 5, 5), LEASE, &mut gate),
            Err(NotReady::NoLeader)
        );
        assert_eq!(decide(&probe(Some(400), 5, 5), LEASE, &mut gate), Ok(()));
    }

    #[test]
    fn not_ready_until_what_was_committed_at_start_is_applied() {
        let mut gate = Gate::new(Some(10));
        assert_eq!(
            decide(&probe(Some(0), 9, 9), LEASE, &mut gate),
            Err(NotReady::CatchingUp {
                applied: Some(9),
                target: 10
            })
        );
        assert_eq!(decide(&probe(Some(0), 10, 10), LEASE, &mut gate), Ok(()));
    }

    #[test]
    fn the_target_is_what_the_first_leader_seen_had_committed() {
        // A member restarted with an empty or old log: the leader's commit
        // index is the target, fixed when the leader is first seen.
        let mut gate = Gate::new(Some(3));
        assert_eq!(
            decide(&probe(None, 0, 0), LEASE, &mut gate),
            Err(NotReady::NoLeader)
        );
        assert_eq!(
            decide(&probe(Some(0), 3, 20), LEASE, &mut gate),
            Err(NotReady::CatchingUp {
                applied: Some(3),
                target: 20
            })
        );
        // The cluster moves on; the target does not.
        assert_eq!(decide(&probe(Some(0), 20, 30), LEASE, &mut gate), Ok(()));
    }

    #[test]
    fn once_caught_up_lagging_does_not_make_the_member_unready() {
        let mut gate = Gate::new(Some(10));
        assert_eq!(decide(&probe(Some(0), 10, 10), LEASE, &mut gate), Ok(()));
        assert_eq!(decide(&probe(Some(0), 10, 500), LEASE, &mut gate), Ok(()));
    }

    #[test]
    fn a_fresh_cluster_is_ready_once_it_has_a_leader() {
        let mut gate = Gate::new(None);
        let fresh = Probe {
            since_leader: Some(Duration::ZERO),
            applied: None,
            cluster_committed: None,
        };
        assert_eq!(decide(&fresh, LEASE, &mut gate), Ok(()));
    }
}
