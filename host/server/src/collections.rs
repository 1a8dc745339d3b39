//! Paged, searchable, orderable collections in the Datawiz dialect, Django REST Framework style.
//!
//! Paths are `/api/v1/{collection}/` and `/api/v1/{collection}/{id}/`, with the `.json` and
//! `.api` suffixes in any of the places DRF accepts them (`/docs.json`, `/docs/.json/`,
//! `/docs/12.json`) and `?format=json|api`. Unknown `ordering` fields are ignored and a bad
//! `page_size` falls back to the default, as DRF does; a bad `page` is DRF's 404 "Invalid page.".

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bulkhost_core::{DocRef, Error, Field, FieldType, OrderBy, PageQuery, Schema};
use serde_json::Value;

mod attachments;
pub mod pages;
mod render;
pub mod wire;

use self::pages::PageKey;
use self::render::{Context, Links};
use crate::auth::Caller;
use crate::gates::Refusal;
use crate::http::body::BodyError;
use crate::http::query::{Params, param, query_params};
use crate::http::segments::segments;
use crate::state::{AppState, blocking};

/// Page size when the request names none.
pub const DEFAULT_PAGE_SIZE: u64 = 100;
/// The largest page size honoured; larger requests are served this many.
pub const MAX_PAGE_SIZE: u64 = 1000;

const LIST_ALLOW: &str = "GET, POST, HEAD, OPTIONS";
const ITEM_ALLOW: &str = "GET, DELETE, HEAD, OPTIONS";

/// The routes of this surface.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/{*path}", any(dispatch))
}

/// An error in DRF's shape: `{"detail": ...}` or per-field messages.
#[derive(Debug)]
pub struct DrfError {
    status: StatusCode,
    body: wire::Failure,
    allow: Option<&'static str>,
    retry_after: Option<u64>,
}

impl DrfError {
    fn detail(status: StatusCode, detail: impl Into<String>) -> Self {
        DrfError {
            status,
            body: wire::Failure::Detail {
                detail: detail.into(),
            },
            allow: None,
            retry_after: None,
        }
    }

    fn not_found() -> Self {
        Self::detail(StatusCode::NOT_FOUND, "Not found.")
    }

    /// DRF's 405, naming the methods the path does take.
    fn method_not_allowed(method: &Method, allow: &'static str) -> Self {
        DrfError {
            allow: Some(allow),
            ..Self::detail(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("Method \"{method}\" not allowed."),
            )
        }
    }
}

/// DRF's answers to a body it cannot take: 413 over the limit, its parse error otherwise.
impl From<BodyError> for DrfError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(_) => Self::detail(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
            BodyError::NotJson(why) => {
                Self::detail(StatusCode::BAD_REQUEST, format!("JSON parse error - {why}"))
            }
            other => Self::detail(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

/// DRF's refusals: its 401, its throttled 429 with `Retry-After`, and 503 for an outage.
impl From<Refusal> for DrfError {
    fn from(refusal: Refusal) -> Self {
        DrfError {
            retry_after: refusal.retry_after,
            ..Self::detail(refusal.status, refusal.message)
        }
    }
}

impl From<Error> for DrfError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(errors) => DrfError {
                status: StatusCode::BAD_REQUEST,
                body: wire::Failure::Fields(errors.to_json()),
                allow: Some(LIST_ALLOW),
                retry_after: None,
            },
            Error::QuotaExceeded(message) => Self::detail(StatusCode::FORBIDDEN, message),
            Error::UnknownCollection(_) | Error::NotFound => Self::not_found(),
            Error::BadAttachment(message) => Self::detail(StatusCode::BAD_REQUEST, message),
            Error::Unavailable(why) => Refusal::database(&why).into(),
            Error::UnknownTenant(_) => Self::detail(
                StatusCode::FORBIDDEN,
                "You do not have permission to perform this action.",
            ),
            other => {
                tracing::error!(error = %other, "collections request failed");
                Self::detail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "A server error occurred.",
                )
            }
        }
    }
}

impl IntoResponse for DrfError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("Accept"));
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"bulkhost\""),
            );
        }
        response
    }
}

/// DRF's two renderers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Api,
}

fn format_suffix(segment: &str) -> (&str, Option<Format>) {
    if let Some(rest) = segment.strip_suffix(".json") {
        (rest, Some(Format::Json))
    } else if let Some(rest) = segment.strip_suffix(".api") {
        (rest, Some(Format::Api))
    } else {
        (segment, None)
    }
}

/// What a path under `/api/v1/` names.
#[derive(Debug, PartialEq)]
struct Target {
    collection: String,
    item: Option<String>,
    format: Option<Format>,
}

