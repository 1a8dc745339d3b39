//! The seam between the business rules and the storage engines.
//!
//! The rules — validation, upsert by key, versions, the job state machines, quotas — are
//! written once, in the core's services, against the traits of this module. An engine
//! implements them in its own idiom: the redb engine ([`crate::RedbEngine`]) with ordered byte
//! tables and in-process caches, the PostgreSQL engine (the `bulkhost-postgres` crate) with
//! tables, constraints, row locks, `SKIP LOCKED` and notifications.
//!
//! The traits speak of the domain (a document by its key, the next queued run, a lease), never
//! of bytes or tables. Every call happens inside a [`View`] (a consistent snapshot) or a
//! [`Txn`] (one atomic write), so a service combines several of them into one rule that
//! either lands whole or not at all. Nothing an engine keeps in its own process may be the
//! only holder of a fact another host needs: the round-robin position of the export queue,
//! the unfinished batch of a tenant, leases and usage counters are all stored.
//!
//! Calls are synchronous: the server runs them on its blocking pool, and an engine over an
//! asynchronous client drives it from there without blocking the server's async workers.

use std::sync::Arc;

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use crate::Result;
use crate::attachments::{Attachment, AttachmentInfo};
use crate::batches::{Batch, OperationResult};
use crate::changes::ChangeRecord;
use crate::components::{Scope, StoredComponent};
use crate::credentials::TokenRecord;
use crate::documents::Document;
use crate::exports::ExportRequest;
use crate::hooks::Hook;
use crate::outbox::Delivery;
use crate::packed::Layout;
use crate::quota::Usage;

/// When a committed write must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Before the commit returns.
    Immediate,
    /// With the next immediate commit: a crash before it loses the write whole, never in
    /// part. Only for writes whose loss a later step repairs (see `once.rs`).
    Deferred,
}

/// Told after every commit that moved a tenant's global version, by whichever host made it,
/// so waiting readers (long-polls of the change feed) wake up.
pub trait CommitListener: Send + Sync {
    /// `version` is the tenant's global version after the commit.
    fn committed(&self, tenant: &str, version: u64);
}

/// The listeners an engine tells of commits: registered once, told from any thread.
#[derive(Default)]
pub struct CommitListeners(std::sync::RwLock<Vec<Arc<dyn CommitListener>>>);

impl std::fmt::Debug for CommitListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitListeners").finish_non_exhaustive()
    }
}

impl CommitListeners {
    /// Registers a listener.
    pub fn add(&self, listener: Arc<dyn CommitListener>) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(listener);
    }

    /// Tells every listener that `tenant`'s version is now `version`.
    pub fn tell(&self, tenant: &str, version: u64) {
        for l in self.0.read().unwrap_or_else(|e| e.into_inner()).iter() {
            l.committed(tenant, version);
        }
    }
}

/// A storage engine: snapshots to read from and transactions to write in.
pub trait Engine: Send + Sync + 'static {
    /// A consistent snapshot of everything, as of now.
    fn read(&self) -> Result<Box<dyn View>>;

    /// Runs `work` in one write transaction, committed when it answers `Ok` and rolled back
    /// entirely when it fails. An engine may run `work` again after a conflict it resolves by
    /// retrying, so `work` must not have effects outside the transaction.
    fn write(
        &self,
        durability: Durability,
        work: &mut dyn FnMut(&mut dyn Txn) -> Result<()>,
    ) -> Result<()>;

    /// Registers a listener told of every commit that advanced a tenant's version.
    fn add_listener(&self, listener: Arc<dyn CommitListener>);

    /// Whether other hosts may share this engine's data. A host alone takes back, when it
    /// starts, every lease a previous process held; a host among others waits for a lease to
    /// expire, since its holder may be alive elsewhere.
    fn shared(&self) -> bool;
}

