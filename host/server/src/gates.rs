//! Per-tenant caps on work that holds something while a client takes its time: responses
//! streaming to a slow reader, long-polls, plugin calls. A tenant past its cap is refused at
//! once (429), so its stalled connections can never pile up into everybody's wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a refused client is told to wait before it tries again.
pub const RETRY_AFTER_SECS: u64 = 1;

/// At most `limit` of one kind of work per tenant, and optionally at most so many in all.
#[derive(Debug)]
pub struct TenantGate {
    limit: usize,
    what: &'static str,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
    overall: Option<Arc<Semaphore>>,
}

/// A place behind a [`TenantGate`]; the place frees when this is dropped.
#[derive(Debug)]
pub struct Pass {
    _tenant: OwnedSemaphorePermit,
    _overall: Option<OwnedSemaphorePermit>,
}

/// A request refused before it did anything: its tenant, user or address is at a limit (429),
/// the database cannot be reached (503), or its credentials were refused (401, from
/// [`crate::auth::AuthFailure`]). Every surface turns it into its own error shape once, with
/// `Retry-After` when there is a time to try again.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// 401, 429 or 503.
    pub status: axum::http::StatusCode,
    /// Which limit, what is unavailable or why the credentials were refused, in words for the
    /// client.
    pub message: String,
    /// Seconds to wait before trying again, for a limit or an outage.
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// A limit the caller is at.
    pub fn limit(message: String) -> Self {
        Refusal {
            status: axum::http::StatusCode::TOO_MANY_REQUESTS,
            message,
            retry_after: Some(RETRY_AFTER_SECS),
        }
    }

    /// The database, unreachable for now: nothing was written.
    pub fn database(why: &str) -> Self {
        tracing::warn!(error = %why, "the database is unavailable");
        Refusal {
            status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
            message: "The database is unavailable for now; nothing was written. Try again shortly."
                .into(),
            retry_after: Some(RETRY_AFTER_SECS),
        }
    }
}

impl TenantGate {
    /// A gate letting `limit` of `what` (plural, for messages) through per tenant.
    pub fn new(limit: usize, what: &'static str) -> Self {
        TenantGate {
            limit: limit.max(1),
            what,
            tenants: Mutex::default(),
            overall: None,
        }
    }

    /// The same gate letting at most `overall` through for all tenants together: for work
    /// that holds a thread, so that no number of tenants can fill the blocking pool.
    pub fn at_most(mut self, overall: usize) -> Self {
        self.overall = Some(Arc::new(Semaphore::new(overall.max(1))));
        self
    }

    /// A place for `tenant`, or why there is none.
    pub fn enter(&self, tenant: &str) -> Result<Pass, Refusal> {
        let semaphore = self
            .tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.limit)))
            .clone();
        let own = semaphore.try_acquire_owned().map_err(|_| {
            Refusal::limit(format!(
                "the tenant has {} {} open, as many as it may; try again when one has finished",
                self.limit, self.what
            ))
        })?;
        let overall = self
            .overall
            .as_ref()
            .map(|all| all.clone().try_acquire_owned())
            .transpose()
            .map_err(|_| {
                Refusal::limit(format!(
                    "the server has as many {} open as it may; try again shortly",
                    self.what
                ))
            })?;
        Ok(Pass {
            _tenant: own,
            _overall: overall,
        })
    }
}

/// The gates of a server.
#[derive(Debug)]
pub struct Gates {
    /// Responses streaming at once.
    pub streams: TenantGate,
    /// Change-feed long-polls.
    pub long_polls: TenantGate,
    /// Plugin calls made for a tenant's requests.
    pub plugin_calls: TenantGate,
}
