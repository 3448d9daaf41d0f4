//! The versioned binary encoding used for everything raft-core persists
//! (log entries, vote, snapshots) and for Raft payloads on the wire.
//!
//! Format version 1 is bincode 2 with serde and `config::standard()`
//! (varint integers). Persisted records are prefixed with one format byte
//! so a future encoding can coexist with old data; wire payloads carry the
//! version in the protobuf envelope instead.
//!
//! Decoding trusts no length prefix and no nesting: it goes through
//! [`alcor_state_machine::decode::decode_bounded`], so bytes that claim a
//! huge string or nest command wrappers deeper than the state machine
//! accepts are a [`DecodeError`], not an aborted allocation or a stack
//! overflow. A wire payload longer than a Raft message
//! ([`GRPC_MESSAGE_BYTES_MAX`]) is refused unread. The encoding of every
//! valid value is unchanged, so the format version stays 1.

use std::io::Write;

use alcor_state_machine::decode::decode_bounded;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::limits::GRPC_MESSAGE_BYTES_MAX;

/// The only encoding version this build reads and writes.
pub const FORMAT_VERSION: u8 = 1;

/// Why bytes could not be turned back into a value.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The record is empty, so it has no format byte.
    #[error("empty record")]
    Empty,
    /// The record was written by an encoding this build does not know.
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    /// The record was written by a newer build: this one must not touch
    /// the data (run the newer build, or restore a backup).
    #[error("record format version {found} is newer than this build reads ({supported}): run a newer alcor")]
    NewerVersion {
        /// The version of the record.
        found: u8,
        /// The newest this build reads.
        supported: u8,
    },
    /// The bytes are not a valid encoding of the expected type.
    #[error("malformed payload: {0}")]
    Malformed(#[from] bincode::error::DecodeError),
    /// Bytes were left over after the value, so the type did not match.
    #[error("{0} trailing bytes after value")]
    Trailing(usize),
    /// A wire payload is longer than any Raft message may be.
    #[error("payload of {0} bytes exceeds the message limit")]
    TooLarge(usize),
}

/// Why a value could not be encoded (only possible for unsupported serde
/// shapes, i.e. a programming error).
#[derive(Debug, thiserror::Error)]
#[error("encode failed: {0}")]
pub struct EncodeError(#[from] bincode::error::EncodeError);

/// Encodes `value` without a version prefix (wire payloads).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    Ok(bincode::serde::encode_to_vec(
        value,
        bincode::config::standard(),
    )?)
}

/// Decodes a wire payload encoded by [`encode`]: at most
/// [`GRPC_MESSAGE_BYTES_MAX`] bytes, bounded, no trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > GRPC_MESSAGE_BYTES_MAX {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    decode_value(bytes)
}

/// Decodes one value that must fill `bytes` exactly, bounded (see the
/// module documentation).
fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, n_read) = decode_bounded(bytes)?;
    if n_read != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - n_read));
    }
    Ok(value)
}

/// Encodes a record for storage: `[FORMAT_VERSION] ++ encode(value)`.
pub fn encode_record<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    write_record(value, &mut out)?;
    Ok(out)
}

/// [`encode_record`]'s bytes written straight to `out`, with no copy of
/// the whole record in memory (a snapshot record is hundreds of megabytes).
pub fn write_record<T: Serialize>(value: &T, out: &mut impl Write) -> Result<(), EncodeError> {
    // A `u8` is one raw byte in bincode's standard configuration, and a
    // pair is its two encodings back to back.
    bincode::serde::encode_into_std_write(
        (FORMAT_VERSION, value),
        out,
        bincode::config::standard(),
    )?;
    Ok(())
}

