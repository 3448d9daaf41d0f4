//! Every bound raft-core enforces, in one place.

/// Largest gRPC message a Raft peer sends or accepts. An AppendEntries batch
/// (at most `max_payload_entries` entries) or a snapshot chunk must fit.
pub const GRPC_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Entries per AppendEntries (openraft's `max_payload_entries`). The byte
/// budget below is what really bounds an RPC; this only caps the count of
/// small entries (a serial write is a few hundred bytes), as openraft's own
/// benchmark does.
pub const APPEND_ENTRIES_PER_RPC_MAX: u64 = 1024;

/// Encoded entry bytes per AppendEntries (the log reader stops there, after
/// at least one entry). openraft 0.9 bounded an AppendEntries only by count
/// and timed it out after one heartbeat interval, so a catch-up batch of
/// 1,000-port entries (~100 KiB each) never finished and a lagging follower
/// retried forever (seen while building 1M ports).
pub const APPEND_ENTRIES_BYTES_MAX: usize = 1024 * 1024;

/// The slowest rate a peer is assumed to take in AppendEntries bytes; an
/// AppendEntries gets openraft's timeout plus its size at this rate, so a
/// full one gets 125 ms more than a heartbeat.
pub const APPEND_ENTRIES_BYTES_PER_MS_MIN: usize = 8 * 1024;

/// Snapshot chunk size for InstallSnapshot; well below the message limit so
/// the envelope and encoding overhead always fit.
pub const SNAPSHOT_CHUNK_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Appends waiting for the WAL flusher. When full, `append` waits: that is
/// the backpressure from a slow disk to openraft.
pub const APPEND_QUEUE_MAX: usize = 1024;

/// Appends acknowledged by a single WAL fsync (group commit).
pub const FLUSH_BATCH_MAX: usize = 256;

/// Applied-entry events buffered for subscribers; a subscriber that falls
/// further behind gets `RecvError::Lagged` and must resync.
pub const APPLIED_EVENTS_MAX: usize = 4096;

/// Attempts `client_write` makes when leadership moves under it.
pub const WRITE_ATTEMPTS_MAX: u32 = 3;

/// Linearizable reads waiting for the next shared ReadIndex round on one
/// node (see `read_rounds`); one more is refused as overloaded instead of
/// queueing without bound.
pub const READS_WAITING_MAX: usize = 65_536;

const _: () = assert!(SNAPSHOT_CHUNK_BYTES_MAX * 2 <= GRPC_MESSAGE_BYTES_MAX as u64);
const _: () = assert!(FLUSH_BATCH_MAX <= APPEND_QUEUE_MAX);
const _: () = assert!(APPEND_ENTRIES_BYTES_MAX * 4 <= GRPC_MESSAGE_BYTES_MAX);
