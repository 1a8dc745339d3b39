//! LogiCommerce batches as data: a batch is accepted whole, queued, and run operation by
//! operation; the operations' results are recorded as they complete (see
//! [`Batches::record_operations`]), so after a crash a batch resumes with the operations whose
//! results were not kept.
//!
//! A tenant has at most one unfinished batch: the slot is taken in the transaction that
//! accepts a batch and freed in the one that finishes it, so two concurrent `POST`s cannot
//! both get in.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::engine::Durability;
use crate::outbox::{Notice, owe};
use crate::quota::{self, Usage};
use crate::records::now;
use crate::{Error, Result, Store};

/// One operation as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOperation {
    /// The client's name for it, unique in the batch.
    pub operation_id: String,
    /// Upper case.
    pub method: String,
    /// The path and query called, `/v1/products?page=1`.
    pub endpoint: String,
    /// The body, for writes.
    pub body: Option<String>,
}

/// What one operation answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationResult {
    /// This result's own id.
    pub uuid: String,
    /// The HTTP status code the operation got.
    pub status_code: u16,
    /// The reason phrase, or what went wrong when the operation could not run.
    pub status_text: String,
    /// The response body.
    pub body: String,
    /// When it completed (UTC).
    pub completed_at: NaiveDateTime,
}

impl OperationResult {
    /// Whether the operation succeeded (a 2xx status): what a retry of a batch leaves out.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status_code)
    }
}

/// Where a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    /// Accepted, waiting for a worker.
    Pending,
    /// Operations are running.
    Processing,
    /// Every operation has run.
    Finished,
}

impl BatchStatus {
    /// The word the status shows.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Pending => "pending",
            BatchStatus::Processing => "processing",
            BatchStatus::Finished => "finished",
        }
    }
}

/// A batch and its progress, without the operations' results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Its id.
    pub uuid: String,
    /// The tenant it runs as.
    pub tenant: String,
    /// Where it is.
    pub status: BatchStatus,
    /// The operations, in the order they run. Stored apart from the rest, which changes
    /// with every operation while they never do.
    #[serde(skip)]
    pub operations: Vec<BatchOperation>,
    /// How many operations have completed: the first `done` have results.
    pub done: usize,
    /// When it was accepted (UTC).
    pub created_at: NaiveDateTime,
    /// When a worker first took it.
    pub processed_at: Option<NaiveDateTime>,
    /// When an operation last completed.
    pub updating_at: Option<NaiveDateTime>,
    /// When its last operation completed.
    pub completed_at: Option<NaiveDateTime>,
    /// The webhook's `callbackUrl`.
    pub callback_url: Option<String>,
    /// The webhook's `email`.
    pub email: Option<String>,
    /// The `Host` the batch was sent to: its operations are made to the same host, so the
    /// links in their answers are the ones a direct request gets.
    pub host: Option<String>,
    /// The client's `Idempotency-Key`, dropped with the batch.
    pub idempotency_key: Option<String>,
    /// Why the batch stopped before all its operations ran or were recorded, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The worker running it, while it processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Until when its worker holds it, while it processes (see [`crate::DatasetRun`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<NaiveDateTime>,
}

impl Batch {
    /// Whether it processes under a lease that ended before `moment` (or under none, as a
    /// batch recorded before leases did).
    pub fn lease_lapsed(&self, moment: NaiveDateTime) -> bool {
        self.status == BatchStatus::Processing
            && self.lease_until.is_none_or(|until| until < moment)
    }

    /// Whether `worker` holds it, processing.
    pub fn held_by(&self, worker: &str) -> bool {
        self.status == BatchStatus::Processing && self.worker.as_deref() == Some(worker)
    }

    /// Whether the batch finished more than `kept` ago: its status or results, kept that
    /// long, are gone.
    pub fn finished_more_than(&self, kept: std::time::Duration) -> bool {
        let kept = chrono::Duration::from_std(kept).unwrap_or(chrono::Duration::MAX);
        self.completed_at
            .and_then(|at| at.checked_add_signed(kept))
            .is_some_and(|until| until < now())
    }
}

/// A batch to accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBatch {
    /// The operations, validated by the surface.
    pub operations: Vec<BatchOperation>,
    /// The webhook's `callbackUrl`.
    pub callback_url: Option<String>,
    /// The webhook's `email`.
    pub email: Option<String>,
    /// The client's `Idempotency-Key` with a digest of the request body.
    pub idempotency: Option<(String, String)>,
    /// See [`Batch::host`].
    pub host: Option<String>,
}

/// What accepting a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// A new batch was queued.
    New(Batch),
    /// The same key and body were accepted before: that batch.
    Repeated(Batch),
}

