//! The [`Client`] handle: one shared HTTP/2 connection per endpoint, and the
//! call engine that fails over between endpoints and retries with bounded
//! exponential backoff, but only calls that are safe to repeat.
//!
//! **Connections.** Each endpoint has one slot holding a tonic `Channel`
//! (one HTTP/2 connection). Every call from every task clones that channel,
//! so concurrent calls are multiplexed as HTTP/2 streams on one connection:
//! 256 concurrent callers cost 256 streams, not 256 connections (the server
//! caps concurrent streams per connection; excess streams wait client-side
//! for a free one). Opening a connection is single-flight: callers that find
//! the slot empty wait for the one connect in progress. After a transport
//! failure the slot is emptied, so the next call reconnects.
//!
//! **Retry policy** ([`Retry`]): reads, creates (the SDK gives each logical
//! create a request token, which the server replicates, so a repeated create
//! returns the original resource) and compare-and-set updates and deletes
//! (an `expected_revision`) may be repeated after an attempt whose outcome
//! is unknown. Every other write is sent again only when the server said
//! it did nothing (UNAVAILABLE without `x-alcor-indeterminate`, OVERLOADED,
//! NOT_LEADER) or the connection could not even be opened; otherwise the
//! caller gets [`Error::Indeterminate`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alcor_proto::identity::AUTHORIZATION_HEADER;
use tokio::time::Instant;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use crate::config::{ClientBuilder, BACKOFF_INITIAL, BACKOFF_MAX, KEEPALIVE_INTERVAL, ROUNDS_MAX};
use crate::error::{classify, Error, Verdict};

/// Whether a call may be sent again after an attempt with an unknown outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// A read: no effect, always repeatable.
    Read,
    /// A write that is harmless to repeat: a create with a request token, or
    /// an update or delete with an expected revision.
    Idempotent,
    /// Any other write: never repeated once it may have reached the server.
    Never,
}

/// Which members can serve a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routing {
    /// Any member (followers forward writes to the leader).
    Any,
    /// Only the leader (membership changes); a NOT_LEADER answer moves the
    /// call to the leader the follower names, or to the next endpoint.
    Leader,
}

/// One endpoint and its shared connection.
struct Slot {
    /// `host:port` as given.
    address: String,
    endpoint: Endpoint,
    /// The shared connection; `None` until first use or after a failure.
    channel: Mutex<Option<Channel>>,
    /// Held while connecting, so concurrent callers wait for one connect.
    connecting: tokio::sync::Mutex<()>,
}

struct Inner {
    slots: Vec<Slot>,
    /// Where the next call starts: the endpoint that answered last.
    preferred: AtomicUsize,
    /// Connections opened so far (all endpoints).
    connects: AtomicU64,
    connect_timeout: Duration,
    /// `Bearer TOKEN`, sent on every call when the builder had a token.
    authorization: Option<MetadataValue<Ascii>>,
}

