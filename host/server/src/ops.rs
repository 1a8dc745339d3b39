//! Operator endpoints: liveness and metrics, without credentials.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;

use crate::metrics::serve_metrics;
use crate::state::{AppState, blocking};

/// The routes of this surface.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(serve_metrics))
}

/// Answers 200 when the database can be read.
async fn healthz(State(state): State<AppState>) -> (StatusCode, axum::Json<serde_json::Value>) {
    let store = state.store.clone();
    let tenant = store.tenants().iter().next().map(|t| t.name.clone());
    let readable = blocking(move || match tenant {
        Some(t) => store.change_feed().global_version(&t).map(|_| ()),
        None => Ok(()),
    })
    .await;
    match readable {
        Ok(()) => (StatusCode::OK, axum::Json(json!({"status": "ok"}))),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unavailable", "error": e.to_string()})),
        ),
    }
}
