//! Shared ReadIndex rounds, as etcd's read loop does: concurrent
//! linearizable reads share one leadership confirmation instead of running
//! one heartbeat round each.
//!
//! A read may use a read index only if the leader confirmed its leadership
//! (with a quorum) *after the read began*. A round therefore takes the reads
//! that are waiting when it starts and answers exactly those; a read that
//! arrives while a round is in flight waits for the next one, which starts
//! when the current one ends. One round is in flight at a time per
//! [`SharedRounds`], so N concurrent reads cost about one round trip and one
//! heartbeat broadcast per round instead of N.
//!
//! The round itself is a closure (on the leader: openraft's
//! `get_read_linearizer(ReadIndex)`; on a follower: the `ReadIndex` RPC to the leader), so
//! this module holds only the batching.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::limits::READS_WAITING_MAX;

/// One round: confirms leadership now and yields its answer.
pub(crate) type Round<T> = Arc<dyn Fn() -> RoundFuture<T> + Send + Sync>;

/// The future of one round.
pub(crate) type RoundFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Why a read got no answer from a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinError {
    /// `READS_WAITING_MAX` reads are already waiting for the next round.
    Full,
    /// The task driving the rounds stopped (runtime shutting down, or a
    /// panic inside the round).
    Stopped,
}

/// Reads waiting for the next round, and whether a task drives the rounds.
struct Waiting<T> {
    driving: bool,
    readers: Vec<oneshot::Sender<T>>,
    /// Only with [`crate::Mutation::ReadJoinsRoundInFlight`]: the reads of
    /// the round in flight, which later reads join (the deliberate bug).
    in_flight: Option<Vec<oneshot::Sender<T>>>,
}

/// A batcher of rounds whose answer is `T`.
pub(crate) struct SharedRounds<T> {
    round: Round<T>,
    waiting: Arc<Mutex<Waiting<T>>>,
    /// [`crate::Mutation::ReadJoinsRoundInFlight`]: a read arriving while
    /// a round is in flight takes that round's answer, which may predate
    /// writes acknowledged before the read began.
    join_in_flight: bool,
}

impl<T> std::fmt::Debug for SharedRounds<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRounds").finish_non_exhaustive()
    }
}

impl<T: Clone + Send + 'static> SharedRounds<T> {
    /// Rounds that run `round`.
    #[cfg(test)]
    pub(crate) fn new(round: Round<T>) -> SharedRounds<T> {
        SharedRounds::with_mutation(round, false)
    }

    /// Rounds that run `round`; `join_in_flight` is the mutation
    /// [`crate::Mutation::ReadJoinsRoundInFlight`].
    pub(crate) fn with_mutation(round: Round<T>, join_in_flight: bool) -> SharedRounds<T> {
        SharedRounds {
            round,
            waiting: Arc::new(Mutex::new(Waiting {
                driving: false,
                readers: Vec::new(),
                in_flight: None,
            })),
            join_in_flight,
        }
    }

    /// The answer of the first round that starts after this call.
    pub(crate) async fn join(&self) -> Result<T, JoinError> {
        let (tx, rx) = oneshot::channel();
        let start_driver = {
            let mut waiting = lock(&self.waiting);
            if waiting.readers.len() >= READS_WAITING_MAX {
                return Err(JoinError::Full);
            }
            match waiting.in_flight.as_mut() {
                Some(in_flight) if self.join_in_flight => in_flight.push(tx),
                _ => waiting.readers.push(tx),
            }
            !std::mem::replace(&mut waiting.driving, true)
        };
        if start_driver {
            tokio::spawn(drive(
                Arc::clone(&self.round),
                Arc::clone(&self.waiting),
                self.join_in_flight,
            ));
        }
        rx.await.map_err(|_| JoinError::Stopped)
    }
}

fn lock<T>(waiting: &Mutex<Waiting<T>>) -> std::sync::MutexGuard<'_, Waiting<T>> {
    waiting.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs rounds while reads wait for one; each round answers the reads that
/// were waiting when it started.
async fn drive<T: Clone>(round: Round<T>, waiting: Arc<Mutex<Waiting<T>>>, join_in_flight: bool) {
    // Hands the rounds back if this task ends any other way than by
    // finding nobody waiting (a panic in `round`, runtime shutdown): the
    // readers still waiting get `Stopped` and the next read starts a new
    // driver.
    let _guard = StopGuard(Arc::clone(&waiting));
    loop {
        let readers = {
            let mut waiting = lock(&waiting);
            if waiting.readers.is_empty() {
                waiting.driving = false;
                return;
            }
            let readers = std::mem::take(&mut waiting.readers);
            if join_in_flight {
                waiting.in_flight = Some(Vec::new());
            }
            readers
        };
        let answer = round().await;
        let joined = lock(&waiting).in_flight.take().unwrap_or_default();
        for reader in readers.into_iter().chain(joined) {
            // A reader that gave up (its deadline passed) is gone: fine.
            let _ = reader.send(answer.clone());
        }
    }
}

