//! `generar_xxl` and `estado_xxl`: queueing a request and reporting its state in Winfra XXL's
//! `EstadoGenerarXXL` shape.
//!
//! States are Winfra XXL's three: a data set is `PENDING` while queued or generating (with
//! `fecha_generacion_inicio` set and `numero_registros` growing once it runs), `OK` when its
//! records are ready, `ERROR` when it failed or was cancelled. A request stays `PENDING` while
//! any data set is (Winfra XXL's client takes `OK` and `ERROR` as final), then is `ERROR` if any
//! data set failed and `OK` otherwise.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bulkhost_core::NewExport;

use super::WinfraError;
use super::wire::{EstadoGenerarXxl, PeticionGenerarXxl};
use crate::auth::Caller;
use crate::http::body::{self, BodyError, Limited};
use crate::state::{AppState, blocking};

/// What `generar_xxl` answers to a body that is not a list of requests.
const NOT_A_LIST: &str = "The body must be a non-empty JSON list of PeticionGenerarXXL objects.";

/// `POST /api_v1/generar_xxl`: checks every item before anything is queued.
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
    Limited(body, _): Limited<WinfraError>,
) -> Result<Response, WinfraError> {
    let items: Vec<PeticionGenerarXxl> = body::parse(&body).map_err(|e| match e {
        BodyError::Shape { path, message } if path != "." => {
            WinfraError::refused(format!("{message} at `{path}`"))
        }
        _ => WinfraError::refused(NOT_A_LIST),
    })?;
    if items.is_empty() {
        return Err(WinfraError::refused(NOT_A_LIST));
    }
    let mut seen = HashSet::new();
    let mut webhook: Option<String> = None;
    let mut runs = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Some(dataset) = item.dataset else {
            return Err(WinfraError::refused(format!(
                "Item {i} names no `dataset`."
            )));
        };
        if !seen.insert(dataset.clone()) {
            return Err(WinfraError::refused(format!(
                "Data set `{dataset}` is requested twice; each may appear once."
            )));
        }
        match item.webhook {
            None => {}
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                if webhook.as_ref().is_some_and(|w| *w != url) {
                    return Err(WinfraError::refused(
                        "A request takes one webhook; items name different ones.",
                    ));
                }
                webhook = Some(url);
            }
            Some(_) => {
                return Err(WinfraError::refused(
                    "`webhook` must be an http:// or https:// URL.",
                ));
            }
        }
        let params: Vec<_> = item
            .params
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), value.as_ref()?.text())))
            .collect();
        runs.push((dataset, params));
    }
    let pass = state.gates.plugin_calls.enter(&caller.tenant)?;
    let (registry, tenant) = (state.registry.clone(), caller.tenant.clone());
    let checked = runs.clone();
    let problems = blocking(move || {
        let mut problems = Vec::new();
        for (dataset, params) in &checked {
            let Some((plugin, _)) = registry.find(&tenant, dataset) else {
                problems.push(format!("Unknown data set `{dataset}`."));
                continue;
            };
            match plugin.validate(dataset, params) {
                Ok(errors) if errors.is_empty() => {}
                Ok(errors) => problems.extend(errors.into_iter().map(|e| {
                    if e.name.is_empty() {
                        format!("{dataset}: {}", e.message)
                    } else {
                        format!("{dataset}: {} {}", e.name, e.message)
                    }
                })),
                Err(e) => problems.push(format!("{dataset}: {e}")),
            }
        }
        problems
    })
    .await;
    drop(pass);
    if !problems.is_empty() {
        return Err(WinfraError::refused(problems.join(" ")));
    }
    let store = state.store.clone();
    let new = NewExport {
        datasets: runs,
        webhook,
        ttl: state.config.exports.ttl(),
    };
    let tenant = caller.tenant;
    let request = blocking(move || store.exports().create_export(&tenant, new)).await?;
    state.wakeup.notify();
    Ok(axum::Json(EstadoGenerarXxl::from(&request)).into_response())
}

/// `GET /api_v1/estado_xxl`: every request of the caller that has not expired.
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
) -> Result<Response, WinfraError> {
    let store = state.store.clone();
    let requests = blocking(move || store.exports().exports(&caller.tenant)).await?;
    let states: Vec<EstadoGenerarXxl> = requests.iter().map(EstadoGenerarXxl::from).collect();
    Ok(axum::Json(states).into_response())
}

/// `GET /api_v1/estado_xxl/{peticion_id}`.
pub(super) async fn one(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
    Path(id): Path<String>,
) -> Result<Response, WinfraError> {
    let store = state.store.clone();
    let request = blocking(move || store.exports().export(&caller.tenant, &id)).await?;
    Ok(axum::Json(EstadoGenerarXxl::from(&request)).into_response())
}

/// `DELETE /api_v1/estado_xxl/{peticion_id}`: cancels what is still queued or generating
/// (beyond Winfra XXL).
pub(super) async fn cancel(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
    Path(id): Path<String>,
) -> Result<Response, WinfraError> {
    let store = state.store.clone();
    let request = blocking(move || store.exports().cancel_export(&caller.tenant, &id)).await?;
    Ok(axum::Json(EstadoGenerarXxl::from(&request)).into_response())
}
