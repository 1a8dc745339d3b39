//! `datos_xxl`: a finished data set's records, streamed from the stored chunks without loading
//! the data set: as one JSON list (the seed's form) or, for `Accept: application/x-ndjson`,
//! as JSON lines; whole or from `offset` for `limit` records; gzip-compressed when the client
//! accepts it; and the whole download resumable with `Range: bytes=...`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bulkhost_core::RunState;

use super::WinfraError;
use crate::auth::Caller;
use crate::ranges::Window;
use crate::state::{AppState, blocking};
use crate::stream::{CHUNK_BYTES, Sink, body_from_blocking};

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

/// `GET /api_v1/datos_xxl/{peticion_id}/{dataset}`: the whole data set, resumable.
pub(super) async fn whole(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
    Path((id, dataset)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, WinfraError> {
    let layout = Layout::negotiate(&headers);
    let store = state.store.clone();
    let (tenant, request_id) = (caller.tenant.clone(), id.clone());
    let request = blocking(move || store.export(&tenant, &request_id)).await?;
    let run = request
        .datasets
        .iter()
        .find(|d| d.dataset == dataset)
        .ok_or(bulkhost_core::Error::NotFound)?;
    if run.state != RunState::Done {
        return Err(bulkhost_core::Error::NotReady.into());
    }
    let total = layout.size(run.records, run.bytes);
    let window = match Window::requested(&headers, total) {
        Ok(window) => window,
        Err(unsatisfiable) => return Ok(unsatisfiable.into_response()),
    };
    let body = records_body(
        state,
        caller.tenant,
        id,
        dataset,
        0,
        u64::MAX,
        layout,
        window,
    );
    Ok(window.respond(body, layout.content_type(), total))
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
    let layout = Layout::negotiate(&headers);
    let store = state.store.clone();
    let (tenant, check_id, check_dataset) = (caller.tenant.clone(), id.clone(), dataset.clone());
    blocking(move || {
        store.read_results(&tenant, &check_id, &check_dataset, 0, 0, &mut |_| Ok(false))
    })
    .await?;
    let body = records_body(
        state,
        caller.tenant,
        id,
        dataset,
        offset,
        limit,
        layout,
        Window::everything(),
    );
    Ok(([(header::CONTENT_TYPE, layout.content_type())], body).into_response())
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site per route, each naming all"
)]
fn records_body(
    state: AppState,
    tenant: String,
    id: String,
    dataset: String,
    offset: u64,
    limit: u64,
    layout: Layout,
    mut window: Window,
) -> Body {
    body_from_blocking(move |sink: &Sink| {
        let mut buf = Vec::with_capacity(CHUNK_BYTES);
        if layout == Layout::List {
            window.take(&mut buf, b"[");
        }
        let mut first = true;
        state
            .store
            .read_results(&tenant, &id, &dataset, offset, limit, &mut |record| {
                let more = match layout {
                    Layout::List => {
                        (first || window.take(&mut buf, b","))
                            && window.take(&mut buf, record.as_bytes())
                    }
                    Layout::Lines => {
                        window.take(&mut buf, record.as_bytes()) && window.take(&mut buf, b"\n")
                    }
                };
                first = false;
                Ok(more && sink.fill(&mut buf))
            })?;
        if layout == Layout::List {
            window.take(&mut buf, b"]");
        }
        sink.finish(buf);
        Ok::<_, bulkhost_core::Error>(())
    })
}
