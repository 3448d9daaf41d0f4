//! The Raft log on RocksDB, with group-committed fsyncs.
//!
//! Durability contract (openraft 0.10 storage):
//! - `save_vote`, `truncate_after` and `purge` are synced writes: on disk
//!   before they return;
//! - `append` writes unsynced (entries are readable at once) and hands the
//!   completion callback to one flusher thread, which drains every queued
//!   callback, issues a single `flush_wal(true)` for all of them, then fires
//!   them in order. Many appends therefore share one fsync;
//! - `save_committed` is unsynced: the commit index is a hint that lets a
//!   restarted node replay up to it, and any later synced write or WAL flush
//!   persists it;
//! - at open, the WAL is fsynced once: openraft treats every entry it reads
//!   back at start as flushed, and after a `kill -9` the tail written since
//!   the last fsync may still sit in the page cache only;
//! - `purge` never deletes past the snapshot on disk. openraft 0.9 issued
//!   the purge that follows an installed snapshot while the state machine
//!   is still persisting that snapshot (`install_full_snapshot` pushes both
//!   at once); a crash in between left a member with its log purged past
//!   its last durable snapshot, which could not restart (found by the Jepsen
//!   run 20261127T215747Z). `purge` therefore waits (bounded) until that
//!   snapshot is on disk; purging only behind an older one instead left a
//!   hole below the entries that follow the new snapshot (run
//!   20261127T223924Z), so that is only the fallback when the wait runs out;
//! - `read_committed` never reports more than a restart can re-apply: the
//!   durable snapshot plus the log entries that follow it without a gap.
//!
//! The newest entries are also kept decoded in memory (`log_cache`); every
//! change of the log updates that cache with it, and reads starting in it
//! are served from it.
//!
//! Why the asynchronous flusher is safe with openraft 0.10 (upstream issue
//! #2118, "a new leader marks in-flight log IO as flushed"): openraft keeps
//! one "flushed" watermark over vote and log IO and treats the completion
//! of any IO as the completion of every IO submitted before it. In 0.10.0-
//! alpha.37 a node becomes leader only after saving the committed vote
//! (`SaveVote`, awaited before the next command), and the leader's own
//! progress update waits for that save (`Condition::IOFlushed`); the issue's
//! `when: None` is gone. Either way, the watermark assumption holds here
//! without relying on that fix: `append` writes its batch into RocksDB's one
//! WAL before it returns, and `save_vote`, `truncate_after` and `purge` are
//! synced writes to the same WAL, whose fsync covers every record before
//! it (with `manual_wal_flush` too: a synced write flushes the in-process
//! buffer first). So whenever openraft counts an in-flight append as
//! flushed because a later IO completed, that append is on disk. The
//! flusher itself acknowledges strictly in queue order, after the fsync
//! that covers each append, and a failed fsync fails every callback it
//! covers (openraft then stops for good; nothing retries an fsync).

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use prometheus_client::metrics::histogram::Histogram;
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};
use tokio::sync::{mpsc, watch};

use super::log_cache::LogCache;
use super::{cf, io_error, synced, Db, CF_LOGS, CF_META};
use crate::codec;
use crate::limits::{APPEND_ENTRIES_BYTES_MAX, APPEND_QUEUE_MAX, FLUSH_BATCH_MAX};
use crate::metrics::RaftMetrics;
use crate::types::{Entry, LogId, TypeConfig, Vote};

/// Longest wait in `purge` for the snapshot covering it to be on disk.
const PURGE_SNAPSHOT_WAIT_MS_MAX: u64 = 10_000;
/// How often `purge` looks for that snapshot while it waits.
const PURGE_SNAPSHOT_POLL_MS: u64 = 2;
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// The log store handed to openraft.
pub struct LogStore {
    db: Arc<Db>,
    /// Append callbacks waiting for the flusher's fsync (bounded).
    flush_tx: mpsc::Sender<IOFlushed<TypeConfig>>,
    /// The last commit index openraft reported, for metrics.
    committed_tx: watch::Sender<Option<LogId>>,
    /// The flusher thread, joined on drop so that its reference to the
    /// database is released before the store is gone (RocksDB must never be
    /// closed by a detached thread racing process exit).
    flusher: Option<std::thread::JoinHandle<()>>,
    /// `purge` stops at the snapshot on disk and `read_committed` at what a
    /// restart can re-apply (see the module doc). Off only for openraft's
    /// storage conformance suite, which purges and reads the commit index
    /// with no snapshot at all.
    snapshot_guards: bool,
    /// Stored bytes of every entry appended since this store was opened
    /// (grows only); the node snapshots by log growth from it.
    appended_bytes: Arc<AtomicU64>,
    /// The newest entries, decoded (shared with the readers).
    cache: Arc<LogCache>,
}

