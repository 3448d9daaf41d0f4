//! The push layer's Prometheus metrics (prometheus-client). Counters and
//! the latency histogram are updated where things happen; gauges that
//! describe the sessions (queue depths, lag, window size) are computed at
//! scrape time by [`SessionsCollector`] from the live session table, so
//! nothing has to be kept in sync with them.
//!
//! Names (after the `alcor_push_` prefix the registry adds):
//! `connected_agents`, `queued_messages`, `queued_messages_max`,
//! `agent_lag_revisions_max`, `window_events`, `window_bytes`,
//! `full_syncs_waiting`, `resyncs_total{cause}`, `full_syncs_total`,
//! `full_sync_parts_total`, `diff_batches_total`, `events_coalesced_total`, `changes_collapsed_total`,
//! `digest_reports_total`, `digest_checks_total`, `digest_mismatches_total`,
//! `agents_refused_total`, `status_*_total` and
//! `push_latency_seconds` (commit on this node to the agent's ack).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::mpsc;

use crate::status::StatusFeed;
use crate::window::Retainer;

/// Why an agent got a FullSync instead of diffs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum ResyncCause {
    /// The agent said it has no state (fresh, or it lost trust in its table).
    NoState,
    /// The agent's Hello revision was older than the node's window.
    BehindWindow,
    /// The session's cursor left the window: the agent (or its queue) was
    /// too slow, or the window restarted (snapshot install, feeder lag).
    Overflow,
    /// The agent's digest differed from the node's for the same revision.
    DigestMismatch,
}

/// The label set of `resyncs_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct CauseLabel {
    cause: ResyncCause,
}

/// Where the latency histogram's buckets start (seconds) and how many.
const LATENCY_BUCKET_START_S: f64 = 0.000_5;
const LATENCY_BUCKETS: u16 = 16;

/// Every counter and histogram of one node's push service.
#[derive(Debug)]
pub(crate) struct PushMetrics {
    pub(crate) connected: Gauge,
    pub(crate) full_syncs_waiting: Gauge,
    resyncs: Family<CauseLabel, Counter>,
    pub(crate) full_syncs: Counter,
    pub(crate) full_sync_parts: Counter,
    pub(crate) diff_batches: Counter,
    pub(crate) events_coalesced: Counter,
    pub(crate) changes_collapsed: Counter,
    pub(crate) digest_reports: Counter,
    pub(crate) digest_checks: Counter,
    pub(crate) digest_mismatches: Counter,
    pub(crate) agents_refused: Counter,
    pub(crate) latency: Histogram,
}

impl Default for PushMetrics {
    fn default() -> PushMetrics {
        PushMetrics {
            connected: Gauge::default(),
            full_syncs_waiting: Gauge::default(),
            resyncs: Family::default(),
            full_syncs: Counter::default(),
            full_sync_parts: Counter::default(),
            diff_batches: Counter::default(),
            events_coalesced: Counter::default(),
            changes_collapsed: Counter::default(),
            digest_reports: Counter::default(),
            digest_checks: Counter::default(),
            digest_mismatches: Counter::default(),
            agents_refused: Counter::default(),
            latency: Histogram::new(exponential_buckets(
                LATENCY_BUCKET_START_S,
                2.0,
                LATENCY_BUCKETS,
            )),
        }
    }
}

impl PushMetrics {
    pub(crate) fn resync(&self, cause: ResyncCause) {
        self.resyncs.get_or_create(&CauseLabel { cause }).inc();
    }

    /// How many resyncs `cause` triggered so far.
    pub(crate) fn resyncs_of(&self, cause: ResyncCause) -> u64 {
        self.resyncs.get_or_create(&CauseLabel { cause }).get()
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "connected_agents",
            "Agent streams open on this node",
            self.connected.clone(),
        );
        registry.register(
            "full_syncs_waiting",
            "Sessions waiting for a full-sync slot (reconnect-storm pacing)",
            self.full_syncs_waiting.clone(),
        );
        for cause in [
            ResyncCause::NoState,
            ResyncCause::BehindWindow,
            ResyncCause::Overflow,
            ResyncCause::DigestMismatch,
        ] {
            // Every cause shows up with 0 before it first happens.
            drop(self.resyncs.get_or_create(&CauseLabel { cause }));
        }
        registry.register(
            "resyncs",
            "FullSyncs sent instead of diffs, by cause",
            self.resyncs.clone(),
        );
        registry.register(
            "full_syncs",
            "FullSyncs sent (each in one part or more)",
            self.full_syncs.clone(),
        );
        registry.register(
            "full_sync_parts",
            "FullSync parts sent (messages; a large goal state takes several)",
            self.full_sync_parts.clone(),
        );
        registry.register(
            "diff_batches",
            "DiffBatch messages sent (empty ones included)",
            self.diff_batches.clone(),
        );
        registry.register(
            "events_coalesced",
            "Applied events for a host merged into a DiffBatch with an earlier one",
            self.events_coalesced.clone(),
        );
        registry.register(
            "changes_collapsed",
            "Changes dropped from a DiffBatch because a later change to the same object followed",
            self.changes_collapsed.clone(),
        );
        registry.register(
            "digest_reports",
            "Digest reports received from agents",
            self.digest_reports.clone(),
        );
        registry.register(
            "digest_checks",
            "Agent digests compared with this node's",
            self.digest_checks.clone(),
        );
        registry.register(
            "digest_mismatches",
            "Agent digests that differed from this node's (each triggers a resync)",
            self.digest_mismatches.clone(),
        );
        registry.register(
            "agents_refused",
            "Agent streams refused because the node serves AGENTS_MAX already",
            self.agents_refused.clone(),
        );
        registry.register_with_unit(
            "push_latency",
            "From applying a change on this node to the owning agent's ack of it",
            Unit::Seconds,
            self.latency.clone(),
        );
    }
}

