//! Calls of plugin endpoints: `/v1/...` routed to the tenant's batch endpoint plugins, one
//! invocation per call, writes through the core's write path as the caller's tenant.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulkhost_runtime::{EndpointRequest, TenantWriter};

use super::BatchError;
use super::catalogue::{self, Endpoint};
use super::executor::OperationBudget;
use crate::auth::Caller;
use crate::http::query::query_params;
use crate::state::{AppState, blocking};

/// Serves one call of a plugin endpoint.
pub(super) async fn call(
    State(state): State<AppState>,
    caller: Caller<BatchError>,
    request: Request,
) -> Result<Response, BatchError> {
    let method = request.method().as_str().to_string();
    // An operation of a batch may have less time left than a direct call gets.
    let budget = request
        .extensions()
        .get::<OperationBudget>()
        .map_or(state.config.plugins.limits().call_deadline, |b| b.0);
    let path = request.uri().path().to_string();
    let query = query_params(request.uri());
    let catalogue: Vec<Endpoint> = catalogue::endpoints(&state, &caller.tenant)
        .into_iter()
        .filter(|e| e.plugin.is_some())
        .collect();
    let Some((endpoint, path_params)) = catalogue::find(&catalogue, &method, &path) else {
        let other = catalogue
            .iter()
            .any(|e| crate::http::template::match_template(&e.template, &path).is_some());
        return Err(if other {
            BatchError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                format!("{path} does not take {method}"),
            )
        } else {
            BatchError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("no endpoint {method} {path}"),
            )
        });
    };
    let Some((plugin, info)) = endpoint.plugin.clone() else {
        unreachable!("the catalogue was filtered to plugin endpoints");
    };
    let body = crate::http::body::read(request.into_body(), state.config.max_body_bytes).await?;
    let body = if body.is_empty() {
        None
    } else {
        Some(String::from_utf8(body.to_vec()).map_err(|_| {
            BatchError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_BODY",
                "the body is not UTF-8 text",
            )
        })?)
    };
    let request = EndpointRequest {
        method,
        path,
        template: info.path,
        path_params,
        query,
        body,
    };
    let _pass = state.gates.plugin_calls.enter(&caller.tenant)?;
    let store = state.store.clone();
    let tenant = caller.tenant;
    let answered = blocking(move || {
        let snapshot = store
            .documents()
            .snapshot(&tenant)
            .map_err(|e| e.to_string())?;
        let writer = TenantWriter { store, tenant };
        plugin
            .handle(snapshot, Box::new(writer), &request, budget)
            .map_err(|e| format!("{}: {e}", plugin.name()))
    })
    .await
    .map_err(|message| {
        BatchError::new(StatusCode::INTERNAL_SERVER_ERROR, "PLUGIN_FAILED", message)
    })?;
    let status = StatusCode::from_u16(answered.status).unwrap_or(StatusCode::BAD_GATEWAY);
    // An empty answer goes out without a body type, as the JSON a plugin writes goes out as JSON.
    if answered.body.is_empty() {
        return Ok(status.into_response());
    }
    Ok((
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        answered.body,
    )
        .into_response())
}
