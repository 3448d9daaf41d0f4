//! `Orchestrator.Watch`: a bounded in-memory history of this node's applied
//! resource changes, fed from `RaftNode::subscribe_changes`, and one task
//! per watcher that reads it from its own cursor.
//!
//! Invariants:
//! - Every event with revision > `floor` that this node applied is in the
//!   history, in commit order (events carry a gap-free sequence number).
//! - The feeder never waits for a watcher: the history drops its oldest
//!   events beyond `WATCH_HISTORY_MAX`; a watcher whose cursor falls off
//!   the front ends with WATCH_LAGGED. A watcher asking for a revision
//!   below `floor` gets COMPACTED; so does every watcher when the history
//!   restarts (a snapshot was installed or the feeder itself lagged).
//! - Each watcher's stream buffer holds `WATCH_STREAM_BUFFER_MAX` events;
//!   at most `WATCHERS_MAX` watchers run on one node.
//! - The history holds the state machine's own change records; each is
//!   turned into a `pb::WatchEvent` once, by the first watcher that sends
//!   it, so a node nobody watches converts nothing (the conversion was 13 %
//!   of the servers' CPU in a profile of 1,000-port batch creates).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use alcor_proto::api::v1 as pb;
use alcor_proto::reason::Reason;
use alcor_proto::COMPACT_REVISION_HEADER;
use alcor_raft_core::{ChangeEvent, RaftNode};
use alcor_state_machine::ResourceChange;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{broadcast, mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use crate::convert;
use crate::error::REASON_HEADER;
use crate::limits::{WATCHERS_MAX, WATCH_BATCH_MAX, WATCH_HISTORY_MAX, WATCH_STREAM_BUFFER_MAX};

/// What a watcher receives.
pub type WatchStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

/// One retained event: the `position`-th change of the entry at `revision`.
struct Event {
    kind: i32,
    revision: u64,
    changes: Arc<Vec<ResourceChange>>,
    position: usize,
    /// The wire form, made by the first watcher that sends this event.
    message: OnceLock<pb::WatchEvent>,
}

impl Event {
    /// The wire form, converted on first use. A floating IP's `router_id`
    /// is derived from `node`'s state at that moment.
    fn message(&self, node: &RaftNode) -> &pb::WatchEvent {
        self.message.get_or_init(|| {
            let change = &self.changes[self.position];
            node.read_stale(|s| convert::watch_event(self.revision, change, Some(s)))
                .unwrap_or_else(|_| convert::watch_event(self.revision, change, None))
        })
    }
}

/// The retained events and their bounds.
struct History {
    /// Every applied event with revision > `floor` is retained.
    floor: u64,
    /// The last revision fed (or the floor).
    head: u64,
    /// Sequence number of `events[0]`.
    first_seq: u64,
    events: VecDeque<Arc<Event>>,
    /// Bumped when the history restarts; watchers of an older epoch end.
    epoch: u64,
    /// The node stopped publishing changes.
    closed: bool,
}

impl History {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.events.len() as u64
    }

    fn push(&mut self, event: Event, revision: u64) {
        self.events.push_back(Arc::new(event));
        self.head = self.head.max(revision);
        while self.events.len() > WATCH_HISTORY_MAX {
            if let Some(old) = self.events.pop_front() {
                self.floor = self.floor.max(old.revision);
                self.first_seq += 1;
            }
        }
    }

    fn restart(&mut self, floor: u64) {
        self.first_seq = self.next_seq();
        self.events.clear();
        self.floor = floor;
        self.head = floor;
        self.epoch += 1;
    }

    /// The sequence number of the first event with revision > `revision`.
    fn seq_after(&self, revision: u64) -> u64 {
        self.first_seq + self.events.partition_point(|e| e.revision <= revision) as u64
    }
}

/// The history plus the watchers' wake-up signal.
struct Shared {
    history: Mutex<History>,
    /// Read by watchers converting events (floating IPs' routers).
    node: Arc<RaftNode>,
    /// Carries the next sequence number; changes whenever the history does.
    wake: watch::Sender<u64>,
    watchers: Arc<Semaphore>,
    metrics: WatchMetrics,
}

/// The watchers' metrics (names after the registry's prefix, `alcor_`):
/// `watch_watchers`, `watch_lagged_total`, `watch_compacted_total`.
#[derive(Debug, Clone, Default)]
struct WatchMetrics {
    /// Watch streams being served.
    watchers: Gauge,
    /// Watchers ended with WATCH_LAGGED.
    lagged: Counter,
    /// Watches refused or ended with COMPACTED.
    compacted: Counter,
}

/// Counts a watcher as served until dropped.
struct Watching(Gauge);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Shared {
    /// The history, locked. Never held across an `.await`; a panic while
    /// holding it leaves it consistent enough to read, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self, history: &History) {
        self.wake.send_replace(history.next_seq());
    }
}

/// The node's watch history and its feeder task.
#[derive(Clone)]
pub struct WatchHub {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHub").finish_non_exhaustive()
    }
}