/// What the metrics can see of one session.
#[derive(Debug)]
pub(crate) struct Probe {
    /// The session's outbound queue (weak: the table never keeps it open).
    pub(crate) queue: mpsc::WeakSender<crate::server::Outbound>,
    /// The revision the session last sent.
    pub(crate) sent: Arc<AtomicU64>,
}

/// The live sessions of a node, by session number.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    table: Mutex<BTreeMap<u64, Probe>>,
    next: AtomicU64,
}

impl Sessions {
    fn table(&self) -> MutexGuard<'_, BTreeMap<u64, Probe>> {
        // Plain inserts and removals: ignore poisoning.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a session; it is removed when the returned guard drops.
    pub(crate) fn add(self: &Arc<Self>, probe: Probe) -> SessionGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.table().insert(id, probe);
        SessionGuard {
            sessions: Arc::clone(self),
            id,
        }
    }

    /// `(queued messages in all queues, largest queue, largest lag behind
    /// `last` in revisions)`.
    fn depths(&self, last: u64) -> (u64, u64, u64) {
        let (mut total, mut largest, mut lag) = (0u64, 0u64, 0u64);
        for probe in self.table().values() {
            if let Some(queue) = probe.queue.upgrade() {
                let queued = (queue.max_capacity() - queue.capacity()) as u64;
                total += queued;
                largest = largest.max(queued);
            }
            lag = lag.max(last.saturating_sub(probe.sent.load(Ordering::Relaxed)));
        }
        (total, largest, lag)
    }
}

/// Removes a session from [`Sessions`] when dropped.
#[derive(Debug)]
pub(crate) struct SessionGuard {
    sessions: Arc<Sessions>,
    id: u64,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions.table().remove(&self.id);
    }
}

/// Scrape-time gauges: queues, lag, window, and the status proposer's
/// counters.
#[derive(Debug)]
struct SessionsCollector {
    sessions: Arc<Sessions>,
    retainer: Arc<Retainer>,
    status: Arc<StatusFeed>,
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

impl Collector for SessionsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let (last, events, bytes) = {
            let window = self.retainer.lock();
            (window.range().1, window.len(), window.bytes())
        };
        let (queued, largest, lag) = self.sessions.depths(last);
        let e = &mut encoder;
        gauge(
            e,
            "queued_messages",
            "Messages waiting in agent queues",
            queued,
        )?;
        gauge(
            e,
            "queued_messages_max",
            "Messages in the fullest agent queue",
            largest,
        )?;
        gauge(
            e,
            "agent_lag_revisions_max",
            "Largest gap between the window's end and a session's last sent revision",
            lag,
        )?;
        gauge(
            e,
            "window_events",
            "Events with changes in the retained window",
            events as u64,
        )?;
        gauge(
            e,
            "window_bytes",
            "Estimated bytes of the retained window",
            bytes as u64,
        )?;
        let s = self.status.counters();
        counter(
            e,
            "status_acks",
            "Acks handed to the port-status proposer",
            s.acks,
        )?;
        counter(
            e,
            "status_acks_dropped",
            "Acks dropped: status queue full",
            s.acks_dropped,
        )?;
        counter(
            e,
            "status_proposals",
            "Port-status writes proposed",
            s.proposals,
        )?;
        counter(
            e,
            "status_commands",
            "SetPortStatus commands proposed",
            s.commands,
        )?;
        counter(
            e,
            "status_failures",
            "Port-status rounds that failed",
            s.failures,
        )?;
        Ok(())
    }
}

/// Registers `metrics` and a collector over the sessions, the window and
/// the status proposer in `registry`.
pub(crate) fn register(
    registry: &mut Registry,
    metrics: &PushMetrics,
    sessions: Arc<Sessions>,
    retainer: Arc<Retainer>,
    status: Arc<StatusFeed>,
) {
    metrics.register(registry);
    registry.register_collector(Box::new(SessionsCollector {
        sessions,
        retainer,
        status,
    }));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn resync_causes_are_labelled_and_counted() {
        let metrics = PushMetrics::default();
        metrics.resync(ResyncCause::Overflow);
        metrics.resync(ResyncCause::Overflow);
        let mut registry = Registry::with_prefix("alcor_push");
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("alcor_push_resyncs_total{cause=\"Overflow\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("alcor_push_resyncs_total{cause=\"DigestMismatch\"} 0"),
            "{text}"
        );
        assert_eq!(metrics.resyncs_of(ResyncCause::Overflow), 2);
    }
}
