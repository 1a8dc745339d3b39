//! Export requests (Winfra XXL) as data: what a tenant asked for, a fair queue of the data
//! set runs, their results in chunks, and the webhook deliveries their completion owes.
//!
//! A request is committed before the API answers, so an accepted request is never lost. Each
//! data set run is a queue entry; workers claim entries round-robin across tenants, so one
//! tenant's flood cannot starve the others. Results are appended in chunks keyed by the
//! number of their first record, so a page at any offset is one seek. A worker holds its run
//! under a lease it renews while it generates; a run whose lease lapsed (its host died, or the
//! process stopped) is queued again from scratch (its partial chunks dropped) by
//! [`Exports::recover_exports`], at most [`MAX_ATTEMPTS`] times, then marked failed with the
//! reason, and a worker that lost its run finds out at its next write and stops. The webhook a finished request owes is written to the outbox in the same
//! transaction that finishes it, so a crash neither loses nor invents a delivery.

use std::time::Duration;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::engine::{ExportsView, RunRef, StoredChunk, Txn};
use crate::outbox::{Notice, owe};
use crate::packed::{Layout, Piece};
use crate::quota::{self, Quotas, Usage};
use crate::records::now;
use crate::{Error, Result, Store};

/// How often a run is started before a crash during it counts as its failure.
pub const MAX_ATTEMPTS: u32 = 3;
/// A chunk of results closes at this many bytes...
const CHUNK_BYTES: usize = 256 * 1024;
/// ...or this many records.
const CHUNK_RECORDS: usize = 1000;

/// Where a data set run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for a worker.
    Queued,
    /// A worker is generating it.
    Running,
    /// Every record is stored.
    Done,
    /// It failed; `error_message` says why.
    Failed,
    /// The request was cancelled.
    Cancelled,
}

/// One data set of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRun {
    /// The data set's name.
    pub dataset: String,
    /// The parameters the request gave, as text.
    pub params: Vec<(String, String)>,
    /// Where it stands.
    pub state: RunState,
    /// When a worker last started it.
    pub started_at: Option<NaiveDateTime>,
    /// When it finished.
    pub finished_at: Option<NaiveDateTime>,
    /// Records stored so far.
    pub records: u64,
    /// Their bytes (the records' JSON text, without separators).
    #[serde(default)]
    pub bytes: u64,
    /// What the deflate pieces stored with its chunks add up to; `None` for a run whose
    /// chunks were stored without pieces, by an earlier version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packed: Option<PackedSizes>,
    /// Why it failed; empty otherwise.
    pub error_message: String,
    /// How often a worker started it.
    pub attempts: u32,
    /// The worker generating it, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Until when its worker holds it, while it runs: a worker that stops renewing the lease
    /// (its host died) loses the run to another once the lease has lapsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<NaiveDateTime>,
    /// The tenant's global version the records reflect: the change feed's version of the
    /// snapshot the generation read, once it is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// What the deflate pieces of a run's chunks add up to: with the layout's own pieces, the
/// exact size of its gzip form, known before a byte of it is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedSizes {
    /// How many chunks, each with one piece per layout.
    pub chunks: u64,
    /// The deflate bytes of the pieces of each layout, in the order of [`Layout::ALL`].
    pub deflate: [u64; 2],
}

impl DatasetRun {
    /// Whether it runs under a lease that ended before `moment` (or under none, as a run
    /// recorded before leases did).
    pub fn lease_lapsed(&self, moment: NaiveDateTime) -> bool {
        self.state == RunState::Running && self.lease_until.is_none_or(|until| until < moment)
    }

    /// Whether `worker` holds it, running.
    fn held_by(&self, worker: &str) -> bool {
        self.state == RunState::Running && self.worker.as_deref() == Some(worker)
    }
}

/// A tenant's export request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// The request id (a UUID), Winfra XXL's `peticion_id`.
    pub id: String,
    /// The tenant that asked.
    pub tenant: String,
    /// When it was accepted (UTC).
    pub created_at: NaiveDateTime,
    /// When it and its data are deleted.
    pub expires_at: NaiveDateTime,
    /// Where its final state is posted, if anywhere.
    pub webhook: Option<String>,
    /// Its data sets, in request order.
    pub datasets: Vec<DatasetRun>,
}

