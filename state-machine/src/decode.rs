//! Decoding bincode bytes that arrive from outside the process (Raft
//! payloads, log records, snapshots) without trusting them: a length prefix
//! cannot make the decoder allocate much more than the input, and nesting
//! of the recursive values (command wrappers, batch replies, batch-entry
//! rejections) cannot exceed [`NESTING_MAX`], so hostile bytes are a decode
//! error rather than an aborted allocation or a stack overflow.
//!
//! **Allocation.** bincode 2 allocates a string or byte buffer of the claimed
//! length before reading it: 12 bytes claiming a 16 TiB string abort the
//! process. With `config::standard().with_limit::<N>()` each allocation and
//! each decoded primitive is first claimed against `N`, and a claim beyond
//! it is `LimitExceeded`. A valid encoding claims at most
//! [`DECODE_CLAIM_PER_INPUT_BYTE_MAX`] bytes per input byte, so the limit is
//! that multiple of the input length, rounded up to the next of a few tiers
//! (`N` is a constant). The wire format is unchanged.
//!
//! **Nesting.** The wrapper fields deserialize through [`nested`], which
//! counts the enclosing wrappers on this thread and refuses a value deeper
//! than the state machine ever accepts. Encoding is untouched, so every
//! valid value keeps its bytes.

use std::cell::Cell;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use crate::limits::{DECODE_CLAIM_PER_INPUT_BYTE_MAX, NESTING_MAX};

/// Input lengths at which the claim limit steps up; inputs above the last
/// one (only snapshots, never a wire message) are decoded without a limit.
const TIER_INPUT_BYTES: [usize; 3] = [64 << 10, 4 << 20, 256 << 20];

/// Decodes a value of `T` from the start of `bytes` with bincode 2's
/// standard configuration, claiming at most
/// [`DECODE_CLAIM_PER_INPUT_BYTE_MAX`] times the input length (rounded up to
/// a tier), and returns it with the number of bytes read.
pub fn decode_bounded<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    const K: usize = DECODE_CLAIM_PER_INPUT_BYTE_MAX;
    const T0: usize = TIER_INPUT_BYTES[0];
    const T1: usize = TIER_INPUT_BYTES[1];
    const T2: usize = TIER_INPUT_BYTES[2];
    match bytes.len() {
        n if n <= T0 => decode_limited::<T, { K * T0 }>(bytes),
        n if n <= T1 => decode_limited::<T, { K * T1 }>(bytes),
        n if n <= T2 => decode_limited::<T, { K * T2 }>(bytes),
        _ => bincode::serde::decode_from_slice(bytes, bincode::config::standard()),
    }
}

fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    bincode::serde::decode_from_slice(bytes, config)
}

thread_local! {
    /// Wrappers enclosing the value being deserialized on this thread.
    static NESTING: Cell<usize> = const { Cell::new(0) };
}

/// Holds one level of [`NESTING`] while a wrapped value deserializes.
struct Level;

impl Level {
    fn enter() -> Result<Level, String> {
        let depth = NESTING.with(Cell::get);
        if depth >= NESTING_MAX {
            return Err(format!(
                "values nest deeper than {NESTING_MAX} levels (command wrappers, batch replies)"
            ));
        }
        NESTING.with(|n| n.set(depth + 1));
        Ok(Level)
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        NESTING.with(|n| {
            let depth = n.get();
            assert!(depth > 0, "a nesting level is left that was never entered");
            n.set(depth - 1);
        });
    }
}

/// `deserialize_with` for the fields through which a value contains a value
/// of its own type (`Command::Batch`, `Command::Idempotent`,
/// `Command::WithTags`, `Reply::Batch`, `Rejection::BatchEntry`): the same
/// encoding, with at most [`NESTING_MAX`] such fields around one another.
pub(crate) fn nested<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let _level = Level::enter().map_err(D::Error::custom)?;
    T::deserialize(deserializer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, Proposal};

    fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    fn plain() -> Command {
        Command::DeleteVpc {
            id: crate::Id(7),
            expected_revision: None,
        }
    }

    /// `command` inside `n` more `Idempotent` wrappers.
    fn wrapped(n: usize, command: Command) -> Command {
        (0..n).fold(command, |inner, i| Command::Idempotent {
            token: format!("t{i}"),
            command: Box::new(inner),
        })
    }

    #[test]
    fn a_string_claiming_more_than_the_input_allows_is_refused_before_allocating() {
        // A varint length of 2^44 (16 TiB), then nothing.
        let mut bytes = vec![253];
        bytes.extend_from_slice(&(1u64 << 44).to_le_bytes());
        let result = decode_bounded::<String>(&bytes);
        assert!(
            matches!(result, Err(bincode::error::DecodeError::LimitExceeded)),
            "{result:?}"
        );
    }

    #[test]
    fn the_deepest_nesting_the_state_machine_accepts_round_trips_unchanged() {
        let deepest = Command::Batch(vec![Command::Idempotent {
            token: "t".into(),
            command: Box::new(Command::WithTags {
                tags: ["a".to_string()].into_iter().collect(),
                command: Box::new(plain()),
            }),
        }]);
        let proposal = Proposal {
            time_ms: 1,
            command: deepest,
        };
        let bytes = encode(&proposal);
        let (back, n_read) = decode_bounded::<Proposal>(&bytes).unwrap();
        assert_eq!((back, n_read), (proposal, bytes.len()));
        assert_eq!(NESTING.with(Cell::get), 0);
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_a_decode_error_not_a_stack_overflow() {
        for depth in [NESTING_MAX + 1, 100_000] {
            let bytes = encode_deep_idempotent(depth);
            let result = decode_bounded::<Command>(&bytes);
            let message = format!("{:?}", result.as_ref().err());
            assert!(message.contains("nest deeper"), "depth {depth}: {message}");
            assert_eq!(NESTING.with(Cell::get), 0, "levels are released on error");
        }
        let (ok, _) = decode_bounded::<Command>(&encode(&wrapped(NESTING_MAX, plain()))).unwrap();
        assert_eq!(ok, wrapped(NESTING_MAX, plain()));
    }

    /// The bytes of `depth` nested `Idempotent` wrappers around a plain
    /// command, written by hand: serializing such a value recursively could
    /// itself overflow the stack.
    fn encode_deep_idempotent(depth: usize) -> Vec<u8> {
        let one = encode(&wrapped(1, plain()));
        let inner = encode(&plain());
        let prefix = &one[..one.len() - inner.len()];
        let mut bytes = prefix.repeat(depth);
        bytes.extend_from_slice(&inner);
        bytes
    }
}
