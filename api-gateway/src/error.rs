//! The gateway's error type and the one place where every failure becomes a
//! gRPC status ([`to_status`]). Each status carries a stable reason code in
//! the `x-alcor-reason` header (and at the start of its message).

use alcor_proto::identity::Denial;
use alcor_proto::reason::{Reason, Resource};
use alcor_raft_core::{ReadError, WriteError};
use alcor_state_machine::{Kind, Pool, PortSecurityNeed, Rejection};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

pub use alcor_proto::{BATCH_INDEX_HEADER, INDETERMINATE_HEADER, REASON_HEADER, RESOURCE_HEADER};

/// Why a gateway call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The input (checked by the gateway) or the command (checked by the
    /// state machine) was refused; nothing changed.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The write was not acknowledged.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The read could not be served.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// `CONCURRENT_REQUESTS_MAX` requests are already in flight.
    #[error("too many concurrent requests")]
    Overloaded,
    /// Authentication or authorization refused the call.
    #[error("{1}")]
    Denied(Denial, String),
    /// The state machine answered with an unexpected reply (a bug).
    #[error("internal: {0}")]
    Internal(String),
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        to_status(&error)
    }
}

/// Maps every gateway failure to a status code, reason and headers.
///
/// Choices: a value that must be unique and is taken (ID, IP, MAC,
/// overlapping CIDR, identical rule) is ALREADY_EXISTS, like Neutron's 409s;
/// a compare-and-set mismatch (STALE_REVISION, Neutron's 412) and a delete
/// of something still referenced (IN_USE) are FAILED_PRECONDITION: the
/// caller must re-read before retrying. Leader trouble is UNAVAILABLE so
/// clients move to another node; a write timeout is DEADLINE_EXCEEDED and
/// flagged indeterminate.
pub fn to_status(error: &ApiError) -> Status {
    let mut metadata = MetadataMap::new();
    let (code, reason) = match error {
        ApiError::Rejected(rejection) => {
            let mut rejection = rejection;
            if let Rejection::BatchEntry { index, cause } = rejection {
                metadata.insert(BATCH_INDEX_HEADER, MetadataValue::from(*index as u64));
                rejection = cause;
            }
            let (code, reason, resource) = rejection_status(rejection);
            if let Some(resource) = resource {
                metadata.insert(RESOURCE_HEADER, MetadataValue::from_static(resource.code()));
            }
            (code, reason.code())
        }
        ApiError::Write(write) => {
            let (code, reason) = match write {
                WriteError::NoLeader => (Code::Unavailable, Reason::NoLeader),
                WriteError::Timeout => (Code::DeadlineExceeded, Reason::Timeout),
                WriteError::LeaderUnreachable { .. } => {
                    (Code::Unavailable, Reason::LeaderUnreachable)
                }
                WriteError::Fatal(_) => (Code::Unavailable, Reason::RaftStopped),
            };
            // Only NoLeader guarantees the proposal was never appended.
            if !matches!(write, WriteError::NoLeader) {
                metadata.insert(INDETERMINATE_HEADER, MetadataValue::from_static("true"));
            }
            (code, reason.code())
        }
        ApiError::Read(read) => {
            let (code, reason) = match read {
                ReadError::NoLeader => (Code::Unavailable, Reason::NoLeader),
                ReadError::NoQuorum(_) => (Code::Unavailable, Reason::NoQuorum),
                ReadError::Timeout => (Code::DeadlineExceeded, Reason::Timeout),
                ReadError::Overloaded => (Code::ResourceExhausted, Reason::Overloaded),
                ReadError::LeaderUnreachable { .. } => {
                    (Code::Unavailable, Reason::LeaderUnreachable)
                }
                ReadError::Fatal(_) => (Code::Unavailable, Reason::RaftStopped),
            };
            (code, reason.code())
        }
        ApiError::Overloaded => (Code::ResourceExhausted, Reason::Overloaded.code()),
        ApiError::Denied(Denial::Unauthenticated, _) => {
            (Code::Unauthenticated, Denial::Unauthenticated.code())
        }
        ApiError::Denied(denial, _) => (Code::PermissionDenied, denial.code()),
        ApiError::Internal(_) => (Code::Internal, Reason::Internal.code()),
    };
    metadata.insert(REASON_HEADER, MetadataValue::from_static(reason));
    Status::with_metadata(code, format!("{reason}: {error}"), metadata)
}