/// Runs `work` once in a write transaction of `engine` and answers what it answered.
pub(crate) fn write<R>(
    engine: &dyn Engine,
    durability: Durability,
    work: impl FnMut(&mut dyn Txn) -> Result<R>,
) -> Result<R> {
    let mut work = work;
    let mut out = None;
    engine.write(durability, &mut |txn| {
        out = Some(work(txn)?);
        Ok(())
    })?;
    Ok(out.unwrap_or_else(|| unreachable!("a committed write ran its work")))
}

/// Everything a snapshot reads.
pub trait View:
    DocumentsView
    + ExportsView
    + BatchesView
    + OutboxView
    + TokensView
    + ComponentsView
    + HooksView
    + Send
{
}

impl<T> View for T where
    T: DocumentsView
        + ExportsView
        + BatchesView
        + OutboxView
        + TokensView
        + ComponentsView
        + HooksView
        + Send
{
}

/// Everything a write transaction does, reads included.
pub trait Txn:
    DocumentsView
    + ExportsView
    + BatchesView
    + OutboxView
    + TokensView
    + ComponentsView
    + HooksView
    + DocumentsTxn
    + ExportsTxn
    + BatchesTxn
    + OutboxTxn
    + TokensTxn
    + SettingsTxn
    + ComponentsTxn
    + HooksTxn
{
}

impl<T> Txn for T where
    T: DocumentsView
        + ExportsView
        + BatchesView
        + OutboxView
        + TokensView
        + ComponentsView
        + HooksView
        + DocumentsTxn
        + ExportsTxn
        + BatchesTxn
        + OutboxTxn
        + TokensTxn
        + SettingsTxn
        + ComponentsTxn
        + HooksTxn
{
}

/// The per-tenant state of its documents and change feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantState {
    /// The global version: the version of the tenant's last change.
    pub version: u64,
    /// Whether the change feed records, if the tenant ever switched it; `None` follows the
    /// configuration.
    pub changes_enabled: Option<bool>,
    /// The oldest version a change listing can start from (0 or 1: from the beginning).
    pub changes_since: u64,
    /// The moment of the tenant's last change, so the next one is never stamped earlier.
    pub last_change_at: Option<NaiveDateTime>,
}

/// A stored document with the bytes it takes, which the documents quota counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The document.
    pub document: Document,
    /// Its stored size.
    pub size: u64,
}

/// A document as a write leaves it.
#[derive(Debug, Clone, Copy)]
pub struct DocumentWrite<'a> {
    /// Its id.
    pub id: u64,
    /// Its key values, in the schema's key order.
    pub key: &'a [String],
    /// The version it gets.
    pub version: u64,
    /// Its normalized fields.
    pub body: &'a Map<String, Value>,
    /// What it replaces, if it existed: the engine moves its ordering entries.
    pub old: Option<&'a Document>,
}

/// Reads of documents, the change log and attachments, all of one tenant per call.
pub trait DocumentsView {
    /// The tenant's state; the default state for a tenant that never wrote.
    fn tenant_state(&self, tenant: &str) -> Result<TenantState>;

    /// The usage counter `usage` of the tenant.
    fn usage(&self, tenant: &str, usage: Usage) -> Result<u64>;

    /// The document `id` of the collection.
    fn document(&self, tenant: &str, collection: &str, id: u64) -> Result<Option<Stored>>;

    /// The id of the document whose key values are `key`.
    fn id_of_key(&self, tenant: &str, collection: &str, key: &[String]) -> Result<Option<u64>>;

    /// The ids of the documents named by (collection, single key value), in their order:
    /// what a page's references link to. An engine across a network answers them all at
    /// once; the default asks [`DocumentsView::id_of_key`] for each.
    fn ids_of_codes(&self, tenant: &str, refs: &[(&str, &str)]) -> Result<Vec<Option<u64>>> {
        refs.iter()
            .map(|(collection, code)| self.id_of_key(tenant, collection, &[code.to_string()]))
            .collect()
    }

    /// The id of the document holding the external id `ext` (`ext:SYSTEM:VALUE`).
    fn id_of_external(&self, tenant: &str, collection: &str, ext: &str) -> Result<Option<u64>>;

