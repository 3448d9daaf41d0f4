//! A follower that missed tens of MiB of large entries catches up under the
//! default timing (AppendEntries bounded by bytes, not by entry count).

use std::time::Duration;

use alcor_raft_core::limits::APPEND_ENTRIES_BYTES_MAX;
use alcor_raft_core::storage::{open_db, LogStore};
use alcor_raft_core::types::{CommittedLeaderId, Entry, LogId, Request};
use alcor_state_machine::{Command, Proposal};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{EntryPayload, RaftLogReader};
use tempfile::TempDir;

use crate::cluster::{create_host, TestCluster};

/// Bytes of each oversized host id: the state machine rejects such a
/// command cheaply, but the entry still carries (and replicates) them.
const ID_BYTES: usize = 256 * 1024;
/// Commands per large entry: 8 × 256 KiB = 2 MiB per entry.
const COMMANDS_PER_ENTRY: usize = 8;
/// Large entries the follower misses: 40 MiB in all, 32 MiB per request
/// if requests were bounded by 16 entries.
const ENTRIES: usize = 20;
/// Bound on the follower catching up.
const CATCH_UP_MAX: Duration = Duration::from_secs(60);

/// An entry of about 2 MiB whose commands the state machine rejects.
fn large_entry(n: usize) -> Proposal {
    let commands = (0..COMMANDS_PER_ENTRY)
        .map(|k| {
            let mut command = create_host((n * COMMANDS_PER_ENTRY + k) as u64).command;
            if let Command::CreateHost { id, .. } = &mut command {
                *id = format!("{n}-{k}-{}", "x".repeat(ID_BYTES));
            }
            command
        })
        .collect();
    Proposal {
        time_ms: 1_700_000_000_000,
        command: Command::Batch(commands),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_by_many_large_entries_catches_up_with_default_timing() {
    let mut cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_leader().await;
    let lagging = cluster.follower().await;
    cluster.stop(lagging).await;

    for n in 0..ENTRIES {
        cluster
            .node(leader)
            .client_write(large_entry(n))
            .await
            .unwrap();
    }
    let last = cluster
        .node(leader)
        .client_write(create_host(1))
        .await
        .unwrap();
    assert!(last.result.is_ok(), "{last:?}");

    cluster.restart(lagging).await;
    let until = tokio::time::Instant::now() + CATCH_UP_MAX;
    let caught_up = cluster
        .node(lagging)
        .wait_metrics(until, |m| m.applied_index >= Some(last.log_index))
        .await;
    assert!(
        caught_up.is_some(),
        "node {lagging} did not apply index {} within {CATCH_UP_MAX:?}: {:?}",
        last.log_index,
        cluster.node(lagging).metrics()
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_snapshots_once_its_log_grew_by_the_byte_threshold_whatever_the_entry_count() {
    let cluster = TestCluster::start(1, |config| {
        config.snapshot_logs_since_last = 1_000_000;
        config.snapshot_log_bytes_since_last = 4 * 1024 * 1024;
    })
    .await;
    cluster.wait_leader().await;
    assert_eq!(cluster.node(1).metrics().snapshot_index, None);
    // Three entries of ~2 MiB: past the 4 MiB threshold, far below the
    // entry count.
    for n in 0..3 {
        cluster.node(1).client_write(large_entry(n)).await.unwrap();
    }
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    let snapshotted = cluster
        .node(1)
        .wait_metrics(until, |m| m.snapshot_index.is_some())
        .await;
    assert!(
        snapshotted.is_some(),
        "no snapshot after 6 MiB of log: {:?}",
        cluster.node(1).metrics()
    );
    cluster.shutdown().await;
}

fn entry(index: u64, proposal: Proposal) -> Entry {
    Entry {
        log_id: LogId::new(
            CommittedLeaderId {
                term: 1,
                node_id: 1,
            },
            index,
        ),
        payload: EntryPayload::Normal(Request::Apply(std::sync::Arc::new(proposal))),
    }
}

#[tokio::test]
async fn what_replication_reads_for_one_append_entries_is_bounded_by_bytes_not_entry_count() {
    let dir = TempDir::new().unwrap();
    let (db, _closed) = open_db(dir.path(), false).unwrap();
    let mut log = LogStore::new(db, true).unwrap();
    // Entries 1-10 of ~2 MiB, then 11-1010 of a few dozen bytes.
    let large = (0..10).map(|n| entry(n as u64 + 1, large_entry(n)));
    let small = (11..=1010).map(|n| entry(n, create_host(n)));
    log.blocking_append(large.chain(small)).await.unwrap();
    let mut reader = log.get_log_reader().await;

    // An entry larger than the budget still goes, alone.
    let first = reader.limited_get_log_entries(1, 11).await.unwrap();
    assert_eq!(first.len(), 1, "one large entry per request");
    assert_eq!(first[0].log_id.index, 1);

    // Small entries: as many as fit the budget, not more.
    let smalls = reader.limited_get_log_entries(11, 1011).await.unwrap();
    assert_eq!(smalls.len(), 1000, "a thousand small entries fit in 1 MiB");
    let mixed = reader.limited_get_log_entries(1005, 1011).await.unwrap();
    assert_eq!(mixed.len(), 6);
    let over = reader.limited_get_log_entries(10, 1011).await.unwrap();
    assert_eq!(
        over.len(),
        1,
        "a large entry first leaves no room for more within {APPEND_ENTRIES_BYTES_MAX} bytes"
    );
}
