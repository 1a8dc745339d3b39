//! The change feed: one record per committed change, keyed by the tenant's global version.
//!
//! Records are appended by the write path inside the same transaction as the document, so the
//! feed never misses a committed write nor shows a rolled-back one. Versions strictly ascend per
//! tenant; a version may be absent from the feed while recording was switched off, and the
//! oldest listable version tells a client that fell behind that it must reload.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::documents::{Document, Snapshot};
use crate::engine::TenantState;
use crate::{Error, Result, Store};

/// What happened to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// It was inserted.
    Create,
    /// It was replaced.
    Update,
    /// It was deleted.
    Delete,
}

impl Operation {
    /// ABRA Flexi's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// The global version the change got.
    pub version: u64,
    /// The collection (ABRA Flexi's record type, `evidence`).
    pub collection: String,
    /// The document's numeric id.
    pub id: u64,
    /// The document's key values joined by `/` (ABRA Flexi's `code:`).
    pub code: String,
    /// The document's external ids (`ext:...`) at the time of the change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_ids: Vec<String>,
    /// What happened.
    pub operation: Operation,
    /// When it was committed (UTC).
    pub timestamp: NaiveDateTime,
}

/// The moment of a change the caller's write transaction is making: the clock read inside the
/// transaction, and never earlier than the tenant's previous change, so versions and timestamps
/// rise together (pruning by age and `modified-since` rely on it) even when the clock steps
/// back. `state` is the tenant's, locked by the transaction, and remembers the moment.
pub(crate) fn change_time(state: &mut TenantState) -> NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    let moment = state.last_change_at.map_or(now, |last| last.max(now));
    state.last_change_at = Some(moment);
    moment
}

/// A change listing request.
#[derive(Debug, Clone, Default)]
pub struct ChangeQuery {
    /// The first version to list (inclusive); `None` lists from the oldest kept.
    pub start: Option<u64>,
    /// How many records at most.
    pub limit: u64,
    /// Only these collections; empty means all.
    pub records: Vec<String>,
}

/// A change listing.
#[derive(Debug, Clone)]
pub struct ChangeList {
    /// The tenant's current global version.
    pub global_version: u64,
    /// The oldest version a listing can start from.
    pub oldest_version: u64,
    /// The changes, ascending.
    pub changes: Vec<ChangeRecord>,
    /// Where the listing continues, or `None` when no further change matches.
    pub next: Option<u64>,
}

/// Documents whose last change falls at or after a moment, a page at a time.
#[derive(Debug, Clone)]
pub struct ChangedPage {
    /// The documents, in the order of their last change.
    pub documents: Vec<Document>,
    /// Where the next page starts (a change-log version), or `None` at the end.
    pub next: Option<u64>,
}

impl Snapshot {
    /// The documents of `collection` created or changed at or after `since`, each once, in the
    /// order of their last change, reading the change log from version `from` (0 to start): at
    /// most `limit` of them, and no more once their stored size passes `max_bytes` (one at
    /// least).
    ///
    /// Answers [`Error::ChangesGone`] when the log may not reach back to `since` (it was
    /// pruned, or switched off and on again) and [`Error::ChangesDisabled`] while it records
    /// nothing: a caller must then look at every document instead.
    pub fn changed_since(
        &self,
        collection: &str,
        since: NaiveDateTime,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<ChangedPage> {
        self.schemas.require(collection)?;
        let state = self.view.tenant_state(&self.tenant)?;
        if !state.changes_enabled.unwrap_or(self.changes_default) {
            return Err(Error::ChangesDisabled);
        }
        let oldest = state.changes_since.max(1);
        let mut documents = Vec::new();
        let mut bytes = 0;
        let mut next = None;
        let mut first = true;
        let mut gone = false;
        self.view
            .changes(&self.tenant, from.max(oldest), &mut |record| {
                if std::mem::take(&mut first) && from == 0 && oldest > 1 && record.timestamp > since
                {
                    gone = true;
                    return Ok(false);
                }
                if record.timestamp < since || record.collection != collection {
                    return Ok(true);
                }
                if documents.len() >= limit || (bytes >= max_bytes && !documents.is_empty()) {
                    next = Some(record.version);
                    return Ok(false);
                }
                if let Some(stored) = self.view.document(&self.tenant, collection, record.id)?
                    && stored.document.version == record.version
                {
                    bytes += stored.size as usize;
                    documents.push(stored.document);
                }
                Ok(true)
            })?;
        if gone || (first && from == 0 && oldest > 1) {
            return Err(Error::ChangesGone { oldest });
        }
        Ok(ChangedPage { documents, next })
    }
}

/// Most change records dropped in one transaction, so pruning never holds the writer long.
const PRUNE_BATCH: usize = 10_000;

/// The change feed of every tenant: its switch, its listing and its retention.
#[derive(Debug, Clone, Copy)]
pub struct ChangeFeed<'a> {
    store: &'a Store,
}

