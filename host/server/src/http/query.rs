//! A request's query parameters, read one way for every surface.

/// The request's query parameters, in order, repeated keys kept.
pub type Params = Vec<(String, String)>;

/// The first value of a query parameter.
pub fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The query string's pairs; a malformed query string reads as empty, as DRF reads it.
pub fn query_params(uri: &axum::http::Uri) -> Params {
    uri.query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}
