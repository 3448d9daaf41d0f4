//! Client configuration: the [`ClientBuilder`], TLS settings and every bound
//! the SDK applies (the `*_MAX` constants and defaults).

use std::time::Duration;

use alcor_proto::identity::BearerToken;

use crate::error::Error;
use crate::transport::Client;

/// Endpoints one client may know.
pub const ENDPOINTS_MAX: usize = 16;
/// Rounds of one logical call (a round tries each endpoint once); with the
/// backoff below, enough to ride out a leader election (about a second) well
/// within the default deadline, which usually ends the call first.
pub const ROUNDS_MAX: usize = 30;
/// Times a watch may reopen its stream without delivering an event in
/// between before it gives up with `Error::Unavailable` (each reopen is a
/// full call with its own failover and backoff).
pub const WATCH_RESUMES_MAX: usize = 8;
/// First pause after a full round of failed attempts.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(50);
/// Longest pause between two rounds (the pause doubles each round).
pub const BACKOFF_MAX: Duration = Duration::from_millis(1_000);
/// Default deadline of one logical call, retries included.
pub const DEADLINE_DEFAULT: Duration = Duration::from_secs(15);
/// Default bound on one attempt (one RPC on one endpoint).
pub const ATTEMPT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Default bound on opening a connection to one endpoint.
pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(1);
/// Largest response accepted: the server's own `RESPONSE_BYTES_MAX`.
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Largest request sent: the server's own `REQUEST_BYTES_MAX`.
pub const REQUEST_BYTES_MAX: usize = 8 * 1024 * 1024;
/// HTTP/2 keep-alive ping period on idle connections, so that a dead peer is
/// noticed before the next call.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

const _: () = assert!(BACKOFF_INITIAL.as_millis() <= BACKOFF_MAX.as_millis());
const _: () = assert!(ROUNDS_MAX >= 1 && ENDPOINTS_MAX >= 1);

/// TLS settings of a client (rustls; endpoints are then dialled as
/// `https://`). Members are verified against the cluster's own CA, which
/// must be given: this build carries no platform roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM of the CA that signed the servers' certificates (required).
    pub ca_certificate_pem: Option<Vec<u8>>,
    /// Name to verify the servers' certificates against; `None`: the host
    /// part of each endpoint.
    pub domain_name: Option<String>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
}

/// tonic's form of `tls`; a configuration without a CA is refused.
pub(crate) fn tonic_tls(tls: &TlsConfig) -> Result<tonic::transport::ClientTlsConfig, Error> {
    let ca = tls
        .ca_certificate_pem
        .as_ref()
        .ok_or_else(|| Error::Config("TLS needs the CA certificate of the cluster".to_string()))?;
    let mut config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca));
    if let Some(domain) = &tls.domain_name {
        config = config.domain_name(domain.clone());
    }
    if let Some((cert, key)) = &tls.identity_pem {
        config = config.identity(tonic::transport::Identity::from_pem(cert, key));
    }
    Ok(config)
}

/// Builds a [`Client`].
///
/// ```no_run
/// # async fn example() -> Result<(), alcor_client::Error> {
/// use std::time::Duration;
///
/// let client = alcor_client::Client::builder()
///     .endpoints(["10.0.0.1:7101", "10.0.0.2:7101", "10.0.0.3:7101"])
///     .deadline(Duration::from_secs(10))
///     .connect_timeout(Duration::from_millis(500))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    pub(crate) endpoints: Vec<String>,
    pub(crate) deadline: Duration,
    pub(crate) attempt_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) token: Option<BearerToken>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            endpoints: Vec::new(),
            deadline: DEADLINE_DEFAULT,
            attempt_timeout: ATTEMPT_TIMEOUT_DEFAULT,
            connect_timeout: CONNECT_TIMEOUT_DEFAULT,
            tls: None,
            token: None,
        }
    }
}

impl ClientBuilder {
    /// The members' API addresses (`host:port`, no scheme), 1 to
    /// [`ENDPOINTS_MAX`]. Calls start at the endpoint that answered last
    /// (the first one initially) and move along the list on failure.
    pub fn endpoints<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.endpoints = endpoints.into_iter().map(Into::into).collect();
        self
    }

    /// Deadline of each logical call, retries and failovers included
    /// (default [`DEADLINE_DEFAULT`]). Override it per call with
    /// [`Client::with_deadline`].
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Bound on one attempt on one endpoint, sent as `grpc-timeout` (default
    /// [`ATTEMPT_TIMEOUT_DEFAULT`]; never more than what is left of the
    /// deadline).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Bound on opening a connection to one endpoint (default
    /// [`CONNECT_TIMEOUT_DEFAULT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connect with TLS (see [`TlsConfig`]).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sends `token` as `authorization: Bearer TOKEN` on every call
    /// (streams included): a token of the members' token file.
    pub fn token(self, token: impl Into<String>) -> Self {
        self.bearer_token(BearerToken::new(token))
    }

    /// Like [`token`](Self::token), for a token already wrapped.
    pub fn bearer_token(mut self, token: BearerToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Checks the configuration and returns the client. Connections are
    /// opened on first use (one per endpoint, shared by every call), so this
    /// succeeds even while members are down.
    pub async fn connect(self) -> Result<Client, Error> {
        self.build()
    }

    /// Like [`connect`](Self::connect), without an async context.
    pub fn build(self) -> Result<Client, Error> {
        if self.endpoints.is_empty() || self.endpoints.len() > ENDPOINTS_MAX {
            return Err(Error::Config(format!(
                "give 1 to {ENDPOINTS_MAX} endpoints, not {}",
                self.endpoints.len()
            )));
        }
        for (name, value) in [
            ("deadline", self.deadline),
            ("attempt timeout", self.attempt_timeout),
            ("connect timeout", self.connect_timeout),
        ] {
            if value.is_zero() {
                return Err(Error::Config(format!("the {name} must not be zero")));
            }
        }
        Client::from_builder(self)
    }
}
