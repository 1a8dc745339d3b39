//! `POST /v1/batch`, `POST /v1/batch/{uuid}/retry` and `GET /v1/batch/{uuid}`: accepting a
//! batch after every rule of LogiCommerce holds, and showing its progress in LogiCommerce's shape.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bulkhost_core::{Accepted, BatchOperation, BatchStatus, NewBatch};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::BatchError;
use super::catalogue::{self, METHODS};
use super::wire::{BatchRequest, BatchState, OperationIn, Queued, WebhookIn};
use crate::auth::Caller;
use crate::http::body::{self, Limited};
use crate::state::{AppState, blocking};

/// Paging parameters that may not pass [`MAX_PAGE_SIZE`] inside a batch: LogiCommerce's
/// `perPage`, and the collections surface's `page_size` and change feed's `limit`.
const PAGE_PARAMS: [&str; 3] = ["perPage", "page_size", "limit"];
/// The largest page an operation of a batch may ask for (LogiCommerce).
const MAX_PAGE_SIZE: u64 = 100;

fn invalid(message: impl Into<String>) -> BatchError {
    BatchError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BATCH", message)
}

/// Checks one operation against the catalogue; answers it with its load score.
fn operation(
    op: &OperationIn,
    i: usize,
    catalogue: &[catalogue::Endpoint],
    seen: &mut HashSet<String>,
) -> Result<(BatchOperation, u32), BatchError> {
    let at = format!("batch.operations[{i}]");
    let id = op
        .operation_id
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(format!("{at}: `operationId` is required")))?;
    let at = format!("{at} ({id})");
    if !seen.insert(id.to_string()) {
        return Err(invalid(format!(
            "{at}: operationId `{id}` is used twice; each must be unique"
        )));
    }
    let method = op
        .method
        .as_deref()
        .ok_or_else(|| invalid(format!("{at}: `method` is required")))?
        .to_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(invalid(format!(
            "{at}: method `{method}` is not one of {}",
            METHODS.join(", ")
        )));
    }
    let endpoint = op
        .endpoint
        .as_deref()
        .filter(|e| e.starts_with('/'))
        .ok_or_else(|| invalid(format!("{at}: `endpoint` must be a path starting with `/`")))?;
    let uri: axum::http::Uri = endpoint
        .parse()
        .map_err(|_| invalid(format!("{at}: `{endpoint}` is not a valid path")))?;
    let (known, _) = catalogue::find(catalogue, &method, uri.path()).ok_or_else(|| {
        invalid(format!(
            "{at}: {method} {} is not an endpoint a batch can call (see GET /v1/batch/limits)",
            uri.path()
        ))
    })?;
    for (name, value) in crate::http::query::query_params(&uri) {
        if name == "wait" {
            return Err(invalid(format!(
                "{at}: `wait` (a long-poll) would hold the batch up; batches read the change feed without it"
            )));
        }
        if PAGE_PARAMS.contains(&name.as_str())
            && value.parse::<u64>().is_ok_and(|n| n > MAX_PAGE_SIZE)
        {
            return Err(invalid(format!(
                "{at}: `{name}` is at most {MAX_PAGE_SIZE} inside a batch"
            )));
        }
    }
    let body = match &op.body {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let operation = BatchOperation {
        operation_id: id.to_string(),
        method,
        endpoint: endpoint.to_string(),
        body,
    };
    Ok((operation, known.load_score))
}

/// The webhook block: `callbackUrl` an http(s) URL, `email` an address.
fn webhook(hook: Option<&WebhookIn>) -> Result<(Option<String>, Option<String>), BatchError> {
    let Some(hook) = hook else {
        return Ok((None, None));
    };
    let url = hook
        .callback_url
        .as_deref()
        .filter(|u| !u.is_empty())
        .map(|u| {
            reqwest::Url::parse(u)
                .ok()
                .filter(|p| matches!(p.scheme(), "http" | "https"))
                .map(|_| u.to_string())
                .ok_or_else(|| {
                    invalid("batch.webhook.callbackUrl must be an http:// or https:// URL")
                })
        })
        .transpose()?;
    let email = hook
        .email
        .as_deref()
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse::<lettre::Address>()
                .map(|_| e.to_string())
                .map_err(|_| invalid(format!("batch.webhook.email `{e}` is not an address")))
        })
        .transpose()?;
    Ok((url, email))
}

/// `POST /v1/batch`: `201 {"uuid"}` once every rule holds, before anything runs.
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller<BatchError>,
    headers: HeaderMap,
    Limited(body, _): Limited<BatchError>,
) -> Result<Response, BatchError> {
    let parsed: BatchRequest = body::parse(&body)?;
    let batch = parsed
        .batch
        .ok_or_else(|| invalid("`batch` is required and must be an object"))?;
    if batch.operations.is_empty() {
        return Err(invalid(
            "batch.operations must be a list of at least one operation",
        ));
    }
    let operations = checked(&state, &caller.tenant, &batch.operations)?;
    let (callback_url, email) = webhook(batch.webhook.as_ref())?;
    let new = NewBatch {
        operations,
        callback_url,
        email,
        idempotency: idempotency(&headers, &body),
        host: host(&headers),
    };
    accept(&state, &caller.tenant, new).await
}

