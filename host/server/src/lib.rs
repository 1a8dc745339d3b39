//! The bulkhost server: HTTP surfaces in the dialect of each API they follow over the storage core, and the
//! operator's command line.
//!
//! Each surface module owns its routes and its one error-to-HTTP mapping; business rules live in
//! `bulkhost-core`.

#![deny(missing_docs)]

pub mod access;
pub mod admin;
pub mod auth;
pub mod batch;
pub mod bulk_export;
pub mod change_feed;
pub mod change_hooks;
pub mod cli;
pub mod client;
pub mod collections;
pub mod config;
pub mod console;
pub mod contract;
pub mod copy;
pub mod demo;
pub mod gates;
pub mod gzip;
pub mod http;
pub mod listener;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod plugin_kit;
pub mod ranges;
pub mod serve;
pub mod state;
pub mod stream;
pub mod throttle;
pub mod webhooks;
pub mod workers;

use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use crate::state::AppState;

/// Every route of every surface, without the layers that serve clients: batch operations run
/// through these with the batch's own state.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(collections::router())
        .merge(change_feed::router())
        .merge(bulk_export::router())
        .merge(batch::router())
        .merge(admin::router())
        .merge(ops::router())
        .merge(openapi::router())
        .merge(console::router())
        .merge(contract::router())
}

/// The whole HTTP application. The access layer is outermost, so a panic's 500 is logged,
/// counted and carries its request id too.
pub fn app(state: AppState) -> Router {
    routes()
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::observe,
        ))
        .with_state(state)
}