impl ExportRequest {
    /// Whether no data set is queued or running any more.
    pub fn finished(&self) -> bool {
        self.datasets
            .iter()
            .all(|d| !matches!(d.state, RunState::Queued | RunState::Running))
    }
}

/// A request as the API accepted it.
#[derive(Debug, Clone)]
pub struct NewExport {
    /// (data set, parameters) in request order; each data set at most once.
    pub datasets: Vec<(String, Vec<(String, String)>)>,
    /// The webhook URL, if any.
    pub webhook: Option<String>,
    /// How long the request and its data are kept.
    pub ttl: Duration,
}

/// A data set run a worker has claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The tenant whose documents the run may read.
    pub tenant: String,
    /// The request id.
    pub id: String,
    /// The data set's position in the request.
    pub index: usize,
    /// The data set's name.
    pub dataset: String,
    /// Its parameters.
    pub params: Vec<(String, String)>,
    /// The worker that holds it.
    pub worker: String,
}

fn owe_webhook(txn: &mut dyn Txn, request: &ExportRequest, now: NaiveDateTime) -> Result<()> {
    match &request.webhook {
        Some(url) => owe(txn, Notice::Export, &request.tenant, &request.id, url, now),
        None => Ok(()),
    }
}

/// Deletes a run's result chunks, giving their bytes back to the tenant's quota.
fn drop_results(
    txn: &mut dyn Txn,
    request: &ExportRequest,
    index: usize,
    quotas: &Quotas,
) -> Result<()> {
    let freed = txn.remove_chunks(&request.id, index)?;
    quota::charge(
        txn,
        &request.tenant,
        Usage::Results,
        -(freed as i64),
        quotas,
    )
}

/// Counts a request out of the tenant's unfinished ones once it has finished: every state
/// change of a request that may finish it passes here.
fn count_finished(txn: &mut dyn Txn, request: &ExportRequest, quotas: &Quotas) -> Result<()> {
    if !request.finished() {
        return Ok(());
    }
    quota::charge(txn, &request.tenant, Usage::UnfinishedExports, -1, quotas)
}

fn encode_chunk(records: &[String]) -> Vec<u8> {
    let body: usize = records.iter().map(String::len).sum();
    let mut out = Vec::with_capacity(4 + records.len() * 4 + body);
    out.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for r in records {
        out.extend_from_slice(&(r.len() as u32).to_be_bytes());
    }
    for r in records {
        out.extend_from_slice(r.as_bytes());
    }
    out
}

/// Export requests: accepted, queued fairly, claimed under leases, generated into chunks,
/// read back, expired.
#[derive(Debug, Clone, Copy)]
pub struct Exports<'a> {
    store: &'a Store,
}

impl Store {
    /// Export requests: accepted, queued fairly, claimed under leases, generated into chunks,
    /// read back, expired.
    pub fn exports(&self) -> Exports<'_> {
        Exports { store: self }
    }

    /// The claimed run's request, locked, if the claim's worker still holds the run.
    fn held_run(&self, txn: &mut dyn Txn, claim: &Claim) -> Result<ExportRequest> {
        txn.lock_export(&claim.tenant, &claim.id)?
            .filter(|r| r.expires_at > now())
            .filter(|r| {
                r.datasets
                    .get(claim.index)
                    .is_some_and(|run| run.held_by(&claim.worker))
            })
            .ok_or(Error::Cancelled)
    }
}

