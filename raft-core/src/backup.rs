//! The backup file of `alcor ctl snapshot save` and `alcor snapshot
//! restore`: the whole replicated state at one applied log index, with a
//! header that says what it is and a checksum over all of it.
//!
//! Layout, format version 1 (integers little endian):
//!
//! | offset | bytes | field |
//! |-------:|------:|-------|
//! | 0  | 8  | magic `ALCORBK\0` |
//! | 8  | 4  | format version (`BACKUP_FORMAT_VERSION`) |
//! | 12 | 8  | revision: the last log index the state covers |
//! | 20 | 8  | term of that log entry's leader |
//! | 28 | 8  | node id of that leader |
//! | 36 | 8  | body length in bytes |
//! | 44 | 32 | SHA-256 of bytes 0..44 followed by the body |
//! | 76 | .. | body: `State::snapshot()` bytes (their own magic and version) |
//!
//! [`decode`] checks, in order: magic, version (a newer one is
//! [`BackupError::NewerVersion`]), length (a short file is
//! [`BackupError::Truncated`]), checksum, then decodes the body with the
//! state machine's bounded decoder. Every failure is a typed error; nothing
//! is trusted before the checksum matched.

use alcor_state_machine::{SnapshotError, State};
use sha2::{Digest, Sha256};

use crate::types::LogId;

/// The first bytes of every backup file.
pub const BACKUP_MAGIC: &[u8; 8] = b"ALCORBK\0";
/// The backup format this build writes and the newest it reads.
pub const BACKUP_FORMAT_VERSION: u32 = 1;
/// Bytes before the body.
pub const BACKUP_HEADER_BYTES: usize = 76;
/// Where the checksum starts (it covers everything before it).
const CHECKSUM_OFFSET: usize = 44;

/// What a backup holds besides the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupHeader {
    /// The last log index the state covers: every resource's revision is
    /// at most this, and a cluster restored from it writes above it.
    pub revision: u64,
    /// The term of the leader that wrote that entry (informational).
    pub term: u64,
    /// The node id of that leader (informational).
    pub leader_node_id: u64,
    /// Length of the body (the state snapshot) in bytes.
    pub body_bytes: u64,
    /// SHA-256 of the header fields and the body.
    pub sha256: [u8; 32],
}