fn status(code: Code, reason: Reason, message: String) -> Status {
    let reason = reason.code();
    let mut metadata = MetadataMap::new();
    metadata.insert(REASON_HEADER, MetadataValue::from_static(reason));
    Status::with_metadata(code, format!("{reason}: {message}"), metadata)
}

fn compacted(from: u64, floor: u64) -> Status {
    let mut status = status(
        Code::FailedPrecondition,
        Reason::Compacted,
        format!(
            "revision {from} is older than this node's watch history (which starts after \
             {floor}): re-list and watch from the list's revision"
        ),
    );
    status
        .metadata_mut()
        .insert(COMPACT_REVISION_HEADER, MetadataValue::from(floor));
    status
}

impl WatchHub {
    /// Subscribes to `node`'s changes and starts feeding the history; must
    /// run inside a tokio runtime.
    pub fn start(node: Arc<RaftNode>) -> WatchHub {
        let changes = node.subscribe_changes();
        let floor = node.read_stale(|s| s.applied_index()).unwrap_or(0);
        let history = History {
            floor,
            head: floor,
            first_seq: 0,
            events: VecDeque::new(),
            epoch: 0,
            closed: false,
        };
        let (wake, _) = watch::channel(0);
        let hub = WatchHub {
            shared: Arc::new(Shared {
                history: Mutex::new(history),
                node: Arc::clone(&node),
                wake,
                watchers: Arc::new(Semaphore::new(WATCHERS_MAX)),
                metrics: WatchMetrics::default(),
            }),
        };
        tokio::spawn(feed(Arc::clone(&hub.shared), node, changes));
        hub
    }

    /// Registers the watchers' metrics in `registry` (under its prefix:
    /// `alcor` gives `alcor_watch_...`).
    pub fn register_metrics(&self, registry: &mut Registry) {
        let metrics = &self.shared.metrics;
        let watch = registry.sub_registry_with_prefix("watch");
        watch.register(
            "watchers",
            "Watch streams being served by this member",
            metrics.watchers.clone(),
        );
        watch.register(
            "lagged",
            "Watchers ended because they fell behind the watch history (WATCH_LAGGED)",
            metrics.lagged.clone(),
        );
        watch.register(
            "compacted",
            "Watches refused or ended because their revision left the watch history (COMPACTED)",
            metrics.compacted.clone(),
        );
    }

