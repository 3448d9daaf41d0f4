//! Who calls, and which methods they may call: the authentication layer of
//! a member's gRPC listeners ([`AuthLayer`]) and the per-method role table
//! ([`method_allowed`]).
//!
//! The layer runs before every gRPC service on the listener. It resolves
//! the caller's [`Principal`], in this order:
//! 1. an `authorization: Bearer TOKEN` header, looked up in the token file
//!    ([`crate::tokens`]); an unknown token is UNAUTHENTICATED even when a
//!    certificate identity is also present;
//! 2. a [`Principal`] an earlier layer put into the request's extensions
//!    (the TLS transport's client-certificate identity);
//! 3. nothing: UNAUTHENTICATED when [`AuthConfig::credentials_required`],
//!    [`Principal::Admin`] otherwise (the open mode of a member started
//!    without credentials).
//!
//! It then checks the method against the role table below (PERMISSION_DENIED,
//! reason `ROLE_DENIED`) and stores the principal in the request's
//! extensions, where the services find it for the finer checks (project
//! scoping, an agent's own host). A request without a principal in its
//! extensions did not come through the layer: it is an in-process call (the
//! REST gateway, which authorized it itself), served as the admin.
//!
//! | service / methods | admin | member | reader | agent | peer |
//! |---|---|---|---|---|---|
//! | Orchestrator `Get*`, `List*`, `GetQuota` | all | own project | own project | – | – |
//! | Orchestrator other writes | all | own project | – | – | – |
//! | Orchestrator hosts, `SetQuota`, `ResetQuota`, `Watch` | yes | – | – | – | – |
//! | Cluster `Status`, `Barrier` | yes | yes | yes | – | – |
//! | Cluster `AckedRevisions` | yes | yes | yes | – | yes |
//! | Cluster `HostDigest` | yes | – | – | own host | – |
//! | Cluster membership, snapshot, campaign | yes | – | – | – | – |
//! | HostPush `Sync` | any host | – | – | own host | – |
//! | `grpc.health.v1.Health`, server reflection | yes | yes | yes | yes | yes |
//! | anything else | yes | – | – | – | – |
//!
//! `Watch` streams every project's changes, so it is the admin's until it
//! filters by project. `Status`, `Barrier` and `AckedRevisions` tell
//! cluster health and which hosts lag, not tenant data; `Barrier` asks the
//! other members' `AckedRevisions` with its caller's bearer token.

use std::sync::Arc;
use std::task::{Context, Poll};

use alcor_proto::identity::{Denial, Principal, AUTHORIZATION_HEADER, BEARER_PREFIX};
use tonic::codegen::{http, BoxFuture};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{to_status, ApiError};
use crate::tokens::TokenTable;

/// The identity of a request's verified client certificate, read from the
/// connection information the TLS layer put into its extensions (the
/// node supplies it from `alcor-tls`; this crate knows no TLS).
pub type CertPrincipal = Arc<dyn Fn(&http::Extensions) -> Option<Principal> + Send + Sync>;

/// How a listener authenticates.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// The token file's table; `None`: bearer tokens are not looked at.
    pub tokens: Option<TokenTable>,
    /// Whether a call without a credential is refused (UNAUTHENTICATED);
    /// `false`: it is served as the admin.
    pub credentials_required: bool,
    /// Client certificates' identities (a listener with TLS); `None`:
    /// certificates are not looked at.
    pub cert_principal: Option<CertPrincipal>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("tokens", &self.tokens)
            .field("credentials_required", &self.credentials_required)
            .field("cert_principal", &self.cert_principal.is_some())
            .finish()
    }
}

impl AuthConfig {
    /// No credentials: everyone is the admin (a member started without a
    /// token file or certificates).
    pub fn open() -> AuthConfig {
        AuthConfig::default()
    }

    /// Tokens from `tokens`, required on every call.
    pub fn with_tokens(tokens: TokenTable) -> AuthConfig {
        AuthConfig {
            tokens: Some(tokens),
            credentials_required: true,
            cert_principal: None,
        }
    }