impl Exports<'_> {
    /// Accepts a request: the request and one queue entry per data set, in one commit.
    pub fn create_export(&self, tenant: &str, new: NewExport) -> Result<ExportRequest> {
        self.store.check_tenant(tenant)?;
        let created_at = now();
        let ttl = chrono::Duration::from_std(new.ttl).unwrap_or(chrono::Duration::MAX);
        let request = ExportRequest {
            id: uuid::Uuid::new_v4().to_string(),
            tenant: tenant.to_string(),
            created_at,
            expires_at: created_at
                .checked_add_signed(ttl)
                .unwrap_or(NaiveDateTime::MAX),
            webhook: new.webhook,
            datasets: new
                .datasets
                .into_iter()
                .map(|(dataset, params)| DatasetRun {
                    dataset,
                    params,
                    state: RunState::Queued,
                    started_at: None,
                    finished_at: None,
                    records: 0,
                    bytes: 0,
                    packed: Some(PackedSizes::default()),
                    error_message: String::new(),
                    attempts: 0,
                    worker: None,
                    lease_until: None,
                    version: None,
                })
                .collect(),
        };
        let quotas = self.store.tenants.quotas(tenant);
        self.store.commit(|txn| {
            quota::charge(txn, tenant, Usage::UnfinishedExports, 1, &quotas)?;
            txn.save_export(&request)?;
            for index in 0..request.datasets.len() {
                txn.enqueue_run(&RunRef {
                    tenant: tenant.to_string(),
                    id: request.id.clone(),
                    index,
                })?;
            }
            Ok(request.clone())
        })
    }

    /// One of the tenant's requests, unless it expired.
    pub fn export(&self, tenant: &str, id: &str) -> Result<ExportRequest> {
        self.store
            .engine
            .read()?
            .export(tenant, id)?
            .filter(|r| r.expires_at > now())
            .ok_or(Error::NotFound)
    }

    /// The tenant's requests that have not expired, oldest first.
    pub fn exports(&self, tenant: &str) -> Result<Vec<ExportRequest>> {
        let moment = now();
        let mut out: Vec<ExportRequest> = self
            .store
            .engine
            .read()?
            .exports(tenant)?
            .into_iter()
            .filter(|r| r.expires_at > moment)
            .collect();
        out.sort_by_key(|r| r.created_at);
        Ok(out)
    }

    /// Claims the next queued run for this store's worker, under a lease of
    /// [`Store::lease`], taking tenants in turn: the first tenant after the one served last
    /// that has work, wrapping around.
    pub fn claim_next(&self) -> Result<Option<Claim>> {
        let lease_until = self.store.lease_end();
        self.store.write(|txn| {
            while let Some(entry) = txn.take_queued_run()? {
                let Some(mut request) = txn
                    .lock_export(&entry.tenant, &entry.id)?
                    .filter(|r| r.expires_at > now())
                else {
                    continue;
                };
                let Some(run) = request.datasets.get_mut(entry.index) else {
                    continue;
                };
                if run.state != RunState::Queued {
                    continue;
                }
                run.state = RunState::Running;
                run.started_at = Some(now());
                run.attempts += 1;
                run.worker = Some(self.store.worker.to_string());
                run.lease_until = Some(lease_until);
                let claim = Claim {
                    tenant: entry.tenant,
                    id: entry.id,
                    index: entry.index,
                    dataset: run.dataset.clone(),
                    params: run.params.clone(),
                    worker: self.store.worker.to_string(),
                };
                txn.save_export(&request)?;
                return Ok(Some(claim));
            }
            Ok(None)
        })
    }

    /// Extends the lease of a claimed run by [`Store::lease`] from now: the heartbeat of its
    /// worker. Answers [`Error::Cancelled`] once the run is no longer the worker's (cancelled,
    /// expired, or taken over after the lease lapsed), so the worker stops.
    pub fn renew_run(&self, claim: &Claim) -> Result<()> {
        let lease_until = self.store.lease_end();
        self.store.write(|txn| {
            let mut request = self.store.held_run(txn, claim)?;
            request.datasets[claim.index].lease_until = Some(lease_until);
            txn.save_export(&request)
        })
    }

    /// Stores `records` as the next chunk of a claimed run, numbered from `first_record`, and
    /// makes the new count visible. Answers [`Error::Cancelled`] once the run is no longer the
    /// worker's, so it stops.
    pub fn append_results(
        &self,
        claim: &Claim,
        first_record: u64,
        records: &[String],
    ) -> Result<()> {
        let quotas = self.store.tenants.quotas(&claim.tenant);
        let chunk = encode_chunk(records);
        let pieces = Layout::ALL.map(|layout| Piece::of_records(records, layout));
        let encoded = pieces.each_ref().map(Piece::encode);
        let stored = StoredChunk {
            records: &chunk,
            pieces: encoded.each_ref().map(Vec::as_slice),
        };
        let lease_until = self.store.lease_end();
        self.store.write(|txn| {
            let mut request = self.store.held_run(txn, claim)?;
            let run = &mut request.datasets[claim.index];
            if run.records != first_record {
                return Err(Error::Corrupt(format!(
                    "results chunk starts at record {first_record}, {} are stored",
                    run.records
                )));
            }
            quota::charge(
                txn,
                &claim.tenant,
                Usage::Results,
                stored.size() as i64,
                &quotas,
            )?;
            txn.put_chunk(&claim.id, claim.index, first_record, &stored)?;
            run.records += records.len() as u64;
            run.bytes += records.iter().map(|r| r.len() as u64).sum::<u64>();
            if let Some(packed) = &mut run.packed {
                packed.chunks += 1;
                for (total, piece) in packed.deflate.iter_mut().zip(&pieces) {
                    *total += piece.deflate.len() as u64;
                }
            }
            run.lease_until = Some(lease_until);
            txn.save_export(&request)
        })
    }

    /// Ends a claimed run: done with its stored records, which reflect the tenant's global
    /// version `Ok(version)`, or failed with `Err(message)`. When that finishes the request,
    /// the webhook it owes is queued in the same commit. A run the worker no longer holds is
    /// left as it is.
    pub fn finish_run(
        &self,
        claim: &Claim,
        outcome: std::result::Result<u64, String>,
    ) -> Result<ExportRequest> {
        let moment = now();
        let quotas = self.store.tenants.quotas(&claim.tenant);
        self.store.write(|txn| {
            let mut request = txn
                .lock_export(&claim.tenant, &claim.id)?
                .ok_or(Error::NotFound)?;
            let run = request
                .datasets
                .get_mut(claim.index)
                .ok_or(Error::NotFound)?;
            if !run.held_by(&claim.worker) {
                return Ok(request);
            }
            run.finished_at = Some(moment);
            run.worker = None;
            run.lease_until = None;
            let failed = match outcome.clone() {
                Ok(version) => {
                    run.state = RunState::Done;
                    run.version = Some(version);
                    false
                }
                Err(message) => {
                    run.state = RunState::Failed;
                    run.error_message = message;
                    true
                }
            };
            if failed {
                drop_results(txn, &request, claim.index, &quotas)?;
            }
            txn.save_export(&request)?;
            count_finished(txn, &request, &quotas)?;
            if request.finished() {
                owe_webhook(txn, &request, moment)?;
            }
            Ok(request)
        })
    }

    /// Cancels what of a request is still queued or running, and drops its queued entries.
    pub fn cancel_export(&self, tenant: &str, id: &str) -> Result<ExportRequest> {
        let moment = now();
        let quotas = self.store.tenants.quotas(tenant);
        self.store.commit(|txn| {
            let mut request = txn
                .lock_export(tenant, id)?
                .filter(|r| r.expires_at > moment)
                .ok_or(Error::NotFound)?;
            if request.finished() {
                return Ok(request);
            }
            let mut cancelled = Vec::new();
            for (index, run) in request.datasets.iter_mut().enumerate() {
                if matches!(run.state, RunState::Queued | RunState::Running) {
                    run.state = RunState::Cancelled;
                    run.finished_at = Some(moment);
                    run.error_message = "cancelled".into();
                    run.worker = None;
                    run.lease_until = None;
                    cancelled.push(index);
                }
            }
            for index in cancelled {
                drop_results(txn, &request, index, &quotas)?;
            }
            txn.save_export(&request)?;
            count_finished(txn, &request, &quotas)?;
            owe_webhook(txn, &request, moment)?;
            Ok(request)
        })
    }

    /// Takes back the runs whose worker's lease ended before `moment` (a host that died, or a
    /// process that stopped): each is queued again from scratch, or failed once it has been
    /// started [`MAX_ATTEMPTS`] times. Answers how many runs were taken back.
    pub fn recover_exports(&self, moment: NaiveDateTime) -> Result<u64> {
        let finished_at = now();
        self.store.write(|txn| {
            let lapsed = txn.exports_with_lapsed_leases(moment)?;
            let mut recovered = 0;
            for found in lapsed {
                let Some(mut request) = txn.lock_export(&found.tenant, &found.id)? else {
                    continue;
                };
                let quotas = self.store.tenants.quotas(&request.tenant);
                let running: Vec<usize> = (0..request.datasets.len())
                    .filter(|i| request.datasets[*i].lease_lapsed(moment))
                    .collect();
                if running.is_empty() {
                    continue;
                }
                for index in &running {
                    drop_results(txn, &request, *index, &quotas)?;
                }
                for index in running {
                    let run = &mut request.datasets[index];
                    recovered += 1;
                    run.records = 0;
                    run.bytes = 0;
                    run.packed = Some(PackedSizes::default());
                    run.worker = None;
                    run.lease_until = None;
                    if run.attempts >= MAX_ATTEMPTS {
                        run.state = RunState::Failed;
                        run.finished_at = Some(finished_at);
                        run.error_message = format!(
                            "the server stopped during generation {} times; giving up",
                            run.attempts
                        );
                    } else {
                        run.state = RunState::Queued;
                        run.started_at = None;
                        txn.enqueue_run(&RunRef {
                            tenant: request.tenant.clone(),
                            id: request.id.clone(),
                            index,
                        })?;
                    }
                }
                txn.save_export(&request)?;
                count_finished(txn, &request, &quotas)?;
                if request.finished() {
                    owe_webhook(txn, &request, finished_at)?;
                }
            }
            Ok(recovered)
        })
    }

    /// Visits the records of a finished data set from `offset`, at most `limit`, until
    /// `visit` answers `false`. A chunk is found by one seek, whatever the offset.
    pub fn read_results(
        &self,
        tenant: &str,
        id: &str,
        dataset: &str,
        offset: u64,
        limit: u64,
        visit: &mut dyn FnMut(&str) -> Result<bool>,
    ) -> Result<()> {
        let view = self.store.engine.read()?;
        let index = finished_run(&*view, tenant, id, dataset)?;
        let (mut at, mut remaining) = (offset, limit);
        while remaining > 0 {
            let Some(chunk) = chunk_holding(&*view, id, index, at)? else {
                return Ok(());
            };
            for i in (at - chunk.first) as usize..chunk.len() {
                let Some(record) = chunk.record(i) else { break };
                if remaining == 0 || !visit(record)? {
                    return Ok(());
                }
                remaining -= 1;
            }
            at = chunk.first + chunk.len() as u64;
        }
        Ok(())
    }

    /// The stored chunk of a finished data set that holds record `at`, if the data set has
    /// that many: for readers that walk a data set over many calls, reading each chunk once.
    pub fn result_chunk(
        &self,
        tenant: &str,
        id: &str,
        dataset: &str,
        at: u64,
    ) -> Result<Option<ResultChunk>> {
        let view = self.store.engine.read()?;
        let index = finished_run(&*view, tenant, id, dataset)?;
        chunk_holding(&*view, id, index, at)
    }

    /// The deflate piece, in `layout`, of the stored chunk of a finished data set that starts
    /// at record `at`: `None` when no chunk starts there, or when it was stored without one.
    pub fn result_piece(
        &self,
        tenant: &str,
        id: &str,
        dataset: &str,
        layout: Layout,
        at: u64,
    ) -> Result<Option<Piece>> {
        let view = self.store.engine.read()?;
        let index = finished_run(&*view, tenant, id, dataset)?;
        view.piece_at(id, index, layout, at)?
            .map(Piece::decode)
            .transpose()
    }

    /// How many data set runs, of every tenant, wait for a worker.
    pub fn queued_runs(&self) -> Result<u64> {
        self.store.engine.read()?.queued_runs()
    }

    /// Deletes requests that expired, with their queue entries and results. Answers how many.
    pub fn prune_exports(&self) -> Result<u64> {
        let moment = now();
        self.store.write(|txn| {
            let expired = txn.expired_exports(moment)?;
            for request in &expired {
                let quotas = self.store.tenants.quotas(&request.tenant);
                for index in 0..request.datasets.len() {
                    drop_results(txn, request, index, &quotas)?;
                }
                if !request.finished() {
                    quota::charge(txn, &request.tenant, Usage::UnfinishedExports, -1, &quotas)?;
                }
                txn.remove_export(&request.tenant, &request.id)?;
            }
            Ok(expired.len() as u64)
        })
    }
}

