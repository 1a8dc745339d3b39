//! Recording a running batch's results, in groups, while its next operations run: each
//! result reaches the store within [`GROUP_WINDOW`] of its operation's end (so progress
//! shows while a long operation runs), and many share one commit.
//!
//! Records are committed without waiting for the disk, like the operations' own writes
//! (see `bulkhost_core::Store::for_operation`), and made durable at least every [`SYNC_EVERY`]
//! and when the run ends or stops. A crash loses what came after the last durable commit, in
//! order and whole: the operations whose results were lost run again on the state they
//! first saw, and a write that an unrelated durable commit had made durable before its
//! result was recorded answers its marked outcome instead of being made twice.

use std::time::Duration;

use bulkhost_core::{Batch, OperationResult};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::state::{AppState, blocking};

/// How long a result may wait for others to share its commit.
const GROUP_WINDOW: Duration = Duration::from_millis(50);
/// The most results one commit records.
const GROUP_MAX: usize = 64;
/// How much of a batch's progress a crash may lose, at most.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Takes a batch's results in operation order and records them.
pub(super) struct Recorder {
    results: mpsc::UnboundedSender<OperationResult>,
    task: JoinHandle<Result<(), bulkhost_core::Error>>,
}

impl Recorder {
    /// A recorder for `batch`, whose next result is that of its operation `batch.done`.
    pub(super) fn start(state: &AppState, batch: &Batch) -> Self {
        let (results, incoming) = mpsc::unbounded_channel();
        let task = tokio::spawn(record_groups(
            state.clone(),
            batch.tenant.clone(),
            batch.uuid.clone(),
            batch.done,
            incoming,
        ));
        Recorder { results, task }
    }

    /// The result of the next operation.
    pub(super) fn record(&self, result: OperationResult) {
        // The task only stops early on a storage error, which `finish` reports.
        let _ = self.results.send(result);
    }

    /// Whether recording has stopped early, on a failure that [`Recorder::finish`] reports:
    /// the batch should not run more operations whose results would be lost.
    pub(super) fn stopped(&self) -> bool {
        self.task.is_finished()
    }

    /// Records what is still waiting; answers why not every result was recorded.
    pub(super) async fn finish(self) -> Result<(), String> {
        drop(self.results);
        match self.task.await {
            Ok(recorded) => recorded.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

async fn record_groups(
    state: AppState,
    tenant: String,
    uuid: String,
    mut first: usize,
    mut incoming: mpsc::UnboundedReceiver<OperationResult>,
) -> Result<(), bulkhost_core::Error> {
    let mut synced = Instant::now();
    while let Some(result) = incoming.recv().await {
        let deadline = Instant::now() + GROUP_WINDOW;
        let (mut group, mut last) = (vec![result], false);
        while group.len() < GROUP_MAX {
            match tokio::time::timeout_at(deadline, incoming.recv()).await {
                Ok(Some(result)) => group.push(result),
                Ok(None) => {
                    last = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let count = group.len();
        // The last group of a run, ended or stopped, is kept whatever happens next.
        let durable = last || synced.elapsed() >= SYNC_EVERY;
        let (store, tenant, uuid) = (state.store.clone(), tenant.clone(), uuid.clone());
        blocking(move || {
            store
                .batches()
                .record_operations(&tenant, &uuid, first, &group, durable)
        })
        .await?;
        if durable {
            synced = Instant::now();
        }
        first += count;
    }
    Ok(())
}
