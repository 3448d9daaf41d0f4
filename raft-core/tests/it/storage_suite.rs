//! openraft's storage conformance suite against the RocksDB stores.

use alcor_raft_core::storage::{open_db, LogStore, StateMachineStore};
use alcor_raft_core::types::{StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageIOError};
use tempfile::TempDir;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = TempDir::new().map_err(|e| StorageIOError::write(&e))?;
        let (db, _closed) =
            open_db(dir.path(), false).map_err(|e| StorageIOError::write(AnyError::error(e)))?;
        // The suite purges and reads the commit index with no snapshot at
        // all, which the production guards (purge only behind the snapshot
        // on disk) would refuse; they have their own tests.
        let log_store = LogStore::with_snapshot_guards(db.clone(), true, false)?;
        let state_machine = StateMachineStore::open(db)?;
        Ok((dir, log_store, state_machine))
    }
}

#[test]
fn rocksdb_stores_pass_openraft_storage_suite() {
    Suite::test_all(RocksBuilder).unwrap();
}
