//! The one error type of the core, so every surface maps failures from a single place.

use crate::validate::ValidationErrors;

/// Everything that can go wrong in the storage core.
///
/// Variants are what a surface needs to pick a status code: validation and lookup failures are
/// the caller's fault, storage failures are ours.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request's documents failed validation; nothing was written.
    #[error("validation failed")]
    Invalid(ValidationErrors),
    /// The collection is not declared by any schema.
    #[error("unknown collection `{0}`")]
    UnknownCollection(String),
    /// No document answers to that id or code.
    #[error("document not found")]
    NotFound,
    /// The tenant is not declared in the configuration.
    #[error("unknown tenant `{0}`")]
    UnknownTenant(String),
    /// The change feed is switched off for the tenant.
    #[error("the change feed is disabled for this company")]
    ChangesDisabled,
    /// The export request was cancelled or expired; its work stops.
    #[error("the export request was cancelled or has expired")]
    Cancelled,
    /// A create found a document with this key; nothing was written.
    #[error("a document with the key `{0}` exists")]
    Exists(String),
    /// The tenant's previous batch has not finished (LogiCommerce runs one at a time); the
    /// string is its uuid.
    #[error("batch {0} has not finished; one batch runs at a time")]
    BatchUnfinished(String),
    /// The idempotency key was used before with another request body.
    #[error("the Idempotency-Key `{0}` was used with another request body")]
    IdempotencyConflict(String),
    /// The write would take the tenant past one of its quotas; nothing was written. The
    /// message names the quota.
    #[error("{0}")]
    QuotaExceeded(String),
    /// An attachment's name or size is refused; nothing was written.
    #[error("{0}")]
    BadAttachment(String),
    /// A change hook's registration is refused (its URL or version); nothing was written.
    #[error("{0}")]
    BadHook(String),
    /// The data set's records are not ready (still queued, running, or failed).
    #[error("the data set is not ready")]
    NotReady,
    /// The asked-for start version is older than the oldest change still kept.
    #[error("changes before version {oldest} are no longer listable")]
    ChangesGone {
        /// The oldest version a listing can start from.
        oldest: u64,
    },
    /// A schema file is malformed or inconsistent.
    #[error("schema `{name}`: {reason}")]
    Schema {
        /// The schema's collection name or file.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading a file (schemas, configuration) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file that could not be read.
        path: String,
        /// The underlying failure.
        source: std::io::Error,
    },
    /// The storage engine failed.
    #[error("storage: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database cannot be reached for now (a restart, a lost connection): nothing was
    /// written, and the request may be tried again.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A deployment cannot be copied as things stand; the message says why.
    #[error("{0}")]
    CopyRefused(String),
    /// A stored record could not be decoded: the database holds data this build does not read.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
