//! Operator endpoints: liveness and metrics, without credentials.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::{AppState, blocking};

/// The routes of this surface.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(serve_metrics))
}

/// What `/healthz` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// Why the database does not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /metrics`; rendering reads the export queue's depth from the store.
async fn serve_metrics(State(state): State<AppState>) -> impl IntoResponse {
    let rendered = blocking(move || state.metrics.render()).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        rendered,
    )
}

/// Answers 200 when the database can be read.
async fn healthz(State(state): State<AppState>) -> (StatusCode, axum::Json<Health>) {
    let store = state.store.clone();
    let tenant = store.tenants().iter().next().map(|t| t.name.clone());
    let readable = blocking(move || match tenant {
        Some(t) => store.change_feed().global_version(&t).map(|_| ()),
        None => Ok(()),
    })
    .await;
    match readable {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(Health {
                status: "ok",
                error: None,
            }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(Health {
                status: "unavailable",
                error: Some(e.to_string()),
            }),
        ),
    }
}
