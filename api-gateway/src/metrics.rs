//! Metrics of the gRPC listeners: a tower layer ([`GrpcMetricsLayer`]) in
//! front of every service counts and times each call by method and status
//! code, counts the calls in flight and the refusals by reason code, after
//! go-grpc-prometheus's names (which etcd exports):
//!
//! - `grpc_server_started_total{grpc_service, grpc_method}`;
//! - `grpc_server_handled_total{grpc_service, grpc_method, grpc_code}`;
//! - `grpc_server_handling_seconds{grpc_service, grpc_method, grpc_code}`
//!   (a histogram: from the request to the end of the response body, so a
//!   stream counts until it ends);
//! - `grpc_server_in_flight_requests{grpc_service, grpc_method}`;
//! - `grpc_server_rejections_total{grpc_service, grpc_method, reason}`:
//!   every call answered with an `x-alcor-reason` code (the gateway's
//!   rejections and denials, watch ends).
//!
//! Label values are bounded: the service and method come from
//! [`alcor_proto::GRPC_METHODS`] (any other path is `unknown`), the code
//! from the 17 gRPC codes, the reason from the status's reason header,
//! taken only when it is a code of the wire contract
//! ([`alcor_proto::reason::Reason`] or [`alcor_proto::identity::Denial`];
//! anything else is `OTHER`); the message text is never read.
//!
//! The layer sits outside the authentication layer, so refused calls are
//! counted too.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use alcor_proto::{GRPC_METHODS, REASON_HEADER};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tonic::codegen::{http, BoxFuture};
use tonic::Code;
use tower_layer::Layer;
use tower_service::Service;

use alcor_proto::identity::Denial;
use alcor_proto::reason::Reason;

/// The label of a path that is no known method, and of a reason that is
/// not taken as a label.
const UNKNOWN: &str = "unknown";
const OTHER_REASON: &str = "OTHER";

/// go-grpc-prometheus's default buckets (Prometheus's `DefBuckets`),
/// extended down to 0.5 ms: reads and writes on a healthy member answer in
/// a few milliseconds.
const HANDLING_BUCKETS_S: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `grpc_service` and `grpc_method`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
}

/// A method and how its call ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
    grpc_code: &'static str,
}

/// A method and the reason code of its refusal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
    reason: &'static str,
}

#[derive(Debug)]
struct Inner {
    started: Family<MethodLabels, Counter>,
    handled: Family<CodeLabels, Counter>,
    handling: Family<CodeLabels, Histogram>,
    in_flight: Family<MethodLabels, Gauge>,
    rejections: Family<ReasonLabels, Counter>,
}

/// The gRPC listeners' metrics; cloning shares them.
#[derive(Debug, Clone)]
pub struct GrpcMetrics {
    inner: Arc<Inner>,
}

impl Default for GrpcMetrics {
    fn default() -> GrpcMetrics {
        GrpcMetrics {
            inner: Arc::new(Inner {
                started: Family::default(),
                handled: Family::default(),
                handling: Family::new_with_constructor(|| {
                    Histogram::new(HANDLING_BUCKETS_S.iter().copied())
                }),
                in_flight: Family::default(),
                rejections: Family::default(),
            }),
        }
    }
}

impl GrpcMetrics {
    /// Registers the families in `registry` (under its prefix:
    /// `alcor` gives `alcor_grpc_server_...`).
    pub fn register(&self, registry: &mut Registry) {
        let server = registry.sub_registry_with_prefix("grpc_server");
        server.register(
            "started",
            "gRPC calls started on this member",
            self.inner.started.clone(),
        );
        server.register(
            "handled",
            "gRPC calls completed on this member, by status code",
            self.inner.handled.clone(),
        );
        server.register(
            "handling_seconds",
            "Time from a gRPC call's request to the end of its response (a stream: until it ends)",
            self.inner.handling.clone(),
        );
        server.register(
            "in_flight_requests",
            "gRPC calls (streams included) being served on this member",
            self.inner.in_flight.clone(),
        );
        server.register(
            "rejections",
            "gRPC calls answered with a reason code (x-alcor-reason), by reason",
            self.inner.rejections.clone(),
        );
    }
}

/// The label of a reason code: the code itself when the wire contract has
/// it, else `OTHER`.
fn reason_label(reason: &[u8]) -> &'static str {
    let reason = std::str::from_utf8(reason).unwrap_or("");
    Reason::from_code(reason)
        .map(Reason::code)
        .or_else(|| Denial::from_code(reason).map(Denial::code))
        .unwrap_or(OTHER_REASON)
}

/// The service and method labels of a request path.
fn method_labels(path: &str) -> MethodLabels {
    let known = GRPC_METHODS
        .binary_search(&path)
        .ok()
        .map(|i| GRPC_METHODS[i]);
    let parts = known.and_then(|p| p.strip_prefix('/')?.split_once('/'));
    match parts {
        Some((grpc_service, grpc_method)) => MethodLabels {
            grpc_service,
            grpc_method,
        },
        None => MethodLabels {
            grpc_service: UNKNOWN,
            grpc_method: UNKNOWN,
        },
    }
}

