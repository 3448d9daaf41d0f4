//! Neutron's error body and the one place where a gRPC status of the
//! orchestrator becomes an HTTP error ([`from_status`], applied to a call's
//! answer by `Answer::rest`).

use std::borrow::Cow;

use alcor_api_gateway::{INDETERMINATE_HEADER, REASON_HEADER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tonic::{Code, Status};

/// An HTTP error answered as `{"NeutronError": {"type", "message", "detail"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Neutron's exception name (`PortNotFound`, `IpAddressInUse`, ...).
    pub kind: Cow<'static, str>,
    /// A human-readable message.
    pub message: String,
    /// The write may still commit (the gRPC call timed out or lost its leader).
    pub indeterminate: bool,
}

impl RestError {
    /// An error with this status, Neutron type and message.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> RestError {
        RestError {
            status,
            kind: Cow::Borrowed(kind),
            message: message.into(),
            indeterminate: false,
        }
    }

    /// 400 `BadRequest`: a malformed request, query or body.
    pub fn bad_request(message: impl Into<String>) -> RestError {
        RestError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 400 `InvalidInput`: an attribute with an unacceptable value.
    pub fn invalid_input(message: impl Into<String>) -> RestError {
        RestError::new(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            format!("Invalid input for operation: {}.", message.into()),
        )
    }

    /// 404 with the resource's own type (`PortNotFound`, ...).
    pub fn not_found(kind: &'static str, what: &str, id: &str) -> RestError {
        RestError::new(
            StatusCode::NOT_FOUND,
            kind,
            format!("{what} {id} could not be found."),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "NeutronError": {
                "type": self.kind,
                "message": self.message,
                "detail": "",
            }
        })
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let mut response = (self.status, crate::json_body(&self.body())).into_response();
        if self.indeterminate {
            response
                .headers_mut()
                .insert(INDETERMINATE_HEADER, HeaderValue::from_static("true"));
        }
        response
    }
}

/// An orchestrator call's answer as the message or the HTTP error.
pub(crate) trait Answer<T> {
    /// The message, or [`from_status`] of the status.
    fn rest(self) -> Result<T, RestError>;
}

impl<T> Answer<T> for Result<tonic::Response<T>, Status> {
    fn rest(self) -> Result<T, RestError> {
        self.map(tonic::Response::into_inner)
            .map_err(|s| from_status(&s))
    }
}