    /// A stream of the events of `kind` (0: all) after `from` (`None`: after
    /// the current head).
    pub fn watch(&self, kind: i32, from: Option<u64>) -> Result<WatchStream, Status> {
        let permit = Arc::clone(&self.shared.watchers)
            .try_acquire_owned()
            .map_err(|_| {
                status(
                    Code::ResourceExhausted,
                    Reason::Overloaded,
                    format!("{WATCHERS_MAX} watchers already on this node"),
                )
            })?;
        let cursor = {
            let history = self.shared.lock();
            let from = from.unwrap_or(history.head);
            if from < history.floor {
                self.shared.metrics.compacted.inc();
                return Err(compacted(from, history.floor));
            }
            Cursor {
                kind,
                after: from,
                seq: history.seq_after(from),
                epoch: history.epoch,
            }
        };
        let (tx, rx) = mpsc::channel(WATCH_STREAM_BUFFER_MAX);
        tokio::spawn(serve(Arc::clone(&self.shared), cursor, tx, permit));
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

/// Where one watcher is.
struct Cursor {
    kind: i32,
    /// Only events with a revision above this.
    after: u64,
    /// Next sequence number to read.
    seq: u64,
    epoch: u64,
}

/// What a watcher does next.
enum Step {
    Send(Vec<Arc<Event>>),
    Wait,
    End(Status),
}

impl Cursor {
    fn step(&mut self, history: &History) -> Step {
        if history.epoch != self.epoch {
            return Step::End(compacted(self.after, history.floor));
        }
        if self.seq < history.first_seq {
            return Step::End(status(
                Code::Aborted,
                Reason::WatchLagged,
                "this watcher fell behind the node's watch history: re-list and watch again"
                    .to_string(),
            ));
        }
        let start = (self.seq - history.first_seq) as usize;
        if start >= history.events.len() {
            if history.closed {
                return Step::End(status(
                    Code::Unavailable,
                    Reason::RaftStopped,
                    "this node stopped applying changes".to_string(),
                ));
            }
            return Step::Wait;
        }
        let batch: Vec<Arc<Event>> = history
            .events
            .range(start..)
            .take(WATCH_BATCH_MAX)
            .cloned()
            .collect();
        self.seq += batch.len() as u64;
        let kind = self.kind;
        let after = self.after;
        Step::Send(
            batch
                .into_iter()
                .filter(|e| e.revision > after && (kind == 0 || e.kind == kind))
                .collect(),
        )
    }
}

/// Streams history events to one watcher until it goes away or must end.
async fn serve(
    shared: Arc<Shared>,
    mut cursor: Cursor,
    tx: mpsc::Sender<Result<pb::WatchEvent, Status>>,
    _permit: OwnedSemaphorePermit,
) {
    let mut wake = shared.wake.subscribe();
    shared.metrics.watchers.inc();
    let _watching = Watching(shared.metrics.watchers.clone());
    loop {
        let step = cursor.step(&shared.lock());
        match step {
            Step::Send(events) => {
                for event in events {
                    let message = event.message(&shared.node).clone();
                    if tx.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
            }
            Step::End(status) => {
                // The cursor ends a watcher with one code per cause.
                let ended = match status.code() {
                    Code::Aborted => Some(&shared.metrics.lagged),
                    Code::FailedPrecondition => Some(&shared.metrics.compacted),
                    _ => None,
                };
                if let Some(counter) = ended {
                    counter.inc();
                }
                let _ = tx.send(Err(status)).await;
                return;
            }
            Step::Wait => {
                tokio::select! {
                    changed = wake.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    () = tx.closed() => return,
                }
            }
        }
    }
}

/// Moves the node's change events into the history.
async fn feed(
    shared: Arc<Shared>,
    node: Arc<RaftNode>,
    mut changes: broadcast::Receiver<ChangeEvent>,
) {
    loop {
        let received = changes.recv().await;
        let mut history = shared.lock();
        match received {
            Ok(ChangeEvent::Entry { log_index, changes }) => {
                if log_index <= history.head {
                    continue; // Applied before the history (re)started.
                }
                for (position, change) in changes.iter().enumerate() {
                    let event = Event {
                        kind: convert::watch_kind(change),
                        revision: log_index,
                        changes: Arc::clone(&changes),
                        position,
                        message: OnceLock::new(),
                    };
                    history.push(event, log_index);
                }
                history.head = log_index;
            }
            Ok(ChangeEvent::SnapshotInstalled { log_index }) => {
                tracing::info!(log_index, "snapshot installed: watch history restarts");
                history.restart(log_index);
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                let applied = node
                    .read_stale(|s| s.applied_index())
                    .unwrap_or(history.head);
                tracing::warn!(missed, applied, "watch feeder lagged: history restarts");
                history.restart(applied);
            }
            Err(broadcast::error::RecvError::Closed) => {
                history.closed = true;
                shared.wake(&history);
                return;
            }
        }
        shared.wake(&history);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(revision: u64, kind: i32) -> Event {
        Event {
            kind,
            revision,
            changes: Arc::new(Vec::new()),
            position: 0,
            message: OnceLock::new(),
        }
    }

    fn history() -> History {
        History {
            floor: 10,
            head: 10,
            first_seq: 0,
            events: VecDeque::new(),
            epoch: 0,
            closed: false,
        }
    }

    fn revisions(step: Step) -> Vec<u64> {
        match step {
            Step::Send(events) => events.iter().map(|e| e.revision).collect(),
            Step::Wait => vec![],
            Step::End(status) => panic!("ended: {status}"),
        }
    }

    #[test]
    fn a_cursor_reads_every_event_after_its_revision_of_its_kind() {
        let mut h = history();
        for (revision, kind) in [(11, 1), (11, 2), (12, 1), (13, 2)] {
            h.push(event(revision, kind), revision);
        }
        let mut all = Cursor {
            kind: 0,
            after: 11,
            seq: h.seq_after(11),
            epoch: 0,
        };
        assert_eq!(revisions(all.step(&h)), vec![12, 13]);
        assert!(matches!(all.step(&h), Step::Wait));
        let mut ones = Cursor {
            kind: 1,
            after: 10,
            seq: h.seq_after(10),
            epoch: 0,
        };
        assert_eq!(revisions(ones.step(&h)), vec![11, 12]);
    }

    #[test]
    fn eviction_raises_the_floor_and_ends_a_cursor_left_behind_as_lagged() {
        let mut h = history();
        let mut slow = Cursor {
            kind: 0,
            after: 10,
            seq: 0,
            epoch: 0,
        };
        for n in 0..(WATCH_HISTORY_MAX as u64 + 2) {
            h.push(event(11 + n, 1), 11 + n);
        }
        assert_eq!(h.floor, 12, "the two oldest events are gone");
        match slow.step(&h) {
            Step::End(status) => assert_eq!(status.code(), Code::Aborted),
            _ => panic!("a cursor behind the history must end"),
        }
    }

    #[test]
    fn a_restart_ends_every_cursor_as_compacted() {
        let mut h = history();
        h.push(event(11, 1), 11);
        let mut cursor = Cursor {
            kind: 0,
            after: 10,
            seq: 0,
            epoch: 0,
        };
        h.restart(50);
        match cursor.step(&h) {
            Step::End(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition);
                let floor = status.metadata().get(COMPACT_REVISION_HEADER);
                assert_eq!(floor.and_then(|v| v.to_str().ok()), Some("50"));
            }
            _ => panic!("a restart must end the cursor"),
        }
        assert_eq!(h.seq_after(50), h.next_seq());
    }
}
