//! Seed 003 batches as data: a batch is accepted whole, queued, and run operation by
//! operation; the operations' results are recorded as they complete (see
//! [`Store::record_operations`]), so after a crash a batch resumes with the operations whose
//! results were not kept.
//!
//! A tenant has at most one unfinished batch: the slot is taken in the transaction that
//! accepts a batch and freed in the one that finishes it, so two concurrent `POST`s cannot
//! both get in.

use std::ops::Bound;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::keys::Key;
use crate::outbox::{Notice, owe};
use crate::quota::{self, Usage};
use crate::records::{json, next_seq, now, parse};
use crate::storage::{Reader, Tbl, Writer};
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
}

impl Batch {
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

#[derive(Debug, Serialize, Deserialize)]
struct QueueEntry {
    tenant: String,
    uuid: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyRecord {
    digest: String,
    uuid: String,
}

const BATCH_SEQ: &str = "batch_seq";

fn batch_key(tenant: &str, uuid: &str) -> Vec<u8> {
    Key::new().str(tenant).str(uuid).into_vec()
}

fn result_key(uuid: &str, index: usize) -> Vec<u8> {
    Key::new().str(uuid).u64(index as u64).into_vec()
}

/// The Meta key of the tenant's unfinished batch.
fn slot_key(tenant: &str) -> Vec<u8> {
    Key::new().str(tenant).str("unfinished-batch").into_vec()
}

fn idempotency_key(tenant: &str, key: &str) -> Vec<u8> {
    Key::new().str(tenant).str(key).into_vec()
}

/// A batch without its operations.
fn load_header(r: &impl Reader, tenant: &str, uuid: &str) -> Result<Option<Batch>> {
    r.get(Tbl::Batches, &batch_key(tenant, uuid))?
        .map(|raw| parse(&raw))
        .transpose()
}

/// A batch with its operations.
fn load(r: &impl Reader, tenant: &str, uuid: &str) -> Result<Option<Batch>> {
    let Some(mut batch) = load_header(r, tenant, uuid)? else {
        return Ok(None);
    };
    if let Some(raw) = r.get(Tbl::BatchOperations, uuid.as_bytes())? {
        batch.operations = parse(&raw)?;
    }
    Ok(Some(batch))
}

/// Saves what changes of a batch as it runs: everything but its operations.
fn save(w: &mut impl Writer, batch: &Batch) -> Result<()> {
    w.put(
        Tbl::Batches,
        &batch_key(&batch.tenant, &batch.uuid),
        &json(batch),
    )
}

fn enqueue(w: &mut impl Writer, batch: &Batch) -> Result<()> {
    let seq = next_seq(w, BATCH_SEQ)?;
    let entry = QueueEntry {
        tenant: batch.tenant.clone(),
        uuid: batch.uuid.clone(),
    };
    w.put(
        Tbl::BatchQueue,
        &Key::new().u64(seq).into_vec(),
        &json(&entry),
    )
}

/// Every batch, of every tenant, that `keep` selects.
fn batches_where(r: &impl Reader, keep: impl Fn(&Batch) -> bool) -> Result<Vec<Batch>> {
    let mut out = Vec::new();
    r.scan(
        Tbl::Batches,
        Bound::Unbounded,
        Bound::Unbounded,
        false,
        &mut |_, v| {
            let batch: Batch = parse(v)?;
            if keep(&batch) {
                out.push(batch);
            }
            Ok(true)
        },
    )?;
    Ok(out)
}

impl Store {
    /// Accepts a batch for `tenant`, unless the tenant has an unfinished one
    /// ([`Error::BatchUnfinished`]) or the idempotency key was used for another body
    /// ([`Error::IdempotencyConflict`]).
    pub fn create_batch(&self, tenant: &str, new: NewBatch) -> Result<Accepted> {
        if self.tenants.get(tenant).is_none() {
            return Err(Error::UnknownTenant(tenant.to_string()));
        }
        self.storage.write(|w| {
            if let Some((key, digest)) = &new.idempotency
                && let Some(raw) = w.get(Tbl::BatchKeys, &idempotency_key(tenant, key))?
            {
                let earlier: KeyRecord = parse(&raw)?;
                if earlier.digest != *digest {
                    return Err(Error::IdempotencyConflict(key.clone()));
                }
                return load(w, tenant, &earlier.uuid)?
                    .map(Accepted::Repeated)
                    .ok_or(Error::NotFound);
            }
            if let Some(running) = w.get(Tbl::Meta, &slot_key(tenant))? {
                return Err(Error::BatchUnfinished(
                    String::from_utf8_lossy(&running).into_owned(),
                ));
            }
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
            };
            save(w, &batch)?;
            w.put(
                Tbl::BatchOperations,
                batch.uuid.as_bytes(),
                &json(&batch.operations),
            )?;
            enqueue(w, &batch)?;
            w.put(Tbl::Meta, &slot_key(tenant), batch.uuid.as_bytes())?;
            if let Some((key, digest)) = &new.idempotency {
                let record = KeyRecord {
                    digest: digest.clone(),
                    uuid: batch.uuid.clone(),
                };
                w.put(
                    Tbl::BatchKeys,
                    &idempotency_key(tenant, key),
                    &json(&record),
                )?;
            }
            Ok(Accepted::New(batch))
        })
    }

