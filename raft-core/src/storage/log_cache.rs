//! The newest log entries, kept decoded next to RocksDB, so that the
//! state machine's apply and the replication to followers take the entries
//! just appended without reading and decoding them again (3 % of a
//! leader's CPU under single-port write load, profiled before).
//! Entries carry their proposal behind an `Arc`, so a read clones pointers.
//!
//! Invariants, kept by [`super::LogStore`], which changes the log only
//! together with the cache:
//! - the cache holds a run of consecutive entries, each equal to the stored
//!   one;
//! - when the cache is not empty, its last entry is the log's last entry:
//!   `append` caches what it wrote (openraft appends only after the log's
//!   last entry, truncating conflicting entries first), `truncate_after`
//!   drops the cached tail before the stored one, and a failed truncation
//!   empties the cache;
//! - it holds at most [`LOG_CACHE_BYTES_MAX`] stored bytes and
//!   [`LOG_CACHE_ENTRIES_MAX`] entries, dropping the oldest first.
//!
//! A read is served here only when it starts inside the cached run; then,
//! by the second invariant, the cache holds everything the log would return.
//! Any other read goes to RocksDB.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use prometheus_client::metrics::counter::Counter;

use crate::limits::{LOG_CACHE_BYTES_MAX, LOG_CACHE_ENTRIES_MAX};
use crate::types::Entry;

/// The cached run (see the module doc).
#[derive(Default)]
pub(super) struct LogCache {
    run: Mutex<Run>,
    /// Reads served from the run, and reads left to RocksDB.
    hits: Counter,
    misses: Counter,
}

#[derive(Default)]
struct Run {
    entries: VecDeque<Cached>,
    /// Sum of the entries' stored sizes.
    bytes: usize,
}

struct Cached {
    entry: Entry,
    /// The entry's size in RocksDB, which the replication's byte budget
    /// counts.
    stored_bytes: usize,
}

