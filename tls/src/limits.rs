//! Every bound alcor-tls enforces, in one place.

/// TLS handshakes in progress on one listener; the accept loop waits for a
/// slot beyond that, so slow or silent clients cannot pile up tasks.
pub const HANDSHAKES_IN_FLIGHT_MAX: usize = 1_024;

/// How long one TLS handshake may take before the connection is dropped
/// (a client that connects and sends nothing holds a slot this long).
pub const HANDSHAKE_MS_MAX: u64 = 10_000;

/// Handshaken connections waiting for the server to take them.
pub const ACCEPTED_QUEUE_MAX: usize = 128;

/// How often, at most, a listener's certificate and key files are checked
/// for changes (on the next handshake after this much time).
pub const CERT_RELOAD_CHECK_MS: u64 = 1_000;

const _: () = assert!(ACCEPTED_QUEUE_MAX <= HANDSHAKES_IN_FLIGHT_MAX);