fn parse_target(segments: &[String]) -> Option<Target> {
    let (collection, mut format) = format_suffix(segments.first()?);
    let mut item = None;
    for segment in &segments[1..] {
        let (name, suffix) = format_suffix(segment);
        if format.is_some() || (item.is_some() && !name.is_empty()) {
            return None;
        }
        format = suffix;
        if !name.is_empty() {
            item = Some(name.to_string());
        }
    }
    Some(Target {
        collection: collection.to_string(),
        item,
        format,
    })
}

/// The absolute base of links: the configured public URL, or the request's own host.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

async fn dispatch(
    State(state): State<AppState>,
    caller: Caller<DrfError>,
    request: Request,
) -> Result<Response, DrfError> {
    let segments = segments(request.uri(), "/api/v1/");
    let (segments, attachment) = match segments.iter().position(|s| s == "attachments") {
        Some(2) if segments.len() <= 4 => (&segments[..2], Some(segments.get(3))),
        _ => (&segments[..], None),
    };
    let target = parse_target(segments).ok_or_else(DrfError::not_found)?;
    let params = query_params(request.uri());
    let format = match param(&params, "format") {
        Some("json") => Some(Format::Json),
        Some("api") => Some(Format::Api),
        Some(_) => return Err(DrfError::not_found()),
        None => target.format,
    }
    .unwrap_or(Format::Json);
    let schema = state
        .store
        .schemas()
        .get(&target.collection)
        .cloned()
        .ok_or_else(DrfError::not_found)?;
    let ctx = Ctx {
        base: base_url(&state, request.headers()),
        tenant: caller.tenant,
        schema,
        state,
        format,
    };
    if let Some(name) = attachment {
        let item = target.item.as_deref().ok_or_else(DrfError::not_found)?;
        return ctx
            .attachments(item, name.map(String::as_str), request)
            .await;
    }
    let method = request.method().clone();
    match (&target.item, method) {
        (None, Method::GET | Method::HEAD) => ctx.list(&params, request.uri()).await,
        (None, Method::POST) => {
            let body = read_body(&ctx.state, request).await?;
            ctx.create(body).await
        }
        (Some(item), Method::GET | Method::HEAD) => ctx.retrieve(item).await,
        (Some(item), Method::DELETE) => ctx.destroy(item).await,
        (item, Method::OPTIONS) => Ok(ctx.options(item.is_some())),
        (item, other) => Err(DrfError::method_not_allowed(
            &other,
            if item.is_some() {
                ITEM_ALLOW
            } else {
                LIST_ALLOW
            },
        )),
    }
}

async fn read_body(state: &AppState, request: Request) -> Result<Bytes, DrfError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    if !content_type.starts_with("application/json") {
        return Err(DrfError::detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Unsupported media type \"{content_type}\" in request."),
        ));
    }
    Ok(crate::http::body::read(request.into_body(), state.config.max_body_bytes).await?)
}

struct Ctx {
    state: AppState,
    tenant: String,
    schema: std::sync::Arc<Schema>,
    base: String,
    format: Format,
}

impl Ctx {
    fn respond(
        &self,
        status: StatusCode,
        body: impl serde::Serialize,
        allow: &'static str,
    ) -> Response {
        let response = match self.format {
            Format::Json => (status, axum::Json(body)).into_response(),
            Format::Api => (
                status,
                axum::response::Html(crate::console::browsable(
                    &self.schema.name,
                    &serde_json::to_value(body).unwrap_or_default(),
                )),
            )
                .into_response(),
        };
        with_dialect_headers(response, allow)
    }

    fn collection_url(&self) -> String {
        format!("{}/api/v1/{}/", self.base, self.schema.collection)
    }

