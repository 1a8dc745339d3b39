//! The storage core of bulkhost: tenants, credentials, collection schemas, business documents
//! and the change log, on redb.
//!
//! The HTTP surfaces (and later plugins and batches) are thin dialects over [`Store`]; every
//! business rule — validation, upsert by key, versions, the change feed — lives here once.

#![deny(missing_docs)]

mod attachments;
mod batches;
mod changes;
mod credentials;
mod documents;
mod error;
mod exports;
mod keys;
mod once;
mod outbox;
mod quota;
mod ranked;
mod records;
mod schema;
mod storage;
mod tenant;
mod upgrade;
mod validate;

use std::path::Path;
use std::sync::Arc;

pub use attachments::{Attachment, AttachmentInfo, MAX_ATTACHMENT_BYTES};
pub use batches::{Accepted, Batch, BatchOperation, BatchStatus, NewBatch, OperationResult};
pub use changes::{ChangeList, ChangeQuery, ChangeRecord, ChangedPage, Operation};
pub use credentials::{IssuedToken, hash_password};
pub use documents::{DocRef, Document, KeyPage, OrderBy, Page, PageQuery, Snapshot, Upserted};
pub use error::{Error, Result};
pub use exports::{
    Claim, DatasetRun, ExportRequest, MAX_ATTEMPTS, NewExport, ResultChunk, ResultWriter, RunState,
};
pub use outbox::{Delivery, Notice};
pub use quota::{QuotaOverrides, Quotas};
pub use schema::{Field, FieldType, Reference, Schema, Schemas, label_from_name};
pub use storage::{CommitListener, Storage};
pub use tenant::{TenantConfig, Tenants, UserConfig};
pub use validate::{
    DATETIME_FORMAT, EXTERNAL_IDS, FieldErrors, NON_FIELD_ERRORS, ValidationErrors, parse_datetime,
};

/// The core's services over one database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    storage: Storage,
    schemas: Arc<Schemas>,
    tenants: Arc<Tenants>,
    verified: Arc<credentials::VerifiedCache>,
    ranks: Arc<std::sync::Mutex<ranked::RankCache>>,
    last_served: Arc<std::sync::Mutex<String>>,
    decoy_hash: Arc<str>,
    /// Set on a handle that writes for a batch operation (see [`Store::for_operation`]).
    mark: Option<Arc<once::OperationMark>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database in `dir` for the given collections and tenants.
    /// A database written by an earlier build is upgraded first (see `upgrade.rs`).
    pub fn open(dir: &Path, schemas: Schemas, tenants: Tenants) -> Result<Self> {
        let store = Store {
            storage: Storage::open(dir)?,
            schemas: Arc::new(schemas),
            tenants: Arc::new(tenants),
            verified: Arc::default(),
            ranks: Arc::default(),
            last_served: Arc::default(),
            decoy_hash: hash_password("decoy").into(),
            mark: None,
        };
        store.upgrade()?;
        Ok(store)
    }

    /// The collections this store serves.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    /// The declared tenants.
    pub fn tenants(&self) -> &Tenants {
        &self.tenants
    }

    /// The underlying database, for commit listeners and the benchmark yardstick.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
}

/// A store of one tenant, `t`, and one collection, `items` (keyed by `code`, ordered by
/// `rank`): what the core's unit tests write to.
#[cfg(test)]
pub(crate) fn items_store(dir: &Path) -> Store {
    let schema = r#"{"collection": "items", "name": "Items", "key": ["code"],
        "ordering": ["rank"],
        "fields": [{"name": "code", "type": "string", "required": true},
                   {"name": "rank", "type": "integer"}]}"#;
    let tenants = vec![TenantConfig {
        name: "t".into(),
        changes_enabled: true,
        quotas: Default::default(),
        users: vec![],
    }];
    Store::open(
        dir,
        Schemas::from_sources([("items".to_string(), schema)]).unwrap(),
        Tenants::new(tenants, false).unwrap(),
    )
    .unwrap()
}