impl Drop for LogStore {
    fn drop(&mut self) {
        // Close the queue: the flusher drains it and returns.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.flush_tx, closed));
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

/// A read-only view of the log, used by openraft's replication tasks.
#[derive(Clone)]
pub struct LogReader {
    db: Arc<Db>,
    cache: Arc<LogCache>,
}

impl LogStore {
    /// Wraps an open database and starts its WAL flusher thread. The
    /// thread exits once the store is dropped.
    ///
    /// `fsync: false` is [`crate::Mutation::SkipFsync`], for mutation tests
    /// only: appends are acknowledged without flushing the WAL.
    pub fn new(db: Arc<Db>, fsync: bool) -> io::Result<LogStore> {
        LogStore::open(db, fsync, true, &RaftMetrics::default())
    }

    /// [`LogStore::new`] timing every WAL fsync and counting the log cache's
    /// hits and misses into `metrics`.
    pub fn with_metrics(db: Arc<Db>, fsync: bool, metrics: &RaftMetrics) -> io::Result<LogStore> {
        LogStore::open(db, fsync, true, metrics)
    }

    /// [`LogStore::new`] with the snapshot guards on or off; off only for
    /// openraft's storage conformance suite.
    pub fn with_snapshot_guards(
        db: Arc<Db>,
        fsync: bool,
        snapshot_guards: bool,
    ) -> io::Result<LogStore> {
        LogStore::open(db, fsync, snapshot_guards, &RaftMetrics::default())
    }

    fn open(
        db: Arc<Db>,
        fsync: bool,
        snapshot_guards: bool,
        metrics: &RaftMetrics,
    ) -> io::Result<LogStore> {
        let wal_fsync = metrics.wal_fsync.clone();
        if fsync {
            db.flush_wal(true)
                .map_err(|e| io_error("fsync wal at open", e))?;
        }
        let (flush_tx, flush_rx) = mpsc::channel(APPEND_QUEUE_MAX);
        let flusher_db = Arc::clone(&db);
        let flusher = std::thread::Builder::new()
            .name("raft-wal-flusher".to_string())
            .spawn(move || run_flusher(&flusher_db, flush_rx, fsync, &wal_fsync))?;
        let committed = read_meta::<LogId>(&db, KEY_COMMITTED)?;
        let (committed_tx, _) = watch::channel(committed);
        Ok(LogStore {
            db,
            flush_tx,
            committed_tx,
            flusher: Some(flusher),
            snapshot_guards,
            appended_bytes: Arc::new(AtomicU64::new(0)),
            cache: Arc::new(LogCache::new(
                metrics.log_cache_hits.clone(),
                metrics.log_cache_misses.clone(),
            )),
        })
    }

    /// The counter of stored bytes appended since the store was opened.
    pub fn appended_bytes(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.appended_bytes)
    }

    /// Follows the commit index openraft persists through this store.
    pub fn committed(&self) -> watch::Receiver<Option<LogId>> {
        self.committed_tx.subscribe()
    }
}

/// Fsyncs the WAL once per batch of queued appends, then acknowledges them
/// in the order they were queued.
/// Each fsync's duration goes into `wal_fsync`.
fn run_flusher(
    db: &DB,
    mut rx: mpsc::Receiver<IOFlushed<TypeConfig>>,
    fsync: bool,
    wal_fsync: &Histogram,
) {
    let mut batch = Vec::with_capacity(FLUSH_BATCH_MAX);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < FLUSH_BATCH_MAX {
            match rx.try_recv() {
                Ok(callback) => batch.push(callback),
                Err(_) => break,
            }
        }
        let result = if fsync {
            let started = std::time::Instant::now();
            let result = db.flush_wal(true).map_err(|e| e.into_string());
            wal_fsync.observe(started.elapsed().as_secs_f64());
            result
        } else {
            Ok(())
        };
        for callback in batch.drain(..) {
            let result = result.clone().map_err(io::Error::other);
            callback.io_completed(result);
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn index_from_key(key: &[u8]) -> io::Result<u64> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| io::Error::other(format!("log key has {} bytes, want 8", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

fn read_meta<T: serde::de::DeserializeOwned>(db: &DB, key: &[u8]) -> io::Result<Option<T>> {
    let bytes = db
        .get_cf(cf(db, CF_META)?, key)
        .map_err(|e| io_error("read meta", e))?;
    match bytes {
        None => Ok(None),
        Some(bytes) => {
            let value = codec::decode_record(&bytes).map_err(|e| io_error("decode meta", e))?;
            Ok(Some(value))
        }
    }
}

fn read_entries<RB: RangeBounds<u64>>(db: &DB, range: RB) -> io::Result<Vec<Entry>> {
    read_entries_within(db, range, usize::MAX)
}

/// The first index of `range`, `None` when it holds none.
fn range_start<RB: RangeBounds<u64>>(range: &RB) -> Option<u64> {
    match range.start_bound() {
        Bound::Included(&i) => Some(i),
        Bound::Excluded(&i) => i.checked_add(1),
        Bound::Unbounded => Some(0),
    }
}

/// The index past the end of `range`, `None` when it runs to the end.
fn range_end<RB: RangeBounds<u64>>(range: &RB) -> Option<u64> {
    match range.end_bound() {
        Bound::Included(&i) => i.checked_add(1),
        Bound::Excluded(&i) => Some(i),
        Bound::Unbounded => None,
    }
}

/// [`read_entries_within`], from the cache when the range starts in it.
fn read_cached_within<RB: RangeBounds<u64>>(
    db: &DB,
    cache: &LogCache,
    range: RB,
    bytes_max: usize,
) -> io::Result<Vec<Entry>> {
    let Some(start) = range_start(&range) else {
        return Ok(Vec::new());
    };
    match cache.read(start, range_end(&range), bytes_max) {
        Some(entries) => Ok(entries),
        None => read_entries_within(db, range, bytes_max),
    }
}

/// The entries of `range` in order, stopping before the entry that would
/// take their stored size past `bytes_max` (the first entry is always
/// returned, whatever its size, so replication always makes progress).
fn read_entries_within<RB: RangeBounds<u64>>(
    db: &DB,
    range: RB,
    bytes_max: usize,
) -> io::Result<Vec<Entry>> {
    let Some(start) = range_start(&range) else {
        return Ok(Vec::new());
    };
    let key = index_key(start);
    let iter = db.iterator_cf(
        cf(db, CF_LOGS)?,
        IteratorMode::From(&key, Direction::Forward),
    );
    let mut entries = Vec::new();
    let mut bytes = 0usize;
    for item in iter {
        let (key, value) = item.map_err(|e| io_error("read logs", e))?;
        let index = index_from_key(&key)?;
        if !range.contains(&index) {
            break;
        }
        bytes = bytes.saturating_add(value.len());
        if bytes > bytes_max && !entries.is_empty() {
            break;
        }
        let entry: Entry = codec::decode_record(&value)
            .map_err(|e| io_error(&format!("decode log entry {index}"), e))?;
        if entry.log_id.index != index {
            let msg = format!("entry at key {index} has index {}", entry.log_id.index);
            return Err(io::Error::other(msg));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Writes the log state of a data directory restored from a backup at
/// `log_id`: the log is purged up to it and committed up to it, so the
/// member starts with no entries, and its first new entry is the next index.
pub(super) fn write_restored_log_state(db: &DB, log_id: &LogId) -> io::Result<()> {
    let bytes = codec::encode_record(log_id).map_err(|e| io_error("encode restored", e))?;
    let mut batch = WriteBatch::default();
    batch.put_cf(cf(db, CF_META)?, KEY_LAST_PURGED, &bytes);
    batch.put_cf(cf(db, CF_META)?, KEY_COMMITTED, &bytes);
    db.write_opt(batch, &synced())
        .map_err(|e| io_error("write restored log state", e))
}

impl LogStore {
    /// The last log id of the snapshot on disk, waiting (at most
    /// `PURGE_SNAPSHOT_WAIT_MS_MAX`) until it reaches `index`: after an
    /// installed snapshot openraft purges while the state machine is still
    /// persisting it. Purging behind an older snapshot instead would leave a
    /// hole below the entries that follow the new one, so a stop short of
    /// `index` only happens if the wait runs out.
    async fn snapshot_on_disk_covering(&self, index: u64) -> io::Result<Option<LogId>> {
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(PURGE_SNAPSHOT_WAIT_MS_MAX);
        loop {
            let on_disk = super::state_machine::durable_snapshot_last(&self.db)?;
            if on_disk.is_some_and(|s| s.index >= index) {
                return Ok(on_disk);
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::error!(
                    index,
                    ?on_disk,
                    "no snapshot on disk covers the purge; purging only behind it"
                );
                return Ok(on_disk);
            }
            tokio::time::sleep(std::time::Duration::from_millis(PURGE_SNAPSHOT_POLL_MS)).await;
        }
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        read_cached_within(&self.db, &self.cache, range, usize::MAX)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        read_meta(&self.db, KEY_VOTE)
    }

    /// What one AppendEntries carries: openraft's replication asks for
    /// `[start, end)` (at most `max_payload_entries`), and gets the prefix
    /// that fits `APPEND_ENTRIES_BYTES_MAX`, so an RPC's size, and with it
    /// its time on the wire, is bounded by bytes and not by entry count.
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> io::Result<Vec<Entry>> {
        read_cached_within(&self.db, &self.cache, start..end, APPEND_ENTRIES_BYTES_MAX)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        read_cached_within(&self.db, &self.cache, range, usize::MAX)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        read_meta(&self.db, KEY_VOTE)
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> io::Result<Vec<Entry>> {
        read_cached_within(&self.db, &self.cache, start..end, APPEND_ENTRIES_BYTES_MAX)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id = read_meta::<LogId>(&self.db, KEY_LAST_PURGED)?;
        let mut iter = self
            .db
            .iterator_cf(cf(&self.db, CF_LOGS)?, IteratorMode::End);
        let last_log_id = match iter.next() {
            None => last_purged_log_id,
            Some(item) => {
                let (key, value) = item.map_err(|e| io_error("read last log", e))?;
                let index = index_from_key(&key)?;
                let entry: Entry = codec::decode_record(&value)
                    .map_err(|e| io_error(&format!("decode log entry {index}"), e))?;
                Some(entry.log_id)
            }
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            db: Arc::clone(&self.db),
            cache: Arc::clone(&self.cache),
        }
    }

    /// Synced: on disk before it returns, and (one WAL) with every append
    /// written before it (see the module doc on upstream issue #2118).
    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        let bytes = codec::encode_record(vote).map_err(|e| io_error("encode vote", e))?;
        let meta = cf(&self.db, CF_META)?;
        self.db
            .put_cf_opt(meta, KEY_VOTE, bytes, &synced())
            .map_err(|e| io_error("save vote", e))?;
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        let meta = cf(&self.db, CF_META)?;
        match &committed {
            Some(log_id) => {
                let bytes =
                    codec::encode_record(log_id).map_err(|e| io_error("encode committed", e))?;
                self.db.put_cf(meta, KEY_COMMITTED, bytes)
            }
            None => self.db.delete_cf(meta, KEY_COMMITTED),
        }
        .map_err(|e| io_error("save committed", e))?;
        self.committed_tx.send_replace(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        let Some(committed) = read_meta::<LogId>(&self.db, KEY_COMMITTED)? else {
            return Ok(None);
        };
        if !self.snapshot_guards {
            return Ok(Some(committed));
        }
        // The commit index is written unsynced and may be ahead of what a
        // restart can re-apply (a snapshot was being installed when the
        // member died). Committed entries live on a quorum, so reporting
        // less is safe: the leader tells this member the rest.
        let base = super::state_machine::durable_snapshot_last(&self.db)?;
        if base.is_some_and(|b| b.index >= committed.index) {
            return Ok(Some(committed));
        }
        let purged = read_meta::<LogId>(&self.db, KEY_LAST_PURGED)?;
        let mut reachable = base;
        if base.is_some() || purged.is_none() {
            let start = base.map_or(0, |b| b.index + 1);
            for entry in read_entries(&self.db, start..=committed.index)? {
                let follows = match reachable {
                    Some(r) => entry.log_id.index == r.index + 1,
                    // The first entry of a never-purged log.
                    None => entry.log_id.index <= 1,
                };
                if !follows {
                    break;
                }
                reachable = Some(entry.log_id);
            }
        }
        if reachable != Some(committed) {
            tracing::warn!(
                ?committed,
                ?reachable,
                "the commit index on disk is ahead of the snapshot and log; using what can be re-applied"
            );
        }
        Ok(reachable)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let logs = cf(&self.db, CF_LOGS)?;
        let mut batch = WriteBatch::default();
        let mut appended = 0u64;
        let mut cached = Vec::new();
        for entry in entries {
            let bytes = codec::encode_record(&entry)
                .map_err(|e| io_error(&format!("encode log entry {}", entry.log_id), e))?;
            let stored_bytes = bytes.len();
            appended = appended.saturating_add(stored_bytes as u64);
            batch.put_cf(logs, index_key(entry.log_id.index), bytes);
            cached.push((entry, stored_bytes));
        }
        self.appended_bytes.fetch_add(appended, Ordering::Relaxed);
        // In the WAL (so ordered before any later synced write) and readable
        // now; durable once the flusher has fsynced the WAL.
        self.db
            .write(batch)
            .map_err(|e| io_error("append logs", e))?;
        self.cache.append(cached);
        self.flush_tx
            .send(callback)
            .await
            .map_err(|_| io::Error::other("WAL flusher thread has stopped"))?;
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let first_removed = last_log_id.map_or(0, |id| id.index + 1);
        let logs = cf(&self.db, CF_LOGS)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(logs, index_key(first_removed), index_key(u64::MAX));
        batch.delete_cf(logs, index_key(u64::MAX));
        // The cache never holds an entry the log no longer has; if the
        // stored tail stays, the cache no longer ends with the log.
        self.cache.truncate_from(first_removed);
        self.db.write_opt(batch, &synced()).map_err(|e| {
            self.cache.clear();
            io_error("truncate logs", e)
        })?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let log_id = if self.snapshot_guards {
            match self.snapshot_on_disk_covering(log_id.index).await? {
                Some(snapshot) if snapshot.index < log_id.index => snapshot,
                Some(_) => log_id,
                // Nothing is covered by a snapshot on disk yet.
                None => return Ok(()),
            }
        } else {
            log_id
        };
        if read_meta::<LogId>(&self.db, KEY_LAST_PURGED)?.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        let bytes = codec::encode_record(&log_id).map_err(|e| io_error("encode purged", e))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_META)?, KEY_LAST_PURGED, bytes);
        let end = log_id.index.saturating_add(1);
        batch.delete_range_cf(cf(&self.db, CF_LOGS)?, index_key(0), index_key(end));
        self.db
            .write_opt(batch, &synced())
            .map_err(|e| io_error("purge logs", e))?;
        self.cache.purge_through(log_id.index);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::log_id;
    use openraft::storage::RaftLogStorageExt;
    use openraft::EntryPayload;

    fn blank(term: u64, index: u64) -> Entry {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Blank,
        }
    }

    fn ids(entries: io::Result<Vec<Entry>>) -> Vec<(u64, u64)> {
        let entries = entries.expect("read");
        entries
            .iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect()
    }

    #[tokio::test]
    async fn readers_take_new_entries_from_the_cache_and_never_a_truncated_one() {
        let dir = tempfile::TempDir::new().expect("dir");
        let (db, _closed) = super::super::open_db(dir.path(), false).expect("db");
        let metrics = RaftMetrics::default();
        // No snapshot guards: `purge` would wait for a snapshot on disk.
        let mut log = LogStore::open(db, true, false, &metrics).expect("store");
        log.blocking_append((1..=5).map(|i| blank(1, i)))
            .await
            .expect("append");
        let mut reader = log.get_log_reader().await;

        let read = ids(reader.try_get_log_entries(3..).await);
        assert_eq!(read, [(1, 3), (1, 4), (1, 5)]);
        assert_eq!(metrics.log_cache_hits.get(), 1);

        // A new leader's entries replace the tail: the cached run follows.
        log.truncate_after(Some(log_id(1, 3)))
            .await
            .expect("truncate");
        log.blocking_append([blank(2, 4)]).await.expect("append");
        let read = ids(reader.limited_get_log_entries(2, 10).await);
        assert_eq!(read, [(1, 2), (1, 3), (2, 4)]);
        assert_eq!(metrics.log_cache_hits.get(), 2);

        // Purged entries are not returned (the read starts below the cached
        // run, so RocksDB answers it).
        log.purge(log_id(1, 2)).await.expect("purge");
        let read = ids(reader.try_get_log_entries(1..).await);
        assert_eq!(read, [(1, 3), (2, 4)]);
        assert_eq!(metrics.log_cache_misses.get(), 1);
    }
}
