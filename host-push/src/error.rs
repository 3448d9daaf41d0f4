//! The errors of host-push: decoding the wire format, and why an agent's
//! stream ended.

use tonic::Status;

/// A message could not be converted between protobuf and domain types.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A required field or oneof was not set.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A `bincode_v1` payload did not decode as the expected type.
    #[error("malformed {what}: {source}")]
    Decode {
        /// Which payload.
        what: &'static str,
        /// The decoder's complaint.
        source: bincode::error::DecodeError,
    },
    /// A `bincode_v1` payload had bytes after the value.
    #[error("{n_bytes} trailing bytes after {what}")]
    Trailing {
        /// Which payload.
        what: &'static str,
        /// How many bytes were left.
        n_bytes: usize,
    },
    /// A value could not be encoded (an unsupported serde shape: a bug).
    #[error("encode failed: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// A digest was not 32 bytes long.
    #[error("digest is {0} bytes, want 32")]
    DigestLength(usize),
}

impl From<ConvertError> for Status {
    fn from(error: ConvertError) -> Status {
        Status::invalid_argument(error.to_string())
    }
}

/// Why an agent could not start, or why one of its streams ended (it then
/// reconnects; these are logged, not returned, except [`AgentError::NoEndpoints`]).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The config lists no endpoint.
    #[error("no endpoints configured")]
    NoEndpoints,
    /// The config's host id is empty.
    #[error("empty host id")]
    EmptyHostId,
    /// An endpoint is not a valid URI.
    #[error("invalid endpoint {endpoint}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The node could not be reached.
    #[error("connect failed: {0}")]
    Connect(#[from] tonic::transport::Error),
    /// The call or the stream failed.
    #[error("stream failed: {0}")]
    Rpc(#[from] Status),
    /// The node closed the stream.
    #[error("stream ended by the controller")]
    Ended,
    /// The node sent an Error message.
    #[error("controller error {code:?}: {message}")]
    Controller {
        /// The controller's reason.
        code: crate::message::ErrorCode,
        /// The controller's explanation.
        message: String,
    },
    /// A message could not be decoded.
    #[error("bad message: {0}")]
    Convert(#[from] ConvertError),
    /// A DiffBatch did not start at the agent's revision.
    #[error("diff batch from revision {from_revision}, agent is at {revision}")]
    Gap {
        /// The batch's start.
        from_revision: u64,
        /// The agent's revision.
        revision: u64,
    },
    /// The node answered with something a Hello does not allow.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

/// Why [`crate::PushService::wait_acked`] gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitAckedError {
    /// The deadline passed; `acked` is the host's last ack on this node.
    #[error("deadline passed; host acked {acked:?} on this node")]
    Timeout {
        /// The last revision the host acknowledged to this node, if any.
        acked: Option<u64>,
    },
    /// The service was closed.
    #[error("push service closed")]
    Closed,
    /// The node already tracks `ACKED_HOSTS_MAX` hosts and not this one.
    #[error("ack table full")]
    TableFull,
}
