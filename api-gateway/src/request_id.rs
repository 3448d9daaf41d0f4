//! One id per request, on every log line of it: [`RequestIdLayer`] for the
//! gRPC listeners, [`new_request_id`] and [`request_span`] shared with the
//! REST gateway.
//!
//! A gRPC call keeps the id its caller sent in
//! [`alcor_proto::request_id::REQUEST_ID_HEADER`] when
//! [`alcor_proto::request_id::is_kept`] accepts it, and otherwise gets a
//! new `req-<uuid>`; the response carries the id in the same header. The
//! call runs inside a span holding the id, so every line it logs carries
//! `request_id`.

use std::task::{Context, Poll};
use std::time::Instant;

use alcor_proto::request_id::{is_kept, REQUEST_ID_HEADER};
use tonic::codegen::{http, BoxFuture};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

/// A new request id, `req-<uuid v4>` (the form of OpenStack's
/// `X-Openstack-Request-Id`).
pub fn new_request_id() -> String {
    match crate::ids::random_id() {
        Ok(id) => format!("req-{id}"),
        // Still unique enough to correlate logs; never fail a request for it.
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!("req-{nanos:032x}")
        }
    }
}

/// The span a request with id `request_id` runs in. It is an ERROR-level
/// span so that no log filter that lets a line through drops the id from
/// it (a span below the filter's level is not recorded, and the lines
/// inside it would lose its fields).
pub fn request_span(request_id: &str, method: &str) -> tracing::Span {
    tracing::error_span!("request", request_id, method)
}

/// The tower layer giving every gRPC call an id (see the module docs);
/// outermost on a listener, so the id also names calls the authentication
/// layer refuses.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> RequestIdService<S> {
        RequestIdService { inner }
    }
}

/// The service [`RequestIdLayer`] wraps around a listener's routes.
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for RequestIdService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let kept = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|id| is_kept(id))
            .map(str::to_string);
        let id = kept.unwrap_or_else(new_request_id);
        let value = http::HeaderValue::from_str(&id).ok();
        if let Some(value) = &value {
            request
                .headers_mut()
                .insert(REQUEST_ID_HEADER, value.clone());
        }
        let span = request_span(&id, request.uri().path());
        let started = Instant::now();
        // The inner service was readied for this call: take it, leave a
        // fresh clone for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let call = span.in_scope(|| inner.call(request));
        Box::pin(
            async move {
                let mut response = call.await?;
                // In the headers when the call failed before its body
                // (trailers-only); otherwise it follows in the trailers.
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                tracing::debug!(
                    elapsed_us = started.elapsed().as_micros() as u64,
                    code,
                    "grpc"
                );
                if let Some(value) = value {
                    response.headers_mut().insert(REQUEST_ID_HEADER, value);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}
