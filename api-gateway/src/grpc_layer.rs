//! The one tower layer in front of every service of a member's gRPC
//! listeners ([`GrpcLayer`]). On each call, in this order, it:
//! 1. gives the call its id and span ([`crate::request_id`]), so the id
//!    also names calls that are refused;
//! 2. starts measuring it ([`crate::metrics`]), so refused calls are
//!    counted too;
//! 3. authenticates the caller and checks the method against the role
//!    table ([`crate::auth`]), storing the principal for the services.
//!
//! These were three layers; each cloned the services inside it and boxed
//! its future on every call. As one, a call clones the routes once and
//! boxes one future.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::{http, BoxFuture};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use crate::auth::{self, AuthConfig};
use crate::error::to_status;
use crate::metrics::{Call, GrpcMetrics};
use crate::request_id::{self, request_span};

/// Request ids, metrics and authentication for a tonic server
/// (`Server::builder().layer(GrpcLayer::new(auth, metrics))`); see the
/// module docs.
#[derive(Debug, Clone)]
pub struct GrpcLayer {
    auth: Arc<AuthConfig>,
    metrics: GrpcMetrics,
}

impl GrpcLayer {
    /// A layer authenticating with `auth` and recording into `metrics`.
    pub fn new(auth: AuthConfig, metrics: GrpcMetrics) -> GrpcLayer {
        GrpcLayer {
            auth: Arc::new(auth),
            metrics,
        }
    }
}

impl<S> Layer<S> for GrpcLayer {
    type Service = GrpcService<S>;

    fn layer(&self, inner: S) -> GrpcService<S> {
        GrpcService {
            inner,
            auth: Arc::clone(&self.auth),
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`GrpcLayer`] wraps around a listener's routes.
#[derive(Debug, Clone)]
pub struct GrpcService<S> {
    inner: S,
    auth: Arc<AuthConfig>,
    metrics: GrpcMetrics,
}

impl<S, B> Service<http::Request<B>> for GrpcService<S>
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
        let started = Instant::now();
        let (id, value) = request_id::assign(&mut request);
        let span = request_span(&id, request.uri().path());
        let call = Call::start(self.metrics.clone(), request.uri().path());
        let routed = span.in_scope(|| match auth::check(&self.auth, &request) {
            Ok(principal) => {
                request.extensions_mut().insert(principal);
                // The inner service was readied for this call: take it,
                // leave a fresh clone for the next one.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Ok(inner.call(request))
            }
            Err(error) => Err(Box::new(to_status(&error).into_http())),
        });
        Box::pin(
            async move {
                // An error here is a transport failure: `call` records it
                // as Canceled when dropped.
                let response = match routed {
                    Ok(handled) => handled.await?,
                    Err(refused) => *refused,
                };
                let mut response = call.measure(response);
                request_id::answer(&mut response, started, value);
                Ok(response)
            }
            .instrument(span),
        )
    }
}
