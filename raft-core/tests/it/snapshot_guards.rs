//! The log store's guards for a member that dies while a snapshot sent by
//! the leader is being installed: openraft 0.9 issued the log purge that
//! follows the snapshot at the same time as the state machine persisted it,
//! and could save a commit index beyond both; the guards stay with 0.10. A restart must find a snapshot
//! and log it can re-apply from.

use std::io::Cursor;

use alcor_raft_core::storage::{open_db, LogStore, StateMachineStore};
use alcor_raft_core::types::{CommittedLeaderId, Entry, LogId, SnapshotMeta};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{EntryPayload, RaftLogReader, RaftSnapshotBuilder};
use tempfile::TempDir;

fn log_id(index: u64) -> LogId {
    LogId::new(
        CommittedLeaderId {
            term: 1,
            node_id: 1,
        },
        index,
    )
}

fn blank(index: u64) -> Entry {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Blank,
    }
}

async fn stores() -> (TempDir, LogStore, StateMachineStore) {
    let dir = TempDir::new().unwrap();
    let (db, _closed) = open_db(dir.path(), false).unwrap();
    let log = LogStore::new(db.clone(), true).unwrap();
    let sm = StateMachineStore::open(db).unwrap();
    (dir, log, sm)
}

/// Installs (and so persists) a snapshot of an empty state claiming to
/// cover the log up to `index`.
async fn install_snapshot_at(sm: &mut StateMachineStore, index: u64) {
    let empty = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(index)),
        last_membership: empty.meta.last_membership.clone(),
    };
    let data = empty.snapshot.into_inner();
    sm.install_snapshot(&meta, Cursor::new(data)).await.unwrap();
}

async fn first_index(log: &mut LogStore) -> Option<u64> {
    let entries = log.try_get_log_entries(0..=u64::MAX).await.unwrap();
    entries.first().map(|e| e.log_id.index)
}

#[tokio::test]
async fn purge_waits_until_the_snapshot_being_installed_is_on_disk() {
    let (_dir, mut log, mut sm) = stores().await;
    log.blocking_append((1..=20).map(blank)).await.unwrap();
    install_snapshot_at(&mut sm, 10).await;

    // openraft asks for the purge while the state machine is still
    // persisting the snapshot that covers it.
    let installing = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        install_snapshot_at(&mut sm, 18).await;
        sm
    });
    log.purge(log_id(15)).await.unwrap();
    installing.await.unwrap();
    // Without the wait the purge would have stopped at 10, the snapshot on
    // disk when it was asked for.
    assert_eq!(
        log.get_log_state().await.unwrap().last_purged_log_id,
        Some(log_id(15))
    );
    assert_eq!(first_index(&mut log).await, Some(16));
}

#[tokio::test]
async fn a_commit_index_beyond_the_snapshot_and_log_reads_back_as_what_can_be_reapplied() {
    let (_dir, mut log, mut sm) = stores().await;
    log.blocking_append((1..=12).map(blank)).await.unwrap();
    install_snapshot_at(&mut sm, 5).await;

    log.save_committed(Some(log_id(30))).await.unwrap();
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(12)));

    log.save_committed(Some(log_id(8))).await.unwrap();
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(8)));

    // Behind the snapshot: as saved (openraft raises it to the snapshot).
    log.save_committed(Some(log_id(3))).await.unwrap();
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(3)));
}
