//! The one place raft-core converts between protobuf messages and its own
//! types: every Raft RPC is a `RaftMessage { version, payload }` envelope
//! whose payload is the [`codec`] encoding of an openraft value.
//!
//! A member that meets an envelope of a newer version than it speaks, as a
//! request or as a reply, records it in its [`NewerWire`]; the node then
//! stops (`RaftNode::fatal`) with a message naming the version, instead of
//! refusing the peer's messages forever. A build that raises
//! [`WIRE_VERSION`] must keep speaking the older version to members that do
//! (see README, "Backup, restore and upgrades").

use std::sync::Arc;

use alcor_proto::raft::v1::RaftMessage;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
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
    if message.version > WIRE_VERSION {
        return Err(Status::failed_precondition(newer_reason(message.version)));
    }
    if message.version != WIRE_VERSION {
        return Err(Status::failed_precondition(format!(
            "raft payload version {} not supported (want {WIRE_VERSION})",
            message.version
        )));
    }
    codec::decode(&message.payload)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft payload: {e}")))
}

fn newer_reason(version: u32) -> String {
    format!(
        "raft wire version {version} is newer than this build speaks ({WIRE_VERSION}): \
         upgrade this member"
    )
}

/// Whether this member has met a Raft message of a newer wire version
/// than it speaks, and which. Shared by the node's Raft server and client.
#[derive(Debug, Clone)]
pub struct NewerWire(Arc<watch::Sender<Option<String>>>);

impl Default for NewerWire {
    fn default() -> NewerWire {
        NewerWire(Arc::new(watch::Sender::new(None)))
    }
}

impl NewerWire {
    /// [`from_message`], recording a newer version than this build speaks
    /// (`peer` names where the message came from).
    pub fn decode<T: DeserializeOwned>(
        &self,
        message: &RaftMessage,
        peer: &str,
    ) -> Result<T, Status> {
        if message.version > WIRE_VERSION {
            let reason = format!("{} (from {peer})", newer_reason(message.version));
            self.0.send_if_modified(|met| {
                let first = met.is_none();
                if first {
                    *met = Some(reason);
                }
                first
            });
        }
        from_message(message)
    }

    /// Resolves with the reason once a newer version was met.
    pub async fn met(&self) -> String {
        let mut met = self.0.subscribe();
        let reason = match met.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            // The sender lives in `self`: never closed while this waits.
            Err(_) => None,
        };
        match reason {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    }
}