    /// Visits the collection's documents from `position` on, in id order (`by` is `None`) or
    /// by the values of the ordering field `by` and then id, reversed when `descending`, until
    /// `visit` answers `false`; answers the collection's size. Reaching a position costs about
    /// what reaching the first does, whatever the position.
    fn seek(
        &self,
        tenant: &str,
        collection: &str,
        by: Option<&str>,
        descending: bool,
        position: u64,
        visit: &mut dyn FnMut(Document) -> Result<bool>,
    ) -> Result<u64>;

    /// How many documents of the collection come before every document whose ordering field
    /// `by` holds `value`, in ascending order or, when `descending`, in descending order.
    fn count_before(
        &self,
        tenant: &str,
        collection: &str,
        by: &str,
        value: &Value,
        descending: bool,
    ) -> Result<u64>;

    /// Up to `limit` (position, id) pairs of the collection's documents in key order after the
    /// position `after`; a position is the key values encoded by [`crate::keys::key_position`].
    fn keys_after(
        &self,
        tenant: &str,
        collection: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, u64)>>;

    /// Visits the tenant's change records from version `from` on, ascending, until `visit`
    /// answers `false`.
    fn changes(
        &self,
        tenant: &str,
        from: u64,
        visit: &mut dyn FnMut(ChangeRecord) -> Result<bool>,
    ) -> Result<()>;

    /// The attachments of a document in name order, without their content.
    fn attachments(&self, tenant: &str, collection: &str, id: u64) -> Result<Vec<AttachmentInfo>>;

    /// One attachment of a document with its content.
    fn attachment(
        &self,
        tenant: &str,
        collection: &str,
        id: u64,
        name: &str,
    ) -> Result<Option<Attachment>>;
}

/// Writes of documents, the change log, attachments and usage counters.
pub trait DocumentsTxn {
    /// The tenant's state, with the tenant's document writes held off until this transaction
    /// ends: versions are assigned inside the write that makes them, and commit in their order.
    fn lock_tenant(&mut self, tenant: &str) -> Result<TenantState>;

    /// Stores the tenant's state; a new version reaches the commit listeners after the commit.
    fn set_tenant_state(&mut self, tenant: &str, state: &TenantState) -> Result<()>;

    /// Adds `delta` to the tenant's usage counter and answers the new value (never below 0).
    fn add_usage(&mut self, tenant: &str, usage: Usage, delta: i64) -> Result<u64>;

    /// The last id given to a document of the collection.
    fn last_id(&mut self, tenant: &str, collection: &str) -> Result<u64>;

    /// Records the last id given to a document of the collection.
    fn set_last_id(&mut self, tenant: &str, collection: &str, id: u64) -> Result<()>;

    /// The stored documents whose key values are each of `keys`, in their order.
    fn documents_by_keys(
        &mut self,
        tenant: &str,
        collection: &str,
        keys: &[Vec<String>],
    ) -> Result<Vec<Option<Stored>>>;

    /// Whether a document answers to each (collection, single key value).
    fn keys_exist(&mut self, tenant: &str, keys: &[(&str, &str)]) -> Result<Vec<bool>>;

