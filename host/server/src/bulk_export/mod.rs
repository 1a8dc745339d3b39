//! The Winfra XXL bulk export dialect. `POST /api_token/` issues tokens; `generar_xxl` queues a
//! request for data sets produced by plugins, `estado_xxl` reports it, `datos_xxl` streams the
//! records, whole or by offset and limit. Errors carry `{"error": message}` with 401 for
//! credentials and 422 for a request the API refuses, as Winfra XXL's client expects.

mod downloads;
pub mod plugins;
mod requests;
mod token;
pub mod wire;

use self::wire::WinfraFailure;
use crate::gates::Refusal;
use crate::http::body::BodyError;
use crate::state::AppState;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// The routes of this surface, with and without the `api_v1/` prefix (Winfra XXL's documentation uses
/// both).
pub fn router() -> Router<AppState> {
    let mut router = Router::new()
        .route("/api_token/", post(token::issue))
        .route("/api_token", post(token::issue));
    for prefix in ["/api_v1", ""] {
        router = router
            .route(&format!("{prefix}/generar_xxl"), post(requests::create))
            .route(&format!("{prefix}/estado_xxl"), get(requests::list))
            .route(
                &format!("{prefix}/estado_xxl/{{id}}"),
                get(requests::one).delete(requests::cancel),
            )
            .route(&format!("{prefix}/datasets"), get(plugins::datasets))
            .route(&format!("{prefix}/plugins"), get(plugins::list))
            .route(
                &format!("{prefix}/plugins/{{name}}"),
                axum::routing::put(plugins::upload).delete(plugins::remove),
            )
            .route(
                &format!("{prefix}/datos_xxl/{{id}}/{{dataset}}"),
                get(downloads::whole),
            )
            .route(
                &format!("{prefix}/datos_xxl/{{id}}/{{dataset}}/{{offset}}/{{limit}}"),
                get(downloads::page),
            );
    }
    router
}

/// An error in Winfra XXL's shape: `{"error": message}`.
#[derive(Debug)]
pub struct WinfraError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl WinfraError {
    /// An error with the given status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        WinfraError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A request the API refuses: 422, as Winfra XXL's client expects.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

/// The one answer to a body that could not be read or does not fit: 413 over the limit, 422
/// otherwise, as Winfra's client expects of a refused request.
impl From<BodyError> for WinfraError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(_) => {
                WinfraError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            other => WinfraError::refused(other.to_string()),
        }
    }
}

/// A refusal as Winfra's `{"error"}`, with `Retry-After` when there is a time to try again.
impl From<Refusal> for WinfraError {
    fn from(refusal: Refusal) -> Self {
        WinfraError {
            retry_after: refusal.retry_after,
            ..WinfraError::new(refusal.status, refusal.message)
        }
    }
}

impl From<bulkhost_core::Error> for WinfraError {
    fn from(e: bulkhost_core::Error) -> Self {
        match e {
            bulkhost_core::Error::NotFound => {
                WinfraError::new(StatusCode::NOT_FOUND, "No such request or data set.")
            }
            bulkhost_core::Error::NotReady => WinfraError::new(
                StatusCode::CONFLICT,
                "The data set is not ready: wait until its estado is OK.",
            ),
            bulkhost_core::Error::QuotaExceeded(message) => WinfraError::refused(message),
            bulkhost_core::Error::Unavailable(why) => Refusal::database(&why).into(),
            other => {
                tracing::error!(error = %other, "bulk export request failed");
                WinfraError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error.")
            }
        }
    }
}

impl IntoResponse for WinfraError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(WinfraFailure {
                error: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"bulkhost\""),
            );
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
