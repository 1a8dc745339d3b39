//! Seed 000's token flow: `POST /api_token/` with Basic credentials and
//! `{"domain", "api"}` answers `{"WINFRA-API-TOKEN": ...}`, which later requests send in the
//! `WINFRA-API-TOKEN` header (or as `Authorization: Bearer`). Errors carry `{"error": ...}`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{AuthFailure, basic_credentials};
use crate::state::{AppState, blocking};

/// The routes of this surface.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api_token/", post(issue))
        .route("/api_token", post(issue))
}

/// An error in seed 000's shape: `{"error": message}`.
#[derive(Debug)]
pub struct WinfraError {
    status: StatusCode,
    message: String,
}

impl WinfraError {
    /// An error with the given status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        WinfraError {
            status,
            message: message.into(),
        }
    }
}

impl From<AuthFailure> for WinfraError {
    fn from(f: AuthFailure) -> Self {
        WinfraError::new(StatusCode::UNAUTHORIZED, f.message())
    }
}

impl From<bulkhost_core::Error> for WinfraError {
    fn from(e: bulkhost_core::Error) -> Self {
        tracing::error!(error = %e, "token request failed");
        WinfraError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error.")
    }
}

impl IntoResponse for WinfraError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"bulkhost\""),
            );
        }
        response
    }
}

#[derive(Debug, Deserialize)]
struct TokenRequest {
    domain: String,
    api: String,
}

async fn issue(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WinfraError> {
    let (user, password) = basic_credentials(&headers).ok_or(AuthFailure::Missing)?;
    let request: TokenRequest = serde_json::from_slice(&body).map_err(|e| {
        WinfraError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("The body must be {{\"domain\": ..., \"api\": ...}}: {e}"),
        )
    })?;
    if request.api.trim().is_empty() {
        return Err(WinfraError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`api` names no API.",
        ));
    }
    let store = state.store.clone();
    let ttl = state.settings.token_ttl;
    let issued = blocking(move || {
        let tenant = store.verify_password(&user, &password);
        match tenant {
            Some(t) if t == request.domain => store.issue_token(&t, &user, ttl).map(Some),
            _ => Ok(None),
        }
    })
    .await?
    .ok_or(AuthFailure::Rejected)?;
    Ok(axum::Json(json!({ "WINFRA-API-TOKEN": issued.token })).into_response())
}
