//! Every bound the API gateway enforces, in one place.

use alcor_state_machine::limits::BATCH_PORTS_MAX;

/// Largest request message accepted (tonic's `max_decoding_message_size`):
/// a full `CreatePorts` batch with every optional field fits comfortably.
pub const REQUEST_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Largest response message sent: a full batch reply or a full list page.
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Ports in one `CreatePorts` request. Below the state machine's own limit
/// so one log entry stays small enough to replicate quickly.
pub const PORTS_BATCH_MAX: usize = 2_000;

/// Items in one list page; larger `limit`s are clamped to it.
pub const LIST_PAGE_MAX: usize = 1_000;

/// Page size when a list request gives `limit` 0.
pub const LIST_PAGE_DEFAULT: usize = 100;

/// Requests the gateway serves at once; beyond that it answers
/// RESOURCE_EXHAUSTED (reason `OVERLOADED`) instead of queueing unboundedly.
pub const CONCURRENT_REQUESTS_MAX: usize = 1_024;

/// Longest deadline honoured from `grpc-timeout`; Raft's own request
/// timeout applies below it anyway.
pub const REQUEST_TIMEOUT_MS_MAX: u64 = 60_000;

/// Subtracted from the client's deadline so that the gateway answers
/// DEADLINE_EXCEEDED itself before tonic's transport cancels the call: a
/// twentieth of the deadline, at least `DEADLINE_MARGIN_MS_MIN` and at most
/// `DEADLINE_MARGIN_MS_MAX` (on a loaded 2-core machine 5 ms was not
/// enough for a 2 s barrier: the client's timer won the race).
pub const DEADLINE_MARGIN_MS_MIN: u64 = 5;
/// See [`DEADLINE_MARGIN_MS_MIN`].
pub const DEADLINE_MARGIN_MS_MAX: u64 = 250;
/// See [`DEADLINE_MARGIN_MS_MIN`].
pub const DEADLINE_MARGIN_DIVISOR: u32 = 20;

const _: () = assert!(PORTS_BATCH_MAX <= BATCH_PORTS_MAX);
const _: () = assert!(LIST_PAGE_DEFAULT <= LIST_PAGE_MAX);
const _: () = assert!(REQUEST_BYTES_MAX <= RESPONSE_BYTES_MAX);

/// Highest IP protocol number a security-group rule may name.
pub const PROTOCOL_NUMBER_MAX: u8 = u8::MAX;

/// Highest TCP/UDP/SCTP port (or ICMP type/code bound) a rule may carry.
pub const TCP_UDP_PORT_MAX: u16 = u16::MAX;

/// Writes waiting to be coalesced into a Raft entry; a full queue answers
/// RESOURCE_EXHAUSTED (OVERLOADED) instead of queueing without bound.
pub const PROPOSALS_QUEUED_MAX: usize = 4_096;

/// Independent writes coalesced into one Raft entry (`Command::Batch`).
pub const PROPOSAL_COMMANDS_MAX: usize = 256;

/// Coalesced entries proposed concurrently by one gateway.
pub const PROPOSALS_IN_FLIGHT_MAX: usize = 4;

const _: () = assert!(PROPOSAL_COMMANDS_MAX <= alcor_state_machine::limits::BATCH_COMMANDS_MAX);
const _: () = assert!(PROPOSAL_COMMANDS_MAX <= PROPOSALS_QUEUED_MAX);

/// Names in one `fields` selection (every resource message has fewer fields).
pub const FIELDS_REQUESTED_MAX: usize = 64;

/// Resource-change events a node keeps for Watch; a watcher asking for an
/// older revision gets COMPACTED, one that falls further behind WATCH_LAGGED.
pub const WATCH_HISTORY_MAX: usize = 65_536;

/// Events buffered per watcher stream before its task waits for the client.
pub const WATCH_STREAM_BUFFER_MAX: usize = 256;

/// Events a watcher task takes from the history per lock.
pub const WATCH_BATCH_MAX: usize = 256;

/// Watch streams served at once by one node.
pub const WATCHERS_MAX: usize = 4_096;

const _: () = assert!(WATCH_BATCH_MAX <= WATCH_HISTORY_MAX);
const _: () = assert!(WATCH_STREAM_BUFFER_MAX <= WATCH_HISTORY_MAX);

/// Tokens in a token file (shared by the gRPC and REST APIs).
pub const TOKENS_MAX: usize = 100_000;

/// Bytes of one bearer token (longer ones are refused unhashed).
pub const TOKEN_BYTES_MAX: usize = 1_024;

/// Bytes of a token file: `TOKENS_MAX` entries of a few hundred bytes.
pub const TOKEN_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// How often the token file's modification time is checked (a revoked
/// token works at most this long after the file changed, plus the reload).
pub const TOKEN_FILE_POLL_MS: u64 = 1_000;

const _: () = assert!(TOKEN_BYTES_MAX as u64 * 2 <= TOKEN_FILE_BYTES_MAX);
