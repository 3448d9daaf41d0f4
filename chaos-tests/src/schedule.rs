//! Seed-derived fault schedules: the same seed always gives the same list of
//! faults at the same offsets (the interleaving of the real tasks still varies
//! from run to run; the seed pins the faults, not the thread scheduler).

use std::collections::BTreeSet;
use std::time::Duration;

use alcor_raft_core::NodeId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::faults::Lossy;

/// One fault (or repair) of the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Remove every cut and loss.
    Heal,
    /// Cut one node off from all others.
    Isolate(NodeId),
    /// Split the nodes into two groups.
    Halves(BTreeSet<NodeId>),
    /// Cut one direction of one link.
    OneWay {
        /// Sender whose messages are lost.
        from: NodeId,
        /// Receiver that never sees them.
        to: NodeId,
    },
    /// Make every link lossy.
    Lossy(Lossy),
    /// Stop a node (its data dir is kept).
    Crash(NodeId),
    /// Start a crashed node again from its data dir.
    Restart(NodeId),
}

/// A fault and when it starts, from the beginning of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Offset from the start of the run.
    pub at: Duration,
    /// What happens.
    pub fault: Fault,
}

/// Shortest gap between two steps.
const STEP_GAP_MS_MIN: u64 = 150;
/// Longest gap between two steps.
const STEP_GAP_MS_MAX: u64 = 600;

/// The schedule of seed `seed` for `nodes` nodes over `duration`. At most a
/// minority is crashed at any time; every crashed node is restarted and every
/// fault healed before the end.
pub fn schedule(seed: u64, nodes: u64, duration: Duration) -> Vec<Step> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ids: Vec<NodeId> = (1..=nodes).collect();
    let crash_max = (nodes - 1) / 2;
    let mut crashed: BTreeSet<NodeId> = BTreeSet::new();
    let mut steps = Vec::new();
    let mut at = Duration::ZERO;
    loop {
        at += Duration::from_millis(rng.random_range(STEP_GAP_MS_MIN..=STEP_GAP_MS_MAX));
        if at >= duration {
            break;
        }
        let pick = |rng: &mut ChaCha8Rng| ids[rng.random_range(0..ids.len())];
        let fault = match rng.random_range(0..8) {
            0 => Fault::Heal,
            1 => Fault::Isolate(pick(&mut rng)),
            2 => {
                let minority_len = rng.random_range(1..=crash_max.max(1));
                let mut minority = BTreeSet::new();
                while (minority.len() as u64) < minority_len {
                    minority.insert(pick(&mut rng));
                }
                Fault::Halves(minority)
            }
            3 => {
                let from = pick(&mut rng);
                let to = loop {
                    let to = pick(&mut rng);
                    if to != from {
                        break to;
                    }
                };
                Fault::OneWay { from, to }
            }
            4 => Fault::Lossy(Lossy {
                drop_pct: rng.random_range(0..=20),
                duplicate_pct: rng.random_range(0..=20),
                delay_pct: rng.random_range(0..=30),
                delay_ms_max: rng.random_range(1..=100),
            }),
            5 | 6 if (crashed.len() as u64) < crash_max => {
                let id = pick(&mut rng);
                if crashed.insert(id) {
                    Fault::Crash(id)
                } else {
                    crashed.remove(&id);
                    Fault::Restart(id)
                }
            }
            _ => match crashed.pop_first() {
                Some(id) => Fault::Restart(id),
                None => Fault::Heal,
            },
        };
        steps.push(Step { at, fault });
    }
    steps.push(Step {
        at: duration,
        fault: Fault::Heal,
    });
    for id in crashed {
        steps.push(Step {
            at: duration,
            fault: Fault::Restart(id),
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_the_same_schedule_and_ends_healed() {
        let a = schedule(7, 3, Duration::from_secs(3));
        let b = schedule(7, 3, Duration::from_secs(3));
        assert_eq!(a, b);
        assert_ne!(a, schedule(8, 3, Duration::from_secs(3)));
        let mut down = BTreeSet::new();
        for step in &a {
            match step.fault {
                Fault::Crash(id) => assert!(down.insert(id), "crashed twice: {a:?}"),
                Fault::Restart(id) => assert!(down.remove(&id), "restart of a live node"),
                _ => {}
            }
            assert!(down.len() <= 1, "a majority of 3 went down: {a:?}");
        }
        assert!(down.is_empty(), "a node stays down at the end: {a:?}");
    }
}
