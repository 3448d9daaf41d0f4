//! Every bound host-push enforces, in one place. Defaults of
//! [`crate::PushConfig`] and [`crate::SimAgentConfig`] come from here.

/// Concurrent agent streams one node serves. One agent per host, and a node
/// may have to serve every host of the cluster after its peers fail.
pub const AGENTS_MAX: usize = 20_000;

/// Messages queued between one agent's session task and its gRPC stream.
/// Small on purpose: when the agent is slow the session waits for room
/// and, meanwhile, new changes accumulate in the retained window, so the
/// next message coalesces them (or becomes a FullSync if the window moved
/// past the agent). Other agents never wait for this one.
pub const AGENT_QUEUE_MAX: usize = 4;

/// Largest encoded part of a FullSync (a goal state larger than this goes
/// out in several parts; a single larger object gets a part of its own).
/// A stream's encode buffer keeps the size of the largest message it has
/// carried for as long as the stream lives, so this bounds what each idle
/// agent costs its node after its FullSync, and it keeps a host of a huge
/// VPC from needing one huge message.
pub const FULL_SYNC_PART_BYTES_MAX: usize = 2 * 1024;

/// Applied events with changes kept in a node's retained window (events
/// without changes only advance its end and take no room).
pub const WINDOW_EVENTS_MAX: usize = 8_192;

/// Estimated bytes of the diffs kept in a node's retained window.
pub const WINDOW_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Changes per DiffBatch. Soft: a batch always ends at an event boundary,
/// so one event with more changes for one host still goes out whole.
pub const BATCH_CHANGES_MAX: usize = 4_096;

/// Default batching window: how long a host's first unsent change may
/// wait for later ones to join its DiffBatch. Short: it adds to the
/// write-to-agent latency.
pub const BATCH_WINDOW_MS: u64 = 2;

/// Largest batching window a node accepts (`--push-batch-window-ms`).
pub const BATCH_WINDOW_MS_MAX: u64 = 1_000;

/// FullSyncs one node builds and queues at once. A reconnect storm (every
/// agent of a failed node arriving together) is served this many at a
/// time, so goal-state reads cannot starve the apply loop and writes keep
/// committing.
pub const FULL_SYNCS_CONCURRENT_MAX: usize = 4;

/// DiffBatches per session remembered for the commit-to-ack latency
/// histogram until acked (the oldest sample is dropped beyond).
pub const UNACKED_BATCHES_MAX: usize = 64;

/// Default period of an agent's digest report (anti-entropy).
pub const DIGEST_INTERVAL_MS: u64 = 10_000;

/// HTTP/2 keepalive period and ack timeout of an agent's connection
/// (the server side uses the same period): detects dead nodes and agents.
pub const HTTP2_KEEPALIVE_MS: u64 = 10_000;

/// Window events one scan looks at while holding the window lock.
pub const SCAN_EVENTS_MAX: usize = 1_024;

/// Applied events the window feeder moves per lock.
pub const FEED_EVENTS_MAX: usize = 1_024;

/// How long an agent whose revision advanced without changes for its host
/// may wait before it is told (with an empty DiffBatch).
pub const IDLE_ADVANCE_MS: u64 = 1_000;

/// How long the controller waits for an agent's Hello.
pub const HELLO_TIMEOUT_MS_MAX: u64 = 5_000;

/// Largest push message sent or accepted (a FullSync is one message).
pub const PUSH_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Hosts whose last ack a node remembers. When full, the entries of hosts
/// with neither a live stream nor a waiter are evicted; live streams are
/// at most `AGENTS_MAX`, so there is room after an eviction unless
/// waiters hold it.
pub const ACKED_HOSTS_MAX: usize = 100_000;

/// Bytes of a `host_id` in a Hello (an identity's name bound).
pub const HOST_ID_BYTES_MAX: usize = alcor_proto::identity::IDENTITY_NAME_BYTES_MAX;

/// Bytes one `bincode_v1` payload may claim while decoding: a length
/// prefix beyond it fails instead of allocating what it claims.
pub const BINCODE_BYTES_MAX: usize = PUSH_MESSAGE_BYTES_MAX;

const _: () = assert!(AGENTS_MAX < ACKED_HOSTS_MAX);

/// Acks and reports queued by an agent. Acks are cumulative, so an agent
/// drops an ack rather than wait when this is full.
pub const AGENT_OUTBOUND_MAX: usize = 16;

/// How long an agent waits for a TCP/HTTP2 connection to a node.
pub const CONNECT_TIMEOUT_MS_MAX: u64 = 2_000;

/// Default upper bound of an agent's reconnect backoff.
pub const RECONNECT_BACKOFF_MS_MAX: u64 = 2_000;

/// Wake-ups queued for a node's port-status proposer. One is enough: a
/// queued wake-up already means "look at the pending acks".
pub const STATUS_WAKE_MAX: usize = 1;

/// Hosts whose latest ack may wait for the port-status proposer (one ack
/// per host: a newer one replaces the waiting one).
pub const STATUS_PENDING_HOSTS_MAX: usize = ACKED_HOSTS_MAX;

/// Hosts the port-status proposer plans in one round (one state read, one
/// linearizable read, and writes of up to the state machine's
/// `BATCH_COMMANDS_MAX` commands each).
pub const STATUS_HOSTS_PER_ROUND_MAX: usize = 512;

/// Wait before the port-status proposer retries hosts whose round failed
/// (no leader, timeout).
pub const STATUS_RETRY_MS: u64 = 200;

const _: () = assert!(AGENTS_MAX <= ACKED_HOSTS_MAX);
const _: () = assert!(AGENTS_MAX <= STATUS_PENDING_HOSTS_MAX);
const _: () = assert!(STATUS_WAKE_MAX >= 1 && STATUS_HOSTS_PER_ROUND_MAX >= 1);
const _: () = assert!(BATCH_CHANGES_MAX >= 1 && SCAN_EVENTS_MAX >= 1);
const _: () = assert!(AGENT_QUEUE_MAX >= 1 && AGENT_OUTBOUND_MAX >= 1);
const _: () = assert!(BATCH_WINDOW_MS <= BATCH_WINDOW_MS_MAX && BATCH_WINDOW_MS < IDLE_ADVANCE_MS);
const _: () = assert!(FULL_SYNCS_CONCURRENT_MAX >= 1 && UNACKED_BATCHES_MAX >= AGENT_QUEUE_MAX);
const _: () = assert!(WINDOW_EVENTS_MAX >= FEED_EVENTS_MAX);
