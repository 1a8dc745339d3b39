//! `generar_xxl` and `estado_xxl`: queueing a request and reporting its state in Winfra XXL's
//! `EstadoGenerarXXL` shape.
//!
//! States are the seed's three: a data set is `PENDING` while queued or generating (with
//! `fecha_generacion_inicio` set and `numero_registros` growing once it runs), `OK` when its
//! records are ready, `ERROR` when it failed or was cancelled. A request stays `PENDING` while
//! any data set is (the seed's client takes `OK` and `ERROR` as final), then is `ERROR` if any
//! data set failed and `OK` otherwise.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bulkhost_core::{ExportRequest, NewExport, RunState};
use chrono::NaiveDateTime;
use serde_json::{Value, json};

use super::WinfraError;
use crate::auth::Caller;
use crate::state::{AppState, blocking};

fn moment(t: Option<NaiveDateTime>) -> Value {
    t.map_or(Value::Null, |t| {
        Value::String(t.format("%Y-%m-%dT%H:%M:%S").to_string())
    })
}

fn estado(state: RunState) -> &'static str {
    match state {
        RunState::Queued | RunState::Running => "PENDING",
        RunState::Done => "OK",
        RunState::Failed | RunState::Cancelled => "ERROR",
    }
}

/// A request in the seed's `EstadoGenerarXXL` shape.
pub fn estado_generar_xxl(request: &ExportRequest) -> Value {
    let failures: Vec<String> = request
        .datasets
        .iter()
        .filter(|d| estado(d.state) == "ERROR")
        .map(|d| format!("{}: {}", d.dataset, d.error_message))
        .collect();
    let overall = if !request.finished() {
        "PENDING"
    } else if failures.is_empty() {
        "OK"
    } else {
        "ERROR"
    };
    let datasets: Vec<Value> = request
        .datasets
        .iter()
        .map(|d| {
            json!({
                "dataset": d.dataset,
                "estado": estado(d.state),
                "fecha_generacion_inicio": moment(d.started_at),
                "fecha_generacion_fin": moment(d.finished_at),
                "numero_registros": d.records,
                "error_message": d.error_message,
            })
        })
        .collect();
    json!({
        "peticion_id": request.id,
        "fecha_peticion": moment(Some(request.created_at)),
        "error_message": failures.join("; "),
        "estado": overall,
        "datasets": datasets,
    })
}

/// A parameter value as text; the seed's clients send strings, numbers and booleans.
fn param_text(name: &str, value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(format!(
            "parameter `{name}` must be a string, number or boolean"
        )),
    }
}

/// `POST /api_v1/generar_xxl`: checks every item before anything is queued.
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
    body: Bytes,
) -> Result<Response, WinfraError> {
    let items: Vec<Value> = match serde_json::from_slice(&body) {
        Ok(Value::Array(items)) if !items.is_empty() => items,
        _ => {
            return Err(WinfraError::refused(
                "The body must be a non-empty JSON list of PeticionGenerarXXL objects.",
            ));
        }
    };
    let mut seen = HashSet::new();
    let mut webhook: Option<String> = None;
    let mut runs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(fields) = item else {
            return Err(WinfraError::refused(format!("Item {i} is not an object.")));
        };
        let Some(Value::String(dataset)) = fields.get("dataset") else {
            return Err(WinfraError::refused(format!(
                "Item {i} names no `dataset`."
            )));
        };
        if !seen.insert(dataset.clone()) {
            return Err(WinfraError::refused(format!(
                "Data set `{dataset}` is requested twice; each may appear once."
            )));
        }
        match fields.get("webhook") {
            None | Some(Value::Null) => {}
            Some(Value::String(url))
                if url.starts_with("http://") || url.starts_with("https://") =>
            {
                if webhook.as_ref().is_some_and(|w| w != url) {
                    return Err(WinfraError::refused(
                        "A request takes one webhook; items name different ones.",
                    ));
                }
                webhook = Some(url.clone());
            }
            Some(_) => {
                return Err(WinfraError::refused(
                    "`webhook` must be an http:// or https:// URL.",
                ));
            }
        }
        let mut params = Vec::new();
        for (name, value) in fields {
            if name == "dataset" || name == "webhook" {
                continue;
            }
            if let Some(text) = param_text(name, value).map_err(WinfraError::refused)? {
                params.push((name.clone(), text));
            }
        }
        runs.push((dataset.clone(), params));
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
        ttl: state.settings.export_ttl,
    };
    let tenant = caller.tenant;
    let request = blocking(move || store.exports().create_export(&tenant, new)).await?;
    state.wakeup.notify();
    Ok(axum::Json(estado_generar_xxl(&request)).into_response())
}

/// `GET /api_v1/estado_xxl`: every request of the caller that has not expired.
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
) -> Result<Response, WinfraError> {
    let store = state.store.clone();
    let requests = blocking(move || store.exports().exports(&caller.tenant)).await?;
    let states: Vec<Value> = requests.iter().map(estado_generar_xxl).collect();
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
    Ok(axum::Json(estado_generar_xxl(&request)).into_response())
}

/// `DELETE /api_v1/estado_xxl/{peticion_id}`: cancels what is still queued or generating
/// (beyond the seed).
pub(super) async fn cancel(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
    Path(id): Path<String>,
) -> Result<Response, WinfraError> {
    let store = state.store.clone();
    let request = blocking(move || store.exports().cancel_export(&caller.tenant, &id)).await?;
    Ok(axum::Json(estado_generar_xxl(&request)).into_response())
}
