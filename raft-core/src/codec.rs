//! The versioned binary encoding used for everything raft-core persists
//! (log entries, vote, snapshots) and for Raft payloads on the wire.
//!
//! Format version 1 is bincode 2 with serde and `config::standard()`
//! (varint integers). Persisted records are prefixed with one format byte
//! so a future encoding can coexist with old data; wire payloads carry the
//! version in the protobuf envelope instead.

use serde::de::DeserializeOwned;
use serde::Serialize;

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
    /// The bytes are not a valid encoding of the expected type.
    #[error("malformed payload: {0}")]
    Malformed(#[from] bincode::error::DecodeError),
    /// Bytes were left over after the value, so the type did not match.
    #[error("{0} trailing bytes after value")]
    Trailing(usize),
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

/// Decodes a value encoded by [`encode`], rejecting trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, n_read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())?;
    if n_read != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - n_read));
    }
    Ok(value)
}

/// Encodes a record for storage: `[FORMAT_VERSION] ++ encode(value)`.
pub fn encode_record<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = vec![FORMAT_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())?;
    Ok(out)
}

/// Decodes a record written by [`encode_record`].
pub fn decode_record<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&FORMAT_VERSION, rest)) => decode(rest),
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
            Err(DecodeError::UnknownVersion(99))
        ));
    }

    #[test]
    fn garbage_does_not_decode_and_does_not_panic() {
        assert!(decode::<(u64, String)>(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode::<u64>(&[1, 2]).is_err());
        assert!(matches!(decode_record::<u64>(&[]), Err(DecodeError::Empty)));
    }
}