    /// One of the tenant's batches with the results of its completed operations.
    pub fn batch(&self, tenant: &str, uuid: &str) -> Result<(Batch, Vec<OperationResult>)> {
        let r = self.storage.read()?;
        let batch = load(&r, tenant, uuid)?.ok_or(Error::NotFound)?;
        let results = read_results(&r, uuid, 0, batch.done)?;
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
        let r = self.storage.read()?;
        let batch = load(&r, tenant, uuid)?.ok_or(Error::NotFound)?;
        let results = read_results(&r, uuid, from, to.min(batch.done))?;
        Ok((batch, results))
    }

    /// Takes the oldest queued batch and marks it processing; `None` when none waits.
    pub fn claim_batch(&self) -> Result<Option<Batch>> {
        self.storage.write(|w| {
            let mut first = None;
            w.scan(
                Tbl::BatchQueue,
                Bound::Unbounded,
                Bound::Unbounded,
                false,
                &mut |k, v| {
                    first = Some((k.to_vec(), parse::<QueueEntry>(v)?));
                    Ok(false)
                },
            )?;
            let Some((key, entry)) = first else {
                return Ok(None);
            };
            w.remove(Tbl::BatchQueue, &key)?;
            let Some(mut batch) = load(w, &entry.tenant, &entry.uuid)? else {
                return Ok(None);
            };
            batch.status = BatchStatus::Processing;
            batch.processed_at.get_or_insert_with(now);
            save(w, &batch)?;
            Ok(Some(batch))
        })
    }

    /// Records the results of the batch's operations from `first` on, in order. Operations
    /// already recorded (a replay after a crash) are not recorded twice.
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
        let quotas = self.tenants.quotas(tenant);
        let record = |w: &mut crate::storage::WriteTables<'_>| {
            let mut batch = load_header(w, tenant, uuid)?.ok_or(Error::NotFound)?;
            for (index, result) in (first..).zip(results) {
                if index != batch.done {
                    continue;
                }
                let stored = json(result);
                quota::charge(w, tenant, Usage::Results, stored.len() as i64, &quotas)?;
                w.put(Tbl::BatchResults, &result_key(uuid, index), &stored)?;
                crate::once::forget(w, uuid, Some(index))?;
                batch.done = index + 1;
                batch.updating_at = Some(result.completed_at);
            }
            save(w, &batch)
        };
        if durable {
            self.storage.write(record)
        } else {
            self.storage.write_unsynced(record)
        }
    }

    /// Marks a batch as finished, frees the tenant's slot, and owes the notices its webhook
    /// asked for: once all its operations have run, or with `error` saying why it stopped
    /// before (the operations without a recorded result did not run, or ran unrecorded).
    pub fn finish_batch(&self, tenant: &str, uuid: &str, error: Option<String>) -> Result<()> {
        self.storage.write(|w| {
            let mut batch = load_header(w, tenant, uuid)?.ok_or(Error::NotFound)?;
            batch.status = BatchStatus::Finished;
            batch.error = error;
            let moment = now();
            batch.completed_at = Some(batch.updating_at.unwrap_or(moment));
            save(w, &batch)?;
            if let Some(url) = &batch.callback_url {
                owe(w, Notice::BatchCallback, tenant, uuid, url, moment)?;
            }
            if let Some(address) = &batch.email {
                owe(w, Notice::BatchMail, tenant, uuid, address, moment)?;
            }
            w.remove(Tbl::Meta, &slot_key(tenant)).map(drop)
        })
    }

    /// Puts batches that were processing when the process stopped back in the queue, so they
    /// resume with the operations not yet done; answers how many.
    pub fn recover_batches(&self) -> Result<u64> {
        self.storage.write(|w| {
            let interrupted = batches_where(w, |b| b.status == BatchStatus::Processing)?;
            for batch in &interrupted {
                enqueue(w, batch)?;
            }
            Ok(interrupted.len() as u64)
        })
    }

    /// Deletes finished batches whose results are older than `results_ttl`, with their
    /// results and idempotency keys; answers how many.
    pub fn prune_batches(&self, results_ttl: std::time::Duration) -> Result<u64> {
        self.storage.write(|w| {
            let expired = batches_where(w, |b| b.finished_more_than(results_ttl))?;
            for batch in &expired {
                let freed =
                    w.remove_prefix(Tbl::BatchResults, &Key::new().str(&batch.uuid).into_vec())?;
                let quotas = self.tenants.quotas(&batch.tenant);
                quota::charge(w, &batch.tenant, Usage::Results, -(freed as i64), &quotas)?;
                w.remove(Tbl::Batches, &batch_key(&batch.tenant, &batch.uuid))?;
                w.remove(Tbl::BatchOperations, batch.uuid.as_bytes())?;
                crate::once::forget(w, &batch.uuid, None)?;
                if let Some(key) = &batch.idempotency_key {
                    w.remove(Tbl::BatchKeys, &idempotency_key(&batch.tenant, key))?;
                }
            }
            Ok(expired.len() as u64)
        })
    }
}

fn read_results(
    r: &impl Reader,
    uuid: &str,
    from: usize,
    to: usize,
) -> Result<Vec<OperationResult>> {
    let mut out = Vec::new();
    if from >= to {
        return Ok(out);
    }
    let start = result_key(uuid, from);
    let end = result_key(uuid, to);
    r.scan(
        Tbl::BatchResults,
        Bound::Included(&start),
        Bound::Excluded(&end),
        false,
        &mut |_, v| {
            out.push(parse(v)?);
            Ok(true)
        },
    )?;
    Ok(out)
}
