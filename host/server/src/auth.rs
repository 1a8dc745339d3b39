//! Resolving a request to exactly one tenant: HTTP Basic, `Authorization: Bearer`, or Winfra
//! XXL's `WINFRA-API-TOKEN` header.
//!
//! Password checks are Argon2 hashes, slow on purpose, so they are rationed: a pair checked
//! recently is answered from memory without a hash; otherwise the check waits for one of a few
//! hash permits (never every core), and each user name and each client address may ask for so
//! many checks a minute, after which they are answered 429 without any hash at all. A flood of
//! made-up credentials thus costs the server a bounded share of its CPU and never delays a
//! client whose credentials are already known.

use std::marker::PhantomData;
use std::net::IpAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bulkhost_core::Store;
use tokio::sync::Semaphore;

use crate::config::AuthLimits;
use crate::gates::Refusal;
use crate::listener::ClientAddr;
use crate::state::{AppState, blocking};
use crate::throttle::{Throttle, retry_after_secs};

/// The header Winfra XXL's token flow uses.
pub const TOKEN_HEADER: &str = "winfra-api-token";

/// Why a request was not authenticated. Wrong, unknown and expired credentials are one case on
/// purpose: the answer must not tell which it was.
#[derive(Debug, Clone)]
pub enum AuthFailure {
    /// The request carried no credentials.
    Missing,
    /// The credentials were not accepted.
    Rejected,
    /// Too many checks were asked for this user name or address: none was made.
    Throttled(Refusal),
}

impl AuthFailure {
    /// The message every dialect shows for a refusal of the credentials.
    pub fn message(&self) -> &str {
        match self {
            AuthFailure::Missing => "Authentication credentials were not provided.",
            AuthFailure::Rejected => "Invalid credentials.",
            AuthFailure::Throttled(refusal) => &refusal.message,
        }
    }
}

/// A refusal of the credentials is a 401; a throttled check keeps its own status and wait.
impl From<AuthFailure> for Refusal {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Throttled(refusal) => refusal,
            other => Refusal {
                status: axum::http::StatusCode::UNAUTHORIZED,
                message: other.message().to_string(),
                retry_after: None,
            },
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

/// The rationing of password checks.
#[derive(Debug)]
pub struct PasswordChecks {
    hashes: Semaphore,
    wait: Duration,
    users: Throttle<String>,
    addresses: Throttle<IpAddr>,
}

impl PasswordChecks {
    /// Checks rationed as the operator configured.
    pub fn new(limits: &AuthLimits) -> Self {
        PasswordChecks {
            hashes: Semaphore::new(limits.hash_permits()),
            wait: Duration::from_millis(limits.hash_wait_ms),
            users: Throttle::per_minute(limits.checks_per_user_per_minute),
            addresses: Throttle::per_minute(limits.checks_per_address_per_minute),
        }
    }

    /// The tenant `user` belongs to if `password` is theirs, checked within the rations.
    pub async fn verify(
        &self,
        store: &Store,
        user: String,
        password: String,
        client: Option<IpAddr>,
    ) -> Result<String, AuthFailure> {
        if let Some(tenant) = store.credentials().recall_password(&user, &password) {
            return Ok(tenant);
        }
        self.within_rations(&user, client)?;
        let Ok(Ok(_permit)) = tokio::time::timeout(self.wait, self.hashes.acquire()).await else {
            return Err(AuthFailure::Throttled(Refusal::limit(
                "Too many sign-ins are being checked at once; try again shortly.".into(),
            )));
        };
        // Asked again with the permit held: requests that waited side by side may have used
        // the rations meanwhile. Only a check that is made counts, so the rations' memory grows
        // with the checks the permits allow, not with the requests a flood sends.
        self.within_rations(&user, client)?;
        self.users.charge(&user);
        if let Some(address) = client {
            self.addresses.charge(&address);
        }
        let store = store.clone();
        blocking(move || store.credentials().verify_password(&user, &password))
            .await
            .ok_or(AuthFailure::Rejected)
    }

    /// Refuses a check the user name's or the address's ration has no room for.
    fn within_rations(&self, user: &String, client: Option<IpAddr>) -> Result<(), AuthFailure> {
        let wait = [
            self.users.wait(user),
            client.and_then(|a| self.addresses.wait(&a)),
        ]
        .into_iter()
        .flatten()
        .max();
        match wait {
            None => Ok(()),
            Some(wait) => {
                let secs = retry_after_secs(wait);
                Err(AuthFailure::Throttled(Refusal {
                    retry_after: Some(secs),
                    ..Refusal::limit(format!(
                        "Too many sign-in attempts for this user or address. Expected available in {secs} seconds."
                    ))
                }))
            }
        }
    }

    /// Forgets the users and addresses whose rations have filled up again.
    pub fn forget_idle(&self) {
        self.users.forget_idle();
        self.addresses.forget_idle();
    }
}

/// The tenant the request acts for. A token, when present, decides alone: Winfra XXL's client
/// sends Basic credentials beside its token, and a bad token must not pass on the password.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    client: Option<IpAddr>,
) -> Result<String, AuthFailure> {
    if let Some(token) = bearer_token(headers) {
        let store = state.store.clone();
        return match blocking(move || store.credentials().verify_token(&token)).await {
            Ok(Some(tenant)) => Ok(tenant),
            Ok(None) => Err(AuthFailure::Rejected),
            Err(bulkhost_core::Error::Unavailable(why)) => {
                Err(AuthFailure::Throttled(Refusal::database(&why)))
            }
            Err(e) => {
                tracing::error!(error = %e, "checking a token failed");
                Err(AuthFailure::Rejected)
            }
        };
    }
    let (user, password) = basic_credentials(headers).ok_or(AuthFailure::Missing)?;
    state
        .passwords
        .verify(&state.store, user, password, client)
        .await
}

/// The address of the client a request came from, when it came over the network.
fn client_address(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<ClientAddr>>()
        .map(|info| info.0.0.ip())
}

/// The address of the client a request came from, for handlers that check passwords
/// themselves; `None` for requests the server makes to itself.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_address(parts)))
    }
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
    E: From<Refusal> + IntoResponse,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, E> {
        let tenant = match parts.extensions.get::<ActingTenant>() {
            Some(acting) => acting.0.clone(),
            None => authenticate(state, &parts.headers, client_address(parts))
                .await
                .map_err(Refusal::from)?,
        };
        if let Some(note) = parts.extensions.get::<crate::access::TenantNote>() {
            note.note(&tenant);
        }
        Ok(Caller {
            tenant,
            dialect: PhantomData,
        })
    }
}