/// The position of a finished data set in its request: [`Error::NotFound`] for an unknown or
/// expired request or data set, [`Error::NotReady`] for one not done.
fn finished_run(
    r: &(impl ExportsView + ?Sized),
    tenant: &str,
    id: &str,
    dataset: &str,
) -> Result<usize> {
    let request = r
        .export(tenant, id)?
        .filter(|req| req.expires_at > now())
        .ok_or(Error::NotFound)?;
    let index = request
        .datasets
        .iter()
        .position(|d| d.dataset == dataset)
        .ok_or(Error::NotFound)?;
    if request.datasets[index].state != RunState::Done {
        return Err(Error::NotReady);
    }
    Ok(index)
}

/// The chunk of run `index` of request `id` that holds record `at`, found by one seek.
fn chunk_holding(
    r: &(impl ExportsView + ?Sized),
    id: &str,
    index: usize,
    at: u64,
) -> Result<Option<ResultChunk>> {
    let Some((first, raw)) = r.chunk_before(id, index, at)? else {
        return Ok(None);
    };
    let chunk = ResultChunk::new(first, raw)?;
    Ok((at < chunk.first + chunk.len() as u64).then_some(chunk))
}

/// One stored chunk of a data set's records, read and checked once.
#[derive(Debug, Clone)]
pub struct ResultChunk {
    /// The number of its first record in the data set.
    pub first: u64,
    text: String,
    ends: Vec<usize>,
}

