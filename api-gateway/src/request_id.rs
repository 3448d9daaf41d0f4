//! One id per request, on every log line of it: for the gRPC listeners
//! (through [`crate::GrpcLayer`]), [`new_request_id`] and [`request_span`]
//! shared with the REST gateway.
//!
//! A gRPC call keeps the id its caller sent in
//! [`alcor_proto::request_id::REQUEST_ID_HEADER`] when
//! [`alcor_proto::request_id::is_kept`] accepts it, and otherwise gets a
//! new `req-<uuid>`; the response carries the id in the same header. The
//! call runs inside a span holding the id, so every line it logs carries
//! `request_id`.

use std::time::Instant;

use alcor_proto::request_id::{is_kept, REQUEST_ID_HEADER};
use tonic::codegen::http;

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

/// The id of gRPC call `request` (see the module docs), written into its
/// header, and the header value to answer with.
pub(crate) fn assign<B>(request: &mut http::Request<B>) -> (String, Option<http::HeaderValue>) {
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
    (id, value)
}

/// Logs the end of a gRPC call's handling (at debug, in its span) and puts
/// its id, `value`, into the response's headers.
pub(crate) fn answer<R>(
    response: &mut http::Response<R>,
    started: Instant,
    value: Option<http::HeaderValue>,
) {
    // In the headers when the call failed before its body (trailers-only);
    // otherwise it follows in the trailers.
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok());
    tracing::debug!(
        elapsed_us = started.elapsed().as_micros() as u64,
        code,
        "grpc"
    );
    if let Some(value) = value {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
}