    /// Stores each document with its key and its entries in the indexes of the `ordering`
    /// fields; answers each one's stored size.
    fn put_documents(
        &mut self,
        tenant: &str,
        collection: &str,
        ordering: &[String],
        writes: &[DocumentWrite<'_>],
    ) -> Result<Vec<u64>>;

    /// Removes a document with its key and its ordering entries; answers what was stored.
    fn remove_document(
        &mut self,
        tenant: &str,
        collection: &str,
        ordering: &[String],
        id: u64,
        key: &[String],
    ) -> Result<Option<Stored>>;

    /// Points the external id `ext` at document `id`; answers the document it named before.
    fn set_external(
        &mut self,
        tenant: &str,
        collection: &str,
        ext: &str,
        id: u64,
    ) -> Result<Option<u64>>;

    /// Forgets the external id `ext`.
    fn remove_external(&mut self, tenant: &str, collection: &str, ext: &str) -> Result<()>;

    /// Appends records to the tenant's change log.
    fn append_changes(&mut self, tenant: &str, records: &[ChangeRecord]) -> Result<()>;

    /// Drops the tenant's change records up to and including `version`; answers how many.
    fn remove_changes_through(&mut self, tenant: &str, version: u64) -> Result<u64>;

    /// Adds or replaces an attachment; answers the stored size it replaced and its own.
    fn put_attachment(
        &mut self,
        tenant: &str,
        collection: &str,
        id: u64,
        attachment: &Attachment,
    ) -> Result<(Option<u64>, u64)>;

    /// Removes one attachment; answers its stored size.
    fn remove_attachment(
        &mut self,
        tenant: &str,
        collection: &str,
        id: u64,
        name: &str,
    ) -> Result<Option<u64>>;

    /// Removes every attachment of a document; answers their stored size.
    fn remove_attachments(&mut self, tenant: &str, collection: &str, id: u64) -> Result<u64>;
}

/// A data set run of an export request: the unit the queue holds and a worker claims.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunRef {
    /// The request's tenant.
    pub tenant: String,
    /// The request id.
    pub id: String,
    /// The data set's position in the request.
    pub index: usize,
}

/// A chunk of a run's results as it is stored: its records, and its deflate piece in each
/// layout (in the order of [`Layout::ALL`]), both encoded.
#[derive(Debug, Clone, Copy)]
pub struct StoredChunk<'a> {
    /// The records.
    pub records: &'a [u8],
    /// The pieces.
    pub pieces: [&'a [u8]; 2],
}

impl StoredChunk<'_> {
    /// Its bytes, as quotas count them.
    pub fn size(&self) -> u64 {
        (self.records.len() + self.pieces.iter().map(|p| p.len()).sum::<usize>()) as u64
    }
}

/// Reads of export requests and their results.
pub trait ExportsView {
    /// One request of the tenant, expired or not.
    fn export(&self, tenant: &str, id: &str) -> Result<Option<ExportRequest>>;

    /// Every request of the tenant.
    fn exports(&self, tenant: &str) -> Result<Vec<ExportRequest>>;

    /// The stored chunk of run `index` of request `id` that starts at or before record `at`,
    /// the latest such: its first record and its bytes.
    fn chunk_before(&self, id: &str, index: usize, at: u64) -> Result<Option<(u64, Vec<u8>)>>;

    /// The stored deflate piece, in `layout`, of the chunk of run `index` of request `id`
    /// that starts at record `first`: `None` when no chunk starts there, or when it was stored
    /// without pieces.
    fn piece_at(
        &self,
        id: &str,
        index: usize,
        layout: Layout,
        first: u64,
    ) -> Result<Option<Vec<u8>>>;

    /// How many runs, of every tenant, wait in the queue for a worker.
    fn queued_runs(&self) -> Result<u64>;
}

/// Writes of export requests, their queue and their results.
pub trait ExportsTxn {
    /// One request, held against other writers until this transaction ends.
    fn lock_export(&mut self, tenant: &str, id: &str) -> Result<Option<ExportRequest>>;

    /// Stores a request, new or changed.
    fn save_export(&mut self, request: &ExportRequest) -> Result<()>;

    /// Deletes a request with its queue entries (not its results).
    fn remove_export(&mut self, tenant: &str, id: &str) -> Result<()>;

    /// Queues a run.
    fn enqueue_run(&mut self, run: &RunRef) -> Result<()>;

    /// Takes the next queued run off the queue, serving tenants in turn: the oldest entry of
    /// the first tenant after the one served last that has one, wrapping around. The turn is
    /// stored, so every host shares one.
    fn take_queued_run(&mut self) -> Result<Option<RunRef>>;

    /// Stores a chunk of a run's results, `first` being the number of its first record.
    fn put_chunk(
        &mut self,
        id: &str,
        index: usize,
        first: u64,
        chunk: &StoredChunk<'_>,
    ) -> Result<()>;

