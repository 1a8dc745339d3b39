//! `datos_xxl`: a finished data set's records, streamed piece by piece from the stored chunks
//! without loading the data set: as one JSON list (Winfra XXL's form) or, for
//! `Accept: application/x-ndjson`, as JSON lines; whole or from `offset` for `limit` records;
//! gzip-compressed when the client accepts it, from the pieces compressed once when the chunks
//! were stored, so the same bytes on every request at the speed of reading them; and the whole
//! download resumable with `Range` and `If-Range` against a strong `ETag`. Every download holds
//! one of the tenant's stream places until it ends.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bulkhost_core::{GzipMember, Layout, PackedSizes, Piece, ResultChunk, RunState, Store};

use super::WinfraError;
use crate::auth::Caller;
use crate::gzip;
use crate::ranges::{Representation, Window, Windowed};
use crate::state::{AppState, blocking};
use crate::stream::{self, PIECE_BYTES, Producer};

/// The layout `Accept` asks for: JSON lines for their media types, the list otherwise.
fn negotiate(headers: &HeaderMap) -> Layout {
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

fn content_type(layout: Layout) -> &'static str {
    match layout {
        Layout::List => "application/json",
        Layout::Lines => "application/x-ndjson",
    }
}

/// Where a download stands in a data set: its next record and how many it still takes, with
/// the stored chunk holding that record, read once.
struct Cursor {
    store: Store,
    tenant: String,
    id: String,
    dataset: String,
    next: u64,
    left: u64,
    chunk: Option<ResultChunk>,
}

impl Cursor {
    fn new(state: &AppState, tenant: &str, id: &str, dataset: &str) -> Self {
        Cursor {
            store: state.store.clone(),
            tenant: tenant.to_string(),
            id: id.to_string(),
            dataset: dataset.to_string(),
            next: 0,
            left: u64::MAX,
            chunk: None,
        }
    }

    /// The chunk holding record `next`; `None` past the end.
    fn chunk(&mut self) -> std::io::Result<Option<&ResultChunk>> {
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

    /// The records of the current chunk from `next` on that the download still takes.
    fn records(&mut self) -> std::io::Result<Option<impl Iterator<Item = &str>>> {
        let (next, left) = (self.next, self.left);
        Ok(self.chunk()?.map(|chunk| {
            let from = (next - chunk.first) as usize;
            let to = chunk
                .len()
                .min(from.saturating_add(left.min(usize::MAX as u64) as usize));
            (from..to).filter_map(|i| chunk.record(i))
        }))
    }

    fn advance(&mut self, records: u64) {
        self.next += records;
        self.left -= records;
    }
}

/// A data set's plain records, in a layout, read a stored chunk at a time.
struct Records {
    cursor: Cursor,
    layout: Layout,
    written: u64,
    opened: bool,
}

impl Records {
    fn new(cursor: Cursor, layout: Layout) -> Self {
        Records {
            cursor,
            layout,
            written: 0,
            opened: false,
        }
    }
}

impl Producer for Records {
    fn produce(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        let layout = self.layout;
        if !std::mem::replace(&mut self.opened, true) {
            out.extend_from_slice(layout.open());
        }
        while self.cursor.left > 0 && out.len() < PIECE_BYTES {
            let written = self.written;
            let Some(record) = self.cursor.records()?.and_then(|mut r| r.next()) else {
                break;
            };
            if written > 0 {
                out.extend_from_slice(layout.separator());
            }
            out.extend_from_slice(record.as_bytes());
            out.extend_from_slice(layout.terminator());
            self.written += 1;
            self.cursor.advance(1);
        }
        if out.len() >= PIECE_BYTES && self.cursor.left > 0 {
            return Ok(true);
        }
        out.extend_from_slice(layout.close());
        Ok(false)
    }

    fn park(&mut self) {
        self.cursor.chunk = None;
    }
}

/// The compressed bytes around and between a layout's records: what the gzip form adds to
/// the pieces stored with each chunk. An empty one adds nothing.
struct Affixes {
    open: Option<Piece>,
    separator: Option<Piece>,
    close: Option<Piece>,
}

impl Affixes {
    fn of(layout: Layout) -> Self {
        let piece = |plain: &[u8]| (!plain.is_empty()).then(|| Piece::compress(plain, 0));
        Affixes {
            open: piece(layout.open()),
            separator: piece(layout.separator()),
            close: piece(layout.close()),
        }
    }

