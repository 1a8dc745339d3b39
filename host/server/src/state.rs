//! What every request handler shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bulkhost_core::Store;
use bulkhost_core::engine::CommitListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::Metrics;

/// The shared state of the HTTP surfaces.
#[derive(Clone)]
pub struct AppState {
    /// The storage core.
    pub store: Store,
    /// The configuration it serves with.
    pub config: Arc<Config>,
    /// Wakes change-feed long-polls when a tenant's version moves.
    pub versions: Arc<VersionWatch>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Turns `true` when the server starts shutting down, so long-polls answer at once instead
    /// of holding the shutdown up.
    pub stopping: Arc<watch::Sender<bool>>,
    /// The plugins that provide data sets.
    pub registry: Arc<bulkhost_runtime::Registry>,
    /// Signs every call the server makes to a client's URL: webhooks and change hooks.
    pub signer: Arc<crate::webhooks::Signer>,
    /// Wakes export workers when a request is queued.
    pub wakeup: Arc<crate::workers::Wakeup>,
    /// Wakes batch workers when a batch is accepted.
    pub batch_wakeup: Arc<tokio::sync::Notify>,
    /// The rationing of password checks.
    pub passwords: Arc<crate::auth::PasswordChecks>,
    /// Per-tenant caps on streams, long-polls and plugin calls.
    pub gates: Arc<crate::gates::Gates>,
    /// Turns `true` once every plugin (tenants' included) has been loaded after the start:
    /// until then, work that may need a tenant's plugin waits.
    pub plugins_loaded: Arc<watch::Sender<bool>>,
    /// Collection pages already rendered, by the tenant version they show.
    pub pages: Arc<crate::collections::pages::PageCache>,
}

/// Per-tenant watch channels of the global version, fed by the core's commit hook.
#[derive(Debug, Default)]
pub struct VersionWatch {
    senders: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl VersionWatch {
    /// A receiver that changes whenever the tenant commits a write.
    pub fn subscribe(&self, tenant: &str) -> watch::Receiver<u64> {
        self.senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
}

impl CommitListener for VersionWatch {
    fn committed(&self, tenant: &str, version: u64) {
        if let Some(sender) = self
            .senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
        {
            sender.send_replace(version);
        }
    }
}

/// The clock of a periodic background task: ticks every `period` (a late tick delays the
/// next rather than bunching up) until the server starts shutting down.
pub struct Ticks {
    interval: tokio::time::Interval,
    stopping: watch::Receiver<bool>,
}

impl Ticks {
    /// Ticks for `state`'s server, the first one at once.
    pub fn new(state: &AppState, period: std::time::Duration) -> Self {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticks {
            interval,
            stopping: state.stopping.subscribe(),
        }
    }

    /// Waits for the next tick; answers `false` once the server is stopping.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.interval.tick() => true,
            _ = self.stopping.wait_for(|stopping| *stopping) => false,
        }
    }
}

/// Runs storage work off the async executor: redb calls block, and an fsync must not stall
/// other connections.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
