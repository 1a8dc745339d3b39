//! What a tenant can request and its own extensions (beyond the seed): `GET /api_v1/datasets`
//! describes every data set offered to the caller, and `/api_v1/plugins/{name}` lists,
//! uploads (`PUT`, the component's bytes) and removes the caller's own plugins, which no
//! other tenant sees.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bulkhost_runtime::{DatasetInfo, FieldKind, InstallError, ParamKind, Scope};
use serde_json::{Value, json};

use super::WinfraError;
use crate::auth::Caller;
use crate::state::{AppState, blocking};

fn param_kind(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::String => "string",
        ParamKind::Integer => "integer",
        ParamKind::Decimal => "decimal",
        ParamKind::Boolean => "boolean",
        ParamKind::Datetime => "datetime",
    }
}

fn field_kind(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::String => "string",
        FieldKind::Integer => "integer",
        FieldKind::Decimal => "decimal",
        FieldKind::Boolean => "boolean",
        FieldKind::Datetime => "datetime",
        FieldKind::Object => "object",
        FieldKind::List => "list",
    }
}

/// A data set's description as the API shows it.
pub fn dataset_json(info: &DatasetInfo) -> Value {
    json!({
        "dataset": info.name,
        "description": info.description,
        "params": info.params.iter().map(|p| json!({
            "name": p.name,
            "description": p.description,
            "kind": param_kind(p.kind),
            "required": p.required,
            "default": p.default_value,
            "allowed_values": p.allowed_values,
        })).collect::<Vec<_>>(),
        "fields": info.fields.iter().map(|f| json!({
            "name": f.name,
            "kind": field_kind(f.kind),
            "description": f.description,
        })).collect::<Vec<_>>(),
    })
}

/// The answer about plugins of one scope.
pub fn plugins_json(plugins: Vec<(String, String, Vec<String>)>) -> Value {
    Value::Array(
        plugins
            .into_iter()
            .map(|(name, hash, datasets)| json!({"name": name, "sha256": hash, "datasets": datasets}))
            .collect(),
    )
}

/// Why an uploaded component's bytes were not taken.
#[derive(Debug)]
pub enum UploadRefused {
    /// The body passed the uploader's limit, in bytes.
    TooLarge(usize),
    /// The body could not be read.
    Unreadable(String),
}

impl std::fmt::Display for UploadRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadRefused::TooLarge(limit) => write!(
                f,
                "a component uploaded here may be at most {} MiB",
                limit >> 20
            ),
            UploadRefused::Unreadable(why) => write!(f, "could not read the component: {why}"),
        }
    }
}

/// Reads an uploaded component of at most `limit` bytes.
pub async fn component_bytes(request: Request, limit: usize) -> Result<Vec<u8>, UploadRefused> {
    axum::body::to_bytes(request.into_body(), limit)
        .await
        .map(|b| b.to_vec())
        .map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                UploadRefused::TooLarge(limit)
            } else {
                UploadRefused::Unreadable(e.to_string())
            }
        })
}

/// Installs an upload, answering the plugin's description or why it was refused.
pub async fn install(
    state: &AppState,
    scope: Scope,
    name: String,
    bytes: Vec<u8>,
) -> Result<Value, InstallError> {
    let registry = state.registry.clone();
    let plugin = blocking(move || registry.install(scope, &name, &bytes)).await?;
    Ok(json!({
        "name": plugin.name(),
        "sha256": plugin.hash(),
        "datasets": plugin.datasets().iter().map(dataset_json).collect::<Vec<_>>(),
    }))
}

fn refused(e: InstallError) -> WinfraError {
    match e {
        InstallError::Storage(why) => why.into(),
        other => WinfraError::refused(other.to_string()),
    }
}

/// `GET /api_v1/datasets`.
pub(super) async fn datasets(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
) -> Response {
    let offered = state.registry.datasets(&caller.tenant);
    axum::Json(offered.values().map(dataset_json).collect::<Vec<_>>()).into_response()
}

/// `GET /api_v1/plugins`: the caller's own plugins.
pub(super) async fn list(State(state): State<AppState>, caller: Caller<WinfraError>) -> Response {
    axum::Json(plugins_json(
        state.registry.plugins(&Scope::Tenant(caller.tenant)),
    ))
    .into_response()
}

/// `PUT /api_v1/plugins/{name}`: uploads one of the caller's own plugins, within the
/// tenant's upload limit and plugin quota, as one of its plugin calls.
pub(super) async fn upload(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, WinfraError> {
    let _pass = state.gates.plugin_calls.enter(&caller.tenant)?;
    let bytes = component_bytes(request, state.settings.tenant_plugin_upload_bytes)
        .await
        .map_err(|e| match e {
            UploadRefused::TooLarge(_) => {
                WinfraError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            UploadRefused::Unreadable(_) => WinfraError::refused(e.to_string()),
        })?;
    let installed = install(&state, Scope::Tenant(caller.tenant), name, bytes)
        .await
        .map_err(refused)?;
    Ok((StatusCode::CREATED, axum::Json(installed)).into_response())
}

/// `DELETE /api_v1/plugins/{name}`.
pub(super) async fn remove(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
    Path(name): Path<String>,
) -> Result<Response, WinfraError> {
    let registry = state.registry.clone();
    let scope = Scope::Tenant(caller.tenant);
    let existed = blocking(move || registry.uninstall(scope, &name))
        .await
        .map_err(refused)?;
    if existed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(WinfraError::new(StatusCode::NOT_FOUND, "No such plugin."))
    }
}