    /// The exact size of the gzip form of a whole run whose pieces add up to `packed`.
    fn gzip_size(&self, layout: Layout, packed: &PackedSizes) -> u64 {
        let len = |p: &Option<Piece>| p.as_ref().map_or(0, |p| p.deflate.len() as u64);
        GzipMember::FRAME_BYTES
            + len(&self.open)
            + packed.deflate[layout as usize]
            + packed.chunks.saturating_sub(1) * len(&self.separator)
            + len(&self.close)
    }
}

/// The gzip form of a data set's records in a layout, one gzip member laid out from the
/// deflate pieces stored with each chunk, so nothing is compressed again. Only a chunk that
/// `offset` or `limit` cut, or one stored without pieces (by an earlier version), is
/// compressed here, into a piece of the same kind.
struct Packed {
    cursor: Cursor,
    layout: Layout,
    affixes: Affixes,
    member: Option<GzipMember>,
    pieces: u64,
}

impl Packed {
    fn new(cursor: Cursor, layout: Layout) -> Self {
        Packed {
            cursor,
            layout,
            affixes: Affixes::of(layout),
            member: Some(GzipMember::default()),
            pieces: 0,
        }
    }

    /// The piece holding the next records the download takes: the stored one when the
    /// download takes its whole chunk, else made now; `None` past the end.
    fn next_piece(&mut self) -> std::io::Result<Option<Piece>> {
        let c = &self.cursor;
        let stored = c
            .store
            .exports()
            .result_piece(&c.tenant, &c.id, &c.dataset, self.layout, c.next)
            .map_err(std::io::Error::other)?
            .filter(|p| p.records > 0 && u64::from(p.records) <= c.left);
        if stored.is_some() {
            return Ok(stored);
        }
        let layout = self.layout;
        let Some(records) = self.cursor.records()? else {
            return Ok(None);
        };
        let mut plain = Vec::with_capacity(PIECE_BYTES);
        let mut count = 0;
        layout.join(records.inspect(|_| count += 1), &mut plain);
        Ok((count > 0).then(|| Piece::compress(&plain, count)))
    }
}

impl Producer for Packed {
    fn produce(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        let Some(mut member) = self.member.take() else {
            return Ok(false);
        };
        if self.pieces == 0
            && let Some(open) = &self.affixes.open
        {
            member.push(open, out);
        }
        while self.cursor.left > 0 && out.len() < PIECE_BYTES {
            let Some(piece) = self.next_piece()? else {
                break;
            };
            if self.pieces > 0
                && let Some(separator) = &self.affixes.separator
            {
                member.push(separator, out);
            }
            member.push(&piece, out);
            self.pieces += 1;
            self.cursor.advance(u64::from(piece.records));
        }
        if out.len() >= PIECE_BYTES && self.cursor.left > 0 {
            self.member = Some(member);
            return Ok(true);
        }
        if let Some(close) = &self.affixes.close {
            member.push(close, out);
        }
        member.finish(out);
        Ok(false)
    }

    fn park(&mut self) {
        self.cursor.chunk = None;
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
    let layout = negotiate(&headers);
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
    // The gzip form laid out from stored pieces is not the one compressed on the fly before.
    let form = if gzip { "stored deflate pieces" } else { "" };
    let representation = Representation::new(
        content_type(layout),
        gzip,
        &[&request.id, &dataset, &records, &bytes, form],
    );
    let range = representation.asked_range(&headers);
    let cursor = || Cursor::new(&state, &caller.tenant, &id, &dataset);
    let total = match (gzip, range, run.packed) {
        (false, _, _) => Some(layout.size(run.records, run.bytes)),
        (true, None, _) => None,
        (true, Some(_), Some(packed)) => Some(Affixes::of(layout).gzip_size(layout, &packed)),
        (true, Some(_), None) => {
            let counted = Packed::new(cursor(), layout);
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
        stream::body(
            Windowed::new(Packed::new(cursor(), layout), window),
            Some(pass),
        )
    } else {
        stream::body(
            Windowed::new(Records::new(cursor(), layout), window),
            Some(pass),
        )
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
    let layout = negotiate(&headers);
    let store = state.store.clone();
    let (tenant, check_id, check_dataset) = (caller.tenant.clone(), id.clone(), dataset.clone());
    blocking(move || {
        store
            .exports()
            .read_results(&tenant, &check_id, &check_dataset, 0, 0, &mut |_| Ok(false))
    })
    .await?;
    let cursor = Cursor {
        next: offset,
        left: limit,
        ..Cursor::new(&state, &caller.tenant, &id, &dataset)
    };
    let gzip = gzip::accepted(&headers);
    let body = if gzip {
        stream::body(Packed::new(cursor, layout), Some(pass))
    } else {
        stream::body(Records::new(cursor, layout), Some(pass))
    };
    let mut response = ([(header::CONTENT_TYPE, content_type(layout))], body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static(VARY));
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}
