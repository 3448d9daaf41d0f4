//! Neutron's error body and the one place where a gRPC status of the
//! orchestrator becomes an HTTP error ([`from_status`], applied to a call's
//! answer by `Answer::rest`).

use std::borrow::Cow;

use alcor_proto::reason::{Reason, Resource};
use alcor_proto::{INDETERMINATE_HEADER, REASON_HEADER, RESOURCE_HEADER};
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
/// Decided from codes only, never from message text: the reason comes from
/// the `x-alcor-reason` header and the resource from `x-alcor-resource`
/// (both [`alcor_proto::reason`]); a status without a known reason falls
/// back on its gRPC code.
///
/// | reason | resource | HTTP | Neutron type |
/// |---|---|---|---|
/// | NOT_FOUND | network/subnet/port/security group (rule)/router/host/floating IP/QoS policy (rule) | 404 | `NetworkNotFound`, `SubnetNotFound`, `PortNotFound`, `SecurityGroupNotFound`, `SecurityGroupRuleNotFound`, `RouterNotFound`, `HostNotFound`, `FloatingIPNotFound`, `QosPolicyNotFound`, `QosRuleNotFound` |
/// | IP_IN_USE | | 409 | `IpAddressInUse` |
/// | MAC_IN_USE | | 409 | `MacAddressInUse` |
/// | ALREADY_ASSOCIATED | | 409 | `FloatingIPPortAlreadyAssociated` |
/// | PORT_SECURITY_REQUIRED | security_group | 409 | `PortSecurityAndIPRequiredForSecurityGroups` |
/// | PORT_SECURITY_REQUIRED | | 409 | `AddressPairAndPortSecurityRequired` |
/// | ROUTER_INTERFACE_PORT | port | 409 | `ServicePortInUse` |
/// | IN_USE | network/subnet/port/security group/router/QoS policy | 409 | `NetworkInUse`, `SubnetInUse`, `PortInUse`, `SecurityGroupInUse`, `RouterInUse`, `QosPolicyInUse` |
/// | QOS_RULE_EXISTS | qos_rule | 409 | `QoSRulesConflict` |
/// | EXTERNAL_NETWORK_UNREACHABLE | network | 404 | `ExternalGatewayForFloatingIPNotFound` |
/// | GATEWAY_IN_USE | router | 409 | `RouterExternalGatewayInUseByFloatingIp` |
/// | POOL_EXHAUSTED | subnet, network or none | 409 | `IpAddressGenerationFailure` |
/// | POOL_EXHAUSTED | mac_address | 503 | `MacAddressGenerationFailure` |
/// | POOL_EXHAUSTED | vni | 503 | `NoNetworkAvailable` |
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
    let header = |name: &str| {
        status
            .metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let reason_code = header(REASON_HEADER);
    let reason = Reason::from_code(reason_code);
    let resource = Resource::from_code(header(RESOURCE_HEADER));
    let message = strip_prefixes(status.message(), reason_code);
    let conflict = StatusCode::CONFLICT;
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    let (http, neutron): (StatusCode, &'static str) = match reason {
        Some(Reason::NotFound) => (
            StatusCode::NOT_FOUND,
            match resource {
                Some(Resource::Network) => "NetworkNotFound",
                Some(Resource::Subnet) => "SubnetNotFound",
                Some(Resource::Port) => "PortNotFound",
                Some(Resource::SecurityGroup) => "SecurityGroupNotFound",
                Some(Resource::SecurityGroupRule) => "SecurityGroupRuleNotFound",
                Some(Resource::Router) => "RouterNotFound",
                Some(Resource::Host) => "HostNotFound",
                Some(Resource::FloatingIp) => "FloatingIPNotFound",
                Some(Resource::QosPolicy) => "QosPolicyNotFound",
                Some(Resource::QosRule) => "QosRuleNotFound",
                _ => "NotFound",
            },
        ),
        Some(Reason::IpInUse) => (conflict, "IpAddressInUse"),
        Some(Reason::MacInUse) => (conflict, "MacAddressInUse"),
        Some(Reason::AlreadyAssociated) => (conflict, "FloatingIPPortAlreadyAssociated"),
        Some(Reason::PortSecurityRequired) => (
            conflict,
            match resource {
                Some(Resource::SecurityGroup) => "PortSecurityAndIPRequiredForSecurityGroups",
                _ => "AddressPairAndPortSecurityRequired",
            },
        ),
        Some(Reason::RouterInterfacePort) => (conflict, "ServicePortInUse"),
        Some(Reason::QosRuleExists) => (conflict, "QoSRulesConflict"),
        Some(Reason::ExternalNetworkUnreachable) => (
            StatusCode::NOT_FOUND,
            "ExternalGatewayForFloatingIPNotFound",
        ),
        Some(Reason::GatewayInUse) => (conflict, "RouterExternalGatewayInUseByFloatingIp"),
        Some(Reason::InUse) => (
            conflict,
            match resource {
                Some(Resource::Network) => "NetworkInUse",
                Some(Resource::Subnet) => "SubnetInUse",
                Some(Resource::Port) => "PortInUse",
                Some(Resource::SecurityGroup) => "SecurityGroupInUse",
                Some(Resource::Router) => "RouterInUse",
                Some(Resource::QosPolicy) => "QosPolicyInUse",
                _ => "InUse",
            },
        ),
        Some(Reason::PoolExhausted) => match resource {
            Some(Resource::MacAddress) => (unavailable, "MacAddressGenerationFailure"),
            Some(Resource::Vni) => (unavailable, "NoNetworkAvailable"),
            _ => (conflict, "IpAddressGenerationFailure"),
        },
        Some(Reason::QuotaExceeded) => (conflict, "OverQuota"),
        Some(Reason::RuleExists) => (conflict, "SecurityGroupRuleExists"),
        Some(Reason::AlreadyExists | Reason::TokenConflict) => (conflict, "Conflict"),
        Some(Reason::StaleRevision) => (
            StatusCode::PRECONDITION_FAILED,
            "RevisionNumberConstraintFailed",
        ),
        Some(
            Reason::OverlappingSubnet
            | Reason::InvalidCidr
            | Reason::InvalidField
            | Reason::BatchTooLarge
            | Reason::ReservedId,
        ) => (StatusCode::BAD_REQUEST, "InvalidInput"),
        Some(Reason::IpOutsideSubnet) => (StatusCode::BAD_REQUEST, "InvalidIpForSubnet"),
        Some(
            Reason::NoLeader
            | Reason::NoQuorum
            | Reason::LeaderUnreachable
            | Reason::RaftStopped
            | Reason::Overloaded,
        ) => (unavailable, "ServiceUnavailable"),
        Some(Reason::Timeout) => (StatusCode::GATEWAY_TIMEOUT, "RequestTimeout"),
        Some(
            Reason::NotLeader
            | Reason::MembershipRejected
            | Reason::BarrierTimeout
            | Reason::Compacted
            | Reason::WatchLagged
            | Reason::Internal,
        )
        | None => match status.code() {
            Code::NotFound => (StatusCode::NOT_FOUND, "NotFound"),
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => {
                (conflict, "Conflict")
            }
            Code::InvalidArgument | Code::OutOfRange => (StatusCode::BAD_REQUEST, "InvalidInput"),
            Code::ResourceExhausted => (conflict, "OverQuota"),
            Code::Unavailable => (unavailable, "ServiceUnavailable"),
            Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "RequestTimeout"),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "NotAuthorized"),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "PolicyNotAuthorized"),
            Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        },
    };
    let message = match neutron {
        "InvalidInput" => format!("Invalid input for operation: {message}."),
        "OverQuota" if reason == Some(Reason::QuotaExceeded) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use alcor_api_gateway::ApiError;
    use alcor_state_machine::{Id, Kind, Pool, PortSecurityNeed, Rejection};
    use tonic::metadata::{MetadataMap, MetadataValue};

    fn status(code: Code, reason: &'static str, message: &str) -> Status {
        let mut md = MetadataMap::new();
        md.insert(REASON_HEADER, MetadataValue::from_static(reason));
        Status::with_metadata(code, format!("{reason}: {message}"), md)
    }

    /// What the REST gateway answers for a rejection, through the real
    /// gRPC mapping of the API gateway.
    fn rest_of(rejection: Rejection) -> (StatusCode, String) {
        let e = from_status(&alcor_api_gateway::to_status(&ApiError::Rejected(
            rejection,
        )));
        (e.status, e.kind.into_owned())
    }

    #[test]
    fn neutron_types_follow_the_rejection_not_its_words() {
        let id = Id(7);
        let not_found = |kind| Rejection::NotFound {
            kind,
            id: "x".to_string(),
        };
        let in_use = |kind| Rejection::InUse {
            kind,
            id: "x".to_string(),
            reason: "it is used".to_string(),
        };
        let exhausted = |pool| Rejection::Exhausted { pool };
        let table = [
            (not_found(Kind::Vpc), 404, "NetworkNotFound"),
            (not_found(Kind::Subnet), 404, "SubnetNotFound"),
            (not_found(Kind::Port), 404, "PortNotFound"),
            (not_found(Kind::SecurityGroup), 404, "SecurityGroupNotFound"),
            (
                not_found(Kind::SecurityGroupRule),
                404,
                "SecurityGroupRuleNotFound",
            ),
            (not_found(Kind::Router), 404, "RouterNotFound"),
            (not_found(Kind::Host), 404, "HostNotFound"),
            (not_found(Kind::FloatingIp), 404, "FloatingIPNotFound"),
            (in_use(Kind::Vpc), 409, "NetworkInUse"),
            (in_use(Kind::Subnet), 409, "SubnetInUse"),
            (in_use(Kind::Port), 409, "PortInUse"),
            (in_use(Kind::SecurityGroup), 409, "SecurityGroupInUse"),
            (in_use(Kind::Router), 409, "RouterInUse"),
            (
                exhausted(Pool::Subnet(id)),
                409,
                "IpAddressGenerationFailure",
            ),
            (
                exhausted(Pool::Network(id)),
                409,
                "IpAddressGenerationFailure",
            ),
            (
                exhausted(Pool::MacAddresses(id)),
                503,
                "MacAddressGenerationFailure",
            ),
            (exhausted(Pool::Vnis), 503, "NoNetworkAvailable"),
            (
                Rejection::PoolExhausted {
                    scope: "MAC addresses of network x".to_string(),
                },
                409,
                "IpAddressGenerationFailure",
            ),
            (
                Rejection::PortSecurityRequired {
                    port_id: id,
                    need: PortSecurityNeed::SecurityGroups,
                },
                409,
                "PortSecurityAndIPRequiredForSecurityGroups",
            ),
            (
                Rejection::PortSecurityRequired {
                    port_id: id,
                    need: PortSecurityNeed::AllowedAddressPairs,
                },
                409,
                "AddressPairAndPortSecurityRequired",
            ),
            (
                Rejection::RouterInterfacePort {
                    port_id: id,
                    router_id: Id(9),
                },
                409,
                "ServicePortInUse",
            ),
            (
                Rejection::AlreadyAssociated {
                    port_id: id,
                    ip: "10.0.0.5".parse().unwrap(),
                    floating_ip_id: Id(8),
                },
                409,
                "FloatingIPPortAlreadyAssociated",
            ),
            (
                Rejection::BatchEntry {
                    index: 2,
                    cause: Box::new(not_found(Kind::Port)),
                },
                404,
                "PortNotFound",
            ),
        ];
        for (rejection, http, neutron) in table {
            let what = format!("{rejection:?}");
            assert_eq!(
                rest_of(rejection),
                (StatusCode::from_u16(http).unwrap(), neutron.to_string()),
                "{what}"
            );
        }
    }

    #[test]
    fn rewording_a_message_changes_no_error_type() {
        let mut md = MetadataMap::new();
        md.insert(REASON_HEADER, MetadataValue::from_static("NOT_FOUND"));
        md.insert(RESOURCE_HEADER, MetadataValue::from_static("port"));
        let reworded = Status::with_metadata(
            Code::NotFound,
            "NOT_FOUND: network n has no MAC or VNI or floating IP",
            md,
        );
        assert_eq!(from_status(&reworded).kind, "PortNotFound");
    }

    #[test]
    fn batch_entry_words_are_stripped_from_the_message() {
        let e = from_status(&status(
            Code::NotFound,
            "NOT_FOUND",
            "batch entry 2 rejected: port y not found",
        ));
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
