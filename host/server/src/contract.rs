//! The plugin contract as a binary WIT package (encoded from `wit/` when the server is built)
//! at a stable URL in wkg's local registry layout, `/wit/{namespace}/{name}/{version}.wasm`:
//! an author copies it into a directory under the same path and points wkg (or any tool that
//! reads binary WIT packages) at it, and builds against the exact contract this server loads
//! plugins with.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::state::AppState;

include!(concat!(env!("OUT_DIR"), "/contract.rs"));

/// The encoded package.
static PACKAGE_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/contract.wasm"));

/// Its strong entity tag: the SHA-256 of its bytes.
static TAG: LazyLock<HeaderValue> = LazyLock::new(|| {
    HeaderValue::from_str(&format!(
        "\"{}\"",
        hex::encode(Sha256::digest(PACKAGE_BYTES))
    ))
    .expect("a hex digest is a valid header value")
});

/// The contract's route.
pub fn router() -> Router<AppState> {
    Router::new().route(PACKAGE_PATH, get(package))
}

/// The package; `304` when the client's copy (`If-None-Match`) is this one, compared weakly as
/// RFC 9110 has it for this header.
async fn package(headers: HeaderMap) -> Response {
    let cached = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").as_bytes() == TAG.as_bytes());
    let headers = [
        (header::ETAG, TAG.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    if cached {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let wasm = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/wasm"),
    )];
    (headers, wasm, PACKAGE_BYTES).into_response()
}
