//! Campaign as soon as the leader's lease has run out.
//!
//! openraft 0.10 grants a vote or a pre-vote only once `election_timeout_max`
//! has passed without contact from the leader (the leader lease), but its own
//! election timer fires at a random point of `[election_timeout_min,
//! election_timeout_max)`. So the first pre-vote after a leader dies is
//! almost always refused, and the next try waits another whole timeout:
//! with 400-800 ms timeouts a killed leader was replaced after 1.3-1.6 s
//! (benches/README.md, "Failover").
//!
//! [`campaign_when_lease_expires`] closes that gap: a follower starts a
//! pre-vote once the lease plus a random jitter below one heartbeat has run
//! out (the jitter keeps two followers from splitting the vote). It changes
//! nothing about safety: it asks openraft for the same pre-vote its timer
//! would start, and a member that merely lost its own link to a healthy
//! leader is refused by the others and raises no term.

use std::time::Duration;

use openraft::async_runtime::instant::Instant as _;

use crate::types::{NodeId, Raft, ServerState};

/// What the campaigner needs from openraft's state, read in one call.
struct Lease {
    /// A follower and a voter: a member that may campaign.
    may_campaign: bool,
    /// Time since the vote was last touched by the leader; None when this
    /// member never saw a committed leader (openraft's timer handles that).
    since_contact: Option<Duration>,
}

/// Starts a pre-vote whenever `lease` plus a jitter below `jitter_max` has
/// passed since this follower last heard from its leader. Ends when Raft
/// has stopped.
pub(crate) async fn campaign_when_lease_expires(
    raft: Raft,
    id: NodeId,
    lease: Duration,
    jitter_max: Duration,
) {
    let mut jitter = random_below(jitter_max);
    loop {
        let probe = raft
            .with_raft_state(move |s| Lease {
                may_campaign: s.server_state == ServerState::Follower
                    && s.membership_state.effective().voter_ids().any(|v| v == id),
                since_contact: s
                    .vote_ref()
                    .is_committed()
                    .then(|| s.vote_last_modified().map(|at| at.elapsed()))
                    .flatten(),
            })
            .await;
        let Ok(lease_state) = probe else {
            return;
        };
        let wait = match (lease_state.may_campaign, lease_state.since_contact) {
            (true, Some(since)) if since >= lease + jitter => {
                tracing::info!(
                    since_contact_ms = since.as_millis() as u64,
                    "the leader's lease ran out: starting a pre-vote"
                );
                if raft.trigger().elect(true).await.is_err() {
                    return;
                }
                jitter = random_below(jitter_max);
                // The round needs a few round trips; openraft's own timer
                // retries too if it fails.
                lease
            }
            (true, Some(since)) => lease + jitter - since,
            _ => lease,
        };
        tokio::time::sleep(wait).await;
    }
}

/// A uniformly drawn duration in `[0, max)` (zero when the OS has no
/// randomness to give, which only costs the split-vote protection).
fn random_below(max: Duration) -> Duration {
    let max_us = max.as_micros() as u64;
    if max_us == 0 {
        return Duration::ZERO;
    }
    Duration::from_micros(getrandom::u64().unwrap_or(0) % max_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_below_its_bound_and_varies() {
        let max = Duration::from_millis(50);
        let draws: Vec<Duration> = (0..64).map(|_| random_below(max)).collect();
        assert!(draws.iter().all(|d| *d < max));
        assert!(draws.iter().any(|d| *d != draws[0]), "{draws:?}");
        assert_eq!(random_below(Duration::ZERO), Duration::ZERO);
    }
}