/// Maps a failed orchestrator call to Neutron's HTTP code and error type.
///
/// The reason comes from the `x-alcor-reason` header (falling back on the
/// gRPC code for reasons this table does not know); the resource kind of
/// NOT_FOUND and IN_USE comes from the rejection's message (`"network <id>
/// not found"`), which the state machine words stably.
///
/// | reason | kind | HTTP | Neutron type |
/// |---|---|---|---|
/// | NOT_FOUND | network/subnet/port/security group/router/host/floating IP | 404 | `NetworkNotFound`, `SubnetNotFound`, `PortNotFound`, `SecurityGroupNotFound`, `RouterNotFound`, `HostNotFound`, `FloatingIPNotFound` |
/// | IP_IN_USE | | 409 | `IpAddressInUse` |
/// | MAC_IN_USE | | 409 | `MacAddressInUse` |
/// | IN_USE | port, "floating IP ... already maps to" | 409 | `FloatingIPPortAlreadyAssociated` |
/// | IN_USE | network/subnet/port/security group/router | 409 | `NetworkInUse`, `SubnetInUse`, `PortInUse`, `SecurityGroupInUse`, `RouterInUse` |
/// | POOL_EXHAUSTED | subnet or network | 409 | `IpAddressGenerationFailure` |
/// | POOL_EXHAUSTED | MAC addresses | 503 | `MacAddressGenerationFailure` |
/// | POOL_EXHAUSTED | VNI range | 503 | `NoNetworkAvailable` |
/// | QUOTA_EXCEEDED | | 409 | `OverQuota` |
/// | RULE_EXISTS | | 409 | `SecurityGroupRuleExists` |
/// | ALREADY_EXISTS, TOKEN_CONFLICT | | 409 | `Conflict` |
/// | STALE_REVISION | | 412 | `RevisionNumberConstraintFailed` |
/// | OVERLAPPING_SUBNET, INVALID_CIDR, INVALID_FIELD, BATCH_TOO_LARGE, RESERVED_ID | | 400 | `InvalidInput` |
/// | IP_OUTSIDE_SUBNET | | 400 | `InvalidIpForSubnet` |
/// | NO_LEADER, NO_QUORUM, LEADER_UNREACHABLE, RAFT_STOPPED, OVERLOADED | | 503 | `ServiceUnavailable` |
/// | TIMEOUT | | 504 | `RequestTimeout` (indeterminate: header `x-alcor-indeterminate`) |
/// | anything else | | by gRPC code | `NotFound` 404, `Conflict` 409, `InvalidInput` 400, `OverQuota` 409, `ServiceUnavailable` 503, `RequestTimeout` 504, `InternalServerError` 500 |
pub fn from_status(status: &Status) -> RestError {
    let reason = status
        .metadata()
        .get(REASON_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let message = strip_prefixes(status.message(), reason);
    let kind = kind_of(message);
    let conflict = StatusCode::CONFLICT;
    let (http, neutron): (StatusCode, &'static str) = match reason {
        "NOT_FOUND" => (
            StatusCode::NOT_FOUND,
            match kind {
                Some("network") => "NetworkNotFound",
                Some("subnet") => "SubnetNotFound",
                Some("port") => "PortNotFound",
                Some("security group") => "SecurityGroupNotFound",
                Some("security group rule") => "SecurityGroupRuleNotFound",
                Some("router") => "RouterNotFound",
                Some("host") => "HostNotFound",
                Some("floating IP") => "FloatingIPNotFound",
                _ => "NotFound",
            },
        ),
        "IP_IN_USE" => (conflict, "IpAddressInUse"),
        "MAC_IN_USE" => (conflict, "MacAddressInUse"),
        "IN_USE" if kind == Some("port") && message.contains("floating IP") => {
            (conflict, "FloatingIPPortAlreadyAssociated")
        }
        "IN_USE" => (
            conflict,
            match kind {
                Some("network") => "NetworkInUse",
                Some("subnet") => "SubnetInUse",
                Some("port") => "PortInUse",
                Some("security group") => "SecurityGroupInUse",
                Some("router") => "RouterInUse",
                _ => "InUse",
            },
        ),
        "POOL_EXHAUSTED" if message.contains("MAC") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "MacAddressGenerationFailure",
        ),
        "POOL_EXHAUSTED" if message.contains("VNI") => {
            (StatusCode::SERVICE_UNAVAILABLE, "NoNetworkAvailable")
        }
        "POOL_EXHAUSTED" => (conflict, "IpAddressGenerationFailure"),
        "QUOTA_EXCEEDED" => (conflict, "OverQuota"),
        "RULE_EXISTS" => (conflict, "SecurityGroupRuleExists"),
        "ALREADY_EXISTS" | "TOKEN_CONFLICT" => (conflict, "Conflict"),
        "STALE_REVISION" => (
            StatusCode::PRECONDITION_FAILED,
            "RevisionNumberConstraintFailed",
        ),
        "OVERLAPPING_SUBNET" | "INVALID_CIDR" | "INVALID_FIELD" | "BATCH_TOO_LARGE"
        | "RESERVED_ID" => (StatusCode::BAD_REQUEST, "InvalidInput"),
        "IP_OUTSIDE_SUBNET" => (StatusCode::BAD_REQUEST, "InvalidIpForSubnet"),
        "NO_LEADER" | "NO_QUORUM" | "LEADER_UNREACHABLE" | "RAFT_STOPPED" | "OVERLOADED" => {
            (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
        }
        "TIMEOUT" => (StatusCode::GATEWAY_TIMEOUT, "RequestTimeout"),
        _ => match status.code() {
            Code::NotFound => (StatusCode::NOT_FOUND, "NotFound"),
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => {
                (conflict, "Conflict")
            }
            Code::InvalidArgument | Code::OutOfRange => (StatusCode::BAD_REQUEST, "InvalidInput"),
            Code::ResourceExhausted => (conflict, "OverQuota"),
            Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "RequestTimeout"),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "NotAuthorized"),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "PolicyNotAuthorized"),
            Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        },
    };
    let message = match neutron {
        "InvalidInput" => format!("Invalid input for operation: {message}."),
        "OverQuota" if reason == "QUOTA_EXCEEDED" => {
            // Neutron's wording: "Quota exceeded for resources: ['port']."
            let mut m = message.to_string();
            if let Some(first) = m.get(..1) {
                let upper = first.to_uppercase();
                m.replace_range(..1, &upper);
            }
            format!("{m}.")
        }
        _ => message.to_string(),
    };
    RestError {
        status: http,
        kind: Cow::Borrowed(neutron),
        message,
        indeterminate: status.metadata().get(INDETERMINATE_HEADER).is_some(),
    }
}

