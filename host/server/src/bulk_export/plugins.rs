//! What a tenant can request and its own extensions (beyond Winfra XXL): `GET /api_v1/datasets`
//! describes every data set offered to the caller, and `/api_v1/plugins/{name}` lists,
//! uploads (`PUT`, the component's bytes) and removes the caller's own plugins, which no
//! other tenant sees.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bulkhost_runtime::{InstallError, Scope};

use super::WinfraError;
use super::wire::{DatasetDescription, InstalledPlugin, PluginListing};
use crate::auth::Caller;
use crate::state::{AppState, blocking};

/// The plugins of one scope as listings show them.
pub fn listings(plugins: Vec<(String, String, Vec<String>)>) -> Vec<PluginListing> {
    plugins
        .into_iter()
        .map(|(name, sha256, datasets)| PluginListing {
            name,
            sha256,
            datasets,
        })
        .collect()
}

/// Installs an upload, answering the plugin's description or why it was refused.
pub async fn install(
    state: &AppState,
    scope: Scope,
    name: String,
    bytes: Vec<u8>,
) -> Result<InstalledPlugin, InstallError> {
    let registry = state.registry.clone();
    let plugin = blocking(move || registry.install(scope, &name, &bytes)).await?;
    Ok(InstalledPlugin {
        name: plugin.name().to_string(),
        sha256: plugin.hash().to_string(),
        datasets: plugin
            .datasets()
            .iter()
            .map(DatasetDescription::from)
            .collect(),
    })
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
    axum::Json(
        offered
            .values()
            .map(DatasetDescription::from)
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// `GET /api_v1/plugins`: the caller's own plugins.
pub(super) async fn list(State(state): State<AppState>, caller: Caller<WinfraError>) -> Response {
    axum::Json(listings(
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
    let bytes = crate::http::body::read(
        request.into_body(),
        state.config.plugins.tenant_upload_bytes(),
    )
    .await?;
    let installed = install(&state, Scope::Tenant(caller.tenant), name, bytes.to_vec())
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
