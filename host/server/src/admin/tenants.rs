//! `GET /admin/tenants`: every tenant as the operator sees it — usage beside quotas, where its
//! exports, batches and change hooks stand, its own plugins and its newest failures — so the
//! tenant in trouble shows without anyone reading its data.

use axum::extract::State;
use bulkhost_core::{FailureKind, TenantOverview};
use bulkhost_runtime::Scope;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{AdminError, Operator};
use crate::state::{AppState, blocking};

/// One tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantListing {
    /// Its name (ABRA Flexi's company, Winfra XXL's domain).
    pub name: String,
    /// How many users may sign in for it.
    pub users: usize,
    /// Its global version: the version of its last change.
    pub version: u64,
    /// Whether its change feed records.
    pub changes_enabled: bool,
    /// Each usage counter beside its quota: bytes, except `unfinished-exports`, a count.
    pub usage: Vec<UsageEntry>,
    /// Its export runs still kept (one per data set of a request), by state.
    pub export_runs: RunCountsEntry,
    /// Its batches still kept, by status; `failed` ones stopped before every operation ran.
    pub batches: BatchCountsEntry,
    /// Its change hooks.
    pub hooks: HookCountsEntry,
    /// Its own plugins, by name.
    pub plugins: Vec<String>,
    /// Its newest failures, newest first (a hook's, untimed, last); at most 20.
    pub failures: Vec<FailureEntry>,
}

// The number the listing's description gives.
const _: () = assert!(bulkhost_core::RECENT_FAILURES == 20);

/// A usage counter beside its quota.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageEntry {
    /// `documents`, `attachments`, `results` or `unfinished-exports`.
    pub counter: &'static str,
    /// What the tenant uses.
    pub used: u64,
    /// What it may use.
    pub limit: u64,
}

/// Export runs by state.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunCountsEntry {
    /// Waiting for a worker.
    pub queued: u64,
    /// Being generated.
    pub running: u64,
    /// Generated.
    pub done: u64,
    /// Failed.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

/// Batches by status.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchCountsEntry {
    /// Waiting for a worker.
    pub pending: u64,
    /// Running.
    pub processing: u64,
    /// Every operation ran.
    pub finished: u64,
    /// Stopped early.
    pub failed: u64,
}

/// Change hooks by health.
#[derive(Debug, Serialize, ToSchema)]
pub struct HookCountsEntry {
    /// Registered.
    pub total: u64,
    /// Whose last attempt failed.
    pub failing: u64,
    /// Paused after failing too often.
    pub paused: u64,
}

/// One failure.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailureEntry {
    /// `export`, `batch` or `hook`.
    pub kind: &'static str,
    /// The export's `peticion_id`, the batch's `uuid` or the hook's id.
    pub id: String,
    /// The data set, how far the batch got, or the hook's URL.
    pub subject: String,
    /// Why it failed.
    pub error: String,
    /// When, where known.
    pub at: Option<DateTime<Utc>>,
}

/// The handler of `GET /admin/tenants`.
pub async fn list(
    State(state): State<AppState>,
    _: Operator,
) -> Result<axum::Json<Vec<TenantListing>>, AdminError> {
    let store = state.store.clone();
    let overview = blocking(move || store.overview())
        .await
        .map_err(AdminError::storage)?;
    Ok(axum::Json(
        overview
            .into_iter()
            .map(|tenant| {
                let plugins = state
                    .registry
                    .plugins(&Scope::Tenant(tenant.name.clone()))
                    .into_iter()
                    .map(|(name, _, _)| name)
                    .collect();
                listing(tenant, plugins)
            })
            .collect(),
    ))
}

fn listing(tenant: TenantOverview, plugins: Vec<String>) -> TenantListing {
    let (runs, batches, hooks) = (tenant.export_runs, tenant.batches, tenant.hooks);
    TenantListing {
        name: tenant.name,
        users: tenant.users,
        version: tenant.version,
        changes_enabled: tenant.changes_enabled,
        usage: tenant
            .usage
            .into_iter()
            .map(|line| UsageEntry {
                counter: line.name,
                used: line.used,
                limit: line.limit,
            })
            .collect(),
        export_runs: RunCountsEntry {
            queued: runs.queued,
            running: runs.running,
            done: runs.done,
            failed: runs.failed,
            cancelled: runs.cancelled,
        },
        batches: BatchCountsEntry {
            pending: batches.pending,
            processing: batches.processing,
            finished: batches.finished,
            failed: batches.failed,
        },
        hooks: HookCountsEntry {
            total: hooks.total,
            failing: hooks.failing,
            paused: hooks.paused,
        },
        plugins,
        failures: tenant
            .failures
            .into_iter()
            .map(|failure| FailureEntry {
                kind: match failure.kind {
                    FailureKind::Export => "export",
                    FailureKind::Batch => "batch",
                    FailureKind::Hook => "hook",
                },
                id: failure.id,
                subject: failure.subject,
                error: failure.error,
                at: failure.at.map(|at| at.and_utc()),
            })
            .collect(),
    }
}