    async fn list(&self, params: &Params, uri: &axum::http::Uri) -> Result<Response, DrfError> {
        let kept = (self.format == Format::Json).then(|| {
            let request = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
            PageKey::new(&self.tenant, &self.schema.collection, &self.base, request)
        });
        if let Some(key) = &kept {
            let store = self.state.store.clone();
            let tenant = self.tenant.clone();
            let version = blocking(move || store.change_feed().global_version(&tenant)).await?;
            if let Some(body) = self.state.pages.get(key, version) {
                return Ok(self.json_page(body, version));
            }
        }
        let page: u64 = match param(params, "page") {
            None => 1,
            Some("last") => 0,
            Some(p) => p
                .parse()
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| DrfError::detail(StatusCode::NOT_FOUND, "Invalid page."))?,
        };
        let page_size = param(params, "page_size")
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_PAGE_SIZE)
            .min(MAX_PAGE_SIZE);
        let ordering = param(params, "ordering")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| OrderBy {
                field: s.trim_start_matches('-').to_string(),
                descending: s.starts_with('-'),
            })
            .collect();
        let mut query = PageQuery {
            offset: 0,
            limit: page_size,
            search: param(params, "search").map(str::to_string),
            ordering,
        };
        let fetch = |query: PageQuery| {
            let store = self.state.store.clone();
            let (tenant, schema) = (self.tenant.clone(), self.schema.clone());
            blocking(move || {
                let documents = store.documents();
                let page = documents.page(&tenant, &schema.collection, &query)?;
                let links = Links::of(&documents, &tenant, &schema.fields, &page.documents)?;
                Ok::<_, Error>((page, links))
            })
        };
        let page = if page == 0 {
            let probe = PageQuery {
                limit: 0,
                ..query.clone()
            };
            fetch(probe).await?.0.count.div_ceil(page_size).max(1)
        } else {
            page
        };
        query.offset = (page - 1) * page_size;
        let (result, links) = fetch(query).await?;
        let pages = result.count.div_ceil(page_size).max(1);
        if page > pages {
            return Err(DrfError::detail(StatusCode::NOT_FOUND, "Invalid page."));
        }
        // DRF links the first page without its number.
        let previous = match page {
            1 => None,
            2 => Some(page_link(&self.base, uri, None)),
            p => Some(page_link(&self.base, uri, Some(p - 1))),
        };
        let next = (page < pages).then(|| page_link(&self.base, uri, Some(page + 1)));
        let collection_url = self.collection_url();
        let context = self.render_context(&collection_url, &links);
        let body = wire::Page {
            count: result.count,
            next,
            previous,
            results: result
                .documents
                .iter()
                .map(|doc| context.render(doc))
                .collect(),
            global_version: (param(params, "add-global-version") == Some("true"))
                .then_some(result.global_version),
        };
        let Some(key) = kept else {
            let mut response = self.respond(StatusCode::OK, body, LIST_ALLOW);
            response
                .headers_mut()
                .insert("x-global-version", HeaderValue::from(result.global_version));
            return Ok(response);
        };
        let json = serde_json::to_vec(&body)
            .unwrap_or_else(|e| unreachable!("a rendered page serializes: {e}"));
        let json = Bytes::from(json);
        self.state
            .pages
            .put(key, result.global_version, json.clone());
        Ok(self.json_page(json, result.global_version))
    }

    /// A JSON page already rendered, as `list` answers it.
    fn json_page(&self, body: Bytes, version: u64) -> Response {
        let json = [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        let mut response = with_dialect_headers((json, body).into_response(), LIST_ALLOW);
        response
            .headers_mut()
            .insert("x-global-version", HeaderValue::from(version));
        response
    }

    async fn create(&self, body: Bytes) -> Result<Response, DrfError> {
        let input: Value = crate::http::body::parse(&body)?;
        let store = self.state.store.clone();
        let (tenant, collection) = (self.tenant.clone(), self.schema.collection.clone());
        let done = blocking(move || store.documents().upsert(&tenant, &collection, &input)).await?;
        let mut response = self.respond(
            StatusCode::CREATED,
            wire::Upserted {
                updated: done.updated,
                inserted: done.inserted,
            },
            LIST_ALLOW,
        );
        let headers = response.headers_mut();
        headers.insert("x-global-version", HeaderValue::from(done.version));
        if let Some(id) = done.last_id
            && let Ok(location) = HeaderValue::from_str(&format!("{}{id}/", self.collection_url()))
        {
            headers.insert(header::LOCATION, location);
        }
        Ok(response)
    }

    async fn retrieve(&self, item: &str) -> Result<Response, DrfError> {
        let doc_ref = DocRef::parse(item).ok_or_else(DrfError::not_found)?;
        let store = self.state.store.clone();
        let (tenant, schema) = (self.tenant.clone(), self.schema.clone());
        let (doc, links) = blocking(move || {
            let documents = store.documents();
            let doc = documents.get(&tenant, &schema.collection, &doc_ref)?;
            let links = Links::of(
                &documents,
                &tenant,
                &schema.fields,
                std::slice::from_ref(&doc),
            )?;
            Ok::<_, Error>((doc, links))
        })
        .await?;
        let collection_url = self.collection_url();
        let context = self.render_context(&collection_url, &links);
        Ok(self.respond(StatusCode::OK, context.render(&doc), ITEM_ALLOW))
    }

    async fn destroy(&self, item: &str) -> Result<Response, DrfError> {
        let doc_ref = DocRef::parse(item).ok_or_else(DrfError::not_found)?;
        let store = self.state.store.clone();
        let (tenant, collection) = (self.tenant.clone(), self.schema.collection.clone());
        let version =
            blocking(move || store.documents().delete(&tenant, &collection, &doc_ref)).await?;
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(header::ALLOW, HeaderValue::from_static(ITEM_ALLOW));
        headers.insert("x-global-version", HeaderValue::from(version));
        Ok(response)
    }

    fn options(&self, item: bool) -> Response {
        let actions = (!item).then(|| {
            let mut post = vec![("url".to_string(), link_metadata("Url".into()))];
            post.extend(field_metadata(&self.schema.fields).0);
            wire::Actions {
                post: wire::FieldTable(post),
            }
        });
        let name = if item {
            format!("{} Instance", self.schema.name.trim_end_matches(" List"))
        } else {
            self.schema.name.clone()
        };
        let body = wire::Metadata {
            name,
            description: self.schema.description.clone(),
            renders: vec!["application/json", "text/html"],
            parses: vec!["application/json"],
            actions,
        };
        self.respond(
            StatusCode::OK,
            body,
            if item { ITEM_ALLOW } else { LIST_ALLOW },
        )
    }

    /// What every document of one response renders with.
    fn render_context<'a>(&'a self, collection_url: &'a str, links: &'a Links) -> Context<'a> {
        Context {
            base: &self.base,
            collection_url,
            fields: &self.schema.fields,
            links,
        }
    }
}

