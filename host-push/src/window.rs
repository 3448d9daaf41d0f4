//! The retained window: one bounded ring per node of recent applied events
//! that carry changes, fed by one task from the node's applied-event
//! broadcast. Agent sessions read it from their own cursor, so a slow
//! agent costs nothing to the others and several events reach an agent as
//! one batch.
//!
//! Invariant: every change published for an index in `(base, last]` is in
//! `events`. `last` advances for every event, with or without changes;
//! evicting the oldest retained event moves `base` to its index. When the
//! feeder misses events (its receiver lagged) or the node installs a
//! snapshot, the window restarts empty at the state's revision, and every
//! agent whose cursor is older resyncs with a FullSync.
//!
//! Wake-ups are targeted: the feeder wakes only the sessions of hosts that
//! an event has changes for (its own hosts and its scopes' audiences), so
//! an event costs in proportion to its audience, not to the agents
//! connected. A restart of the window wakes every session. Sessions also
//! look on their own once per idle-advance period, to move an idle
//! agent's revision forward.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use alcor_raft_core::{AppliedEvent, StateView};
use alcor_state_machine::{Diffs, GoalChange, HostId};
use tokio::sync::{broadcast, watch, Notify};
use tokio::time::Instant;

use crate::limits::FEED_EVENTS_MAX;

/// How an applied event carries its per-host changes.
pub(crate) type EventDiffs = Arc<Diffs>;

/// The one place that reads a host's changes out of an applied event.
pub(crate) fn changes_for(diffs: &EventDiffs, host: &str) -> Vec<GoalChange> {
    diffs.changes_for(host)
}

/// An estimate of the memory an event's diffs hold, for the window's byte
/// bound (shallow: objects' inner vectors are not counted).
fn diffs_bytes(diffs: &EventDiffs) -> usize {
    let change_bytes = std::mem::size_of::<GoalChange>();
    let host_bytes = std::mem::size_of::<HostId>();
    let own: usize = diffs
        .host
        .iter()
        .map(|d| host_bytes + d.host.len() + d.changes.len() * change_bytes)
        .sum();
    let scoped: usize = diffs
        .scoped
        .iter()
        .map(|d| {
            let audience: usize = d.audience.iter().map(|h| host_bytes + h.len()).sum();
            audience + d.changes.len() * change_bytes
        })
        .sum();
    std::mem::size_of::<Diffs>() + own + scoped
}

/// One retained event.
#[derive(Debug)]
struct Retained {
    log_index: u64,
    diffs: EventDiffs,
    bytes: usize,
    /// When this node's feeder took the event (just after it was applied):
    /// the start of the push latency.
    applied_at: Instant,
}

/// Bounds of a window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowLimits {
    pub(crate) events_max: usize,
    pub(crate) bytes_max: usize,
}

/// What a scan found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The cursor is older than the window: the agent needs a FullSync.
    Evicted,
    /// The changes for the host in `(cursor, to]`; `more` if the scan
    /// stopped at a cap before the window's end.
    Found {
        to: u64,
        changes: Vec<GoalChange>,
        more: bool,
        /// Events that had changes for the host.
        events: usize,
        /// When the first of those was applied.
        oldest: Option<Instant>,
    },
}

/// The ring itself.
#[derive(Debug)]
pub(crate) struct Window {
    base: u64,
    last: u64,
    events: VecDeque<Retained>,
    bytes: usize,
    limits: WindowLimits,
}

impl Window {
    pub(crate) fn new(revision: u64, limits: WindowLimits) -> Window {
        Window {
            base: revision,
            last: revision,
            events: VecDeque::new(),
            bytes: 0,
            limits,
        }
    }

    /// `(base, last]`: the revisions an agent can resume from are
    /// `base..=last` (and later ones, once the node reaches them).
    pub(crate) fn range(&self) -> (u64, u64) {
        (self.base, self.last)
    }

    /// Events retained (those with changes).
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// Estimated bytes retained.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets everything; resumable revisions start at `revision`.
    fn reset(&mut self, revision: u64) {
        self.events.clear();
        self.bytes = 0;
        self.base = revision;
        self.last = revision;
    }