/// A handle to an Alcor cluster; cheap to clone, and clones share the
/// connections. Build one with [`Client::builder`], then use the typed
/// sub-clients ([`ports`](Client::ports), [`vpcs`](Client::vpcs), ...).
///
/// ```no_run
/// # async fn example() -> Result<(), alcor_client::Error> {
/// use alcor_client::types::CreateVpcRequest;
///
/// let client = alcor_client::Client::builder()
///     .endpoints(["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"])
///     .connect()
///     .await?;
/// let vpc = client
///     .vpcs()
///     .create(CreateVpcRequest {
///         project_id: "demo".into(),
///         name: "web".into(),
///         cidr: "10.0.0.0/16".into(),
///         ..Default::default()
///     })
///     .await?;
/// println!("VPC {} with VNI {}", vpc.id, vpc.vni);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    deadline: Duration,
    attempt_timeout: Duration,
    /// Calls open server streams: no `grpc-timeout` (it would end the
    /// stream); the attempt timeout bounds only the wait for the stream to
    /// open.
    streaming: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let endpoints: Vec<&str> = self.endpoints().collect();
        f.debug_struct("Client")
            .field("endpoints", &endpoints)
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Client {
    /// A builder with the defaults of [`crate::config`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    pub(crate) fn from_builder(builder: ClientBuilder) -> Result<Client, Error> {
        let authorization = match &builder.token {
            Some(token) => Some(
                token
                    .header_value()
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| Error::Config("the token must be visible ASCII".to_string()))?,
            ),
            None => None,
        };
        let mut slots = Vec::with_capacity(builder.endpoints.len());
        let tls = builder
            .tls
            .as_ref()
            .map(crate::config::tonic_tls)
            .transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        for address in builder.endpoints {
            let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
                .map_err(|e| Error::Config(format!("endpoint {address:?}: {e}")))?;
            if let Some(tls) = &tls {
                endpoint = endpoint
                    .tls_config(tls.clone())
                    .map_err(|e| Error::Config(format!("endpoint {address:?}: tls: {e}")))?;
            }
            let endpoint = endpoint
                .connect_timeout(builder.connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
                .keep_alive_timeout(KEEPALIVE_INTERVAL)
                .keep_alive_while_idle(true);
            slots.push(Slot {
                address,
                endpoint,
                channel: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
            });
        }
        Ok(Client {
            inner: Arc::new(Inner {
                slots,
                preferred: AtomicUsize::new(0),
                connects: AtomicU64::new(0),
                connect_timeout: builder.connect_timeout,
                authorization,
            }),
            deadline: builder.deadline,
            attempt_timeout: builder.attempt_timeout,
            streaming: false,
        })
    }

    /// The same client (same connections) with another deadline per call.
    pub fn with_deadline(&self, deadline: Duration) -> Client {
        Client {
            inner: Arc::clone(&self.inner),
            deadline,
            attempt_timeout: self.attempt_timeout,
            streaming: self.streaming,
        }
    }

    /// The same client for calls that wait on the server (barrier,
    /// add-learner): one attempt may use the whole deadline.
    pub(crate) fn waiting(&self) -> Client {
        Client {
            inner: Arc::clone(&self.inner),
            deadline: self.deadline,
            attempt_timeout: self.deadline,
            streaming: self.streaming,
        }
    }

    /// The same client for calls that open a server stream.
    pub(crate) fn streaming(&self) -> Client {
        Client {
            inner: Arc::clone(&self.inner),
            deadline: self.deadline,
            attempt_timeout: self.attempt_timeout,
            streaming: true,
        }
    }

    /// The deadline of each logical call.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The endpoints, in configured order.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.inner.slots.iter().map(|s| s.address.as_str())
    }

    /// How many connections this client (and its clones) has opened so far,
    /// over all endpoints. With healthy members it stays at one per endpoint
    /// used, however many tasks call concurrently.
    pub fn connections_opened(&self) -> u64 {
        self.inner.connects.load(Ordering::Relaxed)
    }

    /// The shared connection to endpoint `idx`, opening it if needed.
    async fn channel(&self, idx: usize) -> Result<Channel, String> {
        let slot = &self.inner.slots[idx];
        if let Some(channel) = cached(slot) {
            return Ok(channel);
        }
        let _gate = slot.connecting.lock().await;
        if let Some(channel) = cached(slot) {
            return Ok(channel);
        }
        let connect = slot.endpoint.connect();
        let channel = match tokio::time::timeout(self.inner.connect_timeout, connect).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => return Err(format!("{}: connect: {e}", slot.address)),
            Err(_) => return Err(format!("{}: connect timed out", slot.address)),
        };
        self.inner.connects.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut guard) = slot.channel.lock() {
            *guard = Some(channel.clone());
        }
        Ok(channel)
    }

    /// Drops endpoint `idx`'s connection after a transport failure.
    fn forget(&self, idx: usize) {
        if let Ok(mut guard) = self.inner.slots[idx].channel.lock() {
            *guard = None;
        }
    }

    fn index_of(&self, address: &str) -> Option<usize> {
        self.inner.slots.iter().position(|s| s.address == address)
    }

    /// Runs one logical call: attempts on the endpoints in turn, starting at
    /// the preferred one, with a backoff pause after each full round, within
    /// the deadline and at most [`ROUNDS_MAX`] rounds.
    pub(crate) async fn call<Req, Resp, F, Fut>(
        &self,
        retry: Retry,
        routing: Routing,
        message: Req,
        rpc: F,
    ) -> Result<Resp, Error>
    where
        Req: Clone,
        F: Fn(Channel, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let n = self.inner.slots.len();
        let deadline = Instant::now() + self.deadline;
        let mut idx = self.inner.preferred.load(Ordering::Relaxed) % n;
        let mut backoff = BACKOFF_INITIAL;
        // An earlier attempt of this call may have taken effect.
        let mut maybe_applied = false;
        let mut failures: Vec<String> = Vec::with_capacity(n);
        for attempt in 1..=n * ROUNDS_MAX {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                failures.push("deadline passed".to_string());
                break;
            }
            let mut next = (idx + 1) % n;
            match self.channel(idx).await {
                Err(message) => push_bounded(&mut failures, message, n),
                Ok(channel) => {
                    let timeout = left.min(self.attempt_timeout);
                    let mut request = tonic::Request::new(message.clone());
                    if let Some(authorization) = &self.inner.authorization {
                        request
                            .metadata_mut()
                            .insert(AUTHORIZATION_HEADER, authorization.clone());
                    }
                    if !self.streaming {
                        request.set_timeout(timeout);
                    }
                    // tonic enforces the timeout too; this bounds the attempt
                    // even if a layer below ignores it.
                    let answer = tokio::time::timeout(timeout, rpc(channel, request)).await;
                    let status = match answer {
                        Ok(Ok(response)) => {
                            self.inner.preferred.store(idx, Ordering::Relaxed);
                            return Ok(response.into_inner());
                        }
                        Ok(Err(status)) => status,
                        Err(_) => Status::deadline_exceeded("attempt timed out in the client"),
                    };
                    let address = &self.inner.slots[idx].address;
                    match classify(&status) {
                        Verdict::Final(error) => {
                            return Err(settle(error, maybe_applied, retry));
                        }
                        Verdict::NotApplied {
                            message,
                            leader_api,
                        } => {
                            push_bounded(&mut failures, format!("{address}: {message}"), n);
                            let hint = leader_api.as_deref().and_then(|a| self.index_of(a));
                            if routing == Routing::Leader {
                                next = hint.unwrap_or(next);
                            }
                        }
                        Verdict::MaybeApplied { message, transport } => {
                            if transport {
                                self.forget(idx);
                            }
                            let message = format!("{address}: {message}");
                            if retry == Retry::Never {
                                return Err(Error::Indeterminate { message });
                            }
                            maybe_applied = true;
                            push_bounded(&mut failures, message, n);
                        }
                    }
                }
            }
            idx = next;
            if attempt % n == 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(jitter(backoff).min(left)).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
        let message = failures.join("; ");
        if maybe_applied && retry != Retry::Read {
            Err(Error::Indeterminate { message })
        } else {
            Err(Error::Unavailable { message })
        }
    }
}