/// The status code, reason and resource of one (non-batch) rejection: the
/// one place a state-machine rejection becomes wire codes.
pub fn rejection_status(rejection: &Rejection) -> (Code, Reason, Option<Resource>) {
    let exists = Code::AlreadyExists;
    let invalid = Code::InvalidArgument;
    let exhausted = Code::ResourceExhausted;
    match rejection {
        Rejection::NotFound { kind, .. } => {
            (Code::NotFound, Reason::NotFound, Some(resource(*kind)))
        }
        Rejection::AlreadyExists { kind, .. } => {
            (exists, Reason::AlreadyExists, Some(resource(*kind)))
        }
        Rejection::IpInUse { .. } => (exists, Reason::IpInUse, None),
        Rejection::MacInUse { .. } => (exists, Reason::MacInUse, None),
        Rejection::OverlappingSubnet { .. } => (exists, Reason::OverlappingSubnet, None),
        Rejection::RuleExists { .. } => (exists, Reason::RuleExists, None),
        Rejection::TokenConflict { .. } => (exists, Reason::TokenConflict, None),
        Rejection::AlreadyAssociated { .. } => (
            exists,
            Reason::AlreadyAssociated,
            Some(Resource::FloatingIp),
        ),
        Rejection::PortSecurityRequired { need, .. } => (
            Code::FailedPrecondition,
            Reason::PortSecurityRequired,
            match need {
                PortSecurityNeed::SecurityGroups => Some(Resource::SecurityGroup),
                PortSecurityNeed::AllowedAddressPairs => None,
            },
        ),
        Rejection::RouterInterfacePort { .. } => (
            Code::FailedPrecondition,
            Reason::RouterInterfacePort,
            Some(Resource::Port),
        ),
        Rejection::QosRuleExists { .. } => (exists, Reason::QosRuleExists, Some(Resource::QosRule)),
        Rejection::ExternalNetworkUnreachable { .. } => (
            Code::FailedPrecondition,
            Reason::ExternalNetworkUnreachable,
            Some(Resource::Network),
        ),
        Rejection::GatewayInUseByFloatingIps { .. } => (
            Code::FailedPrecondition,
            Reason::GatewayInUse,
            Some(Resource::Router),
        ),
        Rejection::InvalidCidr { .. } => (invalid, Reason::InvalidCidr, None),
        Rejection::InvalidField { .. } => (invalid, Reason::InvalidField, None),
        Rejection::IpOutsideSubnet { .. } => (invalid, Reason::IpOutsideSubnet, None),
        Rejection::BatchTooLarge { .. } => (invalid, Reason::BatchTooLarge, None),
        Rejection::ReservedId { .. } => (invalid, Reason::ReservedId, None),
        Rejection::StaleRevision { .. } => (Code::FailedPrecondition, Reason::StaleRevision, None),
        Rejection::InUse { kind, .. } => (
            Code::FailedPrecondition,
            Reason::InUse,
            Some(resource(*kind)),
        ),
        // An older member's words: the pool is not known by type.
        Rejection::PoolExhausted { .. } => (exhausted, Reason::PoolExhausted, None),
        Rejection::Exhausted { pool } => {
            let resource = match pool {
                Pool::Subnet(_) => Resource::Subnet,
                Pool::Network(_) => Resource::Network,
                Pool::MacAddresses(_) => Resource::MacAddress,
                Pool::Vnis => Resource::Vni,
            };
            (exhausted, Reason::PoolExhausted, Some(resource))
        }
        Rejection::QuotaExceeded { .. } => (exhausted, Reason::QuotaExceeded, None),
        // Nested batches do not exist; treat one like its own entry.
        Rejection::BatchEntry { cause, .. } => rejection_status(cause),
    }
}

/// The wire name of a state-machine resource kind.
fn resource(kind: Kind) -> Resource {
    match kind {
        Kind::Host => Resource::Host,
        Kind::Vpc => Resource::Network,
        Kind::Subnet => Resource::Subnet,
        Kind::Port => Resource::Port,
        Kind::SecurityGroup => Resource::SecurityGroup,
        Kind::SecurityGroupRule => Resource::SecurityGroupRule,
        Kind::Router => Resource::Router,
        Kind::QosPolicy => Resource::QosPolicy,
        Kind::QosRule => Resource::QosRule,
        Kind::FloatingIp => Resource::FloatingIp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(status: &Status) -> Option<&str> {
        status.metadata().get(REASON_HEADER)?.to_str().ok()
    }

    #[test]
    fn rejection_carries_its_code_in_the_reason_header() {
        let status = to_status(&ApiError::Rejected(Rejection::NotFound {
            kind: Kind::Port,
            id: "x".to_string(),
        }));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(reason(&status), Some("NOT_FOUND"));
        assert!(status.message().starts_with("NOT_FOUND: "));
    }

    #[test]
    fn reserved_id_is_an_invalid_argument_with_its_own_reason() {
        let status = to_status(&ApiError::Rejected(Rejection::ReservedId {
            field: "id".to_string(),
            id: alcor_state_machine::Id::derived(9, 1),
        }));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(reason(&status), Some("RESERVED_ID"));
    }

    #[test]
    fn batch_entry_rejection_reports_the_entry_cause_and_index() {
        let status = to_status(&ApiError::Rejected(Rejection::BatchEntry {
            index: 3,
            cause: Box::new(Rejection::StaleRevision {
                expected: 1,
                actual: 2,
            }),
        }));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(reason(&status), Some("STALE_REVISION"));
        let index = status.metadata().get(BATCH_INDEX_HEADER);
        assert_eq!(index.and_then(|v| v.to_str().ok()), Some("3"));
    }

    #[test]
    fn write_timeout_is_flagged_indeterminate_but_no_leader_is_not() {
        let timeout = to_status(&ApiError::Write(WriteError::Timeout));
        assert_eq!(timeout.code(), Code::DeadlineExceeded);
        assert!(timeout.metadata().get(INDETERMINATE_HEADER).is_some());
        let no_leader = to_status(&ApiError::Write(WriteError::NoLeader));
        assert_eq!(no_leader.code(), Code::Unavailable);
        assert!(no_leader.metadata().get(INDETERMINATE_HEADER).is_none());
    }
}
