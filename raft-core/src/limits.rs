//! Every bound raft-core enforces, in one place.

/// Largest gRPC message a Raft peer sends or accepts. An AppendEntries batch
/// (at most `max_payload_entries` entries) or a snapshot chunk must fit.
pub const GRPC_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Entries per AppendEntries (openraft's `max_payload_entries`). The real
/// bound is `APPEND_ENTRIES_BYTES_MAX`; this one only keeps a request of
/// tiny entries from becoming a long list.
pub const APPEND_ENTRIES_PER_RPC_MAX: u64 = 1024;

/// Stored bytes of the newest log entries kept decoded in memory
/// (`storage::log_cache`), so apply and replication need not read back what
/// was just appended (the decoded entries take more memory than their stored
/// bytes). On a healthy member apply and replication trail the last append by
/// far less; `alcor_disk_log_cache_misses_total` counts the reads it could
/// not serve.
pub const LOG_CACHE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Entries kept in that cache, whatever their size (a single-port write is
/// one small entry).
pub const LOG_CACHE_ENTRIES_MAX: usize = 4096;

/// Stored bytes of log entries per AppendEntries (at least one entry is
/// always sent, whatever its size). openraft bounds every AppendEntries by
/// the heartbeat interval (100 ms by default; `APPEND_ENTRIES_BYTES_PER_MS_MIN`
/// adds time for size) and resends the same range after a timeout, so a
/// request must fit that window on a loaded member: 1 MiB is ~10 ms on a
/// 1 Gbit/s link plus decode and fsync on the follower. Counting entries was not enough: 16 entries of coalesced
/// 1,000-port batches (~100 KiB to MiBs each) missed the window and a
/// lagging follower was sent the same range forever (seen while building
/// 1M ports).
pub const APPEND_ENTRIES_BYTES_MAX: usize = 1024 * 1024;

/// The slowest rate a peer is assumed to take in Raft message bytes; an
/// AppendEntries (or snapshot chunk) gets openraft's timeout plus its size
/// at this rate, so a full AppendEntries gets 125 ms more than a heartbeat.
pub const APPEND_ENTRIES_BYTES_PER_MS_MIN: usize = 8 * 1024;

/// Streams a Raft peer may reset before the server accepted them, per
/// connection. h2's default (20) answers more with a `too_many_resets`
/// GOAWAY (`ENHANCE_YOUR_CALM`), which fails every RPC on the connection
/// at once; openraft cancels every AppendEntries that outlives the
/// heartbeat interval, so a slow or delayed link makes many such resets
/// (seen in a 30-minute Jepsen run: 20-77 GOAWAYs per member). Each pending
/// stream costs a few hundred bytes.
pub const RAFT_PENDING_RESET_STREAMS_MAX: usize = 4096;

/// How long a Raft connection may go without an answered HTTP/2 ping before
/// it is dropped and the next RPC dials a new one; pings go out this often,
/// idle or not, on both the client and the server side. Without it a
/// connection whose packets a partition dropped stays in TCP's
/// retransmission backoff after the partition heals (the next retry can be
/// 12 s away), and every RPC multiplexed on it times out meanwhile: two
/// members of a healthy majority could not elect a leader for over 10 s in
/// a Jepsen `random-halves` run because their own link had been cut by
/// the previous fault.
pub const PEER_PING_UNANSWERED_MS_MAX: u64 = 1000;

/// Concurrent streams per Raft connection (a peer has one connection per
/// traffic class; replication is one `StreamAppend` stream per session).
pub const RAFT_STREAMS_PER_CONNECTION_MAX: u32 = 256;

/// Default stored bytes of log appended since the last snapshot after which
/// a node builds a new one (`RaftNodeConfig::snapshot_log_bytes_since_last`),
/// whatever the entry count: a restart replays at most about this much log
/// on top of its snapshot. Counting entries alone let 1,000,000 ports in
/// 1,000-port entries (1,000 entries) stay unsnapshotted, and a restart
/// re-applied them all (20 s).
pub const SNAPSHOT_LOG_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// How often a node compares its log growth with the snapshot threshold.
pub const SNAPSHOT_SIZE_CHECK_MS: u64 = 500;

/// Snapshot chunk size for InstallSnapshot; well below the message limit so
/// the envelope and encoding overhead always fit.
pub const SNAPSHOT_CHUNK_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Largest snapshot a member reassembles from `InstallSnapshot` pieces.
/// The pieces are gathered in memory before openraft installs the whole
/// snapshot, so without a bound a sender could grow the buffer until the
/// member runs out of memory. A snapshot is the bincode encoding of the
/// state: a port with one fixed IP, one security group, a host binding and
/// a project id encodes to a few hundred bytes, and a member holding
/// 1,000,000 ports measured 1,174-1,189 B of RSS per port, indexes and
/// allocator overhead included (benches/README.md, `restart1m`). So a
/// 1,000,000-port snapshot is at most ~1.2 GB and likely ~300 MB; 2 GiB
/// leaves room above the largest state the controller is built for.
pub const SNAPSHOT_BYTES_MAX: u64 = 2 * 1024 * 1024 * 1024;

/// Largest backup file (`alcor ctl snapshot save`) read or written: the
/// largest state snapshot plus the backup header.
pub const BACKUP_FILE_BYTES_MAX: u64 =
    SNAPSHOT_BYTES_MAX + crate::backup::BACKUP_HEADER_BYTES as u64;

/// Appends waiting for the WAL flusher. When full, `append` waits: that is
/// the backpressure from a slow disk to openraft.
pub const APPEND_QUEUE_MAX: usize = 1024;

/// Appends acknowledged by a single WAL fsync (group commit).
pub const FLUSH_BATCH_MAX: usize = 256;

/// Applied-entry events buffered for subscribers; a subscriber that falls
/// further behind gets `RecvError::Lagged` and must resync.
pub const APPLIED_EVENTS_MAX: usize = 4096;

/// Attempts `client_write` makes when leadership moves under it: after
/// this many refusals by a member that is no longer the leader, the write
/// fails `NoLeader`. (A leader refusing because its quorum lease lapsed is
/// asked again instead, for up to [`WRITE_LEASE_WAIT_MAX`].)
pub const WRITE_ATTEMPTS_MAX: u32 = 3;

/// How long a write keeps asking a leader that refuses it for a lapsed
/// quorum lease before it fails `NoLeader` (retry-safe). A new leader has
/// its lease after its first heartbeat round (50 ms by default), a loaded
/// one after its next; a leader cut off from its quorum never gets it back,
/// and its callers should hear so well before a client's usual deadline.
pub const WRITE_LEASE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// Linearizable reads waiting for the next shared ReadIndex round on one
/// node (see `read_rounds`); one more is refused as overloaded instead of
/// queueing without bound.
pub const READS_WAITING_MAX: usize = 65_536;

const _: () = assert!(SNAPSHOT_CHUNK_BYTES_MAX * 2 <= GRPC_MESSAGE_BYTES_MAX as u64);
const _: () = assert!(SNAPSHOT_CHUNK_BYTES_MAX <= SNAPSHOT_BYTES_MAX);
const _: () = assert!(FLUSH_BATCH_MAX <= APPEND_QUEUE_MAX);
const _: () = assert!(APPEND_ENTRIES_BYTES_MAX * 4 <= GRPC_MESSAGE_BYTES_MAX);

/// How long `apply` holds the state's write lock at a stretch: once an
/// entry ends past it, the rest of the batch waits for the next hold.
/// Readers (API handlers, the push layer, health) block runtime workers
/// while it is held; holds of 1.5 s (a batch of 1,000-port entries on a
/// loaded member) stalled every member's Raft core long enough to lose the
/// leader (benches/README, "elections under batch load").
pub const APPLY_LOCK_HOLD_MAX: std::time::Duration = std::time::Duration::from_millis(10);

/// How long `apply` polls before it waits for the write lock outright.
/// Encoding a 1,000,000-port state takes well under this.
pub const APPLY_LOCK_POLL_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// Bytes of a snapshot file written between two `fdatasync`s: bounds how
/// much one WAL fsync can be made to wait for (see
/// `storage::state_machine::write_synced`).
pub const SNAPSHOT_SYNC_BYTES_MAX: usize = 8 * 1024 * 1024;