/// grpc-go's name of a status code (what go-grpc-prometheus labels with).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The status code in `headers` (`grpc-status`), if there is one.
fn grpc_code(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?;
    let code: i32 = value.to_str().ok()?.parse().ok()?;
    Some(Code::from_i32(code))
}

/// One call being measured; records itself once, when its response ends
/// (trailers or the end of a trailers-only response) or is dropped.
struct Call {
    metrics: GrpcMetrics,
    labels: MethodLabels,
    started: Instant,
    /// The status code and reason seen so far.
    code: Option<Code>,
    reason: Option<&'static str>,
    recorded: bool,
}

impl Call {
    fn start(metrics: GrpcMetrics, path: &str) -> Call {
        let labels = method_labels(path);
        metrics.inner.started.get_or_create(&labels).inc();
        metrics.inner.in_flight.get_or_create(&labels).inc();
        Call {
            metrics,
            labels,
            started: Instant::now(),
            code: None,
            reason: None,
            recorded: false,
        }
    }

    /// Takes the status code and reason of `headers` (response headers or
    /// trailers), if they carry one.
    fn see(&mut self, headers: &http::HeaderMap) {
        if let Some(code) = grpc_code(headers) {
            self.code = Some(code);
        }
        if let Some(reason) = headers.get(REASON_HEADER) {
            self.reason = Some(reason_label(reason.as_bytes()));
        }
    }

    /// Records the call; a response that ended without a status was cut
    /// off (the client went away): Canceled, as grpc-go counts it.
    fn finish(&mut self) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let inner = &self.metrics.inner;
        inner.in_flight.get_or_create(&self.labels).dec();
        let code = CodeLabels {
            grpc_service: self.labels.grpc_service,
            grpc_method: self.labels.grpc_method,
            grpc_code: code_name(self.code.unwrap_or(Code::Cancelled)),
        };
        inner.handled.get_or_create(&code).inc();
        inner
            .handling
            .get_or_create(&code)
            .observe(self.started.elapsed().as_secs_f64());
        if let Some(reason) = self.reason.take() {
            let labels = ReasonLabels {
                grpc_service: self.labels.grpc_service,
                grpc_method: self.labels.grpc_method,
                reason,
            };
            inner.rejections.get_or_create(&labels).inc();
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A response body that records its call when it ends.
struct MeasuredBody {
    inner: tonic::body::Body,
    call: Call,
}

impl http_body::Body for MeasuredBody {
    type Data = tonic::codegen::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.call.see(trailers);
                    this.call.finish();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.call.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The tower layer measuring every call of a tonic server
/// (`Server::builder().layer(GrpcMetricsLayer::new(metrics))`, before the
/// authentication layer).
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    metrics: GrpcMetrics,
}

impl GrpcMetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: GrpcMetrics) -> GrpcMetricsLayer {
        GrpcMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> GrpcMetricsService<S> {
        GrpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`GrpcMetricsLayer`] wraps around a listener's routes.
#[derive(Debug, Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: GrpcMetrics,
}

impl<S, B> Service<http::Request<B>> for GrpcMetricsService<S>
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

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let mut call = Call::start(self.metrics.clone(), request.uri().path());
        // The inner service was readied for this call: take it, leave a
        // fresh clone for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            // An error here is a transport failure: `call` records it as
            // Canceled when dropped.
            let response = inner.call(request).await?;
            call.see(response.headers());
            let (parts, body) = response.into_parts();
            let body = MeasuredBody { inner: body, call };
            Ok(http::Response::from_parts(
                parts,
                tonic::body::Body::new(body),
            ))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn known_paths_are_labelled_by_service_and_method_and_others_as_unknown() {
        let labels = method_labels("/alcor.api.v1.Orchestrator/CreatePort");
        assert_eq!(labels.grpc_service, "alcor.api.v1.Orchestrator");
        assert_eq!(labels.grpc_method, "CreatePort");
        let labels = method_labels("/alcor.api.v1.Orchestrator/NoSuchMethod");
        assert_eq!(labels.grpc_method, UNKNOWN);
        assert_eq!(method_labels("/x").grpc_service, UNKNOWN);
    }

    #[test]
    fn reason_labels_are_the_contracts_codes_and_nothing_else() {
        for reason in Reason::ALL {
            assert_eq!(reason_label(reason.code().as_bytes()), reason.code());
        }
        for denial in Denial::ALL {
            assert_eq!(reason_label(denial.code().as_bytes()), denial.code());
        }
        assert_eq!(reason_label(b"ip in use"), OTHER_REASON);
        assert_eq!(reason_label(b"SOMETHING_NEW"), OTHER_REASON);
        assert_eq!(reason_label(&[0xff, 0xfe]), OTHER_REASON);
    }
}
