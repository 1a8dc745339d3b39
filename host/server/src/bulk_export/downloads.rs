//! `datos_xxl`: a finished data set's records as one JSON list, whole or from `offset` for
//! `limit` records, streamed from the stored chunks without loading the data set.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::WinfraError;
use crate::auth::Caller;
use crate::state::{AppState, blocking};
use crate::stream::{CHUNK_BYTES, body_from_blocking};

/// `GET /api_v1/datos_xxl/{peticion_id}/{dataset}`.
pub(super) async fn whole(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
    Path((id, dataset)): Path<(String, String)>,
) -> Result<Response, WinfraError> {
    stream(state, caller.tenant, id, dataset, 0, u64::MAX).await
}

/// `GET /api_v1/datos_xxl/{peticion_id}/{dataset}/{offset}/{limit}`.
pub(super) async fn page(
    State(state): State<AppState>,
    caller: Caller<WinfraError>,
    Path((id, dataset, offset, limit)): Path<(String, String, String, String)>,
) -> Result<Response, WinfraError> {
    let number = |name: &str, v: &str| {
        v.parse::<u64>().map_err(|_| {
            WinfraError::refused(format!(
                "`{name}` must be a non-negative whole number, not `{v}`."
            ))
        })
    };
    let (offset, limit) = (number("offset", &offset)?, number("limit", &limit)?);
    stream(state, caller.tenant, id, dataset, offset, limit).await
}

async fn stream(
    state: AppState,
    tenant: String,
    id: String,
    dataset: String,
    offset: u64,
    limit: u64,
) -> Result<Response, WinfraError> {
    let store = state.store.clone();
    let (check_tenant, check_id, check_dataset) = (tenant.clone(), id.clone(), dataset.clone());
    blocking(move || {
        store.read_results(&check_tenant, &check_id, &check_dataset, 0, 0, &mut |_| {
            Ok(false)
        })
    })
    .await?;
    let store = state.store.clone();
    let body = body_from_blocking(move |sink| {
        let mut buf = Vec::with_capacity(CHUNK_BYTES);
        buf.push(b'[');
        let mut first = true;
        store.read_results(&tenant, &id, &dataset, offset, limit, &mut |record| {
            if !first {
                buf.push(b',');
            }
            first = false;
            buf.extend_from_slice(record.as_bytes());
            Ok(sink.fill(&mut buf))
        })?;
        buf.push(b']');
        sink.finish(buf);
        Ok::<_, bulkhost_core::Error>(())
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