impl BackupHeader {
    /// The checksum in lowercase hexadecimal.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A backup file read back and checked.
#[derive(Debug)]
pub struct Backup {
    /// Its header.
    pub header: BackupHeader,
    /// The state it holds (indexes rebuilt).
    pub state: State,
    /// The body bytes (`State::snapshot()` format), as stored.
    pub body: Vec<u8>,
}

/// Why bytes are not a usable backup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    /// The bytes do not start with [`BACKUP_MAGIC`].
    #[error("not an Alcor backup file (bad magic)")]
    BadMagic,
    /// Written by a newer Alcor whose format this build does not know.
    #[error(
        "backup format version {found} is newer than this build reads ({supported}): use a newer alcor"
    )]
    NewerVersion {
        /// The version in the file.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// A version that was never written (0).
    #[error("unknown backup format version {0}")]
    UnknownVersion(u32),
    /// The file ends before its header or body does.
    #[error("backup file is truncated: {actual} bytes, the header says {expected}")]
    Truncated {
        /// Bytes the header (or a whole header) needs.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// Bytes follow the body.
    #[error("backup file has {0} bytes after its body")]
    TrailingBytes(u64),
    /// The checksum does not match: the file is corrupt.
    #[error(
        "backup checksum mismatch (file sha256 {expected}, computed {actual}): the file is corrupt"
    )]
    ChecksumMismatch {
        /// The checksum in the header (hex).
        expected: String,
        /// The checksum of the bytes (hex).
        actual: String,
    },
    /// The checksum matched but the state does not decode (a bug in the
    /// writer, or a state format this build does not read).
    #[error("backup state: {0}")]
    State(#[from] SnapshotError),
    /// The state claims entries beyond the backup's revision.
    #[error("backup state applied index {state} is above its revision {revision}")]
    Inconsistent {
        /// The state's applied index.
        state: u64,
        /// The header's revision.
        revision: u64,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The header fields before the checksum.
fn fixed_fields(revision: u64, term: u64, leader: u64, body_bytes: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHECKSUM_OFFSET);
    out.extend_from_slice(BACKUP_MAGIC);
    out.extend_from_slice(&BACKUP_FORMAT_VERSION.to_le_bytes());
    for field in [revision, term, leader, body_bytes] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    debug_assert_eq!(out.len(), CHECKSUM_OFFSET);
    out
}

/// The backup file of `state` (`State::snapshot()` bytes) at `last_log_id`.
pub fn encode(last_log_id: Option<LogId>, state: &[u8]) -> Vec<u8> {
    let (revision, term, leader) = match last_log_id {
        Some(id) => (id.index, id.leader_id.term, id.leader_id.node_id),
        None => (0, 0, 0),
    };
    let mut out = fixed_fields(revision, term, leader, state.len() as u64);
    let sha: [u8; 32] = Sha256::new()
        .chain_update(&out)
        .chain_update(state)
        .finalize()
        .into();
    out.reserve(32 + state.len());
    out.extend_from_slice(&sha);
    out.extend_from_slice(state);
    debug_assert_eq!(out.len(), BACKUP_HEADER_BYTES + state.len());
    out
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut field = [0u8; 8];
    field.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(field)
}

/// Reads the header of a backup file: magic, version and the fields, with
/// no check of the body or the checksum (see [`decode`]).
pub fn decode_header(bytes: &[u8]) -> Result<BackupHeader, BackupError> {
    let truncated = |expected: usize| BackupError::Truncated {
        expected: expected as u64,
        actual: bytes.len() as u64,
    };
    if bytes.len() < BACKUP_MAGIC.len() + 4 {
        let prefix = &bytes[..bytes.len().min(BACKUP_MAGIC.len())];
        return Err(if BACKUP_MAGIC.starts_with(prefix) {
            truncated(BACKUP_HEADER_BYTES)
        } else {
            BackupError::BadMagic
        });
    }
    if &bytes[..BACKUP_MAGIC.len()] != BACKUP_MAGIC {
        return Err(BackupError::BadMagic);
    }
    let mut version = [0u8; 4];
    version.copy_from_slice(&bytes[8..12]);
    let version = u32::from_le_bytes(version);
    if version > BACKUP_FORMAT_VERSION {
        return Err(BackupError::NewerVersion {
            found: version,
            supported: BACKUP_FORMAT_VERSION,
        });
    }
    if version != BACKUP_FORMAT_VERSION {
        return Err(BackupError::UnknownVersion(version));
    }
    if bytes.len() < BACKUP_HEADER_BYTES {
        return Err(truncated(BACKUP_HEADER_BYTES));
    }
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(&bytes[CHECKSUM_OFFSET..BACKUP_HEADER_BYTES]);
    Ok(BackupHeader {
        revision: u64_at(bytes, 12),
        term: u64_at(bytes, 20),
        leader_node_id: u64_at(bytes, 28),
        body_bytes: u64_at(bytes, 36),
        sha256,
    })
}

/// Reads and checks a whole backup file (see the module doc for the order
/// of the checks) and decodes its state.
pub fn decode(bytes: &[u8]) -> Result<Backup, BackupError> {
    let header = decode_header(bytes)?;
    let body = &bytes[BACKUP_HEADER_BYTES..];
    let body_len = body.len() as u64;
    if body_len < header.body_bytes {
        return Err(BackupError::Truncated {
            expected: (BACKUP_HEADER_BYTES as u64).saturating_add(header.body_bytes),
            actual: bytes.len() as u64,
        });
    }
    if body_len > header.body_bytes {
        return Err(BackupError::TrailingBytes(body_len - header.body_bytes));
    }
    let actual: [u8; 32] = Sha256::new()
        .chain_update(&bytes[..CHECKSUM_OFFSET])
        .chain_update(body)
        .finalize()
        .into();
    if actual != header.sha256 {
        return Err(BackupError::ChecksumMismatch {
            expected: header.sha256_hex(),
            actual: hex(&actual),
        });
    }
    let state = State::restore(body)?;
    if state.applied_index() > header.revision {
        return Err(BackupError::Inconsistent {
            state: state.applied_index(),
            revision: header.revision,
        });
    }
    Ok(Backup {
        header,
        state,
        body: body.to_vec(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::types::CommittedLeaderId;

    fn sample() -> Vec<u8> {
        let log_id = LogId::new(
            CommittedLeaderId {
                term: 3,
                node_id: 2,
            },
            41,
        );
        encode(Some(log_id), &State::new().snapshot())
    }

    #[test]
    fn backup_round_trips_with_its_revision_and_checksum() {
        let bytes = sample();
        let backup = decode(&bytes).unwrap();
        assert_eq!(backup.header.revision, 41);
        assert_eq!(backup.header.term, 3);
        assert_eq!(backup.header.leader_node_id, 2);
        assert_eq!(backup.body, State::new().snapshot());
        let sha: [u8; 32] = Sha256::new()
            .chain_update(&bytes[..CHECKSUM_OFFSET])
            .chain_update(&bytes[BACKUP_HEADER_BYTES..])
            .finalize()
            .into();
        assert_eq!(backup.header.sha256, sha);
    }

    #[test]
    fn every_truncation_is_refused_as_truncated() {
        let bytes = sample();
        for len in 0..bytes.len() {
            let result = decode(&bytes[..len]);
            assert!(
                matches!(result, Err(BackupError::Truncated { .. })),
                "{len}: {result:?}"
            );
        }
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let bytes = sample();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            let result = decode(&bad);
            assert!(result.is_err(), "flip at {i} accepted");
            if i >= 12 && !(36..44).contains(&i) {
                // Past magic and version, and not the length: the checksum.
                assert!(
                    matches!(result, Err(BackupError::ChecksumMismatch { .. })),
                    "{i}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn newer_format_version_and_wrong_magic_are_typed_errors() {
        let mut newer = sample();
        newer[8..12].copy_from_slice(&(BACKUP_FORMAT_VERSION + 1).to_le_bytes());
        assert_eq!(
            decode(&newer).unwrap_err(),
            BackupError::NewerVersion {
                found: BACKUP_FORMAT_VERSION + 1,
                supported: BACKUP_FORMAT_VERSION
            }
        );
        let mut magic = sample();
        magic[0] = b'X';
        assert_eq!(decode(&magic).unwrap_err(), BackupError::BadMagic);
        assert_eq!(
            decode(b"something else entirely").unwrap_err(),
            BackupError::BadMagic
        );
    }

    #[test]
    fn bytes_after_the_body_are_refused() {
        let mut bytes = sample();
        bytes.push(0);
        assert_eq!(decode(&bytes).unwrap_err(), BackupError::TrailingBytes(1));
    }
}
