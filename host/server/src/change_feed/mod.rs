//! The change feed and listings of ABRA Flexi under `/c/{firma}/`.
//!
//! `changes.json|.xml` lists changes since a version in ABRA Flexi's two shapes; `changes/enable`,
//! `changes/disable` (PUT or POST) and `changes/status` switch and report the feed; every
//! listing accepts `?add-global-version=true`, including the collection listing
//! `/c/{firma}/{collection}.json|.xml` that the initial load of the sync procedure reads.
//! ABRA's own parameter name `evidence` is accepted beside the documented `records`. Beyond ABRA
//! Flexi: `wait=SECONDS` long-polls until a newer change commits, and the `X-Oldest-Version`
//! header (and a 410 for an older `start`) tells a client that fell behind to reload;
//! `changes/stream` sends the changes as server-sent events.

use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bulkhost_core::{ChangeList, ChangeQuery, ChangeRecord, DocRef, Error};

mod hooks;
mod listing;
mod stream;
pub mod wire;
mod xml;

use self::wire::{AbraFailure, Change, Changes, ChangesBody, Failure, Success, Switched};
use self::xml::Winstrom;

use crate::auth::Caller;
use crate::gates::Refusal;
use crate::http::query::{Params, param, query_params};
use crate::http::segments::segments;
use crate::state::{AppState, blocking};

/// Changes listed when the request names no `limit`.
pub const DEFAULT_LIMIT: u64 = 100;
/// The most changes one listing answers.
pub const MAX_LIMIT: u64 = 1000;
/// Records a collection listing answers when it names no `limit` (`limit=0` lists all).
pub const DEFAULT_LISTING_LIMIT: u64 = 20;
/// The longest `wait=` honoured, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;

/// The routes of this surface.
pub fn router() -> Router<AppState> {
    Router::new().route("/c/{firma}/{*rest}", any(dispatch))
}

/// ABRA's two renderings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.json`
    Json,
    /// `.xml`, ABRA's default.
    Xml,
}

/// An error in ABRA's `winstrom` envelope.
#[derive(Debug)]
pub struct AbraError {
    status: StatusCode,
    message: String,
    format: Format,
    oldest: Option<u64>,
    retry_after: Option<u64>,
}

impl AbraError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AbraError {
            status,
            message: message.into(),
            format: Format::Json,
            oldest: None,
            retry_after: None,
        }
    }

    fn in_format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }
}

/// A refusal in ABRA's envelope, with `Retry-After` when there is a time to try again.
impl From<Refusal> for AbraError {
    fn from(refusal: Refusal) -> Self {
        AbraError {
            retry_after: refusal.retry_after,
            ..AbraError::new(refusal.status, refusal.message)
        }
    }
}

impl From<Error> for AbraError {
    fn from(e: Error) -> Self {
        match e {
            Error::UnknownCollection(c) => {
                AbraError::new(StatusCode::NOT_FOUND, format!("Unknown record type `{c}`."))
            }
            Error::NotFound => AbraError::new(StatusCode::NOT_FOUND, "Record not found."),
            Error::ChangesDisabled => AbraError::new(
                StatusCode::FORBIDDEN,
                "The changes API is disabled for this company; enable it with PUT changes/enable.",
            ),
            Error::ChangesGone { oldest } => AbraError {
                oldest: Some(oldest),
                ..AbraError::new(
                    StatusCode::GONE,
                    format!(
                        "Changes before version {oldest} are no longer available; reload the data and continue from its globalVersion."
                    ),
                )
            },
            Error::BadHook(why) => AbraError::new(StatusCode::BAD_REQUEST, why),
            Error::UnknownTenant(_) => {
                AbraError::new(StatusCode::FORBIDDEN, "Access to this company is denied.")
            }
            Error::Unavailable(why) => Refusal::database(&why).into(),
            other => {
                tracing::error!(error = %other, "change feed request failed");
                AbraError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error.")
            }
        }
    }
}

impl IntoResponse for AbraError {
    fn into_response(self) -> Response {
        let body = match self.format {
            Format::Json => to_json(&AbraFailure {
                winstrom: Failure {
                    version: "1.0",
                    success: "false",
                    message: self.message,
                },
            }),
            Format::Xml => {
                let mut xml = Winstrom::open(None);
                xml.element("success", "false");
                xml.element("message", &self.message);
                xml.finish()
            }
        };
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, content_type(self.format));
        if let Some(oldest) = self.oldest {
            headers.insert("x-oldest-version", HeaderValue::from(oldest));
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

impl Format {
    /// The media type of a body in this rendering.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Xml => "application/xml; charset=utf-8",
        }
    }
}

