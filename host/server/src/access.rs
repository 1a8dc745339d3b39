//! What an operator sees of every request: an `X-Request-Id` on every response (the client's,
//! when it sent a usable one, or one made here), a span carrying it around every log line the
//! request causes, one access log line at `info` once the response has been sent or cut off
//! (request id, tenant, method, route template, status, duration to the last byte, bytes sent),
//! and the request counted in the metrics.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Frame;
use tracing::Instrument;

use crate::state::AppState;

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id a client may choose; a longer one, or one with other characters than
/// letters, digits and `-_.:/+=`, is replaced, so ids stay readable in logs.
const MAX_ID_CHARS: usize = 128;

/// The tenant a request turned out to run as, told by authentication ([`crate::auth::Caller`])
/// to the access log, which writes its line after the handler has gone.
#[derive(Debug, Clone, Default)]
pub struct TenantNote(Arc<OnceLock<String>>);

impl TenantNote {
    /// Notes the request's tenant.
    pub fn note(&self, tenant: &str) {
        let _ = self.0.set(tenant.to_string());
    }
}

/// The client's request id, if it is one this server keeps.
fn usable_id(value: &HeaderValue) -> Option<&str> {
    let id = value.to_str().ok()?;
    let fits = !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b));
    fits.then_some(id)
}

/// Middleware around every client request: the request id, the span, the metrics and, when
/// the body ends, the access log line.
pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = match request.headers().get(REQUEST_ID).and_then(usable_id) {
        Some(id) => id.to_string(),
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    let id_header = HeaderValue::from_str(&id)
        .unwrap_or_else(|e| unreachable!("request ids are visible ASCII: {e}"));
    request.headers_mut().insert(REQUEST_ID, id_header.clone());
    let tenant = TenantNote::default();
    request.extensions_mut().insert(tenant.clone());
    let method = request.method().clone();
    // Metrics label by the router's template, which bounds their series; the log names the
    // route as the API reference does where it can.
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let route = crate::openapi::documented_route(&method, request.uri().path())
        .map_or_else(|| matched.clone(), str::to_string);
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    // Until the handler answers, a client that goes away drops this future: the guard still
    // writes the line, with nginx's 499.
    let mut unanswered = Unanswered(Some(AccessLine {
        id,
        tenant,
        method,
        route,
        status: CLIENT_CLOSED_REQUEST,
        started,
    }));
    let response = next.run(request).instrument(span).await;
    let mut line = unanswered
        .0
        .take()
        .unwrap_or_else(|| unreachable!("taken once"));
    line.status = response.status().as_u16();
    state
        .metrics
        .request(&line.method, &matched, line.status, started.elapsed());
    let (mut parts, body) = response.into_parts();
    parts.headers.insert(REQUEST_ID, id_header);
    let logged = Logged {
        body,
        bytes: 0,
        line: Some(line),
    };
    Response::from_parts(parts, Body::new(logged))
}

/// The status an access line gives a request whose client went away before it was answered.
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// The access line of a request not answered yet, written if it never is.
struct Unanswered(Option<AccessLine>);

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(line) = self.0.take() {
            line.write(0, false);
        }
    }
}

/// What the access log says of a request, but the bytes, which only the body's end knows.
struct AccessLine {
    id: String,
    tenant: TenantNote,
    method: Method,
    route: String,
    status: u16,
    started: Instant,
}

impl AccessLine {
    /// Writes the line: `complete` when the whole body was sent, not when the client went
    /// away or the body failed on the way.
    fn write(self, bytes: u64, complete: bool) {
        tracing::info!(
            target: "bulkhost::access",
            request_id = %self.id,
            tenant = self.tenant.0.get().map_or("-", String::as_str),
            method = %self.method,
            route = %self.route,
            status = self.status,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            bytes,
            complete,
            "request"
        );
    }
}

/// A response body that counts its bytes and writes the access line when it ends, or when it
/// is dropped before its end.
struct Logged {
    body: Body,
    bytes: u64,
    line: Option<AccessLine>,
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                self.bytes += frame.data_ref().map_or(0, |data| data.len() as u64);
            }
            Poll::Ready(None) => {
                if let Some(line) = self.line.take() {
                    line.write(self.bytes, true);
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(line) = self.line.take() {
            // A HEAD response is complete without its body.
            let complete = self.body.is_end_stream() || line.method == Method::HEAD;
            line.write(self.bytes, complete);
        }
    }
}
