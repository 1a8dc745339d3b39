//! Recording a running batch's results. The result of an operation that wrote is committed
//! durably before the next operation starts: that commit makes the operation's writes
//! durable (see `bulkhost_core::Store::for_batch`). The results of operations that only read
//! go to the store in groups, each within [`GROUP_WINDOW`] of its operation's end (so
//! progress shows while a long operation runs), one commit for many: losing them to a crash
//! costs nothing but running those reads again.

use std::time::Duration;

use bulkhost_core::{Batch, OperationResult};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::state::{AppState, blocking};

/// How long a result may wait for others to share its commit.
const GROUP_WINDOW: Duration = Duration::from_millis(50);
/// The most results one commit records.
const GROUP_MAX: usize = 64;

/// Takes a batch's results in operation order and records them.
pub(super) struct Recorder {
    results: mpsc::UnboundedSender<(OperationResult, Option<oneshot::Sender<()>>)>,
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

    /// The result of the next operation, which only read.
    pub(super) fn record(&self, result: OperationResult) {
        // The task only stops early on a storage error, which `finish` reports.
        let _ = self.results.send((result, None));
    }

    /// The result of the next operation, which wrote: recorded durably, with those before
    /// it, before this returns.
    pub(super) async fn record_durably(&self, result: OperationResult) {
        let (done, recorded) = oneshot::channel();
        if self.results.send((result, Some(done))).is_ok() {
            // An error drops the sender; `finish` reports it.
            let _ = recorded.await;
        }
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
    mut incoming: mpsc::UnboundedReceiver<(OperationResult, Option<oneshot::Sender<()>>)>,
) -> Result<(), bulkhost_core::Error> {
    while let Some((result, mut waiting)) = incoming.recv().await {
        let deadline = Instant::now() + GROUP_WINDOW;
        let mut group = vec![result];
        while waiting.is_none() && group.len() < GROUP_MAX {
            match tokio::time::timeout_at(deadline, incoming.recv()).await {
                Ok(Some((result, ack))) => {
                    group.push(result);
                    waiting = ack;
                }
                Ok(None) | Err(_) => break,
            }
        }
        let count = group.len();
        let durable = waiting.is_some();
        let (store, tenant, uuid) = (state.store.clone(), tenant.clone(), uuid.clone());
        blocking(move || store.record_operations(&tenant, &uuid, first, &group, durable)).await?;
        first += count;
        if let Some(done) = waiting {
            let _ = done.send(());
        }
    }
    Ok(())
}