impl ResultChunk {
    fn new(first: u64, mut raw: Vec<u8>) -> Result<Self> {
        let corrupt = || Error::Corrupt("result chunk is truncated".into());
        let count = raw
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(corrupt)?;
        let table = raw.get(4..4 + count * 4).ok_or_else(corrupt)?;
        let mut ends = Vec::with_capacity(count);
        let mut end = 0;
        for l in table.chunks_exact(4) {
            end += u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
            ends.push(end);
        }
        // The records follow the table: moved to the front in place, they are the text.
        raw.drain(..4 + count * 4);
        if raw.len() != end {
            return Err(corrupt());
        }
        let text = String::from_utf8(raw).map_err(|e| Error::Corrupt(e.to_string()))?;
        if ends.iter().any(|e| !text.is_char_boundary(*e)) {
            return Err(corrupt());
        }
        Ok(ResultChunk { first, text, ends })
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Its `i`-th record (counted from its first), if it holds that many.
    pub fn record(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }
}

/// Builds records into chunks and stores each as it fills, for one claimed run.
#[derive(Debug)]
pub struct ResultWriter {
    store: Store,
    claim: Claim,
    buffered: Vec<String>,
    bytes: usize,
    stored: u64,
}

impl ResultWriter {
    /// A writer for the claimed run.
    pub fn new(store: Store, claim: Claim) -> Self {
        ResultWriter {
            store,
            claim,
            buffered: Vec::new(),
            bytes: 0,
            stored: 0,
        }
    }