    /// The caller of a request with these headers and extensions.
    pub fn authenticate(
        &self,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Principal, ApiError> {
        let unauthenticated =
            |why: &str| ApiError::Denied(Denial::Unauthenticated, why.to_string());
        if let (Some(tokens), Some(value)) = (&self.tokens, headers.get(AUTHORIZATION_HEADER)) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix(BEARER_PREFIX))
                .ok_or_else(|| unauthenticated("authorization is not `Bearer TOKEN`"))?;
            return tokens
                .grant(token.trim())
                .map(|grant| grant.principal())
                .ok_or_else(|| unauthenticated("unknown bearer token"));
        }
        if let Some(principal) = extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        if let Some(principal) = self.cert_principal.as_ref().and_then(|f| f(extensions)) {
            return Ok(principal);
        }
        if self.credentials_required {
            return Err(unauthenticated(
                "this member requires credentials (authorization: Bearer TOKEN, or a client certificate)",
            ));
        }
        Ok(Principal::Admin)
    }
}

/// Whether `principal` may call the gRPC method at `path`
/// (`/package.Service/Method`); see the module docs for the table.
pub fn method_allowed(path: &str, principal: &Principal) -> bool {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", ""));
    let admin = matches!(principal, Principal::Admin);
    let tenant = matches!(
        principal,
        Principal::Member { .. } | Principal::Reader { .. }
    );
    let member = matches!(principal, Principal::Member { .. });
    let agent = matches!(principal, Principal::Agent { .. });
    let peer = matches!(principal, Principal::Peer { .. });
    match service {
        "alcor.api.v1.Orchestrator" => {
            let admin_only = method.ends_with("Host")
                || method == "ListHosts"
                || method == "Watch"
                || method == "SetQuota"
                || method == "ResetQuota";
            let read = method.starts_with("Get") || method.starts_with("List");
            admin || (!admin_only && (member || (tenant && read)))
        }
        "alcor.api.v1.Cluster" => match method {
            "Status" | "Barrier" => admin || tenant,
            "HostDigest" => admin || agent,
            // Barrier asks the other members with its caller's credential.
            "AckedRevisions" => admin || tenant || peer,
            _ => admin,
        },
        "alcor.push.v1.HostPush" => admin || agent,
        // Health says SERVING or not, reflection what the public protos
        // say: any caller with a credential of this cluster may ask.
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => true,
        _ => admin,
    }
}

/// The principal a service handler acts for: the one the layer stored, or
/// the admin for an in-process call (see the module docs).
pub fn caller<T>(request: &tonic::Request<T>) -> Principal {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .unwrap_or(Principal::Admin)
}

/// The tower layer running [`AuthConfig::authenticate`] and
/// [`method_allowed`] before every service of a tonic server
/// (`Server::builder().layer(AuthLayer::new(config))`).
#[derive(Debug, Clone)]
pub struct AuthLayer {
    config: Arc<AuthConfig>,
}