/// Decodes a record written by [`encode_record`], bounded like a wire
/// payload but of any length (a snapshot record may exceed a message).
pub fn decode_record<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&FORMAT_VERSION, rest)) => decode_value(rest),
        Some((&found, _)) if found > FORMAT_VERSION => Err(DecodeError::NewerVersion {
            found,
            supported: FORMAT_VERSION,
        }),
        Some((&version, _)) => Err(DecodeError::UnknownVersion(version)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_carries_version_byte() {
        let bytes = encode_record(&(7u64, "x".to_string())).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: (u64, String) = decode_record(&bytes).unwrap();
        assert_eq!(back, (7, "x".to_string()));
    }

    #[test]
    fn record_with_unknown_version_is_rejected() {
        let mut bytes = encode_record(&7u64).unwrap();
        bytes[0] = 99;
        assert!(matches!(
            decode_record::<u64>(&bytes),
            Err(DecodeError::NewerVersion {
                found: 99,
                supported: FORMAT_VERSION
            })
        ));
        bytes[0] = 0;
        assert!(matches!(
            decode_record::<u64>(&bytes),
            Err(DecodeError::UnknownVersion(0))
        ));
    }

    /// The 12-byte `Forward` payload of issue 13: `Request::Apply` of a
    /// `CreateHost` whose host id claims to be 16 TiB long.
    fn forward_claiming_a_16_tib_string() -> Vec<u8> {
        let mut bytes = vec![0, 0, 0, 253];
        bytes.extend_from_slice(&(1u64 << 44).to_le_bytes());
        assert_eq!(bytes.len(), 12);
        bytes
    }

    #[test]
    fn payload_claiming_a_huge_string_is_a_decode_error_not_an_allocation() {
        let result = decode::<crate::types::Request>(&forward_claiming_a_16_tib_string());
        assert!(
            matches!(
                result,
                Err(DecodeError::Malformed(
                    bincode::error::DecodeError::LimitExceeded
                ))
            ),
            "{result:?}"
        );
        let mut record = vec![FORMAT_VERSION];
        record.extend_from_slice(&forward_claiming_a_16_tib_string());
        assert!(decode_record::<crate::types::Request>(&record).is_err());
    }

    #[test]
    fn deeply_nested_command_wrappers_are_a_decode_error_not_a_stack_overflow() {
        use alcor_state_machine::{Command, Id, Proposal};
        let plain = Command::DeleteVpc {
            id: Id(1),
            expected_revision: None,
        };
        let one = encode(&Command::Idempotent {
            token: "t".into(),
            command: Box::new(plain.clone()),
        })
        .unwrap();
        let inner = encode(&plain).unwrap();
        let wrapper = &one[..one.len() - inner.len()];
        // `Request::Apply`, time 0, then a million wrappers around `plain`.
        let mut bytes = vec![0, 0];
        bytes.extend_from_slice(&wrapper.repeat(1_000_000));
        bytes.extend_from_slice(&inner);
        let result = decode::<crate::types::Request>(&bytes);
        assert!(
            matches!(&result, Err(DecodeError::Malformed(e)) if e.to_string().contains("nest deeper")),
            "{result:?}"
        );
        let valid = crate::types::Request::Apply(std::sync::Arc::new(Proposal {
            time_ms: 0,
            command: Command::Batch(vec![Command::Idempotent {
                token: "t".into(),
                command: Box::new(Command::WithTags {
                    tags: ["x".to_string()].into_iter().collect(),
                    command: Box::new(plain),
                }),
            }]),
        }));
        let back: crate::types::Request = decode(&encode(&valid).unwrap()).unwrap();
        assert_eq!(back, valid);
    }

    #[test]
    fn wire_payload_longer_than_a_message_is_refused_unread() {
        let bytes = vec![0u8; GRPC_MESSAGE_BYTES_MAX + 1];
        assert!(matches!(
            decode::<Vec<u8>>(&bytes),
            Err(DecodeError::TooLarge(n)) if n == GRPC_MESSAGE_BYTES_MAX + 1
        ));
    }

    #[test]
    fn garbage_does_not_decode_and_does_not_panic() {
        assert!(decode::<(u64, String)>(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode::<u64>(&[1, 2]).is_err());
        assert!(matches!(decode_record::<u64>(&[]), Err(DecodeError::Empty)));
    }
}
