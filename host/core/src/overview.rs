//! What the operator sees of each tenant: how much of its quotas it uses, where its exports,
//! batches and change hooks stand, and what failed lately, so one tenant's trouble can be found
//! without reading its data. Everything is read from one snapshot per tenant.

use chrono::NaiveDateTime;

use crate::batches::BatchStatus;
use crate::engine::View;
use crate::exports::RunState;
use crate::quota::{Quotas, Usage};
use crate::{Error, Result, Store};

/// How many failures an overview keeps, newest first.
pub const RECENT_FAILURES: usize = 20;

/// One tenant as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantOverview {
    /// The tenant's name.
    pub name: String,
    /// How many users may sign in for it.
    pub users: usize,
    /// Its global version: the version of its last change.
    pub version: u64,
    /// Whether its change feed records.
    pub changes_enabled: bool,
    /// Each usage counter beside its quota.
    pub usage: Vec<UsageLine>,
    /// Its export runs (one per data set of a request still kept) by state.
    pub export_runs: RunCounts,
    /// Its batches still kept, by status.
    pub batches: BatchCounts,
    /// Its change hooks: how many, and the failing ones.
    pub hooks: HookCounts,
    /// Its newest failures, at most [`RECENT_FAILURES`].
    pub failures: Vec<Failure>,
}

/// A usage counter and the quota it is held to, in the counter's unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageLine {
    /// The counter (see [`Usage::name`]).
    pub name: &'static str,
    /// What the tenant uses.
    pub used: u64,
    /// What it may use.
    pub limit: u64,
}

/// Export runs by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Waiting for a worker.
    pub pending: u64,
    /// Running.
    pub processing: u64,
    /// Every operation ran.
    pub finished: u64,
    /// Stopped before every operation ran or was recorded.
    pub failed: u64,
}

/// Change hooks by health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookCounts {
    /// Registered.
    pub total: u64,
    /// Whose last attempt failed, paused or not.
    pub failing: u64,
    /// Paused after failing too often.
    pub paused: u64,
}

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// An export's data set run.
    Export,
    /// A batch.
    Batch,
    /// A change hook's delivery.
    Hook,
}

/// One failure of a tenant's work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What failed.
    pub kind: FailureKind,
    /// The export request's id, the batch's uuid or the hook's id.
    pub id: String,
    /// The data set, how far the batch got, or the hook's URL.
    pub subject: String,
    /// Why.
    pub error: String,
    /// When, where the record says: a hook's failures are not timed.
    pub at: Option<NaiveDateTime>,
}

impl Store {
    /// Every declared tenant as the operator sees it, in declaration order.
    pub fn overview(&self) -> Result<Vec<TenantOverview>> {
        self.tenants
            .iter()
            .map(|tenant| self.tenant_overview(&tenant.name))
            .collect()
    }

    /// One tenant as the operator sees it.
    pub fn tenant_overview(&self, tenant: &str) -> Result<TenantOverview> {
        let config = self.tenants.get(tenant).ok_or(Error::NotFound)?;
        let quotas = self.tenants.quotas(tenant);
        let view = self.engine.read()?;
        let state = view.tenant_state(tenant)?;
        let mut failures = Recent::default();
        let export_runs = export_runs(&*view, tenant, &mut failures)?;
        let batches = batches(&*view, tenant, &mut failures)?;
        let hooks = hooks(&*view, tenant, &mut failures)?;
        Ok(TenantOverview {
            name: tenant.to_string(),
            users: config.users.len(),
            version: state.version,
            changes_enabled: self.changes_recording(&state, tenant),
            usage: usage(&*view, tenant, &quotas)?,
            export_runs,
            batches,
            hooks,
            failures: failures.newest(),
        })
    }
}

/// The newest failures seen so far: at most twice [`RECENT_FAILURES`] are held between trims,
/// so a tenant with thousands of failures costs no more than one with twenty.
#[derive(Default)]
struct Recent(Vec<Failure>);

impl Recent {
    fn push(&mut self, failure: Failure) {
        self.0.push(failure);
        if self.0.len() >= 2 * RECENT_FAILURES {
            self.trim();
        }
    }

    /// Keeps the newest: timed failures newest first, a hook's (untimed) after them.
    fn trim(&mut self) {
        self.0.sort_by_key(|failure| std::cmp::Reverse(failure.at));
        self.0.truncate(RECENT_FAILURES);
    }

    fn newest(mut self) -> Vec<Failure> {
        self.trim();
        self.0
    }
}

