//! LogiCommerce's asynchronous batches of operations, metered by load score, over the built-in
//! routes and the batch endpoints of plugins; and the plugin endpoints themselves, also
//! callable one by one under `/v1/`.
//!
//! Errors answer `{"error": {"code": ..., "message": ...}}`: LogiCommerce names no error body,
//! and this is the shape the bundled endpoint plugins answer in too, so a client parses one
//! shape on the whole `/v1/` surface.

pub mod catalogue;
pub mod executor;
mod notices;
mod plugin_calls;
mod recorder;
mod requests;
mod results;
pub mod wire;

pub(crate) use notices::finished_mail;

use self::wire::{BatchFailure, BatchFailureDetail, EndpointLimit, Limits, LimitsAnswer};
use crate::auth::Caller;
use crate::gates::Refusal;
use crate::http::body::BodyError;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

/// The routes of this surface.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/batch", post(requests::create))
        .route("/v1/batch/limits", get(limits))
        .route("/v1/batch/{uuid}", get(requests::status))
        .route("/v1/batch/{uuid}/jsonl", get(results::jsonl))
        .route("/v1/batch/{uuid}/file", get(results::jsonl))
        .route("/v1/batch/{uuid}/gz", get(results::gz))
        .route("/v1/batch/{uuid}/retry", post(requests::retry))
        .route("/v1/{*path}", any(plugin_calls::call))
}

/// An error of the `/v1/` surface.
#[derive(Debug)]
pub struct BatchError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl BatchError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        BatchError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// What is asked of `batch` needs it finished.
    fn not_finished(batch: &bulkhost_core::Batch) -> Self {
        BatchError::new(
            StatusCode::CONFLICT,
            "BATCH_NOT_FINISHED",
            format!(
                "batch {} is {}; this needs it finished",
                batch.uuid,
                batch.status.as_str()
            ),
        )
    }
}

/// The one answer to a body that could not be read or does not fit: 413 for a body over the
/// limit, 400 for one that is not JSON, 422 naming where the JSON is wrong.
impl From<BodyError> for BatchError {
    fn from(e: BodyError) -> Self {
        let (status, code) = match &e {
            BodyError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            BodyError::Unreadable(_) => (StatusCode::BAD_REQUEST, "INVALID_BODY"),
            BodyError::NotJson(_) => (StatusCode::BAD_REQUEST, "INVALID_JSON"),
            BodyError::Shape { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BATCH"),
        };
        BatchError::new(status, code, e.to_string())
    }
}

/// A refusal with its code: `UNAUTHORIZED`, `TOO_MANY_REQUESTS` or `SERVICE_UNAVAILABLE`.
impl From<Refusal> for BatchError {
    fn from(refusal: Refusal) -> Self {
        BatchError {
            retry_after: refusal.retry_after,
            ..BatchError::new(
                refusal.status,
                match refusal.status {
                    StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
                    StatusCode::SERVICE_UNAVAILABLE => "SERVICE_UNAVAILABLE",
                    _ => "TOO_MANY_REQUESTS",
                },
                refusal.message,
            )
        }
    }
}

impl From<bulkhost_core::Error> for BatchError {
    fn from(e: bulkhost_core::Error) -> Self {
        match e {
            bulkhost_core::Error::NotFound => {
                BatchError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such batch")
            }
            bulkhost_core::Error::Unavailable(why) => Refusal::database(&why).into(),
            bulkhost_core::Error::UnknownTenant(t) => BatchError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                format!("unknown tenant {t}"),
            ),
            other => {
                tracing::error!(error = %other, "batch request failed");
                BatchError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL",
                    "the server could not complete the request",
                )
            }
        }
    }
}

impl IntoResponse for BatchError {
    fn into_response(self) -> Response {
        let body = BatchFailure {
            error: BatchFailureDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// `GET /v1/batch/limits`: every endpoint the caller's batches may call, with its load score,
/// and the most a batch may weigh, in LogiCommerce's shape (methods in lower case).
async fn limits(State(state): State<AppState>, caller: Caller<BatchError>) -> Response {
    let endpoints = catalogue::endpoints(&state, &caller.tenant)
        .into_iter()
        .map(|e| EndpointLimit {
            endpoint: e.template,
            load_score: e.load_score,
            method: e.method.to_lowercase(),
        })
        .collect();
    axum::Json(LimitsAnswer {
        limits: Limits {
            endpoints,
            max_load_score: state.config.batches.max_load_score,
        },
    })
    .into_response()
}