    /// Adds an applied event; events at or before `last` are already
    /// accounted for and skipped.
    pub(crate) fn push(&mut self, log_index: u64, diffs: EventDiffs, applied_at: Instant) {
        if log_index <= self.last {
            return;
        }
        self.last = log_index;
        if diffs.is_empty() {
            return;
        }
        let bytes = diffs_bytes(&diffs);
        self.bytes += bytes;
        self.events.push_back(Retained {
            log_index,
            diffs,
            bytes,
            applied_at,
        });
        while self.events.len() > self.limits.events_max || self.bytes > self.limits.bytes_max {
            let Some(evicted) = self.events.pop_front() else {
                break;
            };
            self.bytes -= evicted.bytes;
            self.base = evicted.log_index;
        }
        debug_assert!(self.base <= self.last);
    }

    /// Collects `host`'s changes after `cursor`, whole events at a time,
    /// until `changes_max` changes or `events_max` events are reached.
    pub(crate) fn scan(
        &self,
        host: &str,
        cursor: u64,
        changes_max: usize,
        events_max: usize,
    ) -> Scan {
        if cursor < self.base {
            return Scan::Evicted;
        }
        let start = self.events.partition_point(|e| e.log_index <= cursor);
        let mut changes = Vec::new();
        let mut events = 0;
        let mut oldest = None;
        for (n_events, event) in self.events.range(start..).enumerate() {
            let found = changes_for(&event.diffs, host);
            if !found.is_empty() {
                events += 1;
                oldest = oldest.or(Some(event.applied_at));
                changes.extend(found);
            }
            let capped = changes.len() >= changes_max || n_events + 1 >= events_max;
            if capped && event.log_index < self.last {
                return Scan::Found {
                    to: event.log_index,
                    changes,
                    more: true,
                    events,
                    oldest,
                };
            }
        }
        Scan::Found {
            to: cursor.max(self.last),
            changes,
            more: false,
            events,
            oldest,
        }
    }
}

/// A window shared by a node's sessions, plus the signals that wake them.
#[derive(Debug)]
pub(crate) struct Retainer {
    window: Mutex<Window>,
    /// Bumped when the window restarts; every session waits on it.
    changed: watch::Sender<u64>,
    /// Each live session's waker, by host (a host may briefly have two
    /// sessions while its agent reconnects). At most one entry per
    /// session, and sessions are capped by the service's agent limit.
    wakers: Mutex<WakerTable>,
    next_waker: AtomicU64,
}

/// Sessions' wakers by host, each with its registration id.
type WakerTable = BTreeMap<HostId, Vec<(u64, Arc<Notify>)>>;

/// A session's registration for targeted wake-ups; removed on drop.
#[derive(Debug)]
pub(crate) struct Waker {
    retainer: Arc<Retainer>,
    host: HostId,
    id: u64,
    notify: Arc<Notify>,
}

impl Waker {
    /// Completes once an event for this host was added since the last
    /// wake-up (a wake-up that came while nobody waited is kept).
    pub(crate) async fn woken(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        let mut wakers = self.retainer.wakers();
        if let Some(list) = wakers.get_mut(&self.host) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                wakers.remove(&self.host);
            }
        }
    }
}

impl Retainer {
    pub(crate) fn new(revision: u64, limits: WindowLimits) -> Retainer {
        Retainer {
            window: Mutex::new(Window::new(revision, limits)),
            changed: watch::Sender::new(0),
            wakers: Mutex::new(BTreeMap::new()),
            next_waker: AtomicU64::new(0),
        }
    }

    fn wakers(&self) -> MutexGuard<'_, WakerTable> {
        // Plain inserts and removals: ignore poisoning.
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a session of `host` for targeted wake-ups.
    pub(crate) fn waker(self: &Arc<Self>, host: &str) -> Waker {
        let id = self.next_waker.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        self.wakers()
            .entry(host.to_string())
            .or_default()
            .push((id, Arc::clone(&notify)));
        Waker {
            retainer: Arc::clone(self),
            host: host.to_string(),
            id,
            notify,
        }
    }

