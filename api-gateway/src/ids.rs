//! New resource IDs: random UUID v4s, drawn by the gateway so that the
//! state machine stays free of randomness.

use alcor_state_machine::Id;

/// A random RFC 4122 version-4 UUID as an [`Id`].
pub(crate) fn random_id() -> Result<Id, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    Ok(Id(u128::from_be_bytes(bytes)))
}