    /// Deletes every chunk of a run, with its pieces; answers their bytes.
    fn remove_chunks(&mut self, id: &str, index: usize) -> Result<u64>;

    /// The requests with a running run whose lease ended before `moment`.
    fn exports_with_lapsed_leases(&mut self, moment: NaiveDateTime) -> Result<Vec<ExportRequest>>;

    /// The requests that expired at or before `moment`.
    fn expired_exports(&mut self, moment: NaiveDateTime) -> Result<Vec<ExportRequest>>;
}

/// Reads of batches and their results.
pub trait BatchesView {
    /// One batch of the tenant, with its operations.
    fn batch(&self, tenant: &str, uuid: &str) -> Result<Option<Batch>>;

    /// Every batch of the tenant still kept, without their operations.
    fn batches(&self, tenant: &str) -> Result<Vec<Batch>>;

    /// The recorded results of operations `from..to` of a batch, in order.
    fn batch_results(&self, uuid: &str, from: usize, to: usize) -> Result<Vec<OperationResult>>;
}

/// Writes of batches, their queue, results and write marks.
pub trait BatchesTxn {
    /// One batch without its operations, held against other writers until this transaction
    /// ends.
    fn lock_batch(&mut self, tenant: &str, uuid: &str) -> Result<Option<Batch>>;

    /// The uuid of the tenant's unfinished batch, if it has one.
    fn unfinished_batch(&mut self, tenant: &str) -> Result<Option<String>>;

    /// The (body digest, batch uuid) an idempotency key was first used with.
    fn idempotency(&mut self, tenant: &str, key: &str) -> Result<Option<(String, String)>>;

    /// Stores a new batch with its operations, as the tenant's unfinished one, and its
    /// idempotency key with the body digest.
    fn insert_batch(&mut self, batch: &Batch, idempotency: Option<(&str, &str)>) -> Result<()>;

    /// Stores what changed of a batch (everything but its operations); a finished batch is no
    /// longer its tenant's unfinished one.
    fn save_batch(&mut self, batch: &Batch) -> Result<()>;

    /// Deletes a batch with its operations, results, write marks and idempotency key;
    /// answers the bytes of its results.
    fn remove_batch(&mut self, batch: &Batch) -> Result<u64>;

    /// Queues a batch for a worker.
    fn enqueue_batch(&mut self, tenant: &str, uuid: &str) -> Result<()>;

    /// Takes the oldest queued batch off the queue: (tenant, uuid).
    fn take_queued_batch(&mut self) -> Result<Option<(String, String)>>;

    /// Stores the result of operation `index`; answers its stored size.
    fn put_batch_result(
        &mut self,
        uuid: &str,
        index: usize,
        result: &OperationResult,
    ) -> Result<u64>;

    /// The processing batches whose lease ended before `moment`.
    fn batches_with_lapsed_leases(&mut self, moment: NaiveDateTime) -> Result<Vec<Batch>>;

    /// The finished batches completed before `moment`.
    fn batches_completed_before(&mut self, moment: NaiveDateTime) -> Result<Vec<Batch>>;

    /// The stored outcome of the `n`-th write of operation `index` of a batch (see `once.rs`).
    fn write_mark(&mut self, uuid: &str, index: usize, n: u64) -> Result<Option<Vec<u8>>>;

    /// Stores the outcome of the `n`-th write of an operation.
    fn put_write_mark(&mut self, uuid: &str, index: usize, n: u64, outcome: &[u8]) -> Result<()>;

    /// Drops the write marks of operation `index`, or of every operation of the batch.
    fn forget_write_marks(&mut self, uuid: &str, index: Option<usize>) -> Result<()>;
}

/// Reads of the outbox.
pub trait OutboxView {
    /// When the delivery that has been due longest became due, if one is due at `moment` and
    /// not claimed: how far behind delivery is.
    fn oldest_due(&self, moment: NaiveDateTime) -> Result<Option<NaiveDateTime>>;
}