    /// Adds records, storing a chunk whenever one fills.
    pub fn append(&mut self, records: Vec<String>) -> Result<()> {
        for record in records {
            self.bytes += record.len();
            self.buffered.push(record);
            if self.buffered.len() >= CHUNK_RECORDS || self.bytes >= CHUNK_BYTES {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Stores what is buffered.
    pub fn flush(&mut self) -> Result<()> {
        if self.buffered.is_empty() {
            return Ok(());
        }
        self.store
            .exports()
            .append_results(&self.claim, self.stored, &self.buffered)?;
        self.stored += self.buffered.len() as u64;
        self.buffered.clear();
        self.bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::two_tenant_store as store;

    fn request(datasets: &[&str], webhook: Option<&str>, ttl: Duration) -> NewExport {
        NewExport {
            datasets: datasets
                .iter()
                .map(|d| (d.to_string(), vec![("n".to_string(), "1".to_string())]))
                .collect(),
            webhook: webhook.map(str::to_string),
            ttl,
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn records(n: u64) -> Vec<String> {
        (0..n).map(|i| format!("{{\"i\":{i}}}")).collect()
    }

    #[test]
    fn tenants_are_served_in_turn() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.exports()
            .create_export("a", request(&["x", "y", "z"], None, HOUR))
            .unwrap();
        s.exports()
            .create_export("b", request(&["x"], None, HOUR))
            .unwrap();
        let order: Vec<(String, String)> = std::iter::from_fn(|| s.exports().claim_next().unwrap())
            .map(|c| (c.tenant, c.dataset))
            .collect();
        let expected = [("a", "x"), ("b", "x"), ("a", "y"), ("a", "z")];
        assert_eq!(order, expected.map(|(t, d)| (t.to_string(), d.to_string())));
    }

    #[test]
    fn results_seek_to_any_offset_and_the_webhook_is_owed_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let req = s
            .exports()
            .create_export("a", request(&["x", "y"], Some("http://hook"), HOUR))
            .unwrap();
        let x = s.exports().claim_next().unwrap().unwrap();
        let mut writer = ResultWriter::new(s.clone(), x.clone());
        writer.append(records(2500)).unwrap();
        let stored = &s.exports().export("a", &req.id).unwrap().datasets[0];
        assert_eq!(stored.records, 2000);
        assert_eq!(
            stored.bytes,
            records(2000).iter().map(|r| r.len() as u64).sum::<u64>()
        );
        assert!(matches!(
            s.exports()
                .read_results("a", &req.id, "x", 0, 10, &mut |_| Ok(true)),
            Err(Error::NotReady)
        ));
        writer.flush().unwrap();
        s.exports().finish_run(&x, Ok(0)).unwrap();
        let read = |offset, limit| {
            let mut out = Vec::new();
            s.exports()
                .read_results("a", &req.id, "x", offset, limit, &mut |r| {
                    out.push(r.to_string());
                    Ok(true)
                })
                .unwrap();
            out
        };
        assert_eq!(
            read(999, 3),
            ["{\"i\":999}", "{\"i\":1000}", "{\"i\":1001}"]
        );
        assert_eq!(read(2400, 500).len(), 100);
        let chunk = s
            .exports()
            .result_chunk("a", &req.id, "x", 1500)
            .unwrap()
            .unwrap();
        assert_eq!(chunk.first, 1000);
        assert_eq!(chunk.record(500), Some("{\"i\":1500}"));
        assert!(
            s.exports()
                .result_chunk("a", &req.id, "x", 2500)
                .unwrap()
                .is_none()
        );
        let piece = s
            .exports()
            .result_piece("a", &req.id, "x", Layout::Lines, 1000)
            .unwrap()
            .expect("each chunk is stored with its pieces");
        assert_eq!(piece.records, 1000);
        let mut body = Vec::new();
        let mut member = crate::GzipMember::default();
        member.push(&piece, &mut body);
        member.finish(&mut body);
        let mut plain = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain)
            .unwrap();
        let expected: String = (1000..2000).map(|i| format!("{{\"i\":{i}}}\n")).collect();
        assert_eq!(plain, expected);
        assert!(
            s.exports()
                .result_piece("a", &req.id, "x", Layout::List, 1500)
                .unwrap()
                .is_none(),
            "no chunk starts there"
        );
        let packed = s.exports().export("a", &req.id).unwrap().datasets[0].packed;
        assert_eq!(packed.map(|p| p.chunks), Some(3));
        assert_eq!(read(0, u64::MAX).len(), 2500);
        assert!(read(2500, 10).is_empty());
        assert!(matches!(
            s.exports()
                .read_results("b", &req.id, "x", 0, 1, &mut |_| Ok(true)),
            Err(Error::NotFound)
        ));
        assert!(
            s.outbox().due_deliveries(now(), 10, 10).unwrap().is_empty(),
            "y is still queued"
        );
        let y = s.exports().claim_next().unwrap().unwrap();
        let done = s.exports().finish_run(&y, Err("boom".into())).unwrap();
        assert_eq!(done.datasets[1].state, RunState::Failed);
        assert_eq!(done.datasets[1].error_message, "boom");
        let due = s.outbox().due_deliveries(now(), 10, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].id.as_str(), due[0].url.as_str()),
            (req.id.as_str(), "http://hook")
        );
        let later = now() + chrono::Duration::seconds(60);
        s.outbox().settle_delivery(&due[0], Some(later)).unwrap();
        assert!(s.outbox().due_deliveries(now(), 10, 10).unwrap().is_empty());
        assert_eq!(
            s.outbox().due_deliveries(later, 10, 10).unwrap()[0].attempts,
            1
        );
        s.outbox().settle_delivery(&due[0], None).unwrap();
        assert!(s.outbox().due_deliveries(later, 10, 10).unwrap().is_empty());
    }

    #[test]
    fn cancelling_stops_queued_and_running_work() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let req = s
            .exports()
            .create_export("a", request(&["x", "y"], None, HOUR))
            .unwrap();
        let x = s.exports().claim_next().unwrap().unwrap();
        s.exports().append_results(&x, 0, &records(5)).unwrap();
        let cancelled = s.exports().cancel_export("a", &req.id).unwrap();
        assert!(
            cancelled
                .datasets
                .iter()
                .all(|d| d.state == RunState::Cancelled)
        );
        assert!(matches!(
            s.exports().append_results(&x, 5, &records(5)),
            Err(Error::Cancelled)
        ));
        assert_eq!(
            s.exports().finish_run(&x, Ok(0)).unwrap().datasets[0].state,
            RunState::Cancelled
        );
        assert_eq!(s.exports().claim_next().unwrap(), None);
    }

