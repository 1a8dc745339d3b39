//! The change feed: one record per committed change, keyed by the tenant's global version.
//!
//! Records are appended by the write path inside the same transaction as the document, so the
//! feed never misses a committed write nor shows a rolled-back one. Versions strictly ascend per
//! tenant; a version may be absent from the feed while recording was switched off, and the
//! oldest listable version tells a client that fell behind that it must reload.

use std::ops::Bound;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::documents::{Document, Snapshot, load_sized, version_key};
use crate::keys::{Key, prefix_end};
use crate::storage::{Reader, Tbl, Writer};
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
    /// The seed's spelling.
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
    /// The collection (seed 002's record type, `evidence`).
    pub collection: String,
    /// The document's numeric id.
    pub id: u64,
    /// The document's key values joined by `/` (seed 002's `code:`).
    pub code: String,
    /// The document's external ids (`ext:...`) at the time of the change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_ids: Vec<String>,
    /// What happened.
    pub operation: Operation,
    /// When it was committed (UTC).
    pub timestamp: NaiveDateTime,
}

fn change_key(tenant: &str, version: u64) -> Vec<u8> {
    Key::new().str(tenant).u64(version).into_vec()
}

fn enabled_key(tenant: &str) -> Vec<u8> {
    Key::new().str(tenant).str("changes_enabled").into_vec()
}

fn since_key(tenant: &str) -> Vec<u8> {
    Key::new().str(tenant).str("changes_since").into_vec()
}

fn last_change_key(tenant: &str) -> Vec<u8> {
    Key::new().str(tenant).str("last_change_at").into_vec()
}

/// The moment of a change the caller's write transaction is making: the clock read inside the
/// transaction, and never earlier than the tenant's previous change, so versions and timestamps
/// rise together (pruning by age and `modified-since` rely on it) even when the clock steps
/// back.
pub(crate) fn change_time(w: &mut impl Writer, tenant: &str) -> Result<NaiveDateTime> {
    let now = chrono::Utc::now().naive_utc();
    let key = last_change_key(tenant);
    let last = w
        .get(Tbl::Meta, &key)?
        .and_then(|raw| <[u8; 8]>::try_from(raw.as_slice()).ok())
        .and_then(|raw| chrono::DateTime::from_timestamp_micros(i64::from_be_bytes(raw)))
        .map(|t| t.naive_utc());
    let moment = last.map_or(now, |last| last.max(now));
    w.put(
        Tbl::Meta,
        &key,
        &moment.and_utc().timestamp_micros().to_be_bytes(),
    )?;
    Ok(moment)
}

/// Visits the tenant's change records from version `start` on, in version order, until `visit`
/// answers `false`.
fn scan_changes(
    r: &impl Reader,
    tenant: &str,
    start: u64,
    visit: &mut dyn FnMut(&[u8], ChangeRecord) -> Result<bool>,
) -> Result<()> {
    let from = change_key(tenant, start);
    let end = prefix_end(&Key::new().str(tenant).into_vec());
    r.scan(
        Tbl::Changes,
        Bound::Included(&from),
        Bound::Excluded(&end),
        false,
        &mut |k, v| {
            let record = serde_json::from_slice(v).map_err(|e| Error::Corrupt(e.to_string()))?;
            visit(k, record)
        },
    )
}

impl ChangeRecord {
    pub(crate) fn append(&self, w: &mut impl Writer, tenant: &str) -> Result<()> {
        let bytes = serde_json::to_vec(self).map_err(|e| Error::Corrupt(e.to_string()))?;
        w.put(Tbl::Changes, &change_key(tenant, self.version), &bytes)
    }
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
        let recording = match self.tables.get(Tbl::Meta, &enabled_key(&self.tenant))? {
            Some(v) => v.first() == Some(&1),
            None => self.changes_default,
        };
        if !recording {
            return Err(Error::ChangesDisabled);
        }
        let oldest = self.tables.counter(&since_key(&self.tenant))?.max(1);
        let mut documents = Vec::new();
        let mut bytes = 0;
        let mut next = None;
        let mut first = true;
        let mut gone = false;
        scan_changes(
            &self.tables,
            &self.tenant,
            from.max(oldest),
            &mut |_, record| {
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
                if let Some((doc, size)) =
                    load_sized(&self.tables, &self.tenant, collection, record.id)?
                    && doc.version == record.version
                {
                    bytes += size;
                    documents.push(doc);
                }
                Ok(true)
            },
        )?;
        if gone || (first && from == 0 && oldest > 1) {
            return Err(Error::ChangesGone { oldest });
        }
        Ok(ChangedPage { documents, next })
    }
}

