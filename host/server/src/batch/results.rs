//! `GET /v1/batch/{uuid}/jsonl` and `/gz`: every operation's response of a finished batch,
//! one JSON line each as `responses` shows it, plain or gzip-compressed; `/file`, which
//! LogiCommerce names for the download once the status has expired, is the JSONL.
//!
//! Both are streamed from the stored results page by page, and resumable with `Range` and
//! `If-Range` against a strong `ETag`: a finished batch's responses never change, and the
//! gzip form is the same bytes on every request, so a range is cut from a production of the
//! whole, whose size a first production counts.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulkhost_core::{Batch, BatchStatus, Store};

use super::BatchError;
use super::wire::OperationResponse;
use crate::auth::Caller;
use crate::gzip::Gzip;
use crate::ranges::{Representation, Window, Windowed};
use crate::state::{AppState, blocking};
use crate::stream::{self, Producer};

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

/// The batch's lines, a page of results at a time.
struct Lines {
    store: Store,
    batch: std::sync::Arc<Batch>,
    next: usize,
}

impl Producer for Lines {
    fn produce(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        let batch = &self.batch;
        let (_, results) = self
            .store
            .batches()
            .batch_results(&batch.tenant, &batch.uuid, self.next, self.next + PAGE)
            .map_err(std::io::Error::other)?;
        for (op, result) in batch.operations[self.next..].iter().zip(&results) {
            serde_json::to_writer(&mut *out, &OperationResponse::new(op, result))?;
            out.push(b'\n');
        }
        self.next += results.len().max(1);
        Ok(self.next < batch.done)
    }
}

/// Either form of the lines, from the start.
fn produced(store: &Store, batch: &std::sync::Arc<Batch>, format: Format) -> Box<dyn Producer> {
    let lines = Lines {
        store: store.clone(),
        batch: batch.clone(),
        next: 0,
    };
    match format {
        Format::Lines => Box::new(lines),
        Format::Gzip => Box::new(Gzip::new(lines)),
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
    let pass = state.gates.streams.enter(&caller.tenant)?;
    let store = state.store.clone();
    let tenant = caller.tenant.clone();
    let (batch, _) = blocking(move || store.batches().batch_results(&tenant, &uuid, 0, 0)).await?;
    if batch.status != BatchStatus::Finished {
        return Err(BatchError::not_finished(&batch));
    }
    let kept = state.config.batches.results_ttl();
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
    let representation = Representation::new(
        format.content_type(),
        false,
        &[&batch.uuid, &batch.done.to_string()],
    );
    let batch = std::sync::Arc::new(batch);
    let range = representation.asked_range(&headers);
    let total = match range {
        None => None,
        Some(_) => {
            let counted = produced(&state.store, &batch, format);
            Some(blocking(move || stream::size(counted)).await.map_err(|e| {
                tracing::error!(error = %e, "counting a batch download failed");
                BatchError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL",
                    "the server could not read the batch's responses",
                )
            })?)
        }
    };
    let window = match total {
        Some(total) => match Window::requested(range, total) {
            Ok(window) => window,
            Err(unsatisfiable) => return Ok(unsatisfiable.into_response()),
        },
        None => Window::everything(),
    };
    let body = stream::body(
        Windowed::new(produced(&state.store, &batch, format), window),
        Some(pass),
    );
    let mut response = window.respond(body, &representation, total);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        format.file_name(&batch.uuid)
    )) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
