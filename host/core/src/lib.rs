//! The core of bulkhost: tenants, credentials, collection schemas, business documents, the
//! change log, export requests, batches and the outbox — the business rules, written once,
//! over the storage engines of [`engine`].
//!
//! The HTTP surfaces, the batch executor and plugins are thin dialects over [`Store`]; every
//! business rule — validation, upsert by key, versions, the change feed, the job state
//! machines, quotas — lives here once. The embedded redb engine ([`RedbEngine`]) is built in;
//! other engines implement the traits of [`engine`] in crates of their own.

#![deny(missing_docs)]

mod attachments;
mod batches;
mod changes;
mod components;
mod copy;
mod credentials;
mod documents;
pub mod engine;
mod error;
mod exports;
mod hooks;
pub mod keys;
mod once;
mod outbox;
mod overview;
mod packed;
mod quota;
mod records;
mod redb_engine;
mod schema;
mod tenant;
mod validate;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use engine::Engine;

pub use attachments::{Attachment, AttachmentInfo, Attachments, MAX_ATTACHMENT_BYTES};
pub use batches::{
    Accepted, Batch, BatchOperation, BatchStatus, Batches, NewBatch, OperationResult,
};
pub use changes::{ChangeFeed, ChangeList, ChangeQuery, ChangeRecord, ChangedPage, Operation};
pub use components::{Components, Scope, StoredComponent};
pub use copy::{Copied, copy_deployment};
pub use credentials::{Credentials, IssuedToken, TokenRecord, hash_password};
pub use documents::{
    DocRef, Document, Documents, KeyPage, OrderBy, Page, PageQuery, Snapshot, Upserted,
};
pub use error::{Error, Result};
pub use exports::{
    Claim, DatasetRun, ExportRequest, Exports, MAX_ATTEMPTS, NewExport, PackedSizes, ResultChunk,
    ResultWriter, RunState,
};
pub use hooks::{Hook, HookFormat, Hooks, NewHook};
pub use outbox::{Delivery, Notice, Outbox};
pub use overview::{
    BatchCounts, Failure, FailureKind, HookCounts, RECENT_FAILURES, RunCounts, TenantOverview,
    UsageLine,
};
pub use packed::{GzipMember, Layout, Piece};
pub use quota::{QuotaOverrides, Quotas, Usage};
pub use redb_engine::{RawTables, RedbEngine};
pub use schema::{Field, FieldType, Reference, Schema, Schemas, label_from_name};
pub use tenant::{TenantConfig, Tenants, UserConfig};
pub use validate::{
    DATETIME_FORMAT, EXTERNAL_IDS, FieldErrors, NON_FIELD_ERRORS, ValidationErrors, parse_datetime,
    xml_cannot_carry,
};

