//! This member's Raft and storage metrics (prometheus-client), named and
//! bucketed after etcd's where etcd has one (`etcd_server_*`,
//! `etcd_disk_wal_fsync_duration_seconds`, ...), with `alcor_` in place
//! of `etcd_` once the node registers them under that prefix.
//!
//! Histograms and counters are updated where things happen (the WAL
//! flusher, `apply`, snapshot build/install/send, `client_write`, the
//! leader tracker); gauges that describe the member (term, leader, indexes,
//! RocksDB sizes) are read at scrape time by [`RaftCollector`], so nothing
//! has to be kept in step with them. Every family here has no labels.
//!
//! Names after the registry's prefix (`alcor_`):
//! - `server_has_leader`, `server_is_leader`, `server_is_learner`,
//!   `server_leader_id`, `server_term`, `server_leader_changes_seen_total`;
//! - `server_proposals_committed_total` (the commit index, as in etcd),
//!   `server_proposals_applied_total` (the applied index),
//!   `server_proposals_pending`, `server_proposals_failed_total`,
//!   `server_write_lease_refusals_total` (no etcd twin: a leader's refusal
//!   of a write for a lapsed quorum lease, which the write waits out);
//! - `server_apply_duration_seconds`;
//! - `disk_wal_fsync_duration_seconds` (one per group commit of appends);
//! - `disk_log_cache_hits_total`, `disk_log_cache_misses_total` (log reads
//!   served from the decoded newest entries, and those that read RocksDB);
//! - `snapshot_build_duration_seconds`, `snapshot_restore_duration_seconds`,
//!   `snapshot_size_in_bytes`, and `snapshot_freeze_duration_seconds` (no
//!   etcd twin: how long a build holds applies off, `State::freeze`);
//! - `network_snapshot_send_total_duration_seconds`,
//!   `network_snapshot_send_success_total`,
//!   `network_snapshot_send_failures_total`,
//!   `network_snapshot_send_bytes_total`;
//! - `disk_log_size_in_bytes`, `disk_db_total_size_in_bytes`,
//!   `disk_db_live_data_size_in_bytes` (RocksDB properties).

use std::sync::Weak;

use openraft::async_runtime::watch::WatchReceiver;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::storage::Db;
use crate::types::{LogId, Raft, ServerState};

/// etcd's `wal_fsync_duration_seconds` buckets: 1 ms doubling to 8 s.
fn wal_fsync_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 14)
}

/// etcd's `apply_duration_seconds` buckets: 100 µs doubling to ~52 s.
fn apply_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.000_1, 2.0, 20)
}

/// etcd's `snap_save_total_duration_seconds` buckets: 1 ms doubling to 8 s
/// (snapshot build and restore).
fn snapshot_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 14)
}

/// etcd's `network_snapshot_send_total_duration_seconds` buckets: 100 ms
/// doubling to ~819 s.
fn snapshot_send_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.1, 2.0, 14)
}

/// The counters and histograms of one member, updated where things happen.
/// Cloning shares them (every handle is reference-counted).
#[derive(Debug, Clone)]
pub struct RaftMetrics {
    pub(crate) wal_fsync: Histogram,
    /// Log reads served by the log cache, and those that went to RocksDB.
    pub(crate) log_cache_hits: Counter,
    pub(crate) log_cache_misses: Counter,
    pub(crate) apply: Histogram,
    /// One hold of the state's write lock by `apply` (one or more entries).
    pub(crate) apply_lock_hold: Histogram,
    pub(crate) snapshot_build: Histogram,
    /// The part of a build that holds the state's lock (`State::freeze`).
    pub(crate) snapshot_freeze: Histogram,
    pub(crate) snapshot_restore: Histogram,
    /// Bytes of the latest snapshot this member built, installed or loaded.
    pub(crate) snapshot_bytes: Gauge,
    pub(crate) snapshot_send: Histogram,
    pub(crate) snapshot_send_success: Counter,
    pub(crate) snapshot_send_failures: Counter,
    pub(crate) snapshot_send_bytes: Counter,
    pub(crate) proposals_pending: Gauge,
    pub(crate) proposals_failed: Counter,
    /// Refusals of a write by a leader whose quorum lease had lapsed.
    pub(crate) write_lease_refusals: Counter,
    pub(crate) leader_changes: Counter,
}

