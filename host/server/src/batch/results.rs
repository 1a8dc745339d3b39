//! `GET /v1/batch/{uuid}/jsonl` and `/gz`: every operation's response of a finished batch,
//! one JSON line each as `responses` shows it, plain or gzip-compressed; `/file`, which seed
//! 003 names for the download once the status has expired, is the JSONL.
//!
//! Both are streamed from the stored results page by page, and resumable with `Range`: the
//! size is counted in a first pass that produces the same bytes (gzip with a fixed header, so
//! two compressions of the same lines are identical) and the requested window is cut from the
//! second.

use std::io::Write;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulkhost_core::{Batch, BatchStatus, Store};
use flate2::{Compression, GzBuilder};

use super::BatchError;
use super::requests::response_json;
use crate::auth::Caller;
use crate::ranges::Window;
use crate::state::{AppState, blocking};
use crate::stream::{Sink, body_from_blocking};

/// Results read from storage at a time.
const PAGE: usize = 32;

/// How the lines are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// JSON lines.
    Lines,
    /// JSON lines, gzip-compressed.
    Gzip,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Lines => "application/x-ndjson",
            Format::Gzip => "application/gzip",
        }
    }

    fn file_name(self, uuid: &str) -> String {
        match self {
            Format::Lines => format!("{uuid}.jsonl"),
            Format::Gzip => format!("{uuid}.jsonl.gz"),
        }
    }
}

/// Writes the batch's lines to `out` in `format`.
fn produce(store: &Store, batch: &Batch, format: Format, out: impl Write) -> std::io::Result<()> {
    match format {
        Format::Lines => each_line(store, batch, out).map(drop),
        Format::Gzip => {
            let gz = GzBuilder::new().mtime(0).write(out, Compression::default());
            each_line(store, batch, gz)?.finish().map(drop)
        }
    }
}

/// Writes each completed operation's line to `out`, reading the results a page at a time.
fn each_line<W: Write>(store: &Store, batch: &Batch, mut out: W) -> std::io::Result<W> {
    let mut line = Vec::new();
    for from in (0..batch.done).step_by(PAGE) {
        let (_, results) = store
            .batch_results(&batch.tenant, &batch.uuid, from, from + PAGE)
            .map_err(std::io::Error::other)?;
        for (op, result) in batch.operations[from..].iter().zip(&results) {
            line.clear();
            serde_json::to_writer(&mut line, &response_json(op, result))?;
            line.push(b'\n');
            out.write_all(&line)?;
        }
    }
    Ok(out)
}

/// Counts what is written.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends the window's bytes of what is written to the client; fails with `BrokenPipe` once the
/// window is complete or the client has gone, which ends the production early.
struct Windowed<'a> {
    window: Window,
    buf: Vec<u8>,
    sink: &'a Sink,
}

impl Write for Windowed<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let more = self.window.take(&mut self.buf, bytes);
        if more && self.sink.fill(&mut self.buf) {
            Ok(bytes.len())
        } else {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /v1/batch/{uuid}/jsonl` (and `/file`).
pub(super) async fn jsonl(
    state: State<AppState>,
    caller: Caller<BatchError>,
    uuid: Path<String>,
    headers: HeaderMap,
) -> Result<Response, BatchError> {
    download(state, caller, uuid, headers, Format::Lines).await
}

/// `GET /v1/batch/{uuid}/gz`.
pub(super) async fn gz(
    state: State<AppState>,
    caller: Caller<BatchError>,
    uuid: Path<String>,
    headers: HeaderMap,
) -> Result<Response, BatchError> {
    download(state, caller, uuid, headers, Format::Gzip).await
}

async fn download(
    State(state): State<AppState>,
    caller: Caller<BatchError>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    format: Format,
) -> Result<Response, BatchError> {
    let store = state.store.clone();
    let tenant = caller.tenant.clone();
    let (batch, _) = blocking(move || store.batch_results(&tenant, &uuid, 0, 0)).await?;
    if batch.status != BatchStatus::Finished {
        return Err(BatchError::not_finished(&batch));
    }
    let kept = state.settings.batch.results_ttl;
    if batch.finished_more_than(kept) {
        return Err(BatchError::new(
            StatusCode::NOT_FOUND,
            "RESULTS_EXPIRED",
            format!(
                "the responses of batch {} were kept {} s after it finished",
                batch.uuid,
                kept.as_secs()
            ),
        ));
    }
    let batch = std::sync::Arc::new(batch);
    let (store, counted) = (state.store.clone(), batch.clone());
    let total = blocking(move || {
        let mut counter = Counter(0);
        produce(&store, &counted, format, &mut counter).map(|()| counter.0)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "counting a batch download failed");
        BatchError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "the server could not read the batch's responses",
        )
    })?;
    let window = match Window::requested(&headers, total) {
        Ok(window) => window,
        Err(unsatisfiable) => return Ok(unsatisfiable.into_response()),
    };
    let store = state.store.clone();
    let name = format.file_name(&batch.uuid);
    let body = body_from_blocking(move |sink: &Sink| {
        let mut out = Windowed {
            window,
            buf: Vec::new(),
            sink,
        };
        match produce(&store, &batch, format, &mut out) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
            _ => {}
        }
        sink.finish(out.buf);
        Ok(())
    });
    let mut response = window.respond(body, format.content_type(), total);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
