//! The SDK's typed errors, and the one place where a gRPC status from the
//! server (or from the transport) becomes one ([`classify`]).
//!
//! The server's error contract (api-gateway `error.rs`, `cluster.rs`): every
//! status it sends carries the header `x-alcor-reason` with a stable code; a
//! write that may still commit also carries `x-alcor-indeterminate: true`; a
//! rejected batch names its failing entry in `x-alcor-batch-index`; a
//! membership change sent to a follower names the leader in
//! `x-alcor-leader-api`. A status *without* a reason header did not come from
//! the gateway's logic: it is a transport failure (connection refused or
//! reset, local timeout) and the call may or may not have reached the server.

use alcor_proto::reason::Reason;
use tonic::{Code, Status};

// The server does not send CURRENT_REVISION_HEADER yet; until it does,
// `Error::PreconditionFailed::current_revision` is `None`.
pub use alcor_proto::{
    BATCH_INDEX_HEADER, CURRENT_REVISION_HEADER, INDETERMINATE_HEADER, LEADER_API_HEADER,
    REASON_HEADER, RESOURCE_HEADER,
};

/// What the server said about a refused call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    /// The stable reason code (`x-alcor-reason`), e.g. `IP_IN_USE`.
    pub reason: String,
    /// The server's message (for humans; do not parse it).
    pub message: String,
    /// The failing entry of a batch create (`x-alcor-batch-index`).
    pub batch_index: Option<u32>,
    /// The kind of resource the failure is about (`x-alcor-resource`, an
    /// [`alcor_proto::reason::Resource`] code): the missing one of
    /// NOT_FOUND, the used one of IN_USE, the pool of POOL_EXHAUSTED.
    pub resource: Option<String>,
}

impl std::fmt::Display for Details {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The server's message starts with the reason already.
        if self.message.starts_with(&self.reason) {
            f.write_str(&self.message)?;
        } else {
            write!(f, "{}: {}", self.reason, self.message)?;
        }
        if let Some(index) = self.batch_index {
            write!(f, " (batch entry {index})")?;
        }
        Ok(())
    }
}

/// Why a call failed.
///
/// Match on the variant to decide what to do; [`Error::reason`] gives the
/// server's stable code for finer decisions.
///
/// ```no_run
/// # async fn example(client: alcor_client::Client) {
/// use alcor_client::Error;
///
/// match client.ports().get("00000000-0000-4000-8000-000000000001").await {
///     Ok(port) => println!("port at revision {}", port.revision),
///     Err(Error::NotFound(_)) => println!("no such port"),
///     Err(Error::Unavailable { .. }) => println!("no member answered"),
///     Err(e) => println!("failed: {e}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The resource, or one it names, does not exist (NOT_FOUND).
    #[error("not found: {0}")]
    NotFound(Details),
    /// An ID or unique value (IP, MAC, CIDR, identical rule) is taken, or the
    /// request token was used for a different request (ALREADY_EXISTS).
    #[error("conflict: {0}")]
    Conflict(Details),
    /// The expected revision did not match (STALE_REVISION), the resource is
    /// still in use (IN_USE), or a membership change was refused
    /// (FAILED_PRECONDITION).
    #[error("precondition failed: {details}")]
    PreconditionFailed {
        /// What the server said.
        details: Details,
        /// The resource's revision now, when the server sends it (it does
        /// not yet: see [`CURRENT_REVISION_HEADER`]).
        current_revision: Option<u64>,
    },
    /// The project's quota would be exceeded (QUOTA_EXCEEDED).
    #[error("quota exceeded: {details}")]
    QuotaExceeded {
        /// What the server said (the message names the resource).
        details: Details,
    },
    /// An address pool ran out (POOL_EXHAUSTED) or the server is overloaded
    /// (OVERLOADED, retried by the SDK while time remains).
    #[error("resource exhausted: {0}")]
    ResourceExhausted(Details),
    /// Malformed or out-of-range input; nothing changed (INVALID_ARGUMENT).
    /// The server names the field in the message only (reason
    /// `INVALID_FIELD`, `INVALID_CIDR`, ...); it sends no structured field
    /// violations.
    #[error("invalid argument: {0}")]
    InvalidArgument(Details),
    /// No endpoint could serve the call within its deadline and attempts;
    /// the call certainly had no effect (a write that might have is
    /// [`Error::Indeterminate`] instead).
    #[error("unavailable: {message}")]
    Unavailable {
        /// The last failures, one per endpoint tried.
        message: String,
    },
    /// A write failed in a way that leaves its outcome unknown: it may still
    /// commit (server `x-alcor-indeterminate`, or the connection broke after
    /// the request was sent), and the SDK could not settle it by a safe
    /// retry. Re-read before acting.
    #[error("indeterminate (the write may or may not take effect): {message}")]
    Indeterminate {
        /// What happened.
        message: String,
    },
    /// The deadline passed on the server for a call with no pending effect,
    /// e.g. a barrier whose hosts did not ack in time (DEADLINE_EXCEEDED).
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(Details),
    /// A watch asked for a revision older than the member's retained history
    /// (COMPACTED), or fell so far behind that the history moved past it
    /// (WATCH_LAGGED): re-list, then watch from the list's revision.
    #[error("compacted: {0}")]
    Compacted(Details),
    /// No credential, or one the members do not know (UNAUTHENTICATED,
    /// reason `UNAUTHENTICATED`): give a token of the token file.
    #[error("unauthenticated: {0}")]
    Unauthenticated(Details),
    /// The credential's role may not do this, or not in this project or for
    /// this host (PERMISSION_DENIED; the reason is one of
    /// `alcor_proto::identity::Denial`'s codes).
    #[error("permission denied: {0}")]
    PermissionDenied(Details),
    /// The client configuration is unusable.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// Any other status (e.g. UNIMPLEMENTED from an older server).
    #[error("{code:?}: {details}")]
    Other {
        /// The gRPC status code.
        code: Code,
        /// What the server said.
        details: Details,
    },
}