fn cached(slot: &Slot) -> Option<Channel> {
    slot.channel.lock().ok()?.clone()
}

/// The final error of a call given its history: a compare-and-set write
/// repeated after an attempt with an unknown outcome that now finds the
/// revision moved (or the resource gone) may have moved it itself, so the
/// honest answer is "indeterminate".
fn settle(error: Error, maybe_applied: bool, retry: Retry) -> Error {
    if !maybe_applied || retry != Retry::Idempotent {
        return error;
    }
    match error {
        Error::PreconditionFailed { details, .. } | Error::NotFound(details) => {
            Error::Indeterminate {
                message: format!("an earlier attempt may have applied; then: {details}"),
            }
        }
        other => other,
    }
}

/// Keeps the last `max` failure messages.
fn push_bounded(failures: &mut Vec<String>, message: String, max: usize) {
    if failures.len() >= max {
        failures.remove(0);
    }
    failures.push(message);
}

/// Half of `backoff` plus a random part of the other half, so that clients
/// that failed together do not retry together.
fn jitter(backoff: Duration) -> Duration {
    let mut bytes = [0u8; 4];
    let random = match getrandom::fill(&mut bytes) {
        Ok(()) => u32::from_le_bytes(bytes),
        Err(_) => u32::MAX / 2,
    };
    let half = backoff / 2;
    half + half.mul_f64(f64::from(random) / f64::from(u32::MAX))
}

/// A fresh request token: a random UUID (version 4) string.
pub(crate) fn request_token() -> Result<String, Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| Error::Config(format!("no randomness for a request token: {e}")))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_tokens_are_distinct_uuid_v4() {
        let a = request_token().expect("token");
        let b = request_token().expect("token");
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn jitter_stays_within_half_and_whole_backoff() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(100));
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100));
        }
    }

    #[test]
    fn cas_write_that_finds_its_revision_moved_after_an_unknown_attempt_is_indeterminate() {
        let stale = Error::PreconditionFailed {
            details: crate::error::Details {
                reason: "STALE_REVISION".into(),
                message: "moved".into(),
                batch_index: None,
                resource: None,
            },
            current_revision: None,
        };
        assert!(matches!(
            settle(stale.clone(), true, Retry::Idempotent),
            Error::Indeterminate { .. }
        ));
        assert_eq!(settle(stale.clone(), false, Retry::Idempotent), stale);
    }

    #[test]
    fn builder_refuses_no_endpoints_and_tls() {
        assert!(matches!(Client::builder().build(), Err(Error::Config(_))));
        let tls = Client::builder()
            .endpoints(["127.0.0.1:1"])
            .tls(crate::TlsConfig::default())
            .build();
        assert!(matches!(tls, Err(Error::Config(_))));
    }
}