/// Each usage counter the engines keep, beside the tenant's quota for it.
fn usage(view: &dyn View, tenant: &str, quotas: &Quotas) -> Result<Vec<UsageLine>> {
    [
        Usage::Documents,
        Usage::Attachments,
        Usage::Results,
        Usage::UnfinishedExports,
    ]
    .into_iter()
    .map(|counter| {
        Ok(UsageLine {
            name: counter.name(),
            used: view.usage(tenant, counter)?,
            limit: counter.limit(quotas),
        })
    })
    .collect()
}

/// The runs of the tenant's unexpired export requests by state; failed ones are failures.
fn export_runs(view: &dyn View, tenant: &str, failures: &mut Recent) -> Result<RunCounts> {
    let moment = crate::records::now();
    let mut counts = RunCounts::default();
    for request in view.exports(tenant)? {
        if request.expires_at <= moment {
            continue;
        }
        for run in &request.datasets {
            let count = match run.state {
                RunState::Queued => &mut counts.queued,
                RunState::Running => &mut counts.running,
                RunState::Done => &mut counts.done,
                RunState::Failed => &mut counts.failed,
                RunState::Cancelled => &mut counts.cancelled,
            };
            *count += 1;
            if run.state == RunState::Failed {
                failures.push(Failure {
                    kind: FailureKind::Export,
                    id: request.id.clone(),
                    subject: run.dataset.clone(),
                    error: run.error_message.clone(),
                    at: run.finished_at.or(run.started_at),
                });
            }
        }
    }
    Ok(counts)
}

/// The tenant's kept batches by status; one that stopped early is a failure.
fn batches(view: &dyn View, tenant: &str, failures: &mut Recent) -> Result<BatchCounts> {
    let mut counts = BatchCounts::default();
    for batch in view.batches(tenant)? {
        let count = match (&batch.error, batch.status) {
            (Some(_), _) => &mut counts.failed,
            (None, BatchStatus::Pending) => &mut counts.pending,
            (None, BatchStatus::Processing) => &mut counts.processing,
            (None, BatchStatus::Finished) => &mut counts.finished,
        };
        *count += 1;
        if let Some(error) = batch.error {
            failures.push(Failure {
                kind: FailureKind::Batch,
                id: batch.uuid,
                subject: format!("{} operations done", batch.done),
                error,
                at: batch.completed_at.or(batch.updating_at),
            });
        }
    }
    Ok(counts)
}

/// The tenant's change hooks by health; a failing one is a failure.
fn hooks(view: &dyn View, tenant: &str, failures: &mut Recent) -> Result<HookCounts> {
    let mut counts = HookCounts::default();
    for hook in view.hooks(Some(tenant))? {
        counts.total += 1;
        counts.paused += u64::from(hook.paused.is_some());
        if let Some(error) = hook.paused.or(hook.last_error) {
            counts.failing += 1;
            failures.push(Failure {
                kind: FailureKind::Hook,
                id: hook.id.to_string(),
                subject: hook.url,
                error,
                at: None,
            });
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{NewExport, two_tenant_store as store};

    fn export(store: &Store, tenant: &str) {
        let new = NewExport {
            datasets: vec![("x".into(), vec![])],
            webhook: None,
            ttl: Duration::from_secs(3600),
        };
        store.exports().create_export(tenant, new).unwrap();
    }

    #[test]
    fn the_newest_failures_are_kept_newest_first_and_each_tenant_sees_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let failed = 2 * RECENT_FAILURES + 5;
        for i in 0..failed {
            export(&s, "a");
            let claim = s.exports().claim_next().unwrap().unwrap();
            s.exports()
                .finish_run(&claim, Err(format!("run {i}")))
                .unwrap();
            // Finishing times must differ for an order to exist.
            std::thread::sleep(Duration::from_millis(2));
        }
        export(&s, "b");

        let overview = s.overview().unwrap();
        let (a, b) = (&overview[0], &overview[1]);
        assert_eq!(a.export_runs.failed, failed as u64);
        let errors: Vec<&str> = a.failures.iter().map(|f| f.error.as_str()).collect();
        let newest: Vec<String> = (failed - RECENT_FAILURES..failed)
            .rev()
            .map(|i| format!("run {i}"))
            .collect();
        assert_eq!(errors, newest);
        assert!(a.failures.iter().all(|f| f.kind == FailureKind::Export));
        assert_eq!(b.export_runs.queued, 1);
        assert_eq!(b.failures, vec![]);
        let unfinished = b.usage.iter().find(|u| u.name == "unfinished-exports");
        assert_eq!(unfinished.map(|u| (u.used, u.limit)), Some((1, 16)));
    }
}
