//! New resource IDs, drawn by the gateway so that the state machine stays
//! free of randomness: random UUID v4s, or, for a create with a request
//! token and no ID, a UUID v8 derived from the token so that every retry
//! proposes the same command.

use alcor_state_machine::Id;

/// A random RFC 4122 version-4 UUID as an [`Id`].
pub(crate) fn random_id() -> Result<Id, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(uuid_with_version(bytes, 0x40))
}

/// The ID of the `kind` resource created under request `token`: the
/// first 122 bits of a domain-separated BLAKE3 hash, as an RFC 9562
/// version-8 UUID (distinct from random v4 IDs and the state machine's
/// derived IDs).
pub(crate) fn token_id(kind: &str, token: &str) -> Id {
    let mut hasher = blake3::Hasher::new_derive_key("alcor-rs api-gateway request-token id v1");
    hasher.update(kind.as_bytes());
    hasher.update(&[0]);
    hasher.update(token.as_bytes());
    let hash = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.as_bytes()[..16]);
    uuid_with_version(bytes, 0x80)
}

fn uuid_with_version(mut bytes: [u8; 16], version: u8) -> Id {
    bytes[6] = (bytes[6] & 0x0f) | version;
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    Id(u128::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_are_stable_per_kind_and_token_and_version_8() {
        let a = token_id("vpc", "t-1");
        assert_eq!(a, token_id("vpc", "t-1"));
        assert_ne!(a, token_id("vpc", "t-2"));
        assert_ne!(a, token_id("port", "t-1"));
        assert_eq!(a.to_string().as_bytes()[14], b'8');
    }
}
