//! The operator's API: plugins that serve every tenant, and the tenants. `GET /admin/plugins`
//! lists the plugins; `PUT /admin/plugins/{name}` uploads a component (checked completely
//! before it is written into the plugins directory, then offered at once); `DELETE` removes
//! one. `GET /admin/tenants` shows each tenant's usage, work and failures. Callers present a
//! bearer token whose SHA-256 the configuration lists.

pub mod tenants;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bulkhost_runtime::{InstallError, Scope};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::bulk_export::plugins::{install, listings};
use crate::bulk_export::wire::WinfraFailure;
use crate::http::body::BodyError;
use crate::state::{AppState, blocking};

/// The routes of this surface.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/plugins", get(list))
        .route(
            "/admin/plugins/{name}",
            axum::routing::put(upload).delete(remove),
        )
        .route("/admin/tenants", get(tenants::list))
}

/// An error of the operator's API: `{"error": message}`.
#[derive(Debug)]
pub struct AdminError(StatusCode, String);

impl AdminError {
    /// The storage failed.
    fn storage(e: bulkhost_core::Error) -> Self {
        AdminError(storage_status(&e), e.to_string())
    }
}

/// 503 while the database is unreachable, else 500.
fn storage_status(e: &bulkhost_core::Error) -> StatusCode {
    match e {
        bulkhost_core::Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(WinfraFailure { error: self.1 })).into_response()
    }
}

/// 413 for an upload over the limit, 422 for one that could not be read.
impl From<BodyError> for AdminError {
    fn from(e: BodyError) -> Self {
        let status = match e {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        AdminError(status, e.to_string())
    }
}

/// A request from the operator.
#[derive(Debug)]
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AdminError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|token| hex::encode(Sha256::digest(token.trim().as_bytes())));
        let accepted = presented.is_some_and(|digest| {
            state
                .config
                .admin
                .token_sha256
                .iter()
                .any(|known| bool::from(known.as_bytes().ct_eq(digest.as_bytes())))
        });
        if accepted {
            Ok(Operator)
        } else {
            Err(AdminError(
                StatusCode::UNAUTHORIZED,
                "An operator token is required.".into(),
            ))
        }
    }
}

async fn list(State(state): State<AppState>, _: Operator) -> Response {
    axum::Json(listings(state.registry.plugins(&Scope::Global))).into_response()
}

async fn upload(
    State(state): State<AppState>,
    _: Operator,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, AdminError> {
    let bytes =
        crate::http::body::read(request.into_body(), state.config.plugins.upload_bytes()).await?;
    let installed = install(&state, Scope::Global, name, bytes.to_vec())
        .await
        .map_err(refused)?;
    Ok((StatusCode::CREATED, axum::Json(installed)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    _: Operator,
    Path(name): Path<String>,
) -> Result<Response, AdminError> {
    let registry = state.registry.clone();
    match blocking(move || registry.uninstall(Scope::Global, &name)).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(false) => Err(AdminError(StatusCode::NOT_FOUND, "No such plugin.".into())),
        Err(e) => Err(refused(e)),
    }
}

/// Why an upload or removal failed: the caller's component or name (422), or the storage
/// (503 while the database is unreachable, else 500).
fn refused(e: InstallError) -> AdminError {
    let status = match &e {
        InstallError::Storage(storage) => storage_status(storage),
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    AdminError(status, e.to_string())
}