/// Batches: accepted one per tenant at a time, claimed under leases, their results recorded as
/// their operations run.
#[derive(Debug, Clone, Copy)]
pub struct Batches<'a> {
    store: &'a Store,
}

impl Store {
    /// Batches: accepted one per tenant at a time, claimed under leases, their results recorded as
    /// their operations run.
    pub fn batches(&self) -> Batches<'_> {
        Batches { store: self }
    }

    /// The batch, locked, if this store's worker holds it.
    fn held_batch(
        &self,
        txn: &mut dyn crate::engine::Txn,
        tenant: &str,
        uuid: &str,
    ) -> Result<Batch> {
        txn.lock_batch(tenant, uuid)?
            .filter(|b| b.held_by(&self.worker))
            .ok_or(Error::Cancelled)
    }
}

impl Batches<'_> {
    /// Accepts a batch for `tenant`, unless the tenant has an unfinished one
    /// ([`Error::BatchUnfinished`]) or the idempotency key was used for another body
    /// ([`Error::IdempotencyConflict`]).
    pub fn create_batch(&self, tenant: &str, new: NewBatch) -> Result<Accepted> {
        self.store.check_tenant(tenant)?;
        let batch = Batch {
            uuid: uuid::Uuid::new_v4().to_string().to_uppercase(),
            tenant: tenant.to_string(),
            status: BatchStatus::Pending,
            operations: new.operations,
            done: 0,
            created_at: now(),
            processed_at: None,
            updating_at: None,
            completed_at: None,
            callback_url: new.callback_url,
            email: new.email,
            host: new.host,
            idempotency_key: new.idempotency.as_ref().map(|(key, _)| key.clone()),
            error: None,
            worker: None,
            lease_until: None,
        };
        self.store.write(|txn| {
            // One writer of the tenant's batches at a time: the slot and the key are read and
            // taken in one go, whichever host accepts the batch.
            txn.lock_tenant(tenant)?;
            if let Some((key, digest)) = &new.idempotency
                && let Some((earlier, uuid)) = txn.idempotency(tenant, key)?
            {
                if earlier != *digest {
                    return Err(Error::IdempotencyConflict(key.clone()));
                }
                return txn
                    .batch(tenant, &uuid)?
                    .map(Accepted::Repeated)
                    .ok_or(Error::NotFound);
            }
            if let Some(running) = txn.unfinished_batch(tenant)? {
                return Err(Error::BatchUnfinished(running));
            }
            txn.insert_batch(
                &batch,
                new.idempotency
                    .as_ref()
                    .map(|(key, digest)| (key.as_str(), digest.as_str())),
            )?;
            txn.enqueue_batch(tenant, &batch.uuid)?;
            Ok(Accepted::New(batch.clone()))
        })
    }

    /// One of the tenant's batches with the results of its completed operations.
    pub fn batch(&self, tenant: &str, uuid: &str) -> Result<(Batch, Vec<OperationResult>)> {
        let view = self.store.engine.read()?;
        let batch = view.batch(tenant, uuid)?.ok_or(Error::NotFound)?;
        let results = view.batch_results(uuid, 0, batch.done)?;
        Ok((batch, results))
    }

    /// The results of operations `from..to` of a batch, in order (a page of its JSONL), with
    /// the batch.
    pub fn batch_results(
        &self,
        tenant: &str,
        uuid: &str,
        from: usize,
        to: usize,
    ) -> Result<(Batch, Vec<OperationResult>)> {
        let view = self.store.engine.read()?;
        let batch = view.batch(tenant, uuid)?.ok_or(Error::NotFound)?;
        let results = view.batch_results(uuid, from, to.min(batch.done))?;
        Ok((batch, results))
    }

    /// Takes the oldest queued batch for this store's worker, under a lease of
    /// [`Store::lease`], and marks it processing; `None` when none waits.
    pub fn claim_batch(&self) -> Result<Option<Batch>> {
        let lease_until = self.store.lease_end();
        self.store.write(|txn| {
            while let Some((tenant, uuid)) = txn.take_queued_batch()? {
                let Some(mut batch) = txn.lock_batch(&tenant, &uuid)? else {
                    continue;
                };
                if batch.status == BatchStatus::Finished {
                    continue;
                }
                batch.status = BatchStatus::Processing;
                batch.processed_at.get_or_insert_with(now);
                batch.worker = Some(self.store.worker.to_string());
                batch.lease_until = Some(lease_until);
                txn.save_batch(&batch)?;
                batch.operations = txn
                    .batch(&tenant, &uuid)?
                    .ok_or(Error::NotFound)?
                    .operations;
                return Ok(Some(batch));
            }
            Ok(None)
        })
    }

    /// Extends the lease of a batch this store's worker runs: its heartbeat. Answers
    /// [`Error::Cancelled`] once the worker no longer holds it (it was taken over after the
    /// lease lapsed), so the worker stops.
    pub fn renew_batch(&self, tenant: &str, uuid: &str) -> Result<()> {
        let lease_until = self.store.lease_end();
        self.store.write(|txn| {
            let mut batch = self.store.held_batch(txn, tenant, uuid)?;
            batch.lease_until = Some(lease_until);
            txn.save_batch(&batch)
        })
    }

    /// Records the results of the batch's operations from `first` on, in order. Operations
    /// already recorded (a replay after a crash) are not recorded twice; a batch this store's
    /// worker no longer holds answers [`Error::Cancelled`] and records nothing.
    ///
    /// `durable` waits for the disk, and makes durable with these results the operations'
    /// writes, committed without waiting (see `once.rs`). Without it, a crash may lose these
    /// results whole, with the writes of their operations made since the last durable commit,
    /// and those operations run again.
    pub fn record_operations(
        &self,
        tenant: &str,
        uuid: &str,
        first: usize,
        results: &[OperationResult],
        durable: bool,
    ) -> Result<()> {
        let quotas = self.store.tenants.quotas(tenant);
        let lease_until = self.store.lease_end();
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::Deferred
        };
        crate::engine::write(&*self.store.engine, durability, |txn| {
            let mut batch = self.store.held_batch(txn, tenant, uuid)?;
            for (index, result) in (first..).zip(results) {
                if index != batch.done {
                    continue;
                }
                let size = txn.put_batch_result(uuid, index, result)?;
                quota::charge(txn, tenant, Usage::Results, size as i64, &quotas)?;
                txn.forget_write_marks(uuid, Some(index))?;
                batch.done = index + 1;
                batch.updating_at = Some(result.completed_at);
            }
            batch.lease_until = Some(lease_until);
            txn.save_batch(&batch)
        })
    }

    /// Marks a batch as finished, frees the tenant's slot, and owes the notices its webhook
    /// asked for: once all its operations have run, or with `error` saying why it stopped
    /// before (the operations without a recorded result did not run, or ran unrecorded).
    pub fn finish_batch(&self, tenant: &str, uuid: &str, error: Option<String>) -> Result<()> {
        self.store.write(|txn| {
            let mut batch = self.store.held_batch(txn, tenant, uuid)?;
            batch.status = BatchStatus::Finished;
            batch.error = error.clone();
            batch.worker = None;
            batch.lease_until = None;
            let moment = now();
            batch.completed_at = Some(batch.updating_at.unwrap_or(moment));
            txn.save_batch(&batch)?;
            if let Some(url) = &batch.callback_url {
                owe(txn, Notice::BatchCallback, tenant, uuid, url, moment)?;
            }
            if let Some(address) = &batch.email {
                owe(txn, Notice::BatchMail, tenant, uuid, address, moment)?;
            }
            Ok(())
        })
    }

    /// Takes back the batches whose worker's lease ended before `moment` (a host that died,
    /// or a process that stopped) and queues them again, so they resume with the operations
    /// not yet done; answers how many.
    pub fn recover_batches(&self, moment: NaiveDateTime) -> Result<u64> {
        self.store.write(|txn| {
            let lapsed = txn.batches_with_lapsed_leases(moment)?;
            let mut recovered = 0;
            for found in &lapsed {
                let Some(mut batch) = txn.lock_batch(&found.tenant, &found.uuid)? else {
                    continue;
                };
                if !batch.lease_lapsed(moment) {
                    continue;
                }
                batch.worker = None;
                batch.lease_until = None;
                txn.save_batch(&batch)?;
                txn.enqueue_batch(&batch.tenant, &batch.uuid)?;
                recovered += 1;
            }
            Ok(recovered)
        })
    }

    /// Deletes finished batches whose results are older than `results_ttl`, with their
    /// results and idempotency keys; answers how many.
    pub fn prune_batches(&self, results_ttl: std::time::Duration) -> Result<u64> {
        let kept = chrono::Duration::from_std(results_ttl).unwrap_or(chrono::Duration::MAX);
        let cutoff = now().checked_sub_signed(kept).unwrap_or(NaiveDateTime::MIN);
        self.store.write(|txn| {
            let expired = txn.batches_completed_before(cutoff)?;
            for batch in &expired {
                let freed = txn.remove_batch(batch)?;
                let quotas = self.store.tenants.quotas(&batch.tenant);
                quota::charge(txn, &batch.tenant, Usage::Results, -(freed as i64), &quotas)?;
            }
            Ok(expired.len() as u64)
        })
    }
}