/// `POST /v1/batch/{uuid}/retry`: the operations of a finished batch that did not succeed
/// (status outside 2xx), as a new batch with the same webhook, checked as any new batch is.
pub(super) async fn retry(
    State(state): State<AppState>,
    caller: Caller<BatchError>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
) -> Result<Response, BatchError> {
    let store = state.store.clone();
    let tenant = caller.tenant.clone();
    let (batch, results) = blocking(move || store.batches().batch(&tenant, &uuid)).await?;
    if batch.status != BatchStatus::Finished {
        return Err(BatchError::not_finished(&batch));
    }
    let failed: Vec<OperationIn> = batch
        .operations
        .iter()
        .zip(&results)
        .filter(|(_, result)| !result.succeeded())
        .map(|(op, _)| OperationIn::from(op))
        .collect();
    if failed.is_empty() {
        return Err(BatchError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "NOTHING_TO_RETRY",
            format!("every operation of batch {} succeeded", batch.uuid),
        ));
    }
    let new = NewBatch {
        operations: checked(&state, &caller.tenant, &failed)?,
        callback_url: batch.callback_url,
        email: batch.email,
        idempotency: idempotency(&headers, format!("retry {}", batch.uuid).as_bytes()),
        host: host(&headers),
    };
    accept(&state, &caller.tenant, new).await
}

/// The operations of a new batch, each checked against what the tenant's batches may call,
/// and all together against the most a batch may weigh.
fn checked(
    state: &AppState,
    tenant: &str,
    items: &[OperationIn],
) -> Result<Vec<BatchOperation>, BatchError> {
    let most = state.config.batches.max_operations;
    if items.len() > most {
        return Err(invalid(format!(
            "batch.operations holds {} operations; a batch may hold at most {most}",
            items.len()
        )));
    }
    let catalogue = catalogue::endpoints(state, tenant);
    let mut seen = HashSet::new();
    let mut operations = Vec::with_capacity(items.len());
    let mut load = 0u64;
    for (i, item) in items.iter().enumerate() {
        let (op, score) = operation(item, i, &catalogue, &mut seen)?;
        load += u64::from(score);
        operations.push(op);
    }
    let max = state.config.batches.max_load_score;
    if load > u64::from(max) {
        return Err(invalid(format!(
            "the operations weigh {load} load points together; a batch may weigh at most {max} (see GET /v1/batch/limits)"
        )));
    }
    Ok(operations)
}

/// The `Host` a batch request was sent to.
fn host(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The client's `Idempotency-Key` with a digest of what it sent.
fn idempotency(headers: &HeaderMap, request: &[u8]) -> Option<(String, String)> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|key| (key.to_string(), hex::encode(Sha256::digest(request))))
}

/// Queues a checked batch: `201 {"uuid"}`, or the batch an earlier request with the same
/// idempotency key queued.
async fn accept(state: &AppState, tenant: &str, new: NewBatch) -> Result<Response, BatchError> {
    let store = state.store.clone();
    let tenant = tenant.to_string();
    let accepted = blocking(move || store.batches().create_batch(&tenant, new))
        .await
        .map_err(|e| match e {
            bulkhost_core::Error::BatchUnfinished(uuid) => BatchError::new(
                StatusCode::CONFLICT,
                "BATCH_IN_PROGRESS",
                format!("batch {uuid} has not finished; one batch runs at a time"),
            ),
            bulkhost_core::Error::IdempotencyConflict(key) => BatchError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "IDEMPOTENCY_CONFLICT",
                format!("the Idempotency-Key `{key}` was used with another request body"),
            ),
            other => BatchError::from(other),
        })?;
    let batch = match accepted {
        Accepted::New(batch) => {
            state.batch_wakeup.notify_waiters();
            batch
        }
        Accepted::Repeated(batch) => batch,
    };
    Ok((StatusCode::CREATED, axum::Json(Queued { uuid: batch.uuid })).into_response())
}

/// `GET /v1/batch/{uuid}`: the batch's progress; a finished batch's status is kept for the
/// configured time (LogiCommerce: 1 hour), its results longer.
pub(super) async fn status(
    State(state): State<AppState>,
    caller: Caller<BatchError>,
    Path(uuid): Path<String>,
) -> Result<Response, BatchError> {
    let store = state.store.clone();
    let tenant = caller.tenant.clone();
    let (batch, results) = blocking(move || store.batches().batch(&tenant, &uuid)).await?;
    let kept = state.config.batches.status_ttl();
    if batch.finished_more_than(kept) {
        return Err(BatchError::new(
            StatusCode::NOT_FOUND,
            "STATUS_EXPIRED",
            format!(
                "the status of batch {} is kept {} s after it finished; its results remain at /v1/batch/{}/jsonl",
                batch.uuid,
                kept.as_secs(),
                batch.uuid
            ),
        ));
    }
    Ok(axum::Json(BatchState::new(&batch, &results)).into_response())
}
