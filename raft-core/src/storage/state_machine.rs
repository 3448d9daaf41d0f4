//! The openraft state-machine adapter around `alcor_state_machine::State`.
//!
//! Architecture Invariant: no business rules here. `apply` hands each
//! proposal to `State::apply` and reports what it returned; snapshots are
//! `State::snapshot`/`State::restore` bytes plus openraft's bookkeeping.
//!
//! The applied state lives in memory behind a std `RwLock` (never held
//! across an `.await`) and reaches disk only as snapshots in the `sm`
//! column family.

use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard, TryLockError};
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
use crate::limits::{
    APPLIED_EVENTS_MAX, APPLY_LOCK_HOLD_MAX, APPLY_LOCK_POLL_MAX, SNAPSHOT_SYNC_BYTES_MAX,
};
use crate::metrics::RaftMetrics;
use crate::types::{
    EntryResponse, LogId, Request, Snapshot, SnapshotData, SnapshotMeta, StoredMembership,
    TypeConfig,
};

/// The latest snapshot as one RocksDB value: what versions before snapshot
/// files wrote. Read when `KEY_SNAPSHOT_FILE` is absent; deleted by the
/// next snapshot.
const KEY_SNAPSHOT: &[u8] = b"snapshot";
/// The name of the latest snapshot's file in `SNAPSHOT_DIR`. A snapshot is
/// a file, not a RocksDB value: writing hundreds of megabytes through the
/// WAL held every log append behind it (the Raft core stalled, and under
/// load followers campaigned).
const KEY_SNAPSHOT_FILE: &[u8] = b"snapshot_file";
/// The folder of snapshot files inside the data directory.
const SNAPSHOT_DIR: &str = "snapshots";
/// Every snapshot file's name starts with this.
const SNAPSHOT_FILE_PREFIX: &str = "snap-";
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

impl Applied {
    /// Applies one committed entry: the state (with goal diffs when
    /// `diffs_wanted`), the applied log id and the membership. Returns the
    /// client's response, the entry's diffs and its change event, if any.
    fn apply_entry(
        &mut self,
        entry: crate::types::Entry,
        diffs_wanted: bool,
        metrics: &RaftMetrics,
    ) -> (EntryResponse, Diffs, Option<ChangeEvent>) {
        let log_index = entry.log_id.index;
        self.last_applied = Some(entry.log_id);
        match entry.payload {
            EntryPayload::Blank => (EntryResponse::Blank, Diffs::default(), None),
            EntryPayload::Normal(Request::Apply(proposal)) => {
                let started = Instant::now();
                let outcome = if diffs_wanted {
                    self.state.apply(log_index, &proposal)
                } else {
                    self.state.apply_without_diffs(log_index, &proposal)
                };
                metrics.apply.observe(started.elapsed().as_secs_f64());
                let change = (!outcome.changes.is_empty()).then(|| ChangeEvent::Entry {
                    log_index,
                    changes: Arc::new(outcome.changes),
                });
                let response = EntryResponse::Applied(outcome.result);
                (response, outcome.diffs, change)
            }
            EntryPayload::Membership(membership) => {
                self.membership = StoredMembership::new(Some(entry.log_id), membership);
                (EntryResponse::Membership, Diffs::default(), None)
            }
        }
    }
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

    /// The state's snapshot bytes and the last log id they cover, frozen
    /// together under one read lock (what a backup holds) and encoded after
    /// it is released.
    pub fn snapshot_with_log_id(&self) -> Result<(Option<LogId>, Vec<u8>), StatePoisoned> {
        let (last_applied, frozen) = {
            let applied = self.applied.read().map_err(|_| StatePoisoned)?;
            (applied.last_applied, applied.state.freeze())
        };
        Ok((last_applied, frozen.snapshot()))
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
    /// Bytes of the snapshot this member holds (restored, built or
    /// installed last); the size trigger scales with it.
    snapshot_bytes: Arc<AtomicU64>,
    /// Apply, snapshot build and restore times, snapshot size.
    metrics: RaftMetrics,
    /// How long one hold of the write lock may run on
    /// ([`APPLY_LOCK_HOLD_MAX`]; tests shorten it).
    lock_hold_max: std::time::Duration,
}

/// Builds a snapshot of the current state; runs beside `apply`.
pub struct SnapshotBuilder {
    db: Arc<Db>,
    applied: Arc<RwLock<Applied>>,
    persist_lock: Arc<Mutex<()>>,
    snapshot_bytes: Arc<AtomicU64>,
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
        let snapshot_bytes = Arc::new(AtomicU64::new(0));
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
                snapshot_bytes.store(stored.data.len() as u64, Ordering::Relaxed);
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
            snapshot_bytes,
            metrics,
            lock_hold_max: APPLY_LOCK_HOLD_MAX,
        })
    }

    /// A shared read handle on the applied state.
    pub fn view(&self) -> StateView {
        StateView {
            applied: Arc::clone(&self.applied),
        }
    }

    /// The size in bytes of the snapshot this member holds, kept current as
    /// snapshots are built and installed (0 before the first).
    pub fn snapshot_bytes(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.snapshot_bytes)
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

