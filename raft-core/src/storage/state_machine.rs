//! The openraft state-machine adapter around `alcor_state_machine::State`.
//!
//! Architecture Invariant: no business rules here. `apply` hands each
//! proposal to `State::apply` and reports what it returned; snapshots are
//! `State::snapshot`/`State::restore` bytes plus openraft's bookkeeping.
//!
//! The applied state lives in memory behind a std `RwLock` (never held
//! across an `.await`) and reaches disk only as snapshots in the `sm`
//! column family.

use std::io::{self, Cursor};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use alcor_state_machine::{Diffs, ResourceChange, SnapshotError, State, SNAPSHOT_VERSION};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::DB;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_stream::{Stream, StreamExt};

use super::{cf, io_error, synced, Db, CF_SM};
use crate::codec;
use crate::limits::APPLIED_EVENTS_MAX;
use crate::metrics::RaftMetrics;
use crate::types::{
    EntryResponse, LogId, Request, Snapshot, SnapshotData, SnapshotMeta, StoredMembership,
    TypeConfig,
};

const KEY_SNAPSHOT: &[u8] = b"snapshot";
/// The last log id of the snapshot under `KEY_SNAPSHOT`, written in the same
/// synced batch, so the log store can read it without decoding a snapshot.
const KEY_SNAPSHOT_LAST: &[u8] = b"snapshot_last_log_id";

/// The last log id covered by the snapshot on disk, if any. A log purge
/// must never go past it (see `LogStore::purge`).
pub(super) fn durable_snapshot_last(db: &DB) -> io::Result<Option<LogId>> {
    let small = db
        .get_cf(cf(db, CF_SM)?, KEY_SNAPSHOT_LAST)
        .map_err(|e| io_error("read snapshot last log id", e))?;
    match small {
        Some(bytes) => {
            codec::decode_record(&bytes).map_err(|e| io_error("decode snapshot last log id", e))
        }
        // Written by a version without the small key: decode the snapshot.
        None => Ok(read_snapshot(db)?.and_then(|stored| stored.meta.last_log_id)),
    }
}

/// Published for every applied log entry, in log order.
#[derive(Debug, Clone)]
pub enum AppliedEvent {
    /// An entry was applied. `diffs` is empty for blank and membership
    /// entries and for proposals that changed no host's goal state.
    Entry {
        /// The applied entry's log index.
        log_index: u64,
        /// Per-host changes the state machine reported.
        diffs: Arc<Diffs>,
    },
    /// The state was replaced by a snapshot from the leader: per-entry
    /// diffs up to `log_index` will never be published, so every
    /// subscriber must resync from the state itself.
    SnapshotInstalled {
        /// The last log index the snapshot covers.
        log_index: u64,
    },
}

/// Published, in log order, for every applied entry that created, changed
/// or deleted resources (the feed of the API's Watch).
#[derive(Debug, Clone)]
pub enum ChangeEvent {
    /// An entry changed resources.
    Entry {
        /// The applied entry's log index: the revision of every change.
        log_index: u64,
        /// What it changed, in the order it first touched each resource.
        changes: Arc<Vec<ResourceChange>>,
    },
    /// The state was replaced by a snapshot: changes up to `log_index`
    /// will never be published.
    SnapshotInstalled {
        /// The last log index the snapshot covers.
        log_index: u64,
    },
}

/// The state plus the openraft bookkeeping that must change with it.
struct Applied {
    state: State,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// A snapshot as persisted in the `sm` column family.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredSnapshot {
    pub(crate) meta: SnapshotMeta,
    /// `State::snapshot()` bytes (as one byte string: the same encoding as
    /// a sequence of `u8`, decoded with one copy instead of per byte).
    #[serde(with = "serde_bytes")]
    pub(crate) data: Vec<u8>,
}

/// The state was poisoned by a panic while it was being mutated; it can no
/// longer be trusted and the node must restart from its snapshot and log.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("state machine poisoned by an earlier panic")]
pub struct StatePoisoned;

/// Read access to the applied state, shared with the state machine.
#[derive(Clone)]
pub struct StateView {
    applied: Arc<RwLock<Applied>>,
}

impl StateView {
    /// Runs `read` against the current state. The lock is held only for the
    /// duration of the call, so `read` must be quick and must not block.
    pub fn read<R>(&self, read: impl FnOnce(&State) -> R) -> Result<R, StatePoisoned> {
        let applied = self.applied.read().map_err(|_| StatePoisoned)?;
        Ok(read(&applied.state))
    }

    /// The state's snapshot bytes and the last log id they cover, taken
    /// together under one read lock (what a backup holds).
    pub fn snapshot_with_log_id(&self) -> Result<(Option<LogId>, Vec<u8>), StatePoisoned> {
        let applied = self.applied.read().map_err(|_| StatePoisoned)?;
        Ok((applied.last_applied, applied.state.snapshot()))
    }

    /// The last log index applied (including blank/membership entries).
    pub fn applied_index(&self) -> Result<Option<u64>, StatePoisoned> {
        let applied = self.applied.read().map_err(|_| StatePoisoned)?;
        Ok(applied.last_applied.map(|id| id.index))
    }
}