/// How long a worker holds a claimed run, batch or delivery without renewing it, unless
/// [`Store::with_lease`] says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The core's services over one storage engine, each with one job: [`Store::documents`],
/// [`Store::change_feed`], [`Store::attachments`], [`Store::exports`], [`Store::batches`],
/// [`Store::outbox`], [`Store::credentials`] and [`Store::components`]. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    engine: Arc<dyn Engine>,
    schemas: Arc<Schemas>,
    tenants: Arc<Tenants>,
    verified: Arc<credentials::VerifiedCache>,
    decoy_hash: Arc<str>,
    /// Who claims work through this store: unique per process, so a lease names its holder.
    worker: Arc<str>,
    /// How long a claim holds without renewal.
    lease: Duration,
    /// Set on a handle that writes for a batch operation (see [`Store::for_operation`]).
    mark: Option<Arc<once::OperationMark>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the embedded database in `dir` for the given collections and tenants.
    /// A database written by an earlier build is upgraded first.
    pub fn open(dir: &Path, schemas: Schemas, tenants: Tenants) -> Result<Self> {
        let engine = RedbEngine::open(dir, &schemas)?;
        Ok(Self::new(Arc::new(engine), schemas, tenants))
    }

    /// The services over `engine` for the given collections and tenants.
    pub fn new(engine: Arc<dyn Engine>, schemas: Schemas, tenants: Tenants) -> Self {
        Store {
            engine,
            schemas: Arc::new(schemas),
            tenants: Arc::new(tenants),
            verified: Arc::default(),
            decoy_hash: hash_password("decoy").into(),
            worker: uuid::Uuid::new_v4().to_string().into(),
            lease: DEFAULT_LEASE,
            mark: None,
        }
    }

    /// This store with claims held for `lease` without renewal.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a claim holds without renewal: a worker renews its claims well within it.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// When a claim made or renewed now lapses.
    fn lease_end(&self) -> chrono::NaiveDateTime {
        records::now() + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX)
    }

    /// The collections this store serves.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    /// The declared tenants.
    pub fn tenants(&self) -> &Tenants {
        &self.tenants
    }

    /// The storage engine, for commit listeners.
    pub fn engine(&self) -> &dyn Engine {
        &*self.engine
    }

    /// The shared setting `name`, stored as `fresh` answers it by the first host that asks:
    /// every host of a deployment gets the same value.
    pub fn shared_setting(&self, name: &str, fresh: impl Fn() -> String) -> Result<String> {
        self.write(|txn| {
            if let Some(value) = txn.setting(name)? {
                return Ok(value);
            }
            let value = fresh();
            txn.put_setting(name, &value)?;
            Ok(value)
        })
    }

    /// Runs `work` in one durable write transaction and answers what it answered.
    fn write<R>(&self, work: impl FnMut(&mut dyn engine::Txn) -> Result<R>) -> Result<R> {
        engine::write(&*self.engine, engine::Durability::Immediate, work)
    }
}

/// The collections of the core's unit tests: `items`, keyed by `code`, ordered by `rank`.
#[cfg(test)]
pub(crate) fn items_schemas() -> Schemas {
    let schema = r#"{"collection": "items", "name": "Items", "key": ["code"],
        "ordering": ["rank"],
        "fields": [{"name": "code", "type": "string", "required": true},
                   {"name": "rank", "type": "integer"}]}"#;
    Schemas::from_sources([("items".to_string(), schema)]).unwrap()
}

/// The count and the ranks of a page of the unit tests' `items`.
#[cfg(test)]
pub(crate) fn ranks_of(store: &Store, query: PageQuery) -> (u64, Vec<i64>) {
    let page = store.documents().page("t", "items", &query).unwrap();
    let ranks = page
        .documents
        .iter()
        .map(|d| d.body["rank"].as_i64().unwrap())
        .collect();
    (page.count, ranks)
}

/// A store of tenants `a` and `b` and no collections, users or quotas of their own: what the
/// unit tests of jobs write to.
#[cfg(test)]
pub(crate) fn two_tenant_store(dir: &Path) -> Store {
    let tenants = ["a", "b"]
        .into_iter()
        .map(|name| TenantConfig {
            name: name.into(),
            changes_enabled: true,
            quotas: Default::default(),
            users: vec![],
        })
        .collect();
    Store::open(
        dir,
        Schemas::default(),
        Tenants::new(tenants, false).unwrap(),
    )
    .unwrap()
}

/// A store of one tenant, `t`, with the [`items_schemas`], on the redb engine it answers too.
#[cfg(test)]
pub(crate) fn items_store_on(dir: &Path) -> (Store, RedbEngine) {
    let tenants = vec![TenantConfig {
        name: "t".into(),
        changes_enabled: true,
        quotas: Default::default(),
        users: vec![],
    }];
    let engine = RedbEngine::open(dir, &items_schemas()).unwrap();
    let store = Store::new(
        Arc::new(engine.clone()),
        items_schemas(),
        Tenants::new(tenants, false).unwrap(),
    );
    (store, engine)
}

/// A store of one tenant, `t`, and one collection, `items` (keyed by `code`, ordered by
/// `rank`): what the core's unit tests write to.
#[cfg(test)]
pub(crate) fn items_store(dir: &Path) -> Store {
    items_store_on(dir).0
}
