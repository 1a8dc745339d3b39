//! The batch workers: tasks that take accepted batches in order and run their operations one
//! after another through the server's own router, as the batch's tenant, handing each
//! result to the batch's [`Recorder`].
//!
//! Every operation runs within its time budget (one that passes it is answered 504 and the
//! batch goes on) and the whole batch within its own: once that is spent, the operations left
//! are answered 504 without running. A batch whose results cannot be recorded (its tenant's
//! result quota is full, say) stops, and is finished with the reason, so the tenant's batch
//! slot is free again.

use std::time::Duration;

use tokio::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use bulkhost_core::{Batch, BatchOperation, OperationResult};
use tokio::task::JoinHandle;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;

use super::recorder::Recorder;
use crate::auth::ActingTenant;
use crate::state::{AppState, blocking};

/// How long an idle worker waits when nobody wakes it: batches left from before a restart,
/// or a wake-up lost to a race, are picked up within this time.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The largest response body kept for one operation; a longer one is cut and says so in its
/// `statusText`. Pages inside a batch hold at most 100 items, so this is generous, and it
/// bounds what a batch's status holds in memory.
const MAX_RESULT_BYTES: usize = 1024 * 1024;

/// Starts `count` batch workers; each stops when the server starts shutting down, after the
/// operation in flight, once it has recorded what ran.
pub fn spawn(state: &AppState, count: usize) -> Vec<JoinHandle<()>> {
    let routes = crate::routes().layer(CatchPanicLayer::new());
    (0..count)
        .map(|_| tokio::spawn(work(state.clone(), routes.clone())))
        .collect()
}

async fn work(state: AppState, routes: Router<AppState>) {
    let mut stopping = state.stopping.subscribe();
    // An operation may call a tenant's own plugin: none runs before they are all loaded.
    let mut loaded = state.plugins_loaded.subscribe();
    tokio::select! {
        _ = loaded.wait_for(|loaded| *loaded) => {}
        _ = stopping.wait_for(|stopping| *stopping) => return,
    }
    while !*stopping.borrow() {
        let store = state.store.clone();
        match blocking(move || store.batches().claim_batch()).await {
            Ok(Some(batch)) => run(&state, &routes, batch).await,
            Ok(None) => {
                tokio::select! {
                    _ = state.batch_wakeup.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stopping.changed() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "claiming a batch failed");
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }
}

/// Runs the operations of `batch` not yet done, then finishes it. A stop leaves the batch
/// processing after the operation in flight; it resumes after the restart.
///
/// Each operation runs on the routes with a store handle of its own that marks each write with
/// the operation (see [`bulkhost_core::Store::for_operation`]): an operation that runs again
/// after a crash never writes twice, and one given up at its budget cannot mark its late
/// writes as the next operation's.
async fn run(state: &AppState, routes: &Router<AppState>, batch: Batch) {
    let budgets = &state.config.batches;
    let spent = batch
        .processed_at
        .and_then(|at| (chrono::Utc::now().naive_utc() - at).to_std().ok())
        .unwrap_or_default();
    let batch_ends = Instant::now() + budgets.timeout().saturating_sub(spent);
    let heartbeat = tokio::spawn(renew(
        state.clone(),
        batch.tenant.clone(),
        batch.uuid.clone(),
    ));
    let recorder = Recorder::start(state, &batch);
    let mut ran_all = true;
    for index in batch.done..batch.operations.len() {
        if *state.stopping.borrow() || recorder.stopped() {
            ran_all = false;
            break;
        }
        let router = routes.clone().with_state(AppState {
            store: state.store.for_operation(&batch.tenant, &batch.uuid, index),
            ..state.clone()
        });
        let operation = &batch.operations[index];
        let left = batch_ends.saturating_duration_since(Instant::now());
        let result = if left.is_zero() {
            timed_out(format!(
                "not run: the batch passed its time budget of {} s",
                budgets.timeout_secs
            ))
        } else {
            let budget = budgets.operation_timeout().min(left);
            // The plugin an operation calls gets a little longer than the budget, so the
            // budget is what ends it, in one way, whatever the operation calls.
            let call = execute(router.clone(), &batch, operation, budget + PLUGIN_GRACE);
            match tokio::time::timeout(budget, call).await {
                Ok(result) => result,
                Err(_) => timed_out(format!(
                    "the operation passed its time budget of {:.1} s",
                    budget.as_secs_f64()
                )),
            }
        };
        state
            .metrics
            .batch_operation(&operation.method, result.status_code);
        recorder.record(result);
    }
    let recorded = recorder.finish().await;
    heartbeat.abort();
    let stopped = match recorded {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(batch = %batch.uuid, error = %e, "recording operations failed");
            Some(format!(
                "the batch stopped: recording its responses failed: {e}"
            ))
        }
    };
    if !ran_all && stopped.is_none() {
        return;
    }
    let store = state.store.clone();
    let (tenant, uuid) = (batch.tenant.clone(), batch.uuid.clone());
    match blocking(move || store.batches().finish_batch(&tenant, &uuid, stopped)).await {
        Ok(()) => {
            state.metrics.batch_finished();
            tracing::info!(batch = %batch.uuid, "batch finished");
        }
        Err(e) => tracing::error!(batch = %batch.uuid, error = %e, "finishing a batch failed"),
    }
}

/// Renews the lease of a batch this host runs, so no other host takes it over, until aborted
/// or until the batch is no longer this host's.
async fn renew(state: AppState, tenant: String, uuid: String) {
    let mut ticks = tokio::time::interval(state.store.lease() / 3);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let (store, of_tenant, batch) = (state.store.clone(), tenant.clone(), uuid.clone());
        match blocking(move || store.batches().renew_batch(&of_tenant, &batch)).await {
            Ok(()) => {}
            Err(bulkhost_core::Error::Cancelled) => return,
            Err(e) => tracing::warn!(batch = %uuid, error = %e, "renewing a batch's lease failed"),
        }
    }
}