struct StopGuard<T>(Arc<Mutex<Waiting<T>>>);

impl<T> Drop for StopGuard<T> {
    fn drop(&mut self) {
        let mut waiting = lock(&self.0);
        waiting.driving = false;
        waiting.readers.clear();
        waiting.in_flight = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use tokio::sync::Notify;

    use super::*;

    /// A round that counts itself, returns its own number, and (when
    /// `gate` is set) waits for the gate before answering.
    fn counting_round(count: Arc<AtomicU64>, gate: Option<Arc<Notify>>) -> Round<u64> {
        Arc::new(move || {
            let number = count.fetch_add(1, Ordering::SeqCst) + 1;
            let gate = gate.clone();
            Box::pin(async move {
                if let Some(gate) = gate {
                    gate.notified().await;
                }
                number
            }) as RoundFuture<u64>
        })
    }

    /// Whether `count` rounds have started within a second.
    async fn rounds_reach(count: &AtomicU64, rounds: u64) -> bool {
        tokio::time::timeout(Duration::from_secs(1), async {
            while count.load(Ordering::SeqCst) < rounds {
                tokio::task::yield_now().await;
            }
        })
        .await
        .is_ok()
    }

    #[tokio::test]
    async fn reads_arriving_during_a_round_never_take_its_answer_and_share_the_next() {
        let count = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Notify::new());
        let rounds = Arc::new(SharedRounds::new(counting_round(
            Arc::clone(&count),
            Some(Arc::clone(&gate)),
        )));
        // The first read starts round 1, which waits at the gate; 99 more
        // reads arrive meanwhile and must all wait for round 2.
        let first = tokio::spawn({
            let rounds = Arc::clone(&rounds);
            async move { rounds.join().await }
        });
        while count.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let later: Vec<_> = (0..99)
            .map(|_| {
                let rounds = Arc::clone(&rounds);
                tokio::spawn(async move { rounds.join().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.notify_one();
        assert_eq!(first.await.unwrap(), Ok(1));
        // Round 2 is waiting at the gate with all 99 readers.
        assert!(
            rounds_reach(&count, 2).await,
            "the later reads need round 2"
        );
        gate.notify_one();
        for read in later {
            assert_eq!(read.await.unwrap(), Ok(2));
        }
        assert_eq!(count.load(Ordering::SeqCst), 2, "two rounds for 100 reads");
    }

    #[tokio::test]
    async fn with_the_mutation_reads_arriving_during_a_round_take_its_answer() {
        let count = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Notify::new());
        let rounds = Arc::new(SharedRounds::with_mutation(
            counting_round(Arc::clone(&count), Some(Arc::clone(&gate))),
            true,
        ));
        let first = tokio::spawn({
            let rounds = Arc::clone(&rounds);
            async move { rounds.join().await }
        });
        while count.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let late = tokio::spawn({
            let rounds = Arc::clone(&rounds);
            async move { rounds.join().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.notify_one();
        assert_eq!(first.await.unwrap(), Ok(1));
        assert_eq!(late.await.unwrap(), Ok(1), "the late read took round 1");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn rounds_stop_when_nobody_waits_and_restart_for_the_next_read() {
        let count = Arc::new(AtomicU64::new(0));
        let rounds = SharedRounds::new(counting_round(Arc::clone(&count), None));
        assert_eq!(rounds.join().await, Ok(1));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(count.load(Ordering::SeqCst), 1, "no round without readers");
        assert_eq!(rounds.join().await, Ok(2));
    }

    #[tokio::test]
    async fn a_panicking_round_releases_its_readers_and_the_next_read_drives_again() {
        let count = Arc::new(AtomicU64::new(0));
        let round: Round<u64> = {
            let count = Arc::clone(&count);
            Arc::new(move || {
                let number = count.fetch_add(1, Ordering::SeqCst) + 1;
                Box::pin(async move {
                    assert!(number != 1, "first round fails");
                    number
                }) as RoundFuture<u64>
            })
        };
        let rounds = SharedRounds::new(round);
        assert_eq!(rounds.join().await, Err(JoinError::Stopped));
        assert_eq!(rounds.join().await, Ok(2));
    }
}