/// The latest snapshot: the file `KEY_SNAPSHOT_FILE` names, else (a data
/// directory written before snapshots moved to files) the record kept
/// inside RocksDB under `KEY_SNAPSHOT`.
fn read_snapshot(db: &DB) -> io::Result<Option<StoredSnapshot>> {
    let sm = cf(db, CF_SM)?;
    let file = db
        .get_cf(sm, KEY_SNAPSHOT_FILE)
        .map_err(|e| io_error("read snapshot file name", e))?;
    let bytes = match file {
        Some(name) => {
            let path = snapshot_path(db, &name)?;
            std::fs::read(&path).map_err(|e| {
                io::Error::new(e.kind(), format!("read snapshot {}: {e}", path.display()))
            })?
        }
        None => match db
            .get_cf(sm, KEY_SNAPSHOT)
            .map_err(|e| io_error("read snapshot", e))?
        {
            Some(bytes) => bytes,
            None => return Ok(None),
        },
    };
    let stored = codec::decode_record(&bytes).map_err(|e| io_error("decode snapshot", e))?;
    Ok(Some(stored))
}

/// The folder of snapshot files, inside the data directory.
fn snapshot_dir(db: &DB) -> PathBuf {
    db.path().join(SNAPSHOT_DIR)
}

/// The path of the snapshot file `name` (as stored under
/// `KEY_SNAPSHOT_FILE`), refusing anything but a plain file name.
fn snapshot_path(db: &DB, name: &[u8]) -> io::Result<PathBuf> {
    let name = std::str::from_utf8(name)
        .ok()
        .filter(|n| {
            n.starts_with(SNAPSHOT_FILE_PREFIX) && Path::new(n).file_name() == Some(n.as_ref())
        })
        .ok_or_else(|| io_error("read snapshot", "the snapshot file name is not a file name"))?;
    Ok(snapshot_dir(db).join(name))
}

/// Writes `stored` as a record (`codec::encode_record`'s bytes) to `path`
/// and syncs it, `SNAPSHOT_SYNC_BYTES_MAX` at a time: one fsync of hundreds
/// of megabytes at the end would make every WAL fsync issued meanwhile
/// (ext4 commits the journal for both) wait for all of it. Written as it is
/// encoded: no second copy of the snapshot in memory.
fn write_record_synced(path: &Path, stored: &StoredSnapshot) -> io::Result<()> {
    let file = SyncedEvery {
        file: std::fs::File::create(path)?,
        unsynced: 0,
    };
    let mut out = std::io::BufWriter::with_capacity(SNAPSHOT_WRITE_BUFFER_BYTES, file);
    codec::write_record(stored, &mut out).map_err(|e| io_error("encode snapshot", e))?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.file.sync_all()
}

/// Bytes buffered between the encoder's small writes (the metadata) and
/// the file; the state's bytes pass through in one write.
const SNAPSHOT_WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// A file that `fdatasync`s after every `SNAPSHOT_SYNC_BYTES_MAX` bytes
/// written to it.
struct SyncedEvery {
    file: std::fs::File,
    /// Bytes written since the last sync.
    unsynced: usize,
}

