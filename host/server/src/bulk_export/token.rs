//! Winfra XXL's token flow: `POST /api_token/` with Basic credentials and
//! `{"domain", "api"}` answers `{"WINFRA-API-TOKEN": ...}`, which later requests send in the
//! `WINFRA-API-TOKEN` header (or as `Authorization: Bearer`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::WinfraError;
use crate::auth::{AuthFailure, ClientIp, basic_credentials};
use crate::state::{AppState, blocking};

#[derive(Debug, Deserialize)]
struct TokenRequest {
    domain: String,
    api: String,
}

/// `POST /api_token/`.
pub(super) async fn issue(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
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
    let tenant = state
        .passwords
        .verify(&state.store, user.clone(), password, client)
        .await?;
    if tenant != request.domain {
        return Err(AuthFailure::Rejected.into());
    }
    let store = state.store.clone();
    let ttl = state.settings.token_ttl;
    let issued = blocking(move || store.credentials().issue_token(&tenant, &user, ttl)).await?;
    Ok(axum::Json(json!({ "WINFRA-API-TOKEN": issued.token })).into_response())
}