impl AuthLayer {
    /// A layer authenticating with `config`.
    pub fn new(config: AuthConfig) -> AuthLayer {
        AuthLayer {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`AuthLayer`] wraps around a listener's routes.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    config: Arc<AuthConfig>,
}

impl<S, B> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let checked = self
            .config
            .authenticate(request.headers(), request.extensions())
            .and_then(|principal| {
                if method_allowed(request.uri().path(), &principal) {
                    Ok(principal)
                } else {
                    Err(ApiError::Denied(
                        Denial::RoleDenied,
                        format!("{principal} may not call {}", request.uri().path()),
                    ))
                }
            });
        match checked {
            Ok(principal) => {
                request.extensions_mut().insert(principal);
                // The inner service was readied for this call: take it,
                // leave a fresh clone for the next one.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(inner.call(request))
            }
            Err(error) => {
                let response = to_status(&error).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{Grant, Role, Tokens};

    fn member() -> Principal {
        Principal::Member {
            project: "p".to_string(),
        }
    }

    fn reader() -> Principal {
        Principal::Reader {
            project: "p".to_string(),
        }
    }

    fn agent() -> Principal {
        Principal::Agent {
            host: "h".to_string(),
        }
    }

    #[test]
    fn the_role_table_matches_the_docs() {
        let o = |m: &str| format!("/alcor.api.v1.Orchestrator/{m}");
        let c = |m: &str| format!("/alcor.api.v1.Cluster/{m}");
        let push = "/alcor.push.v1.HostPush/Sync".to_string();
        let peer = Principal::Peer { member: 2 };
        let all = [Principal::Admin, member(), reader(), agent(), peer.clone()];
        let cases: [(String, [bool; 5]); 16] = [
            (o("GetPort"), [true, true, true, false, false]),
            (o("ListPorts"), [true, true, true, false, false]),
            (o("GetQuota"), [true, true, true, false, false]),
            (o("CreatePort"), [true, true, false, false, false]),
            (o("DeleteVpc"), [true, true, false, false, false]),
            (o("CreateHost"), [true, false, false, false, false]),
            (o("ListHosts"), [true, false, false, false, false]),
            (o("SetQuota"), [true, false, false, false, false]),
            (o("Watch"), [true, false, false, false, false]),
            (c("AddLearner"), [true, false, false, false, false]),
            (c("Status"), [true, true, true, false, false]),
            (c("HostDigest"), [true, false, false, true, false]),
            (c("AckedRevisions"), [true, true, true, false, true]),
            (push, [true, false, false, true, false]),
            ("/grpc.health.v1.Health/Check".to_string(), [true; 5]),
            (
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo".to_string(),
                [true; 5],
            ),
        ];
        for (path, allowed) in cases {
            for (principal, want) in all.iter().zip(allowed) {
                assert_eq!(
                    method_allowed(&path, principal),
                    want,
                    "{principal} on {path}"
                );
            }
        }
        assert!(!method_allowed("/grpc.reflection.v1.X/Y", &member()));
        assert!(method_allowed("/grpc.reflection.v1.X/Y", &Principal::Admin));
    }

    #[test]
    fn tokens_resolve_and_unknown_or_missing_ones_are_refused() {
        let tokens = Tokens::new([
            ("m".to_string(), Grant::in_project(Role::Member, "p")),
            ("a".to_string(), Grant::agent("h")),
        ])
        .expect("tokens");
        let config = AuthConfig::with_tokens(TokenTable::fixed(tokens));
        let ext = http::Extensions::new();
        let headers = |value: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(AUTHORIZATION_HEADER, value.parse().expect("header"));
            h
        };
        assert_eq!(
            config.authenticate(&headers("Bearer m"), &ext).ok(),
            Some(member())
        );
        assert_eq!(
            config.authenticate(&headers("Bearer a"), &ext).ok(),
            Some(agent())
        );
        let denied = |r: Result<Principal, ApiError>| {
            matches!(r, Err(ApiError::Denied(Denial::Unauthenticated, _)))
        };
        assert!(denied(config.authenticate(&headers("Bearer x"), &ext)));
        assert!(denied(config.authenticate(&headers("m"), &ext)));
        assert!(denied(config.authenticate(&http::HeaderMap::new(), &ext)));
        // A certificate identity from the transport stands when no token
        // is presented, and an unknown token beside it still fails.
        let mut cert = http::Extensions::new();
        cert.insert(agent());
        assert_eq!(
            config.authenticate(&http::HeaderMap::new(), &cert).ok(),
            Some(agent())
        );
        assert!(denied(config.authenticate(&headers("Bearer x"), &cert)));
        // The open mode serves everyone as the admin.
        assert_eq!(
            AuthConfig::open()
                .authenticate(&headers("Bearer x"), &ext)
                .ok(),
            Some(Principal::Admin)
        );
    }
}