impl Write for SyncedEvery {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = SNAPSHOT_SYNC_BYTES_MAX - self.unsynced;
        let written = self.file.write(&buf[..buf.len().min(room)])?;
        self.unsynced += written;
        if self.unsynced >= SNAPSHOT_SYNC_BYTES_MAX {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Removes every snapshot file but `keep` (best effort: a file left over
/// is removed by the next snapshot).
fn remove_snapshot_files_but(dir: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name != keep && name.starts_with(SNAPSHOT_FILE_PREFIX) {
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(file = name, error = %e, "could not remove an old snapshot file");
            }
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
    // The small last-log-id key, not the snapshot: decoding hundreds of
    // megabytes to compare two log ids cost as much as the write.
    if let Some(current) = durable_snapshot_last(db)? {
        if Some(current) >= stored.meta.last_log_id {
            return Ok(());
        }
    }
    let last = codec::encode_record(&stored.meta.last_log_id)
        .map_err(|e| io_error("encode snapshot last log id", e))?;
    // The file first (written, synced, renamed, the folder synced), then
    // one small synced batch that points at it. A crash in between leaves
    // an unreferenced file, removed by the next snapshot.
    let dir = snapshot_dir(db);
    std::fs::create_dir_all(&dir).map_err(|e| io_error("create the snapshot folder", e))?;
    let index = stored.meta.last_log_id.map_or(0, |id| id.index);
    let name = format!("{SNAPSHOT_FILE_PREFIX}{index:020}.bin");
    let partial = dir.join(format!("{name}.part"));
    write_record_synced(&partial, stored).map_err(|e| io_error("write the snapshot file", e))?;
    std::fs::rename(&partial, dir.join(&name))
        .and_then(|()| std::fs::File::open(&dir)?.sync_all())
        .map_err(|e| io_error("install the snapshot file", e))?;
    let sm = cf(db, CF_SM)?;
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(sm, KEY_SNAPSHOT_FILE, name.as_bytes());
    batch.put_cf(sm, KEY_SNAPSHOT_LAST, last);
    // The in-database copy an older version wrote, now superseded.
    batch.delete_cf(sm, KEY_SNAPSHOT);
    db.write_opt(batch, &synced())
        .map_err(|e| io_error("persist snapshot", e))?;
    remove_snapshot_files_but(&dir, &name);
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

    /// Freezes, encodes and persists off the runtime workers: a large state
    /// takes a second to encode and its synced write hundreds of
    /// milliseconds, and on a runtime worker that stalls heartbeats and the
    /// Raft server until followers campaign (seen as leader changes under
    /// load, every time all members reached the size trigger together).
    ///
    /// Applies wait only for the freeze (a shared row per port). The encode
    /// runs on a thread of its own at a lower CPU priority, so that on a
    /// busy machine it takes what applies and heartbeats leave; the freeze
    /// (which holds the state's lock) and the persist (a synced RocksDB
    /// write, which log appends may queue behind) keep the runtime's
    /// priority.
    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let (db, applied) = (Arc::clone(&self.db), Arc::clone(&self.applied));
        let (persist_lock, metrics) = (Arc::clone(&self.persist_lock), self.metrics.clone());
        let snapshot_bytes = Arc::clone(&self.snapshot_bytes);
        let started = Instant::now();
        let freeze_metric = metrics.snapshot_freeze.clone();
        let (frozen, last_log_id, last_membership) = blocking(move || {
            let applied = applied.read().map_err(|_| poisoned())?;
            // What the lock is held for, not the wait for it or the pool.
            let freezing = Instant::now();
            let frozen = applied.state.freeze();
            freeze_metric.observe(freezing.elapsed().as_secs_f64());
            Ok((frozen, applied.last_applied, applied.membership.clone()))
        })
        .await?;
        let data = yielding(move || frozen.snapshot()).await?;
        blocking(move || {
            let meta = SnapshotMeta {
                last_log_id,
                last_membership,
            };
            let stored = StoredSnapshot { meta, data };
            persist_snapshot(&db, &persist_lock, &stored)?;
            metrics
                .snapshot_build
                .observe(started.elapsed().as_secs_f64());
            metrics.snapshot_bytes.set(bytes_gauge(stored.data.len()));
            snapshot_bytes.store(stored.data.len() as u64, Ordering::Relaxed);
            Ok(Snapshot {
                meta: stored.meta,
                snapshot: Cursor::new(stored.data),
            })
        })
        .await
    }
}

/// Runs `work` on a thread of its own at a CPU priority
/// `SNAPSHOT_ENCODE_NICE_STEP` below the process's (Linux keeps the nice
/// value per thread; a pool thread could not get its priority back without
/// privileges, hence a thread per call: one per snapshot build). If the
/// kernel refuses the change the work runs at the process's priority.
async fn yielding<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("snapshot-encode".to_string())
        .spawn(move || {
            let lowered = rustix::process::getpriority_process(None).and_then(|nice| {
                rustix::process::setpriority_process(
                    None,
                    nice.saturating_add(SNAPSHOT_ENCODE_NICE_STEP)
                        .min(NICE_LOWEST),
                )
            });
            if let Err(e) = lowered {
                tracing::debug!(error = %e, "snapshot encode runs at the process's priority");
            }
            // The receiver is gone only if the build was abandoned.
            let _ = done.send(work());
        })?;
    result
        .await
        .map_err(|_| io::Error::other("the snapshot encode thread ended without a result"))
}

/// How far the snapshot encode's thread lowers its CPU priority (nice
/// steps): at +10 the kernel gives it about a tenth of a busy CPU's share
/// next to a thread at the process's priority, and all of an idle one.
const SNAPSHOT_ENCODE_NICE_STEP: i32 = 10;
/// Linux's lowest priority (highest nice value).
const NICE_LOWEST: i32 = 19;

/// Runs `work` on tokio's blocking pool: decoding, encoding and synced
/// writes of whole snapshots must not occupy a runtime worker.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| io::Error::other(format!("snapshot task failed: {e}")))?
}

