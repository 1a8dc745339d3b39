//! The web console: pages for people over the same APIs the clients use, served from assets
//! built into the binary (no CDN, nothing fetched at build time). `/console/` is the tenant's
//! and the operator's console; a collection's `.api` form (DRF's browsable API) is an HTML page
//! that carries the response itself, readable without JavaScript, which the console's script
//! turns into a browsable API: pagination links, search and ordering, the OPTIONS metadata and
//! a form built from the collection's schema.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::Value;

use crate::state::AppState;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(|| async { Html(INDEX) }))
        .route(
            "/console/console.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/console.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A collection's answer in DRF's browsable form: the title and the response as JSON text,
/// which the console's script makes browsable.
pub fn browsable(title: &str, body: &Value) -> String {
    let pretty = serde_json::to_string_pretty(body).unwrap_or_default();
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><link rel=\"stylesheet\" href=\"/console/console.css\"></head>\
         <body data-mode=\"browsable\"><h1>{t}</h1><pre id=\"response\">{b}</pre>\
         <script type=\"module\" src=\"/console/console.js\"></script></body></html>\n",
        t = escape(title),
        b = escape(&pretty)
    )
}