    /// Wakes the sessions of every host that `diffs` has changes for.
    fn wake(&self, diffs: &[EventDiffs]) {
        let wakers = self.wakers();
        if wakers.is_empty() {
            return;
        }
        let wake_host = |host: &str| {
            if let Some(list) = wakers.get(host) {
                for (_, notify) in list {
                    notify.notify_one();
                }
            }
        };
        for event in diffs {
            for own in &event.host {
                wake_host(&own.host);
            }
            for scoped in &event.scoped {
                // The smaller side drives: a huge audience with few
                // sessions here walks the sessions instead.
                if scoped.audience.len() <= wakers.len() {
                    for host in &scoped.audience {
                        wake_host(host);
                    }
                } else {
                    for (host, list) in wakers.iter() {
                        if scoped.audience.binary_search(host).is_ok() {
                            for (_, notify) in list {
                                notify.notify_one();
                            }
                        }
                    }
                }
            }
        }
    }

    /// The window, locked. A std mutex: it is never held across an
    /// `.await`, and a panic while holding it cannot leave it half
    /// updated in a way scans would misread, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Moves applied events into the window until `stop` is set or the
    /// node's event sender is gone.
    pub(crate) async fn feed(
        self: Arc<Self>,
        mut events: broadcast::Receiver<AppliedEvent>,
        view: StateView,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let first = tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => return,
                first = events.recv() => first,
            };
            // Take whatever else is already there, so one lock and one
            // wake-up cover a burst of applied entries.
            let mut burst = vec![first];
            while burst.len() < FEED_EVENTS_MAX {
                match events.try_recv() {
                    Ok(event) => burst.push(Ok(event)),
                    Err(broadcast::error::TryRecvError::Empty) => break,
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        burst.push(Err(broadcast::error::RecvError::Lagged(n)));
                    }
                    Err(broadcast::error::TryRecvError::Closed) => {
                        burst.push(Err(broadcast::error::RecvError::Closed));
                        break;
                    }
                }
            }
            let mut closed = false;
            let mut restarted = false;
            let mut pushed = Vec::new();
            for item in burst {
                match item {
                    Ok(AppliedEvent::Entry { log_index, diffs }) => {
                        if !diffs.is_empty() {
                            pushed.push(Arc::clone(&diffs));
                        }
                        self.lock().push(log_index, diffs, Instant::now());
                    }
                    Ok(AppliedEvent::SnapshotInstalled { log_index }) => {
                        tracing::info!(log_index, "snapshot installed: push window restarts");
                        self.lock().reset(log_index);
                        restarted = true;
                    }
                    Err(broadcast::error::RecvError::Lagged(n_missed)) => {
                        // Everything missed was applied before this read, so
                        // the state covers it; later events are still queued.
                        let Ok(revision) = view.read(|state| state.applied_index()) else {
                            tracing::error!("state poisoned: push window feeder stops");
                            return;
                        };
                        tracing::warn!(n_missed, revision, "push window lagged: restarts");
                        self.lock().reset(revision);
                        restarted = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => closed = true,
                }
            }
            self.wake(&pushed);
            if restarted || closed {
                self.changed.send_modify(|generation| *generation += 1);
            }
            if closed {
                return;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use alcor_state_machine::{GoalKey, HostDiff, Id};

    fn diffs(hosts: &[&str], port: u128) -> EventDiffs {
        let host = hosts
            .iter()
            .map(|h| HostDiff {
                host: h.to_string(),
                changes: vec![GoalChange::Remove(GoalKey::Port(Id(port)))],
            })
            .collect();
        Arc::new(Diffs {
            host,
            scoped: Vec::new(),
        })
    }

    const LIMITS: WindowLimits = WindowLimits {
        events_max: 3,
        bytes_max: usize::MAX,
    };

    #[test]
    fn scan_coalesces_every_event_after_the_cursor_for_one_host() {
        let mut window = Window::new(10, LIMITS);
        window.push(11, diffs(&["a", "b"], 1), Instant::now());
        window.push(12, diffs(&[], 0), Instant::now());
        window.push(13, diffs(&["b"], 2), Instant::now());
        window.push(14, diffs(&["a"], 3), Instant::now());
        let Scan::Found {
            to,
            changes,
            more,
            events,
            ..
        } = window.scan("a", 10, 100, 100)
        else {
            panic!("evicted")
        };
        assert_eq!((to, changes.len(), more, events), (14, 2, false, 2));
        let Scan::Found { to, changes, .. } = window.scan("c", 12, 100, 100) else {
            panic!("evicted")
        };
        assert_eq!((to, changes.len()), (14, 0));
    }

    #[test]
    fn scan_stops_at_an_event_boundary_when_capped() {
        let mut window = Window::new(0, LIMITS);
        window.push(1, diffs(&["a"], 1), Instant::now());
        window.push(2, diffs(&["a"], 2), Instant::now());
        window.push(3, diffs(&["a"], 3), Instant::now());
        let Scan::Found {
            to, changes, more, ..
        } = window.scan("a", 0, 2, 100)
        else {
            panic!("evicted")
        };
        assert_eq!((to, more), (2, true));
        assert_eq!(
            changes,
            changes_for(&diffs(&["a"], 1), "a")
                .into_iter()
                .chain(changes_for(&diffs(&["a"], 2), "a"))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn cursor_older_than_the_evicted_events_needs_a_full_sync() {
        let mut window = Window::new(0, LIMITS);
        for i in 1..=5 {
            window.push(i, diffs(&["a"], u128::from(i)), Instant::now());
        }
        assert_eq!(window.range(), (2, 5));
        assert_eq!(window.scan("a", 1, 100, 100), Scan::Evicted);
        assert!(matches!(
            window.scan("a", 2, 100, 100),
            Scan::Found { to: 5, .. }
        ));
        // A cursor ahead of the window (agent came from a node further
        // ahead) waits without changes.
        assert!(matches!(
            window.scan("a", 9, 100, 100),
            Scan::Found {
                to: 9,
                more: false,
                ..
            }
        ));
    }

    fn scoped(audience: &[&str], port: u128) -> EventDiffs {
        Arc::new(Diffs {
            host: Vec::new(),
            scoped: vec![alcor_state_machine::ScopedDiff {
                scope: alcor_state_machine::Scope::Vpc(Id(7)),
                audience: audience.iter().map(|h| h.to_string()).collect(),
                changes: vec![GoalChange::Remove(GoalKey::Neighbor(Id(port)))],
            }],
        })
    }

    /// Whether `waker` has a wake-up waiting (consumes it).
    fn was_woken(waker: &Waker) -> bool {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(20), waker.woken())
                .await
                .is_ok()
        })
    }

    #[test]
    fn only_sessions_of_hosts_with_changes_are_woken() {
        let retainer = Arc::new(Retainer::new(0, LIMITS));
        let (a, b, c) = (
            retainer.waker("a"),
            retainer.waker("b"),
            retainer.waker("c"),
        );
        retainer.wake(&[diffs(&["a"], 1), scoped(&["c", "d"], 2)]);
        assert!(was_woken(&a));
        assert!(!was_woken(&b));
        assert!(was_woken(&c));
        // One wake-up per event burst, not a standing signal.
        assert!(!was_woken(&a));
    }

    #[test]
    fn an_audience_larger_than_the_sessions_still_wakes_exactly_its_members() {
        let retainer = Arc::new(Retainer::new(0, LIMITS));
        let (a, q) = (retainer.waker("a"), retainer.waker("q"));
        retainer.wake(&[scoped(&["a", "b", "c", "x", "y", "z"], 3)]);
        assert!(was_woken(&a));
        assert!(!was_woken(&q));
    }

    #[test]
    fn a_dropped_session_is_no_longer_registered() {
        let retainer = Arc::new(Retainer::new(0, LIMITS));
        let first = retainer.waker("a");
        let second = retainer.waker("a");
        drop(first);
        assert_eq!(retainer.wakers().get("a").map(Vec::len), Some(1));
        retainer.wake(&[diffs(&["a"], 1)]);
        assert!(was_woken(&second));
        drop(second);
        assert!(retainer.wakers().is_empty());
    }
}
