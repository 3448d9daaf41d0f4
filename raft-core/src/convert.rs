//! The one place raft-core converts between protobuf messages and its own
//! types: every Raft RPC is a `RaftMessage { version, payload }` envelope
//! whose payload is the [`codec`] encoding of an openraft value.

use alcor_proto::raft::v1::RaftMessage;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::Status;

use crate::codec;

/// The payload encoding this build speaks (see `raft.proto`).
pub const WIRE_VERSION: u32 = 1;

/// Wraps `value` in an envelope.
pub fn to_message<T: Serialize>(value: &T) -> Result<RaftMessage, codec::EncodeError> {
    Ok(RaftMessage {
        version: WIRE_VERSION,
        payload: codec::encode(value)?,
    })
}

/// Like [`to_message`], for server handlers: failure is an INTERNAL status.
pub fn to_reply<T: Serialize>(value: &T) -> Result<tonic::Response<RaftMessage>, Status> {
    to_message(value)
        .map(tonic::Response::new)
        .map_err(|e| Status::internal(e.to_string()))
}

/// Unwraps an envelope. Unknown versions are FAILED_PRECONDITION, bytes
/// that do not decode are INVALID_ARGUMENT; neither panics.
pub fn from_message<T: DeserializeOwned>(message: &RaftMessage) -> Result<T, Status> {
    if message.version != WIRE_VERSION {
        return Err(Status::failed_precondition(format!(
            "raft payload version {} not supported (want {WIRE_VERSION})",
            message.version
        )));
    }
    codec::decode(&message.payload)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft payload: {e}")))
}