/// Writes of the outbox.
pub trait OutboxTxn {
    /// Owes a delivery; answers its position in the outbox.
    fn owe(&mut self, delivery: &Delivery) -> Result<u64>;

    /// Deliveries due at `moment`, oldest first: at most `per_tenant` of each tenant and
    /// `limit` in all.
    fn due(
        &mut self,
        moment: NaiveDateTime,
        per_tenant: usize,
        limit: usize,
    ) -> Result<Vec<Delivery>>;

    /// Stores a changed delivery.
    fn put_delivery(&mut self, delivery: &Delivery) -> Result<()>;

    /// Drops a delivery.
    fn remove_delivery(&mut self, seq: u64) -> Result<()>;
}

/// Reads of API tokens.
pub trait TokensView {
    /// The token with this public id.
    fn token(&self, id: &str) -> Result<Option<TokenRecord>>;

    /// Every stored token by its public id, for copying a deployment.
    fn tokens(&self) -> Result<Vec<(String, TokenRecord)>>;
}

/// Writes of API tokens.
pub trait TokensTxn {
    /// How many of the user's tokens are live at `moment`, counting up to `limit`.
    fn live_tokens(
        &mut self,
        user: &str,
        moment: chrono::DateTime<chrono::Utc>,
        limit: u64,
    ) -> Result<u64>;

    /// Stores a new token.
    fn put_token(&mut self, id: &str, token: &TokenRecord) -> Result<()>;

    /// Drops the tokens that expired before `moment`; answers how many.
    fn prune_tokens(&mut self, moment: chrono::DateTime<chrono::Utc>) -> Result<u64>;
}

/// Settings of the deployment that every host must share, such as the webhook signing secret.
pub trait SettingsTxn {
    /// The value of a setting, if it was ever stored.
    fn setting(&mut self, name: &str) -> Result<Option<String>>;

    /// Stores a setting.
    fn put_setting(&mut self, name: &str, value: &str) -> Result<()>;

    /// Every stored setting, by name.
    fn settings(&mut self) -> Result<Vec<(String, String)>>;
}

/// Reads of uploaded plugin components.
pub trait ComponentsView {
    /// The stored components, of one scope or of all, without their bytes.
    fn components(&self, scope: Option<&Scope>) -> Result<Vec<StoredComponent>>;

    /// The bytes of one stored component.
    fn component_bytes(&self, scope: &Scope, name: &str) -> Result<Option<Vec<u8>>>;
}

/// Writes of uploaded plugin components.
pub trait ComponentsTxn {
    /// Stores a component, replacing one of its scope and name.
    fn put_component(&mut self, component: &StoredComponent, bytes: &[u8]) -> Result<()>;

    /// Removes a component; answers whether there was one.
    fn remove_component(&mut self, scope: &Scope, name: &str) -> Result<bool>;
}

/// Reads of the change hooks.
pub trait HooksView {
    /// A tenant's hooks, or every tenant's when `None`, by id.
    fn hooks(&self, tenant: Option<&str>) -> Result<Vec<Hook>>;
}

/// Writes of the change hooks.
pub trait HooksTxn {
    /// Stores a new hook under a fresh id, unique in the deployment; answers the id.
    fn insert_hook(&mut self, hook: &Hook) -> Result<u64>;

    /// A tenant's hook, locked until the transaction ends.
    fn lock_hook(&mut self, tenant: &str, id: u64) -> Result<Option<Hook>>;

    /// Replaces a stored hook.
    fn put_hook(&mut self, hook: &Hook) -> Result<()>;

    /// Removes a tenant's hook; answers whether there was one.
    fn remove_hook(&mut self, tenant: &str, id: u64) -> Result<bool>;

    /// The active hooks whose next attempt is due at `moment`, soonest first, locked; another
    /// host's transaction skips them rather than waiting.
    fn due_hooks(&mut self, moment: NaiveDateTime) -> Result<Vec<Hook>>;
}