/// The state machine handed to openraft.
pub struct StateMachineStore {
    db: Arc<Db>,
    applied: Arc<RwLock<Applied>>,
    events: broadcast::Sender<AppliedEvent>,
    changes: broadcast::Sender<ChangeEvent>,
    /// Serializes snapshot persistence so an older snapshot never
    /// overwrites a newer one.
    persist_lock: Arc<Mutex<()>>,
    /// Apply, snapshot build and restore times, snapshot size.
    metrics: RaftMetrics,
}

/// Builds a snapshot of the current state; runs beside `apply`.
pub struct SnapshotBuilder {
    db: Arc<Db>,
    applied: Arc<RwLock<Applied>>,
    persist_lock: Arc<Mutex<()>>,
    metrics: RaftMetrics,
}

/// A byte count as a gauge value.
fn bytes_gauge(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

fn poisoned() -> io::Error {
    io::Error::other(StatePoisoned)
}

impl StateMachineStore {
    /// Loads the latest snapshot from `db` (or starts empty). openraft then
    /// replays the committed log entries after it.
    pub fn open(db: Arc<Db>) -> io::Result<StateMachineStore> {
        StateMachineStore::with_metrics(db, RaftMetrics::default())
    }

    /// [`StateMachineStore::open`] recording into `metrics`.
    pub fn with_metrics(db: Arc<Db>, metrics: RaftMetrics) -> io::Result<StateMachineStore> {
        let applied = match read_snapshot(&db)? {
            None => Applied {
                state: State::new(),
                last_applied: None,
                membership: StoredMembership::default(),
            },
            Some(stored) => {
                let started = Instant::now();
                let applied = restore(&stored)?;
                metrics
                    .snapshot_restore
                    .observe(started.elapsed().as_secs_f64());
                metrics.snapshot_bytes.set(bytes_gauge(stored.data.len()));
                applied
            }
        };
        let (events, _) = broadcast::channel(APPLIED_EVENTS_MAX);
        let (changes, _) = broadcast::channel(APPLIED_EVENTS_MAX);
        Ok(StateMachineStore {
            db,
            applied: Arc::new(RwLock::new(applied)),
            events,
            changes,
            persist_lock: Arc::new(Mutex::new(())),
            metrics,
        })
    }

    /// A shared read handle on the applied state.
    pub fn view(&self) -> StateView {
        StateView {
            applied: Arc::clone(&self.applied),
        }
    }

    /// A sender to subscribe to applied-entry events from.
    pub fn events(&self) -> broadcast::Sender<AppliedEvent> {
        self.events.clone()
    }

    /// A sender to subscribe to resource-change events from.
    pub fn changes(&self) -> broadcast::Sender<ChangeEvent> {
        self.changes.clone()
    }
}

fn read_snapshot(db: &DB) -> io::Result<Option<StoredSnapshot>> {
    let bytes = db
        .get_cf(cf(db, CF_SM)?, KEY_SNAPSHOT)
        .map_err(|e| io_error("read snapshot", e))?;
    match bytes {
        None => Ok(None),
        Some(bytes) => {
            let stored =
                codec::decode_record(&bytes).map_err(|e| io_error("decode snapshot", e))?;
            Ok(Some(stored))
        }
    }
}

/// Rebuilds the applied state from a snapshot.
fn restore(stored: &StoredSnapshot) -> io::Result<Applied> {
    let state = State::restore(&stored.data).map_err(|e| match e {
        SnapshotError::UnsupportedVersion(found) if found > SNAPSHOT_VERSION => io_error(
            "restore snapshot",
            format!(
                "state format version {found} is newer than this build reads ({SNAPSHOT_VERSION}): run a newer alcor"
            ),
        ),
        e => io_error("restore snapshot", e),
    })?;
    // The state only sees proposal entries, so it may lag the snapshot's
    // last log id (blank/membership entries) but never lead it.
    let snapshot_index = stored.meta.last_log_id.map_or(0, |id| id.index);
    if state.applied_index() > snapshot_index {
        let msg = format!(
            "snapshot state applied index {} > snapshot last log index {snapshot_index}",
            state.applied_index()
        );
        return Err(io::Error::other(msg));
    }
    Ok(Applied {
        state,
        last_applied: stored.meta.last_log_id,
        membership: stored.meta.last_membership.clone(),
    })
}

/// Persists `stored` (synced) unless a snapshot at least as new is there.
fn persist_snapshot(db: &DB, persist_lock: &Mutex<()>, stored: &StoredSnapshot) -> io::Result<()> {
    let _guard = persist_lock.lock().map_err(|_| poisoned())?;
    if let Some(current) = read_snapshot(db)? {
        if current.meta.last_log_id >= stored.meta.last_log_id {
            return Ok(());
        }
    }
    let bytes = codec::encode_record(stored).map_err(|e| io_error("encode snapshot", e))?;
    let last = codec::encode_record(&stored.meta.last_log_id)
        .map_err(|e| io_error("encode snapshot last log id", e))?;
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(cf(db, CF_SM)?, KEY_SNAPSHOT, bytes);
    batch.put_cf(cf(db, CF_SM)?, KEY_SNAPSHOT_LAST, last);
    db.write_opt(batch, &synced())
        .map_err(|e| io_error("persist snapshot", e))?;
    Ok(())
}

/// Writes the snapshot of a data directory restored from a backup: `data`
/// (`State::snapshot()` bytes) as of `meta`. Checks that it restores first.
pub(super) fn write_restored_snapshot(
    db: &DB,
    meta: SnapshotMeta,
    data: Vec<u8>,
) -> io::Result<()> {
    let stored = StoredSnapshot { meta, data };
    restore(&stored)?;
    persist_snapshot(db, &Mutex::new(()), &stored)
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let started = Instant::now();
        let (data, last_log_id, last_membership) = {
            let applied = self.applied.read().map_err(|_| poisoned())?;
            (
                applied.state.snapshot(),
                applied.last_applied,
                applied.membership.clone(),
            )
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
        };
        let stored = StoredSnapshot { meta, data };
        persist_snapshot(&self.db, &self.persist_lock, &stored)?;
        self.metrics
            .snapshot_build
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .snapshot_bytes
            .set(bytes_gauge(stored.data.len()));
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Cursor::new(stored.data),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let applied = self.applied.read().map_err(|_| poisoned())?;
        Ok((applied.last_applied, applied.membership.clone()))
    }

    /// Applies the batch under one write lock, then publishes its events and
    /// only then answers the waiting clients, so a client that reads after
    /// its reply sees its write.
    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        // The stream reads the log; drain it before taking the (std) lock,
        // which must never be held across an `.await`.
        let mut batch = Vec::new();
        while let Some(item) = entries.next().await {
            batch.push(item?);
        }
        let mut responses = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        let mut changed = Vec::new();
        {
            let mut applied = self.applied.write().map_err(|_| poisoned())?;
            for (entry, responder) in batch {
                let log_index = entry.log_id.index;
                applied.last_applied = Some(entry.log_id);
                let (response, diffs) = match entry.payload {
                    EntryPayload::Blank => (EntryResponse::Blank, Diffs::default()),
                    EntryPayload::Normal(Request::Apply(proposal)) => {
                        let started = Instant::now();
                        let outcome = applied.state.apply(log_index, &proposal);
                        self.metrics.apply.observe(started.elapsed().as_secs_f64());
                        if !outcome.changes.is_empty() {
                            changed.push(ChangeEvent::Entry {
                                log_index,
                                changes: Arc::new(outcome.changes),
                            });
                        }
                        (EntryResponse::Applied(outcome.result), outcome.diffs)
                    }
                    EntryPayload::Membership(membership) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                        (EntryResponse::Membership, Diffs::default())
                    }
                };
                if let Some(responder) = responder {
                    responses.push((responder, response));
                }
                events.push(AppliedEvent::Entry {
                    log_index,
                    diffs: Arc::new(diffs),
                });
            }
        }
        for event in events {
            // No subscribers is fine; lagging subscribers detect it themselves.
            let _ = self.events.send(event);
        }
        for event in changed {
            let _ = self.changes.send(event);
        }
        for (responder, response) in responses {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            db: Arc::clone(&self.db),
            applied: Arc::clone(&self.applied),
            persist_lock: Arc::clone(&self.persist_lock),
            metrics: self.metrics.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> io::Result<()> {
        let started = Instant::now();
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: snapshot.into_inner(),
        };
        let restored = restore(&stored)?;
        persist_snapshot(&self.db, &self.persist_lock, &stored)?;
        self.metrics
            .snapshot_restore
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .snapshot_bytes
            .set(bytes_gauge(stored.data.len()));
        *self.applied.write().map_err(|_| poisoned())? = restored;
        let log_index = meta.last_log_id.map_or(0, |id| id.index);
        let _ = self
            .events
            .send(AppliedEvent::SnapshotInstalled { log_index });
        let _ = self
            .changes
            .send(ChangeEvent::SnapshotInstalled { log_index });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        Ok(read_snapshot(&self.db)?.map(|stored| Snapshot {
            meta: stored.meta,
            snapshot: Cursor::new(stored.data),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    /// `StoredSnapshot` before `serde_bytes`: what older members wrote.
    #[derive(Serialize, Deserialize)]
    struct StoredSnapshotPerByte {
        meta: SnapshotMeta,
        data: Vec<u8>,
    }

    #[test]
    fn snapshot_records_keep_the_encoding_of_a_byte_sequence() {
        let data: Vec<u8> = (0..=255u8).cycle().take(3_000).collect();
        let fast = StoredSnapshot {
            meta: SnapshotMeta::default(),
            data: data.clone(),
        };
        let old = StoredSnapshotPerByte {
            meta: SnapshotMeta::default(),
            data,
        };
        let fast_bytes = codec::encode_record(&fast).unwrap();
        assert_eq!(fast_bytes, codec::encode_record(&old).unwrap());
        let back: StoredSnapshot = codec::decode_record(&fast_bytes).unwrap();
        assert_eq!(back.data, old.data);
    }
}
