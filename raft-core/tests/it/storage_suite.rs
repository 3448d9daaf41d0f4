//! openraft's storage conformance suite against the RocksDB stores.

use alcor_raft_core::storage::{open_db, LogStore, StateMachineStore};
use alcor_raft_core::types::{StorageError, TypeConfig};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb};
use tempfile::TempDir;

fn setup_error(e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(
        ErrorSubject::Store,
        ErrorVerb::Write,
        std::io::Error::other(e.to_string()),
    )
}

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = TempDir::new().map_err(setup_error)?;
        let (db, _closed) = open_db(dir.path(), false).map_err(setup_error)?;
        // The suite purges and reads the commit index with no snapshot at
        // all, which the production guards (purge only behind the snapshot
        // on disk) would refuse; they have their own tests.
        let log_store =
            LogStore::with_snapshot_guards(db.clone(), true, false).map_err(setup_error)?;
        let state_machine = StateMachineStore::open(db).map_err(setup_error)?;
        Ok((dir, log_store, state_machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_stores_pass_openraft_storage_suite() {
    Suite::test_all(RocksBuilder).await.unwrap();
}
