//! `datos_xxl`: a finished data set's records, streamed piece by piece from the stored chunks
//! without loading the data set: as one JSON list (Winfra XXL's form) or, for
//! `Accept: application/x-ndjson`, as JSON lines; whole or from `offset` for `limit` records;
//! gzip-compressed when the client accepts it, the same bytes on every request; and the whole
//! download resumable with `Range` and `If-Range` against a strong `ETag`. Every download holds
//! one of the tenant's stream places until it ends.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bulkhost_core::{ResultChunk, RunState, Store};

use super::WinfraError;
use crate::auth::Caller;
use crate::gzip::{self, Gzip};
use crate::ranges::{Representation, Window, Windowed};
use crate::state::{AppState, blocking};
use crate::stream::{self, PIECE_BYTES, Producer};

/// How the records are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `[r1,r2,...]`
    List,
    /// `r1\nr2\n...`
    Lines,
}

impl Layout {
    fn negotiate(headers: &HeaderMap) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if [
            "application/x-ndjson",
            "application/jsonl",
            "application/json-lines",
        ]
        .iter()
        .any(|t| accept.contains(t))
        {
            Layout::Lines
        } else {
            Layout::List
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Layout::List => "application/json",
            Layout::Lines => "application/x-ndjson",
        }
    }

    /// The exact size of `records` records totalling `bytes` bytes in this layout.
    fn size(self, records: u64, bytes: u64) -> u64 {
        match self {
            Layout::List => 2 + bytes + records.saturating_sub(1),
            Layout::Lines => bytes + records,
        }
    }
}

/// A data set's records from `next` on, at most `left` of them, in a layout, read a stored
/// chunk at a time.
struct Records {
    store: Store,
    tenant: String,
    id: String,
    dataset: String,
    layout: Layout,
    next: u64,
    left: u64,
    written: u64,
    opened: bool,
    chunk: Option<ResultChunk>,
}

impl Records {
    fn new(state: &AppState, tenant: &str, id: &str, dataset: &str, layout: Layout) -> Self {
        Records {
            store: state.store.clone(),
            tenant: tenant.to_string(),
            id: id.to_string(),
            dataset: dataset.to_string(),
            layout,
            next: 0,
            left: u64::MAX,
            written: 0,
            opened: false,
            chunk: None,
        }
    }

    /// The chunk holding record `next`, read once; `None` past the end.
    fn current(&mut self) -> std::io::Result<Option<&ResultChunk>> {
        let held = self
            .chunk
            .as_ref()
            .is_some_and(|c| self.next < c.first + c.len() as u64);
        if !held {
            self.chunk = self
                .store
                .exports()
                .result_chunk(&self.tenant, &self.id, &self.dataset, self.next)
                .map_err(std::io::Error::other)?;
        }
        Ok(self.chunk.as_ref())
    }
}

impl Producer for Records {
    fn produce(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        if !std::mem::replace(&mut self.opened, true) && self.layout == Layout::List {
            out.push(b'[');
        }
        while self.left > 0 && out.len() < PIECE_BYTES {
            let (layout, next, written) = (self.layout, self.next, self.written);
            let Some(chunk) = self.current()? else {
                break;
            };
            let Some(record) = chunk.record((next - chunk.first) as usize) else {
                break;
            };
            if layout == Layout::List && written > 0 {
                out.push(b',');
            }
            out.extend_from_slice(record.as_bytes());
            if layout == Layout::Lines {
                out.push(b'\n');
            }
            self.written += 1;
            self.next += 1;
            self.left -= 1;
        }
        if out.len() >= PIECE_BYTES && self.left > 0 {
            return Ok(true);
        }
        if self.layout == Layout::List {
            out.push(b']');
        }
        Ok(false)
    }

    fn park(&mut self) {
        self.chunk = None;
    }
}

/// `Vary` of every download: the layout follows `Accept`, the coding `Accept-Encoding`.
const VARY: &str = "accept, accept-encoding";

/// `GET /api_v1/datos_xxl/{peticion_id}/{dataset}`: the whole data set, resumable.
pub(super) async fn whole(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
    Path((id, dataset)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, WinfraError> {
    let pass = state.gates.streams.enter(&caller.tenant)?;
    let layout = Layout::negotiate(&headers);
    let store = state.store.clone();
    let (tenant, request_id) = (caller.tenant.clone(), id.clone());
    let request = blocking(move || store.exports().export(&tenant, &request_id)).await?;
    let run = request
        .datasets
        .iter()
        .find(|d| d.dataset == dataset)
        .ok_or(bulkhost_core::Error::NotFound)?;
    if run.state != RunState::Done {
        return Err(bulkhost_core::Error::NotReady.into());
    }
    let gzip = gzip::accepted(&headers);
    let (records, bytes) = (run.records.to_string(), run.bytes.to_string());
    let representation = Representation::new(
        layout.content_type(),
        gzip,
        &[&request.id, &dataset, &records, &bytes],
    );
    let range = representation.asked_range(&headers);
    let records = || Records::new(&state, &caller.tenant, &id, &dataset, layout);
    let total = match (gzip, range) {
        (false, _) => Some(layout.size(run.records, run.bytes)),
        (true, None) => None,
        (true, Some(_)) => {
            let counted = Gzip::new(records());
            Some(
                blocking(move || stream::size(counted))
                    .await
                    .map_err(|e| WinfraError::from(bulkhost_core::Error::Corrupt(e.to_string())))?,
            )
        }
    };
    let window = match total {
        Some(total) => match Window::requested(range, total) {
            Ok(window) => window,
            Err(unsatisfiable) => return Ok(unsatisfiable.into_response()),
        },
        None => Window::everything(),
    };
    let body = if gzip {
        stream::body(Windowed::new(Gzip::new(records()), window), Some(pass))
    } else {
        stream::body(Windowed::new(records(), window), Some(pass))
    };
    let mut response = window.respond(body, &representation, total);
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static(VARY));
    Ok(response)
}

/// `GET /api_v1/datos_xxl/{peticion_id}/{dataset}/{offset}/{limit}`.
pub(super) async fn page(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
    Path((id, dataset, offset, limit)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, WinfraError> {
    let number = |name: &str, v: &str| {
        v.parse::<u64>().map_err(|_| {
            WinfraError::refused(format!(
                "`{name}` must be a non-negative whole number, not `{v}`."
            ))
        })
    };
    let (offset, limit) = (number("offset", &offset)?, number("limit", &limit)?);
    let pass = state.gates.streams.enter(&caller.tenant)?;
    let layout = Layout::negotiate(&headers);
    let store = state.store.clone();
    let (tenant, check_id, check_dataset) = (caller.tenant.clone(), id.clone(), dataset.clone());
    blocking(move || {
        store
            .exports()
            .read_results(&tenant, &check_id, &check_dataset, 0, 0, &mut |_| Ok(false))
    })
    .await?;
    let records = Records {
        next: offset,
        left: limit,
        ..Records::new(&state, &caller.tenant, &id, &dataset, layout)
    };
    let gzip = gzip::accepted(&headers);
    let body = if gzip {
        stream::body(Gzip::new(records), Some(pass))
    } else {
        stream::body(records, Some(pass))
    };
    let mut response = ([(header::CONTENT_TYPE, layout.content_type())], body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static(VARY));
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}