fn content_type(format: Format) -> HeaderValue {
    HeaderValue::from_static(format.media_type())
}

/// Splits `name.json` / `name.xml`; without a suffix the `Accept` header decides, XML by default.
fn split_format<'a>(segment: &'a str, headers: &HeaderMap) -> (&'a str, Format) {
    if let Some(name) = segment.strip_suffix(".json") {
        return (name, Format::Json);
    }
    if let Some(name) = segment.strip_suffix(".xml") {
        return (name, Format::Xml);
    }
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("json"));
    (
        segment,
        if wants_json {
            Format::Json
        } else {
            Format::Xml
        },
    )
}

fn number(params: &Params, name: &str, format: Format) -> Result<Option<u64>, AbraError> {
    param(params, name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                AbraError::new(
                    StatusCode::BAD_REQUEST,
                    format!("Parameter `{name}` must be a non-negative whole number, not `{v}`."),
                )
                .in_format(format)
            })
        })
        .transpose()
}

/// Routes a request under `/c/{firma}/`. Credentials are checked once the rendering is known,
/// so a refused `.xml` request is refused in XML.
async fn dispatch(
    State(state): State<AppState>,
    Path((firma, _)): Path<(String, String)>,
    request: Request,
) -> Result<Response, AbraError> {
    let (mut parts, _) = request.into_parts();
    let headers = parts.headers.clone();
    let mut segments = segments(&parts.uri, "/c/");
    segments.remove(0);
    let last = segments.last().map(String::as_str).unwrap_or_default();
    let (_, format) = split_format(last, &headers);
    let caller = Caller::<AbraError>::from_request_parts(&mut parts, &state)
        .await
        .map_err(|e| e.in_format(format))?;
    if firma != caller.tenant {
        return Err(
            AbraError::new(StatusCode::FORBIDDEN, "Access to this company is denied.")
                .in_format(format),
        );
    }
    let params = query_params(&parts.uri);
    let method = parts.method.clone();
    let tenant = caller.tenant;
    let names: Vec<&str> = segments
        .iter()
        .map(|s| split_format(s, &headers).0)
        .collect();
    // Every refusal below, early ones included, is rendered as the request asked.
    let result: Result<Response, AbraError> = async {
        match (names.as_slice(), &method) {
            (["changes"], &Method::GET | &Method::HEAD) => {
                list_changes(&state, tenant, &params, format).await
            }
            (["changes", "enable" | "disable"], &Method::PUT | &Method::POST) => {
                let enable = names[1] == "enable";
                let store = state.store.clone();
                blocking(move || store.change_feed().set_changes_enabled(&tenant, enable)).await?;
                Ok(success(format, true))
            }
            (["changes", "stream"], &Method::GET) => {
                stream::changes_stream(&state, tenant, &params, &headers).await
            }
            (["hooks"], &Method::GET | &Method::HEAD) => hooks::list(&state, &tenant, format).await,
            (["hooks"], &Method::PUT | &Method::POST) => {
                hooks::register(&state, &tenant, &params, format).await
            }
            (["hooks", id], &Method::DELETE) => hooks::remove(&state, &tenant, id, format).await,
            (["hooks", id, "retry"], &Method::PUT | &Method::POST) => {
                hooks::retry(&state, &tenant, id, format).await
            }
            (["changes", "status"], &Method::GET | &Method::HEAD) => {
                let store = state.store.clone();
                let on = blocking(move || store.change_feed().changes_enabled(&tenant)).await?;
                Ok(success(format, on))
            }
            ([collection], &Method::GET | &Method::HEAD) => {
                listing::list_collection(&state, tenant, collection.to_string(), &params, format)
                    .await
            }
            ([collection, id], &Method::GET | &Method::HEAD) => {
                let doc_ref = DocRef::parse(id).ok_or(Error::NotFound)?;
                let store = state.store.clone();
                let collection = collection.to_string();
                let (doc, version) = blocking(move || {
                    let doc = store.documents().get(&tenant, &collection, &doc_ref)?;
                    Ok::<_, Error>((doc, store.change_feed().global_version(&tenant)?))
                })
                .await?;
                let version =
                    (param(&params, "add-global-version") == Some("true")).then_some(version);
                let body = listing::one_record(names[0], &doc, version, format);
                Ok(([(header::CONTENT_TYPE, content_type(format))], body).into_response())
            }
            _ => Err(AbraError::new(StatusCode::NOT_FOUND, "No such resource.")),
        }
    }
    .await;
    result.map_err(|e| e.in_format(format))
}