/// How often `apply` retries the state's write lock while a reader (a
/// snapshot being encoded) holds it: a period, not a limit (that is
/// `APPLY_LOCK_POLL_MAX`).
const APPLY_LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// Takes the state's write lock without ever waiting as a writer on a
/// runtime worker. `std`'s `RwLock` prefers writers: while `apply` waits
/// for the write lock, every new reader (API reads, the push layer, watch)
/// blocks too. A snapshot holds the read lock for as long as it encodes the
/// whole state (up to a second at a million ports), so a blocking `write()`
/// there stalled every runtime worker until followers campaigned. Instead
/// the writer polls `try_write` every `APPLY_LOCK_POLL`: readers go on,
/// writes wait for the encoding. After `APPLY_LOCK_POLL_MAX` (a reader that
/// never lets go) it waits in `block_in_place` on a multi-thread runtime.
async fn write_applied(applied: &RwLock<Applied>) -> io::Result<RwLockWriteGuard<'_, Applied>> {
    let started = std::time::Instant::now();
    loop {
        match applied.try_write() {
            Ok(guard) => return Ok(guard),
            Err(TryLockError::Poisoned(_)) => return Err(poisoned()),
            Err(TryLockError::WouldBlock) if started.elapsed() >= APPLY_LOCK_POLL_MAX => break,
            Err(TryLockError::WouldBlock) => {}
        }
        tokio::time::sleep(APPLY_LOCK_POLL).await;
    }
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let guard = if multi_thread {
        tokio::task::block_in_place(|| applied.write())
    } else {
        applied.write()
    };
    guard.map_err(|_| poisoned())
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let applied = self.applied.read().map_err(|_| poisoned())?;
        Ok((applied.last_applied, applied.membership.clone()))
    }

    /// Applies the batch in holds of the write lock of at most
    /// `lock_hold_max` each (and at least one entry), and after each hold
    /// publishes its events and only then answers its waiting clients, so a
    /// client that reads after its reply sees its write. Readers wait one
    /// hold, not the whole batch.
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
        let mut batch = batch.into_iter();
        while batch.len() > 0 {
            let mut responses = Vec::new();
            let mut events = Vec::new();
            let mut changed = Vec::new();
            {
                let mut applied = write_applied(&self.applied).await?;
                let held = Instant::now();
                // Nobody listens for goal-state diffs (the log replayed at
                // start, before the push layer subscribes): skip computing
                // them. Checked under the write lock, so a subscriber that
                // comes later reads a state that already holds this hold's
                // entries.
                let diffs_wanted = self.events.receiver_count() > 0;
                for (entry, responder) in batch.by_ref() {
                    let log_index = entry.log_id.index;
                    let (response, diffs, change) =
                        applied.apply_entry(entry, diffs_wanted, &self.metrics);
                    changed.extend(change);
                    if let Some(responder) = responder {
                        responses.push((responder, response));
                    }
                    events.push(AppliedEvent::Entry {
                        log_index,
                        diffs: Arc::new(diffs),
                    });
                    if held.elapsed() >= self.lock_hold_max {
                        break;
                    }
                }
                self.metrics
                    .apply_lock_hold
                    .observe(held.elapsed().as_secs_f64());
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
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            db: Arc::clone(&self.db),
            applied: Arc::clone(&self.applied),
            persist_lock: Arc::clone(&self.persist_lock),
            snapshot_bytes: Arc::clone(&self.snapshot_bytes),
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
        let (db, persist_lock) = (Arc::clone(&self.db), Arc::clone(&self.persist_lock));
        let (restored, bytes) = blocking(move || {
            let restored = restore(&stored)?;
            persist_snapshot(&db, &persist_lock, &stored)?;
            Ok((restored, stored.data.len()))
        })
        .await?;
        self.metrics
            .snapshot_restore
            .observe(started.elapsed().as_secs_f64());
        self.metrics.snapshot_bytes.set(bytes_gauge(bytes));
        self.snapshot_bytes.store(bytes as u64, Ordering::Relaxed);
        let old = std::mem::replace(&mut *write_applied(&self.applied).await?, restored);
        // The old state may hold millions of allocations: free them off the
        // runtime too.
        drop(tokio::task::spawn_blocking(move || drop(old)));
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
        let (db, persist_lock) = (Arc::clone(&self.db), Arc::clone(&self.persist_lock));
        // Under the persist lock: a new snapshot removes the old file.
        let stored = blocking(move || {
            let _guard = persist_lock.lock().map_err(|_| poisoned())?;
            read_snapshot(&db)
        })
        .await?;
        Ok(stored.map(|stored| Snapshot {
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

    #[test]
    fn a_snapshot_file_holds_its_record_bytes_across_sync_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let mut stored = stored_at(7);
        // Two and a half sync pieces, so the pieces' seams are inside the data.
        stored.data = (0..SNAPSHOT_SYNC_BYTES_MAX * 5 / 2)
            .map(|i| (i % 251) as u8)
            .collect();
        let path = dir.path().join("snap");
        write_record_synced(&path, &stored).unwrap();
        let written = std::fs::read(&path).unwrap();
        assert!(written == codec::encode_record(&stored).unwrap());
        let back: StoredSnapshot = codec::decode_record(&written).unwrap();
        assert!(back.data == stored.data);
        assert_eq!(back.meta, stored.meta);
    }

    fn stored_at(index: u64) -> StoredSnapshot {
        let last_log_id = LogId::new(
            crate::types::CommittedLeaderId {
                term: 2,
                node_id: 1,
            },
            index,
        );
        StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: Some(last_log_id),
                last_membership: StoredMembership::default(),
            },
            data: State::new().snapshot(),
        }
    }

    fn snapshot_files(db: &DB) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(snapshot_dir(db))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_snapshot_is_a_file_outside_the_wal_and_replaces_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _closed) = super::super::open_db(dir.path(), false).unwrap();
        let lock = Mutex::new(());
        persist_snapshot(&db, &lock, &stored_at(10)).unwrap();
        persist_snapshot(&db, &lock, &stored_at(20)).unwrap();
        // An older one arriving late changes nothing.
        persist_snapshot(&db, &lock, &stored_at(15)).unwrap();
        assert_eq!(snapshot_files(&db), vec![format!("snap-{:020}.bin", 20)]);
        let sm = cf(&db, CF_SM).unwrap();
        assert!(db.get_cf(sm, KEY_SNAPSHOT).unwrap().is_none());
        let back = read_snapshot(&db).unwrap().unwrap();
        assert_eq!(back.meta.last_log_id.map(|id| id.index), Some(20));
        assert_eq!(
            durable_snapshot_last(&db).unwrap().map(|id| id.index),
            Some(20)
        );
    }

    #[test]
    fn a_snapshot_kept_inside_rocksdb_by_an_older_version_still_loads_and_moves_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _closed) = super::super::open_db(dir.path(), false).unwrap();
        let sm = cf(&db, CF_SM).unwrap();
        let old = stored_at(7);
        db.put_cf(sm, KEY_SNAPSHOT, codec::encode_record(&old).unwrap())
            .unwrap();
        let back = read_snapshot(&db).unwrap().unwrap();
        assert_eq!(back.meta.last_log_id, old.meta.last_log_id);
        assert_eq!(durable_snapshot_last(&db).unwrap(), old.meta.last_log_id);
        persist_snapshot(&db, &Mutex::new(()), &stored_at(9)).unwrap();
        assert!(db.get_cf(sm, KEY_SNAPSHOT).unwrap().is_none());
        assert_eq!(
            read_snapshot(&db)
                .unwrap()
                .unwrap()
                .meta
                .last_log_id
                .map(|id| id.index),
            Some(9)
        );
    }

    #[tokio::test]
    async fn the_snapshot_encode_runs_at_a_lower_cpu_priority_than_its_caller() {
        let nice = || rustix::process::getpriority_process(None).unwrap();
        let before = nice();
        let during = yielding(nice).await.unwrap();
        assert_eq!(
            during,
            before
                .saturating_add(SNAPSHOT_ENCODE_NICE_STEP)
                .min(NICE_LOWEST)
        );
        assert!(before == NICE_LOWEST || during > before);
        assert_eq!(nice(), before, "the caller's thread keeps its priority");
    }

    /// How many holds of the write lock `store`'s applies took so far.
    fn lock_holds(store: &StateMachineStore) -> u64 {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("holds", "", store.metrics.apply_lock_hold.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("holds_count "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap()
    }

    #[tokio::test]
    async fn a_batch_longer_than_one_hold_lets_readers_in_between_its_entries() {
        for (hold_max, holds) in [
            (std::time::Duration::ZERO, 3),
            (std::time::Duration::MAX, 1),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (db, _closed) = super::super::open_db(dir.path(), false).unwrap();
            let mut store = StateMachineStore::open(db).unwrap();
            store.lock_hold_max = hold_max;
            let entries = (1..=3u64).map(|n| {
                let proposal = alcor_state_machine::Proposal {
                    time_ms: 1_700_000_000_000,
                    command: alcor_state_machine::Command::CreateHost {
                        id: format!("h{n}"),
                        project_id: "p1".to_string(),
                        underlay_ip: std::net::Ipv4Addr::new(192, 0, 2, n as u8).into(),
                    },
                };
                let leader = crate::types::CommittedLeaderId {
                    term: 1,
                    node_id: 1,
                };
                let entry = crate::types::Entry {
                    log_id: LogId::new(leader, n),
                    payload: EntryPayload::Normal(Request::Apply(Arc::new(proposal))),
                };
                Ok((entry, None))
            });
            store.apply(tokio_stream::iter(entries)).await.unwrap();

            assert_eq!(lock_holds(&store), holds, "hold budget {hold_max:?}");
            // Every entry is applied either way, in order.
            let (last, _) = store.applied_state().await.unwrap();
            assert_eq!(last.map(|id| id.index), Some(3));
            let hosts = store.view().read(|s| s.hosts().count()).unwrap();
            assert_eq!(hosts, 3);
        }
    }

    #[tokio::test]
    async fn the_size_trigger_sees_the_bytes_of_each_snapshot_built_installed_or_restored() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _closed) = super::super::open_db(dir.path(), false).unwrap();
        let mut store = StateMachineStore::open(Arc::clone(&db)).unwrap();
        let size = store.snapshot_bytes();
        assert_eq!(size.load(Ordering::Relaxed), 0);

        let built = store
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let built_len = built.snapshot.get_ref().len() as u64;
        assert!(built_len > 0);
        assert_eq!(size.load(Ordering::Relaxed), built_len);

        // A larger snapshot from the leader replaces it.
        let mut bigger = stored_at(40);
        let mut state = State::new();
        let host = alcor_state_machine::Proposal {
            time_ms: 1_700_000_000_000,
            command: alcor_state_machine::Command::CreateHost {
                id: "h1".to_string(),
                project_id: "p1".to_string(),
                underlay_ip: "192.0.2.1".parse().unwrap(),
            },
        };
        assert!(state.apply(1, &host).result.is_ok());
        bigger.data = state.snapshot();
        let installed_len = bigger.data.len() as u64;
        assert_ne!(installed_len, built_len);
        store
            .install_snapshot(&bigger.meta, Cursor::new(bigger.data))
            .await
            .unwrap();
        assert_eq!(size.load(Ordering::Relaxed), installed_len);

        // A restart reads it back with the snapshot it restores.
        drop(store);
        let reopened = StateMachineStore::open(db).unwrap();
        assert_eq!(
            reopened.snapshot_bytes().load(Ordering::Relaxed),
            installed_len
        );
    }

    #[test]
    fn a_snapshot_file_name_that_leaves_the_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _closed) = super::super::open_db(dir.path(), false).unwrap();
        let sm = cf(&db, CF_SM).unwrap();
        db.put_cf(sm, KEY_SNAPSHOT_FILE, b"snap-../../etc/passwd")
            .unwrap();
        assert!(read_snapshot(&db).is_err());
    }

    #[test]
    fn a_missing_snapshot_file_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _closed) = super::super::open_db(dir.path(), false).unwrap();
        persist_snapshot(&db, &Mutex::new(()), &stored_at(5)).unwrap();
        for name in snapshot_files(&db) {
            std::fs::remove_file(snapshot_dir(&db).join(name)).unwrap();
        }
        assert_eq!(
            read_snapshot(&db).err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
    }
}
