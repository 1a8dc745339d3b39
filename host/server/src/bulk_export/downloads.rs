//! `datos_xxl`: a finished data set's records, streamed from the stored chunks without loading
//! the data set: as one JSON list (the seed's form) or, for `Accept: application/x-ndjson`,
//! as JSON lines; whole or from `offset` for `limit` records; gzip-compressed when the client
//! accepts it; and the whole download resumable with `Range: bytes=...`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulkhost_core::RunState;

use super::WinfraError;
use crate::auth::Caller;
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

/// The bytes `[start, end]` of an output, cut from the stream that produces all of it.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: u64,
    end: u64,
    at: u64,
}

impl Window {
    /// Appends the part of `piece` that falls in the window; answers whether more is wanted.
    fn take(&mut self, buf: &mut Vec<u8>, piece: &[u8]) -> bool {
        let from = self.at;
        let to = from + piece.len() as u64;
        self.at = to;
        if to > self.start && from <= self.end {
            let lo = self.start.saturating_sub(from) as usize;
            let hi = (self.end + 1).min(to).saturating_sub(from) as usize;
            buf.extend_from_slice(&piece[lo..hi]);
        }
        self.at <= self.end
    }
}

/// Parses a single `bytes=start-end`, `bytes=start-` or `bytes=-suffix` range of `total`.
fn parse_range(value: &str, total: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || total == 0 {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (total.saturating_sub(n), total - 1)
        }
        (start, "") => (start.parse().ok()?, total - 1),
        (start, end) => (start.parse().ok()?, end.parse::<u64>().ok()?.min(total - 1)),
    };
    (start <= end && start < total).then_some((start, end))
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
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, total));
    let window = match range {
        None => Window {
            start: 0,
            end: total.saturating_sub(1),
            at: 0,
        },
        Some(Some((start, end))) => Window { start, end, at: 0 },
        Some(None) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
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
    let mut response = ([(header::CONTENT_TYPE, layout.content_type())], body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(window.end + 1 - window.start),
    );
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) =
            HeaderValue::from_str(&format!("bytes {}-{}/{total}", window.start, window.end))
        {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
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
    let layout = Layout::negotiate(&headers);
    let store = state.store.clone();
    let (tenant, check_id, check_dataset) = (caller.tenant.clone(), id.clone(), dataset.clone());
    blocking(move || {
        store.read_results(&tenant, &check_id, &check_dataset, 0, 0, &mut |_| Ok(false))
    })
    .await?;
    let everything = Window {
        start: 0,
        end: u64::MAX - 1,
        at: 0,
    };
    let body = records_body(
        state,
        caller.tenant,
        id,
        dataset,
        offset,
        limit,
        layout,
        everything,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn a_window_cuts_exactly_its_bytes() {
        let mut w = Window {
            start: 3,
            end: 7,
            at: 0,
        };
        let mut buf = Vec::new();
        assert!(w.take(&mut buf, b"ab"));
        assert!(w.take(&mut buf, b"cdef"));
        assert!(!w.take(&mut buf, b"ghij"));
        assert_eq!(buf, b"defgh");
    }
}