/// How much longer than its operation's budget a plugin call may run.
const PLUGIN_GRACE: Duration = Duration::from_millis(250);

/// The result of an operation that ran out of time.
fn timed_out(why: String) -> OperationResult {
    OperationResult {
        uuid: uuid::Uuid::new_v4().to_string().to_uppercase(),
        status_code: 504,
        status_text: why,
        body: String::new(),
        completed_at: chrono::Utc::now().naive_utc(),
    }
}

/// The time an operation has left, for the plugin it calls: put on the request by the
/// executor, read by the plugin endpoint handler.
#[derive(Debug, Clone, Copy)]
pub struct OperationBudget(pub Duration);

/// Sends one operation through the router as the batch's tenant, to the host the batch was
/// sent to, and keeps what it answered.
async fn execute(
    router: Router,
    batch: &Batch,
    operation: &BatchOperation,
    budget: Duration,
) -> OperationResult {
    let mut request = Request::builder()
        .method(operation.method.as_str())
        .uri(operation.endpoint.as_str());
    if operation.body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    if let Some(host) = &batch.host {
        request = request.header(header::HOST, host.as_str());
    }
    let request = request.body(Body::from(operation.body.clone().unwrap_or_default()));
    let (status_code, status_text, body) = match request {
        Err(e) => (
            400,
            format!("the operation is not a valid request: {e}"),
            String::new(),
        ),
        Ok(mut request) => {
            request
                .extensions_mut()
                .insert(ActingTenant(batch.tenant.clone()));
            request.extensions_mut().insert(OperationBudget(budget));
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let status = response.status();
            let reason = status.canonical_reason().unwrap_or_default().to_string();
            match axum::body::to_bytes(response.into_body(), MAX_RESULT_BYTES).await {
                Ok(bytes) => (
                    status.as_u16(),
                    reason,
                    String::from_utf8_lossy(&bytes).into_owned(),
                ),
                Err(_) => (
                    status.as_u16(),
                    format!(
                        "{reason}; the response passed {MAX_RESULT_BYTES} bytes and was dropped"
                    ),
                    String::new(),
                ),
            }
        }
    };
    OperationResult {
        uuid: uuid::Uuid::new_v4().to_string().to_uppercase(),
        status_code,
        status_text,
        body,
        completed_at: chrono::Utc::now().naive_utc(),
    }
}
