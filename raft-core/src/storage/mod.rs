//! RocksDB-backed storage for one Raft node: the log (with vote and commit
//! index) and the state machine's snapshots.
//!
//! One database, three column families sharing one WAL, so a cross-family
//! `WriteBatch` is atomic and one fsync covers all of them:
//! - `logs`: key = big-endian `u64` log index, value = versioned `Entry`;
//! - `meta`: `vote`, `committed`, `last_purged`;
//! - `sm`:   `snapshot_file` = the name of the latest snapshot's file in
//!   `snapshots/` (meta + state bytes) and `snapshot_last_log_id`; data
//!   directories written before snapshot files hold the snapshot itself
//!   under `snapshot`, read until the next snapshot replaces it.
//!
//! The applied state itself is never written except inside a snapshot: on
//! restart the state machine loads the latest snapshot and openraft replays
//! committed entries after it.
//!
//! Architecture Invariant: RocksDB is used by this module only.

mod log_cache;
mod log_store;
mod state_machine;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, DB};
use tokio::sync::oneshot;

pub use log_store::{LogReader, LogStore};
#[cfg(test)]
pub(crate) use state_machine::StoredSnapshot;
pub use state_machine::{AppliedEvent, ChangeEvent, SnapshotBuilder, StateMachineStore, StateView};

use crate::backup::Backup;
use crate::types::{CommittedLeaderId, LogId, Node, NodeId, SnapshotMeta, StoredMembership};

/// Column family holding log entries.
pub(crate) const CF_LOGS: &str = "logs";
/// Column family holding the vote, commit index and purge point.
pub(crate) const CF_META: &str = "meta";
/// Column family holding the latest snapshot.
pub(crate) const CF_SM: &str = "sm";

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("open rocksdb at {path}: {source}")]
pub struct OpenError {
    /// The directory that was opened.
    pub path: String,
    /// RocksDB's reason.
    #[source]
    pub source: rocksdb::Error,
}

/// The open database, shared by the log store and the state machine.
pub struct Db {
    db: DB,
    /// Dropped after `db` (fields drop in declaration order), so its
    /// receiver learns when RocksDB has really closed and released its lock.
    _closed: oneshot::Sender<()>,
}

impl Deref for Db {
    type Target = DB;

    fn deref(&self) -> &DB {
        &self.db
    }
}

/// Resolves once the [`Db`] it came with has been closed.
#[derive(Debug)]
pub struct DbClosed(oneshot::Receiver<()>);

impl DbClosed {
    /// Waits until the database is closed (every `Arc<Db>` dropped).
    pub async fn wait(self) {
        // The sender is never used; its drop is the signal.
        let _ = self.0.await;
    }
}

/// Opens (creating if needed) the node's database in `dir`. With
/// `wal_buffered_until_sync`, WAL records stay in RocksDB's in-process
/// buffer until the next synced write or `flush_wal`, so a killed process
/// loses what was not fsynced (see `RaftNodeConfig::wal_buffered_until_sync`).
pub fn open_db(
    dir: &Path,
    wal_buffered_until_sync: bool,
) -> Result<(Arc<Db>, DbClosed), OpenError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_manual_wal_flush(wal_buffered_until_sync);
    let cfs = [CF_LOGS, CF_META, CF_SM]
        .into_iter()
        .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(|source| OpenError {
        path: dir.display().to_string(),
        source,
    })?;
    let (closed_tx, closed_rx) = oneshot::channel();
    Ok((
        Arc::new(Db {
            db,
            _closed: closed_tx,
        }),
        DbClosed(closed_rx),
    ))
}

/// Looks up a column family created by [`open_db`].
fn cf<'a>(db: &'a DB, name: &str) -> io::Result<&'a ColumnFamily> {
    db.cf_handle(name)
        .ok_or_else(|| io::Error::other(format!("column family {name} missing")))
}

/// An `io::Error` (what openraft 0.10's storage traits return) carrying
/// `error`'s message, with `what` was being done for context.
fn io_error(what: &str, error: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {error}"))
}

/// Write options that fsync the WAL before the write returns.
fn synced() -> rocksdb::WriteOptions {
    let mut opts = rocksdb::WriteOptions::default();
    opts.set_sync(true);
    opts
}

/// Why a data directory could not be built from a backup. Nothing is left
/// at the target path when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The target exists and is not an empty directory: a restore never
    /// overwrites a member's data.
    #[error("data dir {0} exists and is not empty; restore only into a new directory")]
    DataDirNotEmpty(PathBuf),
    /// The new cluster has no members.
    #[error("the new cluster needs at least one member")]
    NoMembers,
    /// Creating or writing the directory failed.
    #[error("restore into {path}: {reason}")]
    Io {
        /// The directory being written.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// Builds the data directory `dir` of one member of a new cluster whose
/// members are `members`, holding `backup`'s state: the snapshot on disk
/// covers the backup's revision (under term 0, so any election of the new
/// cluster outranks it), the log is empty and purged up to it, and the
/// membership is `members`, all voters. Every member's directory is the
/// same; starting them gives a cluster whose first new entry is
/// `revision + 1`. The directory is built beside `dir` and renamed into
/// place once complete, so a failure leaves nothing at `dir`.
pub fn restore_data_dir(
    dir: &Path,
    backup: &Backup,
    members: &BTreeMap<NodeId, Node>,
) -> Result<LogId, RestoreError> {
    let Some(&lowest) = members.keys().next() else {
        return Err(RestoreError::NoMembers);
    };
    let io_err = |path: &Path, e: &dyn std::fmt::Display| RestoreError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let target_exists = match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(RestoreError::DataDirNotEmpty(dir.to_path_buf()));
            }
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(RestoreError::DataDirNotEmpty(dir.to_path_buf()))
        }
        Err(e) => return Err(io_err(dir, &e)),
    };
    let mut staging = dir.as_os_str().to_owned();
    staging.push(".restoring");
    let staging = PathBuf::from(staging);
    // A leftover of a restore that died half-way.
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| io_err(&staging, &e))?;
    }
    let log_id = LogId::new(
        CommittedLeaderId {
            term: 0,
            node_id: lowest,
        },
        backup.header.revision,
    );
    let written = write_restored(&staging, backup, members, log_id)
        .map_err(|e| io_err(&staging, &e))
        .and_then(|()| {
            if target_exists {
                std::fs::remove_dir(dir).map_err(|e| io_err(dir, &e))?;
            }
            std::fs::rename(&staging, dir).map_err(|e| io_err(dir, &e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::File::open(parent)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| io_err(parent, &e))?;
            }
            Ok(())
        });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written.map(|()| log_id)
}

/// Creates the database in `dir` and writes the restored snapshot and log
/// state (synced); the database is closed when this returns.
fn write_restored(
    dir: &Path,
    backup: &Backup,
    members: &BTreeMap<NodeId, Node>,
    log_id: LogId,
) -> io::Result<()> {
    let (db, _closed) = open_db(dir, false).map_err(|e| io_error("open", e))?;
    let voters: BTreeSet<NodeId> = members.keys().copied().collect();
    let membership = openraft::Membership::new(vec![voters], members.clone())
        .map_err(|e| io_error("membership", e))?;
    let meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: StoredMembership::new(Some(log_id), membership),
    };
    state_machine::write_restored_snapshot(&db, meta, backup.body.clone())?;
    log_store::write_restored_log_state(&db, &log_id)?;
    Ok(())
}
