//! Winfra XXL's token flow: `POST /api_token/` with Basic credentials and
//! `{"domain", "api"}` answers `{"WINFRA-API-TOKEN": ...}`, which later requests send in the
//! `WINFRA-API-TOKEN` header (or as `Authorization: Bearer`).

use super::WinfraError;
use super::wire::{TokenAnswer, TokenRequest};
use crate::auth::{AuthFailure, ClientIp, basic_credentials};
use crate::gates::Refusal;
use crate::http::body::{self, Limited};
use crate::state::{AppState, blocking};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

/// `POST /api_token/`.
pub(super) async fn issue(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Limited(body, _): Limited<WinfraError>,
) -> Result<Response, WinfraError> {
    let (user, password) =
        basic_credentials(&headers).ok_or_else(|| Refusal::from(AuthFailure::Missing))?;
    let request: TokenRequest = body::parse(&body).map_err(|e| {
        WinfraError::refused(format!(
            "The body must be {{\"domain\": ..., \"api\": ...}}: {e}"
        ))
    })?;
    if request.api.trim().is_empty() {
        return Err(WinfraError::refused("`api` names no API."));
    }
    let tenant = state
        .passwords
        .verify(&state.store, user.clone(), password, client)
        .await
        .map_err(Refusal::from)?;
    if tenant != request.domain {
        return Err(Refusal::from(AuthFailure::Rejected).into());
    }
    let store = state.store.clone();
    let ttl = state.config.token_ttl();
    let issued = blocking(move || store.credentials().issue_token(&tenant, &user, ttl)).await?;
    Ok(axum::Json(TokenAnswer {
        token: issued.token,
    })
    .into_response())
}
