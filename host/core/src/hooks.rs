//! Change hooks: ABRA Flexi's web hooks on the change feed. A tenant registers a URL and a
//! format; after each commit a host posts the hook the changes since the last version it
//! acknowledged, in the change feed's shape. A hook that answers moves its `last_version` on;
//! one that fails is tried again later, and after too many failures in a row it is paused,
//! with the reason, until the tenant asks for a retry.
//!
//! Hooks are claimed like outbox deliveries: a claim moves the hook's next attempt a lease
//! ahead, so no other host delivers it meanwhile, and recording the outcome ends the claim.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::records::now;
use crate::{Error, Result, Store};

/// The shape a hook receives the changes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HookFormat {
    /// `changes.json`'s.
    #[serde(rename = "JSON")]
    Json,
    /// `changes.xml`'s.
    #[serde(rename = "XML")]
    Xml,
}

/// A registered change hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// Its id, unique in the deployment.
    #[serde(skip)]
    pub id: u64,
    /// The tenant whose changes it receives.
    pub tenant: String,
    /// Where the changes are posted.
    pub url: String,
    /// In which shape.
    pub format: HookFormat,
    /// Sent with every notification in `X-FB-Hook-SecKey`, when given.
    pub sec_key: Option<String>,
    /// The last version the hook acknowledged: it receives the changes after it.
    pub last_version: u64,
    /// Failed attempts in a row (ABRA Flexi's penalty).
    pub penalty: u32,
    /// Not tried before this moment (UTC); a claim moves it a lease ahead.
    pub next_attempt: NaiveDateTime,
    /// Why delivery stopped, once the hook failed too often; `None` while it is active.
    pub paused: Option<String>,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
    /// When it was registered (UTC).
    pub created_at: NaiveDateTime,
}

/// A registration as a tenant asks for it.
#[derive(Debug, Clone)]
pub struct NewHook {
    /// Where the changes are posted.
    pub url: String,
    /// In which shape.
    pub format: HookFormat,
    /// Start after this version; the current global version when `None`.
    pub last_version: Option<u64>,
    /// Sent with every notification.
    pub sec_key: Option<String>,
}

/// The change hooks of every tenant.
#[derive(Debug, Clone, Copy)]
pub struct Hooks<'a> {
    store: &'a Store,
}

impl Store {
    /// The change hooks of every tenant.
    pub fn hooks(&self) -> Hooks<'_> {
        Hooks { store: self }
    }
}

impl Hooks<'_> {
    /// Registers a hook. The change feed must be on, and a `last_version` given must lie
    /// between 0 and the tenant's global version.
    pub fn register(&self, tenant: &str, new: NewHook) -> Result<Hook> {
        self.store.check_tenant(tenant)?;
        let moment = now();
        self.store.write(|txn| {
            let state = txn.lock_tenant(tenant)?;
            if !self.store.changes_recording(&state, tenant) {
                return Err(Error::ChangesDisabled);
            }
            let last_version = match new.last_version {
                Some(v) if v > state.version => {
                    return Err(Error::BadHook(format!(
                        "lastVersion {v} is ahead of the global version {}.",
                        state.version
                    )));
                }
                Some(v) => v,
                None => state.version,
            };
            let mut hook = Hook {
                id: 0,
                tenant: tenant.to_string(),
                url: new.url.clone(),
                format: new.format,
                sec_key: new.sec_key.clone(),
                last_version,
                penalty: 0,
                next_attempt: moment,
                paused: None,
                last_error: None,
                created_at: moment,
            };
            hook.id = txn.insert_hook(&hook)?;
            Ok(hook)
        })
    }

    /// A tenant's hooks, by id.
    pub fn list(&self, tenant: &str) -> Result<Vec<Hook>> {
        self.store.check_tenant(tenant)?;
        self.store.engine.read()?.hooks(Some(tenant))
    }

    /// Every tenant's hooks, by id: what a copy of the deployment moves.
    pub fn all(&self) -> Result<Vec<Hook>> {
        self.store.engine.read()?.hooks(None)
    }

    /// Removes a hook; [`Error::NotFound`] when the tenant has none of that id.
    pub fn remove(&self, tenant: &str, id: u64) -> Result<()> {
        self.store.check_tenant(tenant)?;
        self.store.write(|txn| {
            if txn.remove_hook(tenant, id)? {
                Ok(())
            } else {
                Err(Error::NotFound)
            }
        })
    }

    /// Clears a hook's penalty and pause, and makes it due now.
    pub fn retry(&self, tenant: &str, id: u64) -> Result<Hook> {
        self.store.check_tenant(tenant)?;
        let moment = now();
        self.store.write(|txn| {
            let mut hook = txn.lock_hook(tenant, id)?.ok_or(Error::NotFound)?;
            hook.penalty = 0;
            hook.paused = None;
            hook.next_attempt = moment;
            txn.put_hook(&hook)?;
            Ok(hook)
        })
    }

    /// Claims the hooks due at `moment` that have changes to send, at most `per_tenant` of
    /// each tenant and `limit` in all: each is not due again before `moment` plus
    /// [`Store::lease`], so no other host delivers it meanwhile.
    pub fn claim_due(
        &self,
        moment: NaiveDateTime,
        per_tenant: usize,
        limit: usize,
    ) -> Result<Vec<Hook>> {
        let held_until = moment + chrono::Duration::from_std(self.store.lease).unwrap_or_default();
        self.store.write(|txn| {
            let mut versions = std::collections::HashMap::new();
            let mut taken = std::collections::HashMap::new();
            let mut claimed = Vec::new();
            for mut hook in txn.due_hooks(moment)? {
                let version = match versions.get(&hook.tenant) {
                    Some(v) => *v,
                    None => {
                        let v = txn.tenant_state(&hook.tenant)?.version;
                        versions.insert(hook.tenant.clone(), v);
                        v
                    }
                };
                let of_tenant: &mut usize = taken.entry(hook.tenant.clone()).or_default();
                if version <= hook.last_version || *of_tenant >= per_tenant {
                    continue;
                }
                *of_tenant += 1;
                hook.next_attempt = held_until;
                txn.put_hook(&hook)?;
                claimed.push(hook);
                if claimed.len() >= limit {
                    break;
                }
            }
            Ok(claimed)
        })
    }

    /// Records a delivery the hook acknowledged: it has seen `version`, and is due again at
    /// once, for whatever committed after it. A hook removed meanwhile stays removed.
    pub fn delivered(&self, hook: &Hook, version: u64) -> Result<()> {
        let moment = now();
        self.store.write(|txn| {
            let Some(mut stored) = txn.lock_hook(&hook.tenant, hook.id)? else {
                return Ok(());
            };
            stored.last_version = stored.last_version.max(version);
            stored.penalty = 0;
            stored.last_error = None;
            stored.next_attempt = moment;
            txn.put_hook(&stored)
        })
    }

    /// Records a failed attempt: tried again from `retry_at`, or paused with `why` when
    /// `retry_at` is `None`.
    pub fn failed(&self, hook: &Hook, why: &str, retry_at: Option<NaiveDateTime>) -> Result<()> {
        self.store.write(|txn| {
            let Some(mut stored) = txn.lock_hook(&hook.tenant, hook.id)? else {
                return Ok(());
            };
            stored.penalty += 1;
            stored.last_error = Some(why.to_string());
            match retry_at {
                Some(at) => stored.next_attempt = at,
                None => {
                    stored.paused = Some(format!(
                        "paused after {} failed attempts in a row; the last: {why}",
                        stored.penalty
                    ))
                }
            }
            txn.put_hook(&stored)
        })
    }
}