fn success(format: Format, value: bool) -> Response {
    let body = match format {
        Format::Json => to_json(&Switched {
            winstrom: Success {
                version: "1.0",
                success: value.to_string(),
            },
        }),
        Format::Xml => Winstrom::of_element("success", &value.to_string()),
    };
    ([(header::CONTENT_TYPE, content_type(format))], body).into_response()
}

async fn list_changes(
    state: &AppState,
    tenant: String,
    params: &Params,
    format: Format,
) -> Result<Response, AbraError> {
    let limit = number(params, "limit", format)?.unwrap_or(DEFAULT_LIMIT);
    let query = ChangeQuery {
        start: number(params, "start", format)?,
        limit: limit.min(MAX_LIMIT),
        records: records_filter(params),
    };
    let wait = Duration::from_secs(
        number(params, "wait", format)?
            .unwrap_or(0)
            .min(MAX_WAIT_SECS),
    );
    // `limit=0` asks for the version only (ABRA's clients read it so): nothing to wait for.
    let wait = if limit == 0 { Duration::ZERO } else { wait };
    let _pass = if wait.is_zero() {
        None
    } else {
        Some(state.gates.long_polls.enter(&tenant)?)
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut versions = state.versions.subscribe(&tenant);
    let mut stopping = state.stopping.subscribe();
    let list = loop {
        let (store, tenant, query) = (state.store.clone(), tenant.clone(), query.clone());
        let list = blocking(move || store.change_feed().changes(&tenant, &query)).await?;
        if !list.changes.is_empty() || wait.is_zero() {
            break list;
        }
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, versions.changed()) => {
                if !matches!(changed, Ok(Ok(()))) {
                    break list;
                }
            }
            _ = stopping.wait_for(|stopping| *stopping) => break list,
        }
    };
    let body = changes_body(&list, format);
    let mut response = ([(header::CONTENT_TYPE, content_type(format))], body).into_response();
    response
        .headers_mut()
        .insert("x-oldest-version", HeaderValue::from(list.oldest_version));
    Ok(response)
}

/// A change listing in `changes.json`'s or `changes.xml`'s shape: what a listing answers and
/// a change hook is posted.
pub fn changes_body(list: &ChangeList, format: Format) -> Vec<u8> {
    match format {
        Format::Json => to_json(&changes_json(list)),
        Format::Xml => changes_xml(list),
    }
}

/// ABRA's timestamp form: `2019-06-07 12:34:56.7`.
fn abra_timestamp(record: &ChangeRecord) -> String {
    use chrono::Timelike;
    format!(
        "{}.{}",
        record.timestamp.format("%Y-%m-%d %H:%M:%S"),
        record.timestamp.nanosecond() / 100_000_000
    )
}

fn next_marker(list: &ChangeList) -> String {
    list.next
        .map_or_else(|| "none".to_string(), |v| v.to_string())
}

/// The collections a `records=` (or ABRA's `evidence=`) filter names, repeated or
/// comma-separated; empty for all.
fn records_filter(params: &Params) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k == "records" || k == "evidence")
        .flat_map(|(_, v)| v.split(','))
        .map(str::to_string)
        .collect()
}

/// One change as `changes.json` lists it.
fn change_json(c: &ChangeRecord) -> Change {
    Change {
        evidence: c.collection.clone(),
        in_version: c.version.to_string(),
        operation: c.operation.as_str(),
        timestamp: abra_timestamp(c),
        id: c.id.to_string(),
        external_ids: std::iter::once(format!("code:{}", c.code))
            .chain(c.external_ids.iter().cloned())
            .collect(),
    }
}

fn changes_json(list: &ChangeList) -> Changes {
    Changes {
        winstrom: ChangesBody {
            global_version: list.global_version.to_string(),
            changes: list.changes.iter().map(change_json).collect(),
            next: next_marker(list),
        },
    }
}

/// A body of this dialect as JSON text.
fn to_json(body: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_else(|e| unreachable!("a change feed body serializes: {e}"))
}

fn changes_xml(list: &ChangeList) -> Vec<u8> {
    let mut xml = Winstrom::open(Some(list.global_version));
    for change in &list.changes {
        xml.change(change, &abra_timestamp(change));
    }
    xml.element("next", &next_marker(list));
    xml.finish()
}