impl Error {
    /// The server's reason code, when the error came from the server.
    pub fn reason(&self) -> Option<&str> {
        self.details().map(|d| d.reason.as_str())
    }

    /// The server's details, when the error came from the server.
    pub fn details(&self) -> Option<&Details> {
        match self {
            Error::NotFound(d)
            | Error::Conflict(d)
            | Error::ResourceExhausted(d)
            | Error::InvalidArgument(d)
            | Error::DeadlineExceeded(d)
            | Error::Unauthenticated(d)
            | Error::PermissionDenied(d)
            | Error::Compacted(d)
            | Error::PreconditionFailed { details: d, .. }
            | Error::QuotaExceeded { details: d }
            | Error::Other { details: d, .. } => Some(d),
            Error::Unavailable { .. } | Error::Indeterminate { .. } | Error::Config(_) => None,
        }
    }
}

/// What one failed attempt means for the call.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The server answered; retrying cannot change the answer.
    Final(Error),
    /// The server said nothing happened (UNAVAILABLE without the
    /// indeterminate flag, OVERLOADED, NOT_LEADER): any call may go on to
    /// another endpoint.
    NotApplied {
        /// For the failure summary.
        message: String,
        /// The leader's API address, when a follower named it.
        leader_api: Option<String>,
    },
    /// The call may have taken effect; only a call that is safe to repeat
    /// may go on.
    MaybeApplied {
        /// For the failure summary.
        message: String,
        /// The connection failed (not the server): reconnect before reuse.
        transport: bool,
    },
}

fn header(status: &Status, name: &str) -> Option<String> {
    let value = status.metadata().get(name)?.to_str().ok()?;
    Some(value.to_string())
}

/// Classifies one failed attempt.
pub(crate) fn classify(status: &Status) -> Verdict {
    let Some(reason) = header(status, REASON_HEADER) else {
        return classify_unexplained(status);
    };
    let details = Details {
        reason,
        message: status.message().to_string(),
        batch_index: header(status, BATCH_INDEX_HEADER).and_then(|v| v.parse().ok()),
        resource: header(status, RESOURCE_HEADER),
    };
    let indeterminate = header(status, INDETERMINATE_HEADER).is_some_and(|v| v == "true");
    let message = details.to_string();
    if indeterminate {
        return Verdict::MaybeApplied {
            message,
            transport: false,
        };
    }
    let error = match status.code() {
        Code::Unavailable => {
            return Verdict::NotApplied {
                message,
                leader_api: None,
            }
        }
        Code::ResourceExhausted if details.reason == Reason::Overloaded.code() => {
            return Verdict::NotApplied {
                message,
                leader_api: None,
            }
        }
        Code::FailedPrecondition if details.reason == Reason::NotLeader.code() => {
            return Verdict::NotApplied {
                message,
                leader_api: header(status, LEADER_API_HEADER),
            }
        }
        Code::FailedPrecondition | Code::Aborted
            if details.reason == Reason::Compacted.code()
                || details.reason == Reason::WatchLagged.code() =>
        {
            Error::Compacted(details)
        }
        Code::NotFound => Error::NotFound(details),
        Code::AlreadyExists => Error::Conflict(details),
        Code::FailedPrecondition => Error::PreconditionFailed {
            current_revision: header(status, CURRENT_REVISION_HEADER).and_then(|v| v.parse().ok()),
            details,
        },
        Code::ResourceExhausted if details.reason == Reason::QuotaExceeded.code() => {
            Error::QuotaExceeded { details }
        }
        Code::ResourceExhausted => Error::ResourceExhausted(details),
        Code::InvalidArgument => Error::InvalidArgument(details),
        Code::DeadlineExceeded => Error::DeadlineExceeded(details),
        Code::Unauthenticated => Error::Unauthenticated(details),
        Code::PermissionDenied => Error::PermissionDenied(details),
        code => Error::Other { code, details },
    };
    Verdict::Final(error)
}