/// Most change records dropped in one transaction, so pruning never holds the writer long.
const PRUNE_BATCH: usize = 10_000;

impl Store {
    /// Drops the tenant's change records committed before `cutoff` and moves the oldest
    /// listable version past them: clients that had not synced that far must reload.
    pub fn prune_changes(&self, tenant: &str, cutoff: NaiveDateTime) -> Result<u64> {
        let mut removed = 0;
        loop {
            let (pruned, more) = self.storage.write(|w| {
                let mut doomed = Vec::new();
                let mut newest = None;
                let mut more = false;
                scan_changes(w, tenant, 0, &mut |key, record| {
                    if record.timestamp >= cutoff {
                        return Ok(false);
                    }
                    if doomed.len() == PRUNE_BATCH {
                        more = true;
                        return Ok(false);
                    }
                    doomed.push(key.to_vec());
                    newest = Some(record.version);
                    Ok(true)
                })?;
                for key in &doomed {
                    w.remove(Tbl::Changes, key)?;
                }
                if let Some(newest) = newest {
                    let since = w.counter(&since_key(tenant))?.max(newest + 1);
                    w.set_counter(&since_key(tenant), since)?;
                }
                Ok((doomed.len() as u64, more))
            })?;
            removed += pruned;
            if !more {
                return Ok(removed);
            }
        }
    }

    /// Whether new writes of the tenant are recorded in the feed.
    pub(crate) fn changes_recording(&self, r: &impl Reader, tenant: &str) -> Result<bool> {
        Ok(match r.get(Tbl::Meta, &enabled_key(tenant))? {
            Some(v) => v.first() == Some(&1),
            None => self.tenants.get(tenant).is_some_and(|t| t.changes_enabled),
        })
    }

    /// Whether the tenant's change feed is on (seed 002's `changes/status`).
    pub fn changes_enabled(&self, tenant: &str) -> Result<bool> {
        self.changes_recording(&self.storage.read()?, tenant)
    }

    /// Switches the tenant's change feed on or off. Switching it on after it was off starts the
    /// feed afresh at the next version: changes made meanwhile were not recorded, and clients
    /// that synced before must reload.
    pub fn set_changes_enabled(&self, tenant: &str, enabled: bool) -> Result<()> {
        if self.tenants.get(tenant).is_none() {
            return Err(Error::UnknownTenant(tenant.to_string()));
        }
        self.commit(|w| {
            let was = self.changes_recording(w, tenant)?;
            if enabled && !was {
                let next = w.counter(&version_key(tenant))? + 1;
                w.set_counter(&since_key(tenant), next)?;
            }
            w.put(Tbl::Meta, &enabled_key(tenant), &[u8::from(enabled)])
        })
    }

    /// The tenant's current global version: the version of its last committed change.
    pub fn global_version(&self, tenant: &str) -> Result<u64> {
        self.storage.read()?.counter(&version_key(tenant))
    }

    /// Lists the tenant's changes.
    pub fn changes(&self, tenant: &str, query: &ChangeQuery) -> Result<ChangeList> {
        let r = self.storage.read()?;
        if !self.changes_recording(&r, tenant)? {
            return Err(Error::ChangesDisabled);
        }
        let global_version = r.counter(&version_key(tenant))?;
        let oldest_version = r.counter(&since_key(tenant))?.max(1);
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
        scan_changes(&r, tenant, start, &mut |_, record| {
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