impl Run {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|c| c.entry.log_id.index)
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|c| c.entry.log_id.index)
    }

    fn pop_front(&mut self) {
        if let Some(cached) = self.entries.pop_front() {
            self.bytes -= cached.stored_bytes;
        }
    }

    fn pop_back(&mut self) {
        if let Some(cached) = self.entries.pop_back() {
            self.bytes -= cached.stored_bytes;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

impl LogCache {
    /// An empty cache counting its reads into `hits` and `misses`.
    pub(super) fn new(hits: Counter, misses: Counter) -> LogCache {
        LogCache {
            run: Mutex::default(),
            hits,
            misses,
        }
    }

    /// The run; a panic while it was held empties it (the stored log is the
    /// truth, the cache only saves reading it).
    fn run(&self) -> MutexGuard<'_, Run> {
        match self.run.lock() {
            Ok(run) => run,
            Err(poisoned) => {
                let mut run = poisoned.into_inner();
                run.clear();
                self.run.clear_poison();
                run
            }
        }
    }

    /// Caches entries just written, each with its stored size. An entry that
    /// does not follow the cached run starts a new run.
    pub(super) fn append(&self, entries: Vec<(Entry, usize)>) {
        let mut run = self.run();
        for (entry, stored_bytes) in entries {
            let index = entry.log_id.index;
            if run
                .last_index()
                .is_some_and(|last| last.checked_add(1) != Some(index))
            {
                run.clear();
            }
            run.bytes += stored_bytes;
            run.entries.push_back(Cached {
                entry,
                stored_bytes,
            });
        }
        while run.bytes > LOG_CACHE_BYTES_MAX || run.entries.len() > LOG_CACHE_ENTRIES_MAX {
            run.pop_front();
        }
    }

    /// Drops the cached entries from index `first_removed` on; called
    /// before the stored ones are deleted.
    pub(super) fn truncate_from(&self, first_removed: u64) {
        let mut run = self.run();
        while run.last_index().is_some_and(|last| last >= first_removed) {
            run.pop_back();
        }
    }

    /// Drops the cached entries up to index `last_purged`, inclusive.
    pub(super) fn purge_through(&self, last_purged: u64) {
        let mut run = self.run();
        while run.first_index().is_some_and(|first| first <= last_purged) {
            run.pop_front();
        }
    }

    /// Empties the cache.
    pub(super) fn clear(&self) {
        self.run().clear();
    }

    /// The entries from `start` up to `end` (exclusive; `None`: to the end
    /// of the log), stopping before the entry that would take their stored
    /// size past `bytes_max` (the first is always returned); `None` when
    /// `start` is not in the cached run, so the caller reads RocksDB.
    pub(super) fn read(
        &self,
        start: u64,
        end: Option<u64>,
        bytes_max: usize,
    ) -> Option<Vec<Entry>> {
        let run = self.run();
        let skip = run
            .first_index()
            .zip(run.last_index())
            .filter(|&(first, last)| (first..=last).contains(&start))
            .and_then(|(first, _)| usize::try_from(start - first).ok());
        let Some(skip) = skip else {
            self.misses.inc();
            return None;
        };
        self.hits.inc();
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for cached in run.entries.range(skip..) {
            if end.is_some_and(|end| cached.entry.log_id.index >= end) {
                break;
            }
            bytes = bytes.saturating_add(cached.stored_bytes);
            if bytes > bytes_max && !entries.is_empty() {
                break;
            }
            entries.push(cached.entry.clone());
        }
        Some(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::log_id;
    use openraft::EntryPayload;

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: log_id(1, index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(entries: &Option<Vec<Entry>>) -> Option<Vec<u64>> {
        entries
            .as_ref()
            .map(|e| e.iter().map(|e| e.log_id.index).collect())
    }

    fn cache_of(range: std::ops::RangeInclusive<u64>, stored_bytes: usize) -> LogCache {
        let cache = LogCache::default();
        cache.append(range.map(|i| (entry(i), stored_bytes)).collect());
        cache
    }

    #[test]
    fn reads_that_start_inside_the_run_come_from_it_and_others_do_not() {
        let cache = cache_of(5..=9, 10);
        assert_eq!(
            indexes(&cache.read(5, None, usize::MAX)),
            Some(vec![5, 6, 7, 8, 9])
        );
        assert_eq!(
            indexes(&cache.read(7, Some(9), usize::MAX)),
            Some(vec![7, 8])
        );
        assert_eq!(
            indexes(&cache.read(9, Some(100), usize::MAX)),
            Some(vec![9])
        );
        assert_eq!(indexes(&cache.read(4, None, usize::MAX)), None);
        assert_eq!(indexes(&cache.read(10, None, usize::MAX)), None);
        assert_eq!(
            indexes(&LogCache::default().read(0, None, usize::MAX)),
            None
        );
    }

    #[test]
    fn reads_are_counted_as_hits_or_misses() {
        let (hits, misses) = (Counter::default(), Counter::default());
        let cache = LogCache::new(hits.clone(), misses.clone());
        cache.append(vec![(entry(3), 10), (entry(4), 10)]);
        let _ = cache.read(3, None, usize::MAX);
        let _ = cache.read(4, Some(5), usize::MAX);
        let _ = cache.read(2, None, usize::MAX);
        assert_eq!((hits.get(), misses.get()), (2, 1));
    }

    #[test]
    fn a_read_stops_at_its_byte_budget_but_always_returns_one_entry() {
        let cache = cache_of(1..=4, 10);
        assert_eq!(indexes(&cache.read(1, None, 25)), Some(vec![1, 2]));
        assert_eq!(indexes(&cache.read(1, None, 30)), Some(vec![1, 2, 3]));
        assert_eq!(indexes(&cache.read(2, None, 1)), Some(vec![2]));
    }

    #[test]
    fn truncation_drops_the_tail_and_purge_the_head() {
        let cache = cache_of(1..=9, 10);
        cache.truncate_from(7);
        assert_eq!(
            indexes(&cache.read(1, None, usize::MAX)),
            Some(vec![1, 2, 3, 4, 5, 6])
        );
        assert_eq!(indexes(&cache.read(7, None, usize::MAX)), None);
        cache.purge_through(3);
        assert_eq!(indexes(&cache.read(3, None, usize::MAX)), None);
        assert_eq!(
            indexes(&cache.read(4, None, usize::MAX)),
            Some(vec![4, 5, 6])
        );
        // Appends after the truncation continue the run.
        cache.append(vec![(entry(7), 10)]);
        assert_eq!(indexes(&cache.read(6, None, usize::MAX)), Some(vec![6, 7]));
        cache.truncate_from(0);
        assert_eq!(indexes(&cache.read(4, None, usize::MAX)), None);
    }

    #[test]
    fn an_append_that_does_not_follow_the_run_starts_a_new_one() {
        let cache = cache_of(1..=3, 10);
        cache.append(vec![(entry(8), 10), (entry(9), 10)]);
        assert_eq!(indexes(&cache.read(1, None, usize::MAX)), None);
        assert_eq!(indexes(&cache.read(8, None, usize::MAX)), Some(vec![8, 9]));
        cache.append(vec![(entry(5), 10)]);
        assert_eq!(indexes(&cache.read(8, None, usize::MAX)), None);
        assert_eq!(indexes(&cache.read(5, None, usize::MAX)), Some(vec![5]));
    }

    #[test]
    fn the_oldest_entries_go_first_past_the_bounds() {
        let cache = cache_of(1..=3, LOG_CACHE_BYTES_MAX / 2);
        assert_eq!(indexes(&cache.read(1, None, usize::MAX)), None);
        assert_eq!(indexes(&cache.read(2, None, usize::MAX)), Some(vec![2, 3]));
        let many = LOG_CACHE_ENTRIES_MAX as u64 + 10;
        let cache = cache_of(1..=many, 1);
        assert_eq!(indexes(&cache.read(10, None, usize::MAX)), None);
        let kept = cache.read(11, None, usize::MAX).map(|e| e.len());
        assert_eq!(kept, Some(LOG_CACHE_ENTRIES_MAX));
    }
}
