//! The request id of a gRPC call: which header carries it and which ids a
//! member keeps.
//!
//! A caller may name its call in [`REQUEST_ID_HEADER`]; the member keeps an
//! id that [`is_kept`] accepts and otherwise makes its own (`req-<uuid>`,
//! the form the REST API's `X-Openstack-Request-Id` has). Either way the
//! response carries the id in the same header and every log line of the
//! call carries it as `request_id`, so a client's report can be matched
//! with the member's logs.

/// The header naming one gRPC call, in the request and in the response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest caller-supplied request id a member keeps.
pub const REQUEST_ID_BYTES_MAX: usize = 128;

/// Whether a member keeps `id` from a caller: 1 to
/// [`REQUEST_ID_BYTES_MAX`] bytes of ASCII letters, digits and `-._:`
/// (nothing that could forge or garble a log line).
pub fn is_kept(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= REQUEST_ID_BYTES_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_short_plain_ids_and_refuses_the_rest() {
        assert!(is_kept("req-0b9c5f0e-1d2c-4a51-9d3e-6f4c1b2a3d4e"));
        assert!(is_kept("trace:abc_1.2"));
        assert!(is_kept(&"a".repeat(REQUEST_ID_BYTES_MAX)));
        assert!(!is_kept(""));
        assert!(!is_kept(&"a".repeat(REQUEST_ID_BYTES_MAX + 1)));
        assert!(!is_kept("a b"));
        assert!(!is_kept("a\"b"));
        assert!(!is_kept("é"));
    }
}
