//! Prometheus metrics, served as text at `/metrics`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    method: String,
    status: u16,
}

/// The host's metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    batch_operations: Family<OperationLabels, Counter>,
    batches_finished: Counter,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("bulkhost");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        let durations =
            Family::<RouteLabels, Histogram>::new_with_constructor(duration_histogram as fn() -> _);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests (until the response head), by route",
            durations.clone(),
        );
        let batch_operations = Family::<OperationLabels, Counter>::default();
        registry.register(
            "batch_operations",
            "Batch operations run, by method and status (they do not pass the HTTP counters)",
            batch_operations.clone(),
        );
        let batches_finished = Counter::default();
        registry.register(
            "batches_finished",
            "Batches that ran every operation",
            batches_finished.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            batch_operations,
            batches_finished,
        }
    }
}

impl Metrics {
    /// Counts one batch operation that answered `status`.
    pub fn batch_operation(&self, method: &str, status: u16) {
        self.batch_operations
            .get_or_create(&OperationLabels {
                method: method.to_string(),
                status,
            })
            .inc();
    }

    /// Counts a batch that ran every operation.
    pub fn batch_finished(&self) {
        self.batches_finished.inc();
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .unwrap_or_else(|e| unreachable!("writing to a String cannot fail: {e}"));
        out
    }
}

/// The method as a label: one of HTTP's own, or `OTHER`, so that made-up methods cannot
/// grow the number of series without bound (routes are labelled by their template, for the
/// same reason).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// Middleware counting and timing every request.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method()).to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    state
        .metrics
        .durations
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`.
pub async fn serve_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
