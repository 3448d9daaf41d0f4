//! RocksDB-backed storage for one Raft node: the log (with vote and commit
//! index) and the state machine's snapshots.
//!
//! One database, three column families sharing one WAL, so a cross-family
//! `WriteBatch` is atomic and one fsync covers all of them:
//! - `logs`: key = big-endian `u64` log index, value = versioned `Entry`;
//! - `meta`: `vote`, `committed`, `last_purged`;
//! - `sm`:   `snapshot` = the latest snapshot (meta + state bytes).
//!
//! The applied state itself is never written except inside a snapshot: on
//! restart the state machine loads the latest snapshot and openraft replays
//! committed entries after it.
//!
//! Architecture Invariant: RocksDB is used by this module only.

mod log_store;
mod state_machine;

use std::io;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, DB};
use tokio::sync::oneshot;

pub use log_store::{LogReader, LogStore};
pub use state_machine::{AppliedEvent, ChangeEvent, SnapshotBuilder, StateMachineStore, StateView};

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