    #[test]
    fn interrupted_runs_are_queued_again_then_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let req = s
            .exports()
            .create_export("a", request(&["x"], Some("http://hook"), HOUR))
            .unwrap();
        for attempt in 1..=MAX_ATTEMPTS {
            let claim = s.exports().claim_next().unwrap().unwrap();
            s.exports().append_results(&claim, 0, &records(3)).unwrap();
            assert_eq!(s.exports().recover_exports(NaiveDateTime::MAX).unwrap(), 1);
            let run = &s.exports().export("a", &req.id).unwrap().datasets[0];
            assert_eq!(run.records, 0, "partial results are dropped");
            assert_eq!(run.attempts, attempt);
        }
        let run = &s.exports().export("a", &req.id).unwrap().datasets[0];
        assert_eq!(run.state, RunState::Failed);
        assert!(
            run.error_message.contains("3 times"),
            "{}",
            run.error_message
        );
        assert_eq!(s.exports().claim_next().unwrap(), None);
        assert_eq!(s.outbox().due_deliveries(now(), 10, 10).unwrap().len(), 1);
    }

    #[test]
    fn expired_requests_disappear_with_their_data() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let req = s
            .exports()
            .create_export("a", request(&["x"], None, Duration::ZERO))
            .unwrap();
        assert!(matches!(
            s.exports().export("a", &req.id),
            Err(Error::NotFound)
        ));
        assert!(s.exports().exports("a").unwrap().is_empty());
        assert_eq!(
            s.exports().claim_next().unwrap(),
            None,
            "expired work is not started"
        );
        assert_eq!(s.exports().prune_exports().unwrap(), 1);
        assert_eq!(s.exports().prune_exports().unwrap(), 0);
    }
}
