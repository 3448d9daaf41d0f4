//! Metrics of the REST listener: every request is counted and timed by HTTP
//! method, route and status code, and counted while in flight (names after
//! the registry's prefix, `alcor_`):
//!
//! - `rest_requests_total{method, route, code}`;
//! - `rest_request_duration_seconds{method, route, code}` (a histogram,
//!   from the request to its response's headers);
//! - `rest_requests_in_flight{method, route}`.
//!
//! Label values are bounded: `route` is the matched route template
//! (`/v2.0/ports/{id}`, never the raw path; a request no route matched is
//! `unmatched`), `method` one of the standard methods (else `OTHER`), and
//! `code` a status code.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// Prometheus's `DefBuckets` extended down to 0.5 ms (the gRPC metrics'
/// buckets, so both APIs compare).
const DURATION_BUCKETS_S: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A request's method and route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

/// A request's method, route and answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabels {
    method: &'static str,
    route: String,
    code: u16,
}

#[derive(Debug)]
struct Inner {
    requests: Family<CodeLabels, Counter>,
    duration: Family<CodeLabels, Histogram>,
    in_flight: Family<RouteLabels, Gauge>,
}

/// The REST listener's metrics; cloning shares them.
#[derive(Debug, Clone)]
pub struct RestMetrics {
    inner: Arc<Inner>,
}

impl Default for RestMetrics {
    fn default() -> RestMetrics {
        RestMetrics {
            inner: Arc::new(Inner {
                requests: Family::default(),
                duration: Family::new_with_constructor(|| {
                    Histogram::new(DURATION_BUCKETS_S.iter().copied())
                }),
                in_flight: Family::default(),
            }),
        }
    }
}

impl RestMetrics {
    /// Registers the families in `registry` (under its prefix: `alcor`
    /// gives `alcor_rest_...`).
    pub fn register(&self, registry: &mut Registry) {
        let rest = registry.sub_registry_with_prefix("rest");
        rest.register(
            "requests",
            "REST requests answered, by method, route template and status code",
            self.inner.requests.clone(),
        );
        rest.register(
            "request_duration_seconds",
            "Time from a REST request to its response, by method, route template and status code",
            self.inner.duration.clone(),
        );
        rest.register(
            "requests_in_flight",
            "REST requests being served, by method and route template",
            self.inner.in_flight.clone(),
        );
    }
}

/// The label of an HTTP method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Decrements an in-flight gauge when dropped (also when the client goes
/// away mid-request).
struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The middleware (`middleware::from_fn_with_state(metrics, measure)` as a
/// `Router::layer`, where the matched route is known).
pub(crate) async fn measure(
    State(metrics): State<RestMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_string();
    let method = method_label(request.method());
    let labels = RouteLabels {
        method,
        route: route.clone(),
    };
    let gauge = metrics.inner.in_flight.get_or_create(&labels).clone();
    gauge.inc();
    let in_flight = InFlight(gauge);
    let started = Instant::now();
    let response = next.run(request).await;
    drop(in_flight);
    let labels = CodeLabels {
        method,
        route,
        code: response.status().as_u16(),
    };
    metrics.inner.requests.get_or_create(&labels).inc();
    metrics
        .inner
        .duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}
