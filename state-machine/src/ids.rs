//! Identifiers: resource IDs (128-bit, printed as UUIDs), host IDs and project IDs.
//!
//! IDs either arrive inside a command (chosen by the gateway or the client) or are
//! derived from the log index with [`Id::derived`], so every replica produces the
//! same ones. Derived IDs carry a marker in the UUID version nibble (0xA) that no
//! UUID version has, and every create refuses a client ID with that marker
//! ([`Id::is_derived`], `Rejection::ReservedId`), so the two spaces cannot collide.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A resource identifier: 16 bytes, shown as a hyphenated UUID.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Id(pub u128);

/// Version nibble used by IDs derived from the log (never produced by UUID v4).
const DERIVED_VERSION_NIBBLE: u128 = 0xA;

impl Id {
    /// An ID derived deterministically from a log index and a sequence number within
    /// the command that needs it.
    pub fn derived(log_index: u64, seq: u32) -> Id {
        // Bytes 0-5 hold the log index (48 bits is 2.8e14 entries), the version
        // nibble sits in byte 6, the low 64 bits hold the sequence number.
        let hi = u128::from(log_index & 0xFFFF_FFFF_FFFF) << 80;
        let version = DERIVED_VERSION_NIBBLE << 76;
        Id(hi | version | u128::from(seq))
    }

    /// Whether the ID is of the form [`Id::derived`] produces (version
    /// nibble 0xA). Only the state machine may create such IDs.
    pub fn is_derived(self) -> bool {
        (self.0 >> 76) & 0xF == DERIVED_VERSION_NIBBLE
    }
}

impl fmt::Display for Id {
    /// The canonical 8-4-4-4-12 lowercase form, written from a stack buffer
    /// (formatting 16 `{:02x}` arguments was 9 % of the servers' CPU when
    /// creating ports in batches).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [b'-'; 36];
        let mut at = 0;
        for (i, byte) in self.0.to_be_bytes().iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                at += 1; // Leave the dash.
            }
            text[at] = HEX[usize::from(byte >> 4)];
            text[at + 1] = HEX[usize::from(byte & 0xf)];
            at += 2;
        }
        debug_assert_eq!(at, text.len());
        match std::str::from_utf8(&text) {
            Ok(text) => f.pad(text),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// The text was not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a UUID: {0:?}")]
pub struct ParseIdError(pub String);

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Id, ParseIdError> {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        let dashes_ok = s.len() == 36
            && s.char_indices()
                .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-'));
        if hex.len() != 32 || !(dashes_ok || s.len() == 32) {
            return Err(ParseIdError(s.to_string()));
        }
        u128::from_str_radix(&hex, 16)
            .map(Id)
            .map_err(|_| ParseIdError(s.to_string()))
    }
}

/// Refuses a client-chosen ID of a new resource that lies in the derived
/// space ([`Id::is_derived`]). Every create of the state machine calls it,
/// and so does the gateway, so both name the same reason.
pub fn validate_client_id(field: &str, id: Id) -> Result<(), crate::Rejection> {
    if id.is_derived() {
        return Err(crate::Rejection::ReservedId {
            field: field.to_string(),
            id,
        });
    }
    Ok(())
}

/// A host (hypervisor) identifier, as given by the operator, e.g. its hostname.
pub type HostId = String;

/// A project (tenant) identifier, as given by the identity layer.
pub type ProjectId = String;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_round_trips_through_its_text_form() {
        let id = Id(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let text = id.to_string();
        assert_eq!(text, "01234567-89ab-cdef-0011-223344556677");
        assert_eq!(text.parse::<Id>(), Ok(id));
        assert_eq!("0123456789abcdef0011223344556677".parse::<Id>(), Ok(id));
    }

    #[test]
    fn malformed_id_text_is_rejected() {
        for bad in [
            "",
            "xyz",
            "01234567-89ab-cdef-0011-22334455667",
            "0123456789abcdef-0011-2233-44556677",
        ] {
            assert!(bad.parse::<Id>().is_err(), "{bad}");
        }
    }

    #[test]
    fn derived_ids_never_look_like_uuid_v4() {
        let id = Id::derived(42, 7);
        let text = id.to_string();
        assert_eq!(text.as_bytes()[14], b'a');
        assert_ne!(Id::derived(42, 7), Id::derived(42, 8));
        assert_ne!(Id::derived(42, 7), Id::derived(43, 7));
    }

    #[test]
    fn only_ids_with_the_derived_marker_are_derived() {
        assert!(Id::derived(42, 7).is_derived());
        assert!(Id::derived(0xFFFF_FFFF_FFFF, u32::MAX).is_derived());
        let issue_13: Id = "00000000-0009-a000-0000-000000000001".parse().unwrap();
        assert!(issue_13.is_derived());
        let v4: Id = "0f1e2d3c-4b5a-4978-8a9b-0c1d2e3f4a5b".parse().unwrap();
        assert!(!v4.is_derived());
        let v8: Id = "0f1e2d3c-4b5a-8978-8a9b-0c1d2e3f4a5b".parse().unwrap();
        assert!(!v8.is_derived());
    }
}
