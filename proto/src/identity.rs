//! Who a caller is: the identities every Alcor listener recognises, and how
//! they are written on the wire.
//!
//! An identity reaches a member in one of two ways:
//! - a client certificate whose subject alternative names hold one URI of the
//!   form below (as SPIFFE does; the certificate's CN is not used);
//! - a bearer token (`authorization: Bearer TOKEN`) that the member's token
//!   file maps to an identity.
//!
//! | identity | URI | may |
//! |---|---|---|
//! | [`Principal::Admin`] | `alcor://admin` | everything, in every project |
//! | [`Principal::Member`] | `alcor://member/PROJECT` | read and write its project |
//! | [`Principal::Reader`] | `alcor://reader/PROJECT` | read its project |
//! | [`Principal::Agent`] | `alcor://agent/HOST` | its own host's push stream and ports |
//! | [`Principal::Peer`] | `alcor://peer/ID` | the Raft port, as member `ID` |
//!
//! This is part of the wire contract: servers, the SDK, the CLI and the
//! certificate generator of `alcor dev` all use this module.

use std::fmt;

/// The gRPC metadata key (and HTTP header) carrying a bearer token.
pub const AUTHORIZATION_HEADER: &str = "authorization";
/// The scheme prefix of [`AUTHORIZATION_HEADER`]'s value.
pub const BEARER_PREFIX: &str = "Bearer ";
/// The URI scheme and authority prefix of every identity URI.
pub const IDENTITY_URI_PREFIX: &str = "alcor://";
/// Longest project or host name an identity may carry (bytes).
pub const IDENTITY_NAME_BYTES_MAX: usize = 255;

/// A caller's identity (see the module docs for what each may do).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// Cluster operations and every project.
    Admin,
    /// Reads and writes in one project.
    Member {
        /// The project.
        project: String,
    },
    /// Reads in one project.
    Reader {
        /// The project.
        project: String,
    },
    /// The host agent of one host.
    Agent {
        /// The host id.
        host: String,
    },
    /// A Raft member of the cluster.
    Peer {
        /// The member id.
        member: u64,
    },
}

/// A bearer token a client sends; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// Wraps a token (surrounding whitespace, as left by a token file's
    /// trailing newline, is dropped).
    pub fn new(token: impl Into<String>) -> BearerToken {
        BearerToken(token.into().trim().to_string())
    }

    /// The [`AUTHORIZATION_HEADER`] value: `Bearer TOKEN`.
    pub fn header_value(&self) -> String {
        format!("{BEARER_PREFIX}{}", self.0)
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(***)")
    }
}

/// Why a call was refused by authentication or authorization: the reason
/// code (`x-alcor-reason`) of an UNAUTHENTICATED or PERMISSION_DENIED
/// status. Clients and the REST gateway map these codes, never the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Denial {
    /// No credential where one is required, or an unknown token
    /// (UNAUTHENTICATED).
    Unauthenticated,
    /// The caller's role may not call this method at all.
    RoleDenied,
    /// The request acts on or names a project other than the caller's.
    ProjectDenied,
    /// An agent named a host other than its own.
    HostDenied,
    /// The request sets an attribute only an admin may set
    /// (`binding:host_id`, as in Neutron's policy).
    AdminOnlyAttribute,
}

impl Denial {
    /// Every denial, for tables and tests.
    pub const ALL: [Denial; 5] = [
        Denial::Unauthenticated,
        Denial::RoleDenied,
        Denial::ProjectDenied,
        Denial::HostDenied,
        Denial::AdminOnlyAttribute,
    ];

    /// The stable reason code.
    pub const fn code(self) -> &'static str {
        match self {
            Denial::Unauthenticated => "UNAUTHENTICATED",
            Denial::RoleDenied => "ROLE_DENIED",
            Denial::ProjectDenied => "PROJECT_DENIED",
            Denial::HostDenied => "HOST_DENIED",
            Denial::AdminOnlyAttribute => "ADMIN_ONLY_ATTRIBUTE",
        }
    }

    /// The denial of a reason code, if it is one.
    pub fn from_code(code: &str) -> Option<Denial> {
        Denial::ALL.into_iter().find(|d| d.code() == code)
    }
}