/// The headers every answer of the dialect carries: it varies by `Accept`, and `Allow` names
/// the methods of its path.
fn with_dialect_headers(mut response: Response, allow: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// DRF's OPTIONS description of fields, nested `child`/`children` included, each reference
/// followed by its link field.
fn field_metadata(fields: &[Field]) -> wire::FieldTable {
    let mut out = Vec::new();
    for f in fields {
        let nested = || field_metadata(&f.children);
        out.push((
            f.name.clone(),
            wire::FieldMetadata {
                kind: match f.kind {
                    FieldType::String => "string",
                    FieldType::Integer => "integer",
                    FieldType::Decimal => "decimal",
                    FieldType::Datetime => "datetime",
                    FieldType::Bool => "boolean",
                    FieldType::Object => "nested object",
                    FieldType::List => "field",
                },
                required: f.required,
                read_only: f.read_only,
                label: Some(f.label()),
                max_length: f.max_length,
                decimal_places: f.decimal_places,
                children: (f.kind == FieldType::Object).then(nested),
                child: (f.kind == FieldType::List).then(|| {
                    Box::new(wire::FieldMetadata {
                        kind: "nested object",
                        required: true,
                        read_only: false,
                        label: None,
                        max_length: None,
                        decimal_places: None,
                        children: Some(nested()),
                        child: None,
                    })
                }),
            },
        ));
        if let Some(url_field) = f.references.as_ref().and_then(|r| r.url_field.as_ref()) {
            let label = bulkhost_core::label_from_name(url_field);
            out.push((url_field.clone(), link_metadata(label)));
        }
    }
    wire::FieldTable(out)
}

/// The description of a read-only link field (`url`, a reference's `*_url`).
fn link_metadata(label: String) -> wire::FieldMetadata {
    wire::FieldMetadata {
        kind: "field",
        required: false,
        read_only: true,
        label: Some(label),
        max_length: None,
        decimal_places: None,
        children: None,
        child: None,
    }
}

/// The request's absolute URL with `page` set to `page`, or removed for `None` (DRF links the
/// first page without the parameter).
fn page_link(base: &str, uri: &axum::http::Uri, page: Option<u64>) -> String {
    let mut pairs: Vec<(String, String)> = query_params(uri)
        .into_iter()
        .filter(|(k, _)| k != "page")
        .collect();
    if let Some(p) = page {
        pairs.push(("page".into(), p.to_string()));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    if query.is_empty() {
        format!("{base}{}", uri.path())
    } else {
        format!("{base}{}?{query}", uri.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_accept_every_drf_suffix_form() {
        let t = |p: &str| {
            let segments: Vec<String> = p
                .split('/')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            parse_target(&segments).map(|t| (t.collection, t.item, t.format))
        };
        let docs = || "docs".to_string();
        assert_eq!(t("docs/"), Some((docs(), None, None)));
        assert_eq!(t("docs.json"), Some((docs(), None, Some(Format::Json))));
        assert_eq!(t("docs/.json/"), Some((docs(), None, Some(Format::Json))));
        assert_eq!(t("docs/.api"), Some((docs(), None, Some(Format::Api))));
        assert_eq!(t("docs/12/"), Some((docs(), Some("12".into()), None)));
        assert_eq!(
            t("docs/12.json"),
            Some((docs(), Some("12".into()), Some(Format::Json)))
        );
        assert_eq!(
            t("docs/12/.json"),
            Some((docs(), Some("12".into()), Some(Format::Json)))
        );
        assert_eq!(t("docs/12/13/"), None);
        assert_eq!(t(""), None);
    }
}
