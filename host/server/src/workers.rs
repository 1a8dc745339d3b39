//! The export worker pool: threads that claim queued data set runs and generate them with the
//! plugin that provides the data set, storing records as they arrive.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bulkhost_core::{Claim, ResultWriter};
use bulkhost_runtime::{RecordSink, SinkError};

use crate::state::AppState;

/// How long an idle worker sleeps when nobody wakes it: queued work from before a restart,
/// or a wake-up lost to a race, is picked up within this time.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Wakes idle workers when a request is queued.
#[derive(Debug, Default)]
pub struct Wakeup {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Wakeup {
    /// Tells idle workers there may be work.
    pub fn notify(&self) {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.changed.notify_all();
    }

    fn current(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait(&self, seen: u64) {
        let guard = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        let _woken = self
            .changed
            .wait_timeout_while(guard, IDLE_POLL, |g| *g == seen);
    }
}

/// Lets a generation's records flow into the run's result chunks.
struct JobSink(Arc<Mutex<ResultWriter>>);

impl RecordSink for JobSink {
    fn accept(&mut self, records: Vec<String>) -> Result<(), SinkError> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(records)
            .map_err(|e| match e {
                bulkhost_core::Error::Cancelled => SinkError::Cancelled,
                bulkhost_core::Error::QuotaExceeded(why) => SinkError::Refused(why),
                other => SinkError::Storage(other.to_string()),
            })
    }
}

/// Starts `count` worker threads; they stop when the server starts shutting down.
pub fn spawn(state: &AppState, count: usize) {
    for n in 0..count {
        let state = state.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("bulkhost-export-{n}"))
            .spawn(move || work(&state));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start an export worker");
        }
    }
}

/// How often a worker looks again while the tenants' plugins are still loading.
const LOADING_POLL: Duration = Duration::from_millis(50);

fn work(state: &AppState) {
    while !*state.stopping.borrow() {
        // A queued run may need a tenant's own plugin: claiming one before they are all
        // loaded would fail it for nothing.
        if !*state.plugins_loaded.borrow() {
            std::thread::sleep(LOADING_POLL);
            continue;
        }
        let seen = state.wakeup.current();
        match state.store.exports().claim_next() {
            Ok(Some(claim)) => run(state, &claim),
            Ok(None) => state.wakeup.wait(seen),
            Err(e) => {
                tracing::error!(error = %e, "claiming export work failed");
                std::thread::sleep(IDLE_POLL);
            }
        }
    }
}

/// Renews a claimed run's lease while its generation lasts, so no other host takes it over;
/// stops when dropped, or once the run is no longer this worker's.
struct Heartbeat {
    _stop: std::sync::mpsc::Sender<()>,
}

impl Heartbeat {
    fn start(state: &AppState, claim: &Claim) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (store, claim) = (state.store.clone(), claim.clone());
        let period = store.lease() / 3;
        let spawned = std::thread::Builder::new()
            .name("bulkhost-heartbeat".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(period)
                {
                    if let Err(e) = store.exports().renew_run(&claim) {
                        tracing::warn!(request = %claim.id, error = %e, "renewing a run's lease failed");
                        if matches!(e, bulkhost_core::Error::Cancelled) {
                            return;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a run's heartbeat");
        }
        Heartbeat { _stop: stop }
    }
}

fn run(state: &AppState, claim: &Claim) {
    tracing::info!(tenant = %claim.tenant, request = %claim.id, dataset = %claim.dataset, "generating");
    let heartbeat = Heartbeat::start(state, claim);
    let generated = generate(state, claim);
    drop(heartbeat);
    state
        .metrics
        .export_run(generated.as_ref().ok().map(|g| g.records));
    if let Err(e) = &generated {
        tracing::warn!(tenant = %claim.tenant, request = %claim.id, dataset = %claim.dataset, error = %e, "generation failed");
    }
    let outcome = generated.map(|g| g.version);
    if let Err(e) = state.store.exports().finish_run(claim, outcome) {
        tracing::error!(request = %claim.id, error = %e, "recording the end of a run failed");
    }
}

/// What a finished generation made.
#[derive(Debug, Clone, Copy)]
struct Generation {
    /// Records.
    records: u64,
    /// The tenant's global version in the snapshot they were made from.
    version: u64,
}

/// Runs the claim's generation to its end.
fn generate(state: &AppState, claim: &Claim) -> Result<Generation, String> {
    let (plugin, _) = state
        .registry
        .find(&claim.tenant, &claim.dataset)
        .ok_or_else(|| format!("data set `{}` is no longer offered", claim.dataset))?;
    let snapshot = state
        .store
        .documents()
        .snapshot(&claim.tenant)
        .map_err(|e| e.to_string())?;
    let version = snapshot.global_version().map_err(|e| e.to_string())?;
    let writer = Arc::new(Mutex::new(ResultWriter::new(
        state.store.clone(),
        claim.clone(),
    )));
    let generated = plugin
        .generate(
            snapshot,
            Box::new(JobSink(writer.clone())),
            &claim.dataset,
            &claim.params,
        )
        .map_err(|e| e.to_string())?;
    let flushed = writer.lock().unwrap_or_else(|e| e.into_inner()).flush();
    flushed.map_err(|e| e.to_string())?;
    Ok(Generation {
        records: generated.records,
        version,
    })
}
