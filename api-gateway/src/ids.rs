//! New resource IDs, drawn by the gateway so that the state machine stays
//! free of randomness and clocks: time-ordered UUID v7s, or, for a create
//! with a request token and no ID, a UUID v8 derived from the token so that
//! every retry proposes the same command. Request ids are random UUID v4s.
//!
//! The random bits come from a ChaCha12 generator per thread, seeded once
//! from the operating system ([`fill_random`]): two `getrandom` system
//! calls per created port (its request id and its ID) were 2 % of a
//! leader's CPU under single-port write load.

use std::cell::RefCell;

use crate::orchestrator::now_ms;
use alcor_state_machine::Id;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;

thread_local! {
    /// This thread's generator, seeded on its first draw.
    static RNG: RefCell<Option<ChaCha12Rng>> = const { RefCell::new(None) };
}

/// Fills `bytes` from this thread's ChaCha12 generator, seeding it from the
/// operating system on the thread's first call. rand's `ThreadRng` is the
/// same generator, but it panics when its seeding fails; here that failure
/// is the caller's error, and the next call tries to seed again. It is not
/// reseeded later: the IDs it draws are not secrets (they must only not
/// collide, and not be guessable without the generator's state).
fn fill_random(bytes: &mut [u8]) -> Result<(), getrandom::Error> {
    RNG.with(|cell| {
        let mut rng = cell.borrow_mut();
        let rng = match &mut *rng {
            Some(rng) => rng,
            empty => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed)?;
                empty.insert(ChaCha12Rng::from_seed(seed))
            }
        };
        rng.fill_bytes(bytes);
        Ok(())
    })
}

/// A random RFC 4122 version-4 UUID as an [`Id`].
pub(crate) fn random_id() -> Result<Id, getrandom::Error> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    Ok(uuid_with_version(bytes, 0x40))
}

/// A new resource's ID: an RFC 9562 version-7 UUID, the Unix time in
/// milliseconds in its first 48 bits, then 74 random bits.
///
/// IDs drawn close in time sort close together, so the ports of a batch go
/// into the ID-ordered indexes (the ports' ID set, VPC -> ports, group ->
/// ports, host -> ports) side by side at the right end of each B-tree, not at
/// random places across trees of millions of entries, one cache miss per
/// level. `sm_memory` applies 1,000-port batches up to 2,000,000 ports about a
/// third faster with such IDs than with v4s (benches/README.md, "time-ordered
/// port IDs"). Within one millisecond the order is random, not a counter:
/// strictly increasing keys would leave each node std's B-tree splits with
/// 6 of its 11 keys for good (its split point at the right edge). A clock
/// before 1970 gives time 0; the 74 random bits keep IDs distinct whatever
/// the clock does. The time is the one the gateway stamps commands with
/// ([`now_ms`]).
pub(crate) fn time_ordered_id() -> Result<Id, getrandom::Error> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes[6..])?;
    bytes[..6].copy_from_slice(&now_ms().to_be_bytes()[2..]);
    Ok(uuid_with_version(bytes, 0x70))
}

/// The ID of the `kind` resource created under request `token`: the
/// first 122 bits of a domain-separated BLAKE3 hash, as an RFC 9562
/// version-8 UUID (distinct from the time-ordered v7 IDs and the state
/// machine's derived IDs).
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

    /// Read apart from [`now_ms`], so a broken clock there cannot pass.
    fn millis_now() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    }

    #[test]
    fn resource_ids_are_version_7_and_lead_with_the_time_they_were_drawn() {
        let before = millis_now();
        let first = time_ordered_id().expect("id");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = time_ordered_id().expect("id");
        let after = millis_now();
        for id in [first, second] {
            let text = id.to_string();
            assert_eq!(text.as_bytes()[14], b'7', "{text}");
            assert!(
                matches!(text.as_bytes()[19], b'8'..=b'b'),
                "variant 10: {text}"
            );
            assert!(!id.is_derived());
            let millis = id.0 >> 80;
            assert!(
                (before..=after).contains(&millis),
                "{text}: {millis} not in {before}..={after}"
            );
        }
        assert!(
            first < second,
            "{first} drawn 2 ms before {second} sorts first"
        );
    }

    #[test]
    fn threads_draw_different_ids() {
        let draw = || {
            std::thread::spawn(|| (0..4).map(|_| random_id().expect("id")).collect::<Vec<_>>())
                .join()
                .expect("thread")
        };
        let (a, b) = (draw(), draw());
        assert_ne!(a, b, "two threads' generators were seeded alike");
        let distinct: std::collections::BTreeSet<&Id> = a.iter().chain(&b).collect();
        assert_eq!(distinct.len(), 8);
    }

    #[test]
    fn resource_ids_drawn_in_one_millisecond_differ() {
        let ids: std::collections::BTreeSet<Id> =
            (0..1_000).map(|_| time_ordered_id().expect("id")).collect();
        assert_eq!(ids.len(), 1_000);
    }
}