/// A status without a reason header: the transport's, or a server layer
/// below the gateway (tonic's own decode errors, an unknown method).
fn classify_unexplained(status: &Status) -> Verdict {
    match status.code() {
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded => {
            Verdict::MaybeApplied {
                message: format!("{:?}: {}", status.code(), status.message()),
                transport: true,
            }
        }
        code => Verdict::Final(Error::Other {
            code,
            details: Details {
                reason: "-".to_string(),
                message: status.message().to_string(),
                batch_index: None,
                resource: None,
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::{MetadataMap, MetadataValue};

    fn status(code: Code, reason: &str, extra: &[(&'static str, &'static str)]) -> Status {
        let mut metadata = MetadataMap::new();
        metadata.insert(
            REASON_HEADER,
            MetadataValue::try_from(reason).expect("ascii"),
        );
        for (name, value) in extra {
            metadata.insert(*name, MetadataValue::from_static(value));
        }
        Status::with_metadata(code, format!("{reason}: text"), metadata)
    }

    #[test]
    fn stale_revision_is_a_precondition_failure_with_the_reason() {
        let verdict = classify(&status(Code::FailedPrecondition, "STALE_REVISION", &[]));
        let Verdict::Final(Error::PreconditionFailed {
            details,
            current_revision,
        }) = verdict
        else {
            panic!("unexpected {verdict:?}");
        };
        assert_eq!(details.reason, "STALE_REVISION");
        assert_eq!(current_revision, None);
    }

    #[test]
    fn indeterminate_flag_wins_over_the_code() {
        let verdict = classify(&status(
            Code::DeadlineExceeded,
            "TIMEOUT",
            &[(INDETERMINATE_HEADER, "true")],
        ));
        assert!(matches!(
            verdict,
            Verdict::MaybeApplied {
                transport: false,
                ..
            }
        ));
    }

    #[test]
    fn unavailable_from_the_server_means_nothing_happened() {
        let verdict = classify(&status(Code::Unavailable, "NO_LEADER", &[]));
        assert!(matches!(verdict, Verdict::NotApplied { .. }));
    }

    #[test]
    fn transport_failure_may_have_been_applied() {
        let verdict = classify(&Status::unavailable("tcp connect error"));
        assert!(matches!(
            verdict,
            Verdict::MaybeApplied {
                transport: true,
                ..
            }
        ));
    }

    #[test]
    fn quota_and_batch_index_are_typed() {
        let verdict = classify(&status(
            Code::ResourceExhausted,
            "QUOTA_EXCEEDED",
            &[(BATCH_INDEX_HEADER, "4")],
        ));
        let Verdict::Final(Error::QuotaExceeded { details }) = verdict else {
            panic!("unexpected {verdict:?}");
        };
        assert_eq!(details.batch_index, Some(4));
    }

    #[test]
    fn compacted_and_lagged_watches_are_compacted() {
        for (code, reason) in [
            (Code::FailedPrecondition, "COMPACTED"),
            (Code::Aborted, "WATCH_LAGGED"),
        ] {
            let verdict = classify(&status(code, reason, &[]));
            assert!(
                matches!(verdict, Verdict::Final(Error::Compacted(_))),
                "{verdict:?}"
            );
        }
    }

    #[test]
    fn not_leader_carries_the_leader_hint() {
        let verdict = classify(&status(
            Code::FailedPrecondition,
            "NOT_LEADER",
            &[(LEADER_API_HEADER, "127.0.0.1:7102")],
        ));
        let Verdict::NotApplied { leader_api, .. } = verdict else {
            panic!("unexpected {verdict:?}");
        };
        assert_eq!(leader_api.as_deref(), Some("127.0.0.1:7102"));
    }
}