impl Default for RaftMetrics {
    fn default() -> RaftMetrics {
        RaftMetrics {
            wal_fsync: Histogram::new(wal_fsync_buckets()),
            log_cache_hits: Counter::default(),
            log_cache_misses: Counter::default(),
            apply: Histogram::new(apply_buckets()),
            apply_lock_hold: Histogram::new(apply_buckets()),
            snapshot_build: Histogram::new(snapshot_buckets()),
            snapshot_freeze: Histogram::new(apply_buckets()),
            snapshot_restore: Histogram::new(snapshot_buckets()),
            snapshot_bytes: Gauge::default(),
            snapshot_send: Histogram::new(snapshot_send_buckets()),
            snapshot_send_success: Counter::default(),
            snapshot_send_failures: Counter::default(),
            snapshot_send_bytes: Counter::default(),
            proposals_pending: Gauge::default(),
            proposals_failed: Counter::default(),
            write_lease_refusals: Counter::default(),
            leader_changes: Counter::default(),
        }
    }
}

/// Counts one proposal as pending until dropped.
pub(crate) struct Pending(Gauge);

impl Pending {
    pub(crate) fn start(metrics: &RaftMetrics) -> Pending {
        metrics.proposals_pending.inc();
        Pending(metrics.proposals_pending.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl RaftMetrics {
    /// Registers the counters and histograms in `registry` (its prefix
    /// comes first: `alcor` gives `alcor_server_...`).
    fn register(&self, registry: &mut Registry) {
        let server = registry.sub_registry_with_prefix("server");
        server.register(
            "leader_changes_seen",
            "The number of leader changes seen by this member",
            self.leader_changes.clone(),
        );
        server.register(
            "proposals_pending",
            "Client writes proposed through this member and not answered yet",
            self.proposals_pending.clone(),
        );
        server.register(
            "proposals_failed",
            "Client writes through this member that ended without a commit answer \
             (no leader, timeout, leader unreachable, Raft stopped)",
            self.proposals_failed.clone(),
        );
        server.register(
            "write_lease_refusals",
            "Times a leader refused a client write through this member because its quorum \
             lease had lapsed; the write asks again shortly, and fails NO_LEADER once \
             refused for WRITE_LEASE_WAIT_MAX",
            self.write_lease_refusals.clone(),
        );
        server.register(
            "apply_duration_seconds",
            "Time to apply one committed entry to the state machine",
            self.apply.clone(),
        );
        server.register(
            "apply_lock_hold_duration_seconds",
            "Time apply holds the state's write lock at a stretch (readers of the state \
             wait that long)",
            self.apply_lock_hold.clone(),
        );
        let disk = registry.sub_registry_with_prefix("disk");
        disk.register(
            "wal_fsync_duration_seconds",
            "Time of one WAL fsync of the Raft log (one group commit of appends)",
            self.wal_fsync.clone(),
        );
        disk.register(
            "log_cache_hits",
            "Raft log reads (apply, replication) served from the decoded newest entries",
            self.log_cache_hits.clone(),
        );
        disk.register(
            "log_cache_misses",
            "Raft log reads that read and decoded entries from RocksDB",
            self.log_cache_misses.clone(),
        );
        let snapshot = registry.sub_registry_with_prefix("snapshot");
        snapshot.register(
            "build_duration_seconds",
            "Time to build a snapshot of the state and persist it (synced)",
            self.snapshot_build.clone(),
        );
        snapshot.register(
            "freeze_duration_seconds",
            "Time a snapshot build holds the state's lock, and so applies, off (the rest \
             of the build encodes a frozen copy)",
            self.snapshot_freeze.clone(),
        );
        snapshot.register(
            "restore_duration_seconds",
            "Time to restore the state from a snapshot (at start or when installing one \
             from the leader) and persist it",
            self.snapshot_restore.clone(),
        );
        snapshot.register(
            "size_in_bytes",
            "Bytes of the latest snapshot this member built, installed or loaded",
            self.snapshot_bytes.clone(),
        );
        let network = registry.sub_registry_with_prefix("network");
        network.register(
            "snapshot_send_total_duration_seconds",
            "Time to send a whole snapshot to a follower",
            self.snapshot_send.clone(),
        );
        network.register(
            "snapshot_send_success",
            "Snapshots sent to a follower and installed there",
            self.snapshot_send_success.clone(),
        );
        network.register(
            "snapshot_send_failures",
            "Snapshot sends that failed (timeout, unreachable, refused, cancelled)",
            self.snapshot_send_failures.clone(),
        );
        network.register(
            "snapshot_send_bytes",
            "Bytes of the snapshots sent to followers in full",
            self.snapshot_send_bytes.clone(),
        );
    }
}

/// Registers `metrics` and a scrape-time collector over `raft` and `db`.
pub(crate) fn register(registry: &mut Registry, metrics: &RaftMetrics, collector: RaftCollector) {
    metrics.register(registry);
    registry.register_collector(Box::new(collector));
}

/// Counts leader changes as etcd does: every time the leader this member
/// knows of becomes some member other than the one it knew before (the
/// first leader after a start counts). Ends when Raft stops.
pub(crate) async fn track_leader(raft: Raft, changes: Counter) {
    let mut published = raft.metrics();
    let mut last = None;
    loop {
        let leader = published.borrow_watched().current_leader;
        if leader.is_some() && leader != last {
            changes.inc();
        }
        last = leader;
        if published.changed().await.is_err() {
            return;
        }
    }
}

/// Scrape-time gauges: Raft's view of this member and RocksDB's sizes.
pub(crate) struct RaftCollector {
    pub(crate) raft: Raft,
    /// Weak: a registry outliving the node must not keep RocksDB open.
    pub(crate) db: Weak<Db>,
    pub(crate) committed: watch::Receiver<Option<LogId>>,
}

impl std::fmt::Debug for RaftCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftCollector").finish_non_exhaustive()
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let value = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    let metric = encoder.encode_descriptor(name, help, None, value.metric_type())?;
    value.encode(metric)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let value = ConstCounter::new(value);
    let metric = encoder.encode_descriptor(name, help, None, value.metric_type())?;
    value.encode(metric)
}

impl RaftCollector {
    /// The sum of RocksDB integer property `name` over `families`
    /// (unreadable properties count 0: a scrape never fails on them).
    fn property(&self, families: &[&str], name: &str) -> u64 {
        let Some(db) = self.db.upgrade() else {
            return 0;
        };
        families
            .iter()
            .filter_map(|family| {
                let cf = db.cf_handle(family)?;
                db.property_int_value_cf(cf, name).ok().flatten()
            })
            .sum()
    }
}

impl Collector for RaftCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let (id, state, leader, term, applied, learner) = {
            let published = self.raft.metrics();
            let m = published.borrow_watched();
            let membership = m.membership_config.membership();
            let voter = membership.voter_ids().any(|v| v == m.id);
            let learner = !voter && membership.learner_ids().any(|l| l == m.id);
            (
                m.id,
                m.state,
                m.current_leader,
                m.current_term,
                m.last_applied.map_or(0, |id| id.index),
                learner,
            )
        };
        let committed = self.committed.borrow().map_or(0, |id| id.index);
        let e = &mut encoder;
        gauge(
            e,
            "server_has_leader",
            "Whether this member knows a leader (1) or not (0)",
            u64::from(leader.is_some()),
        )?;
        gauge(
            e,
            "server_is_leader",
            "Whether this member is the leader (1) or not (0)",
            u64::from(leader == Some(id) && state == ServerState::Leader),
        )?;
        gauge(
            e,
            "server_is_learner",
            "Whether this member is a learner (non-voting) (1) or not (0)",
            u64::from(learner),
        )?;
        gauge(
            e,
            "server_leader_id",
            "The id of the leader this member knows of (0: none)",
            leader.unwrap_or(0),
        )?;
        gauge(e, "server_term", "The current Raft term", term)?;
        counter(
            e,
            "server_proposals_committed",
            "The commit index: log entries known committed (etcd: proposals committed)",
            committed,
        )?;
        counter(
            e,
            "server_proposals_applied",
            "The applied index: log entries applied to the state machine",
            applied,
        )?;
        const ALL: [&str; 3] = [
            crate::storage::CF_LOGS,
            crate::storage::CF_META,
            crate::storage::CF_SM,
        ];
        let logs = [crate::storage::CF_LOGS];
        gauge(
            e,
            "disk_log_size_in_bytes",
            "Bytes of the Raft log: its table files plus its memtables (RocksDB)",
            self.property(&logs, "rocksdb.total-sst-files-size")
                + self.property(&logs, "rocksdb.cur-size-all-mem-tables"),
        )?;
        gauge(
            e,
            "disk_db_total_size_in_bytes",
            "Bytes of the database's table files on disk, every column family \
             (rocksdb.total-sst-files-size)",
            self.property(&ALL, "rocksdb.total-sst-files-size"),
        )?;
        gauge(
            e,
            "disk_db_live_data_size_in_bytes",
            "Estimated bytes of live data in the database (rocksdb.estimate-live-data-size)",
            self.property(&ALL, "rocksdb.estimate-live-data-size"),
        )?;
        Ok(())
    }
}