/// Why an identity URI was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityError(String);

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid identity URI: {}", self.0)
    }
}

impl std::error::Error for IdentityError {}

impl Principal {
    /// The identity's URI, as written into a certificate's SAN.
    pub fn to_uri(&self) -> String {
        match self {
            Principal::Admin => format!("{IDENTITY_URI_PREFIX}admin"),
            Principal::Member { project } => format!("{IDENTITY_URI_PREFIX}member/{project}"),
            Principal::Reader { project } => format!("{IDENTITY_URI_PREFIX}reader/{project}"),
            Principal::Agent { host } => format!("{IDENTITY_URI_PREFIX}agent/{host}"),
            Principal::Peer { member } => format!("{IDENTITY_URI_PREFIX}peer/{member}"),
        }
    }

    /// Parses an identity URI (the inverse of [`Principal::to_uri`]).
    pub fn parse_uri(uri: &str) -> Result<Principal, IdentityError> {
        let rest = uri.strip_prefix(IDENTITY_URI_PREFIX).ok_or_else(|| {
            IdentityError(format!("{uri:?} does not start with {IDENTITY_URI_PREFIX}"))
        })?;
        if rest == "admin" {
            return Ok(Principal::Admin);
        }
        let (kind, name) = rest
            .split_once('/')
            .ok_or_else(|| IdentityError(format!("{uri:?} has no kind/name")))?;
        if name.is_empty() || name.len() > IDENTITY_NAME_BYTES_MAX || name.contains('/') {
            return Err(IdentityError(format!(
                "{uri:?}: the name must have 1 to {IDENTITY_NAME_BYTES_MAX} bytes and no '/'"
            )));
        }
        let name = name.to_string();
        match kind {
            "member" => Ok(Principal::Member { project: name }),
            "reader" => Ok(Principal::Reader { project: name }),
            "agent" => Ok(Principal::Agent { host: name }),
            "peer" => name
                .parse()
                .map(|member| Principal::Peer { member })
                .map_err(|_| IdentityError(format!("{uri:?}: a peer is a member id (u64)"))),
            _ => Err(IdentityError(format!("{uri:?}: unknown kind {kind:?}"))),
        }
    }

    /// The project this identity is confined to, if any.
    pub fn project(&self) -> Option<&str> {
        match self {
            Principal::Member { project } | Principal::Reader { project } => Some(project),
            _ => None,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_identity_round_trips_through_its_uri() {
        let all = [
            Principal::Admin,
            Principal::Member {
                project: "p1".into(),
            },
            Principal::Reader {
                project: "p2".into(),
            },
            Principal::Agent {
                host: "host-7".into(),
            },
            Principal::Peer { member: 3 },
        ];
        for p in all {
            assert_eq!(Principal::parse_uri(&p.to_uri()), Ok(p));
        }
    }

    #[test]
    fn every_denial_round_trips_through_its_code() {
        for d in Denial::ALL {
            assert_eq!(Denial::from_code(d.code()), Some(d));
        }
        assert_eq!(Denial::from_code("NOT_FOUND"), None);
    }

    #[test]
    fn malformed_identity_uris_are_refused() {
        for bad in [
            "",
            "admin",
            "https://admin",
            "alcor://",
            "alcor://member",
            "alcor://member/",
            "alcor://member/a/b",
            "alcor://peer/x",
            "alcor://root/x",
        ] {
            assert!(Principal::parse_uri(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("alcor://agent/{}", "h".repeat(IDENTITY_NAME_BYTES_MAX + 1));
        assert!(Principal::parse_uri(&long).is_err());
    }
}
