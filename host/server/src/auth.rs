//! Resolving a request to exactly one tenant: HTTP Basic, `Authorization: Bearer`, or seed
//! 000's `WINFRA-API-TOKEN` header.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::state::{AppState, blocking};

/// The header seed 000's token flow uses.
pub const TOKEN_HEADER: &str = "winfra-api-token";

/// Why a request was not authenticated. Wrong, unknown and expired credentials are one case on
/// purpose: the answer must not tell which it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// The request carried no credentials.
    Missing,
    /// The credentials were not accepted.
    Rejected,
}

impl AuthFailure {
    /// The message every dialect shows.
    pub fn message(self) -> &'static str {
        match self {
            AuthFailure::Missing => "Authentication credentials were not provided.",
            AuthFailure::Rejected => "Invalid credentials.",
        }
    }
}

/// HTTP Basic credentials, if the request carries them.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = headers.get(TOKEN_HEADER) {
        return Some(token.to_str().unwrap_or_default().trim().to_string());
    }
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// The tenant the request acts for. A token, when present, decides alone: seed 000's client
/// sends Basic credentials beside its token, and a bad token must not pass on the password.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<String, AuthFailure> {
    let store = state.store.clone();
    if let Some(token) = bearer_token(headers) {
        return blocking(move || store.verify_token(&token))
            .await
            .ok()
            .flatten()
            .ok_or(AuthFailure::Rejected);
    }
    let (user, password) = basic_credentials(headers).ok_or(AuthFailure::Missing)?;
    blocking(move || store.verify_password(&user, &password))
        .await
        .ok_or(AuthFailure::Rejected)
}

/// The tenant a request runs as when the server itself makes it: a batch operation runs as
/// its batch's tenant, through the same router and handlers as a direct request. Only
/// in-process code can attach a request extension, so no client can claim it.
#[derive(Debug, Clone)]
pub struct ActingTenant(pub String);

/// An authenticated caller; `E` is the dialect's error, so a refusal is rendered in the shape
/// that surface's clients parse.
#[derive(Debug)]
pub struct Caller<E> {
    /// The tenant every read and write of the request is scoped to.
    pub tenant: String,
    dialect: PhantomData<E>,
}

impl<E> FromRequestParts<AppState> for Caller<E>
where
    E: From<AuthFailure> + IntoResponse,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, E> {
        let tenant = match parts.extensions.get::<ActingTenant>() {
            Some(acting) => acting.0.clone(),
            None => authenticate(state, &parts.headers).await?,
        };
        Ok(Caller {
            tenant,
            dialect: PhantomData,
        })
    }
}