impl Store {
    /// The change feed of every tenant: its switch, its listing and its retention.
    pub fn change_feed(&self) -> ChangeFeed<'_> {
        ChangeFeed { store: self }
    }

    /// Whether new writes of the tenant are recorded in the feed, given its state.
    pub(crate) fn changes_recording(&self, state: &TenantState, tenant: &str) -> bool {
        state
            .changes_enabled
            .unwrap_or_else(|| self.tenants.get(tenant).is_some_and(|t| t.changes_enabled))
    }
}

impl ChangeFeed<'_> {
    /// Drops the tenant's change records committed before `cutoff` and moves the oldest
    /// listable version past them: clients that had not synced that far must reload.
    pub fn prune_changes(&self, tenant: &str, cutoff: NaiveDateTime) -> Result<u64> {
        let mut removed = 0;
        loop {
            let (pruned, more) = self.store.write(|txn| {
                let mut newest = None;
                let mut seen = 0;
                let mut more = false;
                txn.changes(tenant, 0, &mut |record| {
                    if record.timestamp >= cutoff {
                        return Ok(false);
                    }
                    if seen == PRUNE_BATCH {
                        more = true;
                        return Ok(false);
                    }
                    seen += 1;
                    newest = Some(record.version);
                    Ok(true)
                })?;
                let Some(newest) = newest else {
                    return Ok((0, false));
                };
                let pruned = txn.remove_changes_through(tenant, newest)?;
                let mut state = txn.lock_tenant(tenant)?;
                state.changes_since = state.changes_since.max(newest + 1);
                txn.set_tenant_state(tenant, &state)?;
                Ok((pruned, more))
            })?;
            removed += pruned;
            if !more {
                return Ok(removed);
            }
        }
    }

    /// Whether the tenant's change feed is on (ABRA Flexi's `changes/status`).
    pub fn changes_enabled(&self, tenant: &str) -> Result<bool> {
        let state = self.store.engine.read()?.tenant_state(tenant)?;
        Ok(self.store.changes_recording(&state, tenant))
    }

    /// Switches the tenant's change feed on or off. Switching it on after it was off starts the
    /// feed afresh at the next version: changes made meanwhile were not recorded, and clients
    /// that synced before must reload.
    pub fn set_changes_enabled(&self, tenant: &str, enabled: bool) -> Result<()> {
        self.store.check_tenant(tenant)?;
        self.store.commit(|txn| {
            let mut state = txn.lock_tenant(tenant)?;
            if enabled && !self.store.changes_recording(&state, tenant) {
                state.changes_since = state.version + 1;
            }
            state.changes_enabled = Some(enabled);
            txn.set_tenant_state(tenant, &state)
        })
    }

    /// The tenant's current global version: the version of its last committed change.
    pub fn global_version(&self, tenant: &str) -> Result<u64> {
        Ok(self.store.engine.read()?.tenant_state(tenant)?.version)
    }

    /// Lists the tenant's changes.
    pub fn changes(&self, tenant: &str, query: &ChangeQuery) -> Result<ChangeList> {
        let view = self.store.engine.read()?;
        let state = view.tenant_state(tenant)?;
        if !self.store.changes_recording(&state, tenant) {
            return Err(Error::ChangesDisabled);
        }
        let global_version = state.version;
        let oldest_version = state.changes_since.max(1);
        let start = match query.start {
            Some(start) if start > 0 && start < oldest_version => {
                return Err(Error::ChangesGone {
                    oldest: oldest_version,
                });
            }
            Some(start) => start.max(oldest_version),
            None => oldest_version,
        };
        let mut changes = Vec::new();
        let mut next = None;
        view.changes(tenant, start, &mut |record| {
            if !query.records.is_empty() && !query.records.contains(&record.collection) {
                return Ok(true);
            }
            if changes.len() as u64 >= query.limit {
                next = Some(record.version);
                return Ok(false);
            }
            changes.push(record);
            Ok(true)
        })?;
        Ok(ChangeList {
            global_version,
            oldest_version,
            changes,
            next,
        })
    }
}
