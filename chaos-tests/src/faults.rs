//! The fault-injecting link layer of a chaos run: partitions (symmetric and
//! one-way cuts) and lossy links (drop, duplicate, delay), applied by
//! raft-core to every real gRPC message between nodes.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use alcor_raft_core::{LinkFate, LinkFaults, NodeId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Probabilities (in percent) of what happens to a message on a lossy link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lossy {
    /// Chance that a request or a reply is lost.
    pub drop_pct: u32,
    /// Chance that a request is sent twice.
    pub duplicate_pct: u32,
    /// Chance that a request is held back up to `delay_ms_max`.
    pub delay_pct: u32,
    /// Longest delay.
    pub delay_ms_max: u64,
}

#[derive(Debug)]
struct NetState {
    /// Directed links that carry nothing: `(from, to)`.
    cut: BTreeSet<(NodeId, NodeId)>,
    lossy: Lossy,
    rng: ChaCha8Rng,
}

/// The network between the nodes of one run, shared by all of them.
#[derive(Debug)]
pub struct Net {
    state: Mutex<NetState>,
}

impl Net {
    /// A healthy network whose random choices derive from `seed`.
    pub fn new(seed: u64) -> Net {
        Net {
            state: Mutex::new(NetState {
                cut: BTreeSet::new(),
                lossy: Lossy::default(),
                rng: ChaCha8Rng::seed_from_u64(seed),
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut NetState) -> R) -> R {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    /// Removes every cut and every loss.
    pub fn heal(&self) {
        self.with(|s| {
            s.cut.clear();
            s.lossy = Lossy::default();
        });
    }

    /// Cuts both directions between every pair of nodes in different groups.
    pub fn partition(&self, groups: &[BTreeSet<NodeId>]) {
        self.with(|s| {
            for (i, a) in groups.iter().enumerate() {
                for b in groups.iter().skip(i + 1) {
                    for from in a {
                        for to in b {
                            s.cut.insert((*from, *to));
                            s.cut.insert((*to, *from));
                        }
                    }
                }
            }
        });
    }

    /// Cuts the link `from -> to` only (requests and the replies to them).
    pub fn cut_one_way(&self, from: NodeId, to: NodeId) {
        self.with(|s| {
            s.cut.insert((from, to));
        });
    }

    /// Makes every link lossy.
    pub fn set_lossy(&self, lossy: Lossy) {
        self.with(|s| s.lossy = lossy);
    }

    /// Whether `from -> to` is cut.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.with(|s| s.cut.contains(&(from, to)))
    }
}

impl LinkFaults for Net {
    fn request(&self, from: NodeId, to: NodeId) -> LinkFate {
        self.with(|s| {
            if s.cut.contains(&(from, to)) {
                return LinkFate::Drop;
            }
            let lossy = s.lossy;
            let roll = s.rng.random_range(0..100);
            if roll < lossy.drop_pct {
                LinkFate::Drop
            } else if roll < lossy.drop_pct + lossy.duplicate_pct {
                LinkFate::Duplicate
            } else if roll < lossy.drop_pct + lossy.duplicate_pct + lossy.delay_pct {
                let ms = s.rng.random_range(0..=lossy.delay_ms_max);
                LinkFate::Delay(Duration::from_millis(ms))
            } else {
                LinkFate::Deliver
            }
        })
    }

    fn reply_lost(&self, from: NodeId, to: NodeId) -> bool {
        self.with(|s| {
            if s.cut.contains(&(to, from)) {
                return true;
            }
            let drop_pct = s.lossy.drop_pct;
            s.rng.random_range(0..100) < drop_pct
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_cuts_both_directions_between_groups_only() {
        let net = Net::new(1);
        net.partition(&[BTreeSet::from([1]), BTreeSet::from([2, 3])]);
        assert!(net.is_cut(1, 2) && net.is_cut(2, 1) && net.is_cut(3, 1));
        assert!(!net.is_cut(2, 3));
        assert_eq!(net.request(2, 3), LinkFate::Deliver);
        assert_eq!(net.request(1, 3), LinkFate::Drop);
        net.heal();
        assert_eq!(net.request(1, 3), LinkFate::Deliver);
    }

    #[test]
    fn one_way_cut_loses_replies_of_the_other_direction() {
        let net = Net::new(1);
        net.cut_one_way(1, 2);
        assert_eq!(net.request(1, 2), LinkFate::Drop);
        assert_eq!(net.request(2, 1), LinkFate::Deliver);
        assert!(
            net.reply_lost(2, 1),
            "2's request reached 1, but 1 -> 2 is cut"
        );
    }
}
