//! The client's deadline, from the `grpc-timeout` request header.

use std::time::Duration;

use tonic::metadata::MetadataMap;

use crate::limits::{
    DEADLINE_MARGIN_DIVISOR, DEADLINE_MARGIN_MS_MAX, DEADLINE_MARGIN_MS_MIN, REQUEST_TIMEOUT_MS_MAX,
};

/// How long the gateway may work on a request: the client's `grpc-timeout`
/// minus a margin (see `DEADLINE_MARGIN_MS_MIN`), capped at `REQUEST_TIMEOUT_MS_MAX`. `None` when the
/// client set no (parseable) deadline: Raft's own request timeout applies.
pub fn budget(metadata: &MetadataMap) -> Option<Duration> {
    let header = metadata.get("grpc-timeout")?.to_str().ok()?;
    let timeout = parse_grpc_timeout(header)?;
    let capped = timeout.min(Duration::from_millis(REQUEST_TIMEOUT_MS_MAX));
    let margin = (capped / DEADLINE_MARGIN_DIVISOR).clamp(
        Duration::from_millis(DEADLINE_MARGIN_MS_MIN),
        Duration::from_millis(DEADLINE_MARGIN_MS_MAX),
    );
    Some(capped.saturating_sub(margin))
}

/// Parses `TimeoutValue TimeoutUnit` per the gRPC HTTP/2 spec: at most 8
/// digits, then one of `H M S m u n`.
fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    let split = text.len().checked_sub(1)?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    match unit {
        "H" => Some(Duration::from_secs(value.saturating_mul(3600))),
        "M" => Some(Duration::from_secs(value.saturating_mul(60))),
        "S" => Some(Duration::from_secs(value)),
        "m" => Some(Duration::from_millis(value)),
        "u" => Some(Duration::from_micros(value)),
        "n" => Some(Duration::from_nanos(value)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units_are_understood() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("5000u"), Some(Duration::from_millis(5)));
    }

    #[test]
    fn malformed_grpc_timeout_is_ignored() {
        for bad in ["", "m", "123456789m", "12x", "-1S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn long_deadlines_are_capped() {
        let mut metadata = MetadataMap::new();
        metadata.insert(
            "grpc-timeout",
            tonic::metadata::MetadataValue::from_static("10H"),
        );
        let budget = budget(&metadata);
        assert!(budget <= Some(Duration::from_millis(REQUEST_TIMEOUT_MS_MAX)));
    }

    #[test]
    fn the_gateway_answers_ahead_of_the_clients_deadline_by_a_proportional_margin() {
        let of = |header: &'static str| {
            let mut metadata = MetadataMap::new();
            metadata.insert(
                "grpc-timeout",
                tonic::metadata::MetadataValue::from_static(header),
            );
            budget(&metadata)
        };
        assert_eq!(of("2S"), Some(Duration::from_millis(1_900)));
        assert_eq!(of("50m"), Some(Duration::from_millis(45)));
        assert_eq!(of("30S"), Some(Duration::from_millis(29_750)));
    }
}