/// The rejection's own words: without the `REASON: ` prefix the gateway adds
/// and the `batch entry N rejected: ` wrapper of batch creates.
fn strip_prefixes<'a>(message: &'a str, reason: &str) -> &'a str {
    let mut rest = message;
    if !reason.is_empty() {
        if let Some(r) = rest.strip_prefix(reason).and_then(|r| r.strip_prefix(": ")) {
            rest = r;
        }
    }
    if let Some(r) = rest.strip_prefix("batch entry ") {
        if let Some((_, cause)) = r.split_once(" rejected: ") {
            rest = cause;
        }
    }
    rest
}

/// The resource kind a rejection message starts with.
fn kind_of(message: &str) -> Option<&'static str> {
    // Longest first: "security group rule" before "security group".
    const KINDS: [&str; 8] = [
        "security group rule",
        "security group",
        "floating IP",
        "network",
        "subnet",
        "port",
        "router",
        "host",
    ];
    KINDS
        .into_iter()
        .find(|k| message.strip_prefix(k).is_some_and(|r| r.starts_with(' ')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::{MetadataMap, MetadataValue};

    fn status(code: Code, reason: &'static str, message: &str) -> Status {
        let mut md = MetadataMap::new();
        md.insert(REASON_HEADER, MetadataValue::from_static(reason));
        Status::with_metadata(code, format!("{reason}: {message}"), md)
    }

    #[test]
    fn not_found_and_in_use_take_the_kind_from_the_message() {
        let e = from_status(&status(Code::NotFound, "NOT_FOUND", "network x not found"));
        assert_eq!(
            (e.status, e.kind.as_ref()),
            (StatusCode::NOT_FOUND, "NetworkNotFound")
        );
        let e = from_status(&status(
            Code::FailedPrecondition,
            "IN_USE",
            "subnet x is in use: 2 ports",
        ));
        assert_eq!(
            (e.status, e.kind.as_ref()),
            (StatusCode::CONFLICT, "SubnetInUse")
        );
        let e = from_status(&status(
            Code::NotFound,
            "NOT_FOUND",
            "batch entry 2 rejected: port y not found",
        ));
        assert_eq!(e.kind, "PortNotFound");
        assert_eq!(e.message, "port y not found");
    }

    #[test]
    fn revision_mismatch_is_412_and_pools_409() {
        let e = from_status(&status(
            Code::FailedPrecondition,
            "STALE_REVISION",
            "revision mismatch: expected 1, current 2",
        ));
        assert_eq!(e.status, StatusCode::PRECONDITION_FAILED);
        let e = from_status(&status(
            Code::ResourceExhausted,
            "POOL_EXHAUSTED",
            "no free address in subnet s",
        ));
        assert_eq!(
            (e.status, e.kind.as_ref()),
            (StatusCode::CONFLICT, "IpAddressGenerationFailure")
        );
        let e = from_status(&status(
            Code::ResourceExhausted,
            "QUOTA_EXCEEDED",
            "quota exceeded for resources: ['port']",
        ));
        assert_eq!(e.kind, "OverQuota");
        assert_eq!(e.message, "Quota exceeded for resources: ['port'].");
    }

    #[test]
    fn reserved_id_is_400_invalid_input() {
        let e = from_status(&status(
            Code::InvalidArgument,
            "RESERVED_ID",
            "invalid id: 00000000-0009-a000-0000-000000000001 is reserved for IDs the controller derives",
        ));
        assert_eq!(
            (e.status, e.kind.as_ref()),
            (StatusCode::BAD_REQUEST, "InvalidInput")
        );
    }

    #[test]
    fn unknown_reasons_fall_back_on_the_code() {
        let e = from_status(&status(Code::Unavailable, "SOMETHING_NEW", "x"));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        let e = from_status(&Status::invalid_argument("bad"));
        assert_eq!(
            (e.status, e.kind.as_ref()),
            (StatusCode::BAD_REQUEST, "InvalidInput")
        );
    }
}
