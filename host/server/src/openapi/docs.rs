//! The API reference page at `/docs`: Swagger UI over `/openapi.json`, its files compiled into
//! the binary, so the page works without any network beyond the server itself.

use std::sync::{Arc, LazyLock};

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_swagger_ui::Config;

/// The page's settings: the document it reads.
static CONFIG: LazyLock<Arc<Config<'static>>> =
    LazyLock::new(|| Arc::new(Config::new(["/openapi.json"])));

/// `/docs`: to the page's directory, where its relative asset paths resolve.
pub async fn page() -> Redirect {
    Redirect::permanent("/docs/")
}

/// `/docs/` and its assets.
pub async fn index() -> Response {
    asset(String::new()).await
}

/// `/docs/{file}`.
pub async fn file(Path(file): Path<String>) -> Response {
    asset(file).await
}

async fn asset(file: String) -> Response {
    match utoipa_swagger_ui::serve(&file, CONFIG.clone()) {
        Ok(Some(found)) => (
            [(header::CONTENT_TYPE, found.content_type)],
            found.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "No such file.").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the reference page could not be served");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
