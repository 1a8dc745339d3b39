//! Per-tenant quotas: how much of a deployment one tenant may take, so that no tenant can fill
//! the disk or the queues that every other tenant shares.
//!
//! What a tenant stores is counted as it is written: each write adds (or takes back) its bytes
//! on the tenant's usage counter in the same transaction, and a write that would take a counter
//! past its quota fails with [`Error::QuotaExceeded`] before anything is committed. The counters
//! are the values' stored sizes, so they say what the tenant costs the disk, not what it sent.

use serde::{Deserialize, Serialize};

use crate::engine::DocumentsTxn;
use crate::{Error, Result};

/// The limits of one tenant. `[quotas]` sets them for every tenant; a tenant's own
/// `[tenants.quotas]` replaces any of them for that tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// MiB of stored documents.
    pub document_mib: u64,
    /// MiB of files attached to documents.
    pub attachment_mib: u64,
    /// MiB of stored results: export data sets and batch responses.
    pub result_mib: u64,
    /// Export requests queued or generating at once.
    pub unfinished_exports: u64,
    /// The tenant's own plugins.
    pub plugins: u64,
    /// MiB of the tenant's own plugins together.
    pub plugin_mib: u64,
    /// Live API tokens per user.
    pub tokens_per_user: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            document_mib: 10 << 10,
            attachment_mib: 10 << 10,
            result_mib: 20 << 10,
            unfinished_exports: 16,
            plugins: 16,
            plugin_mib: 256,
            tokens_per_user: 1000,
        }
    }
}

/// A tenant's own quotas, each replacing the deployment's where given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaOverrides {
    /// See [`Quotas::document_mib`].
    pub document_mib: Option<u64>,
    /// See [`Quotas::attachment_mib`].
    pub attachment_mib: Option<u64>,
    /// See [`Quotas::result_mib`].
    pub result_mib: Option<u64>,
    /// See [`Quotas::unfinished_exports`].
    pub unfinished_exports: Option<u64>,
    /// See [`Quotas::plugins`].
    pub plugins: Option<u64>,
    /// See [`Quotas::plugin_mib`].
    pub plugin_mib: Option<u64>,
    /// See [`Quotas::tokens_per_user`].
    pub tokens_per_user: Option<u64>,
}

impl QuotaOverrides {
    /// `base` with these overrides applied.
    pub fn over(&self, base: Quotas) -> Quotas {
        Quotas {
            document_mib: self.document_mib.unwrap_or(base.document_mib),
            attachment_mib: self.attachment_mib.unwrap_or(base.attachment_mib),
            result_mib: self.result_mib.unwrap_or(base.result_mib),
            unfinished_exports: self.unfinished_exports.unwrap_or(base.unfinished_exports),
            plugins: self.plugins.unwrap_or(base.plugins),
            plugin_mib: self.plugin_mib.unwrap_or(base.plugin_mib),
            tokens_per_user: self.tokens_per_user.unwrap_or(base.tokens_per_user),
        }
    }
}

/// What a tenant's usage counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Usage {
    /// Bytes of stored documents.
    Documents,
    /// Bytes of attached files.
    Attachments,
    /// Bytes of export results and batch responses.
    Results,
    /// Export requests not finished.
    UnfinishedExports,
}

impl Usage {
    /// The counter's name, as engines store it.
    pub fn name(self) -> &'static str {
        match self {
            Usage::Documents => "documents",
            Usage::Attachments => "attachments",
            Usage::Results => "results",
            Usage::UnfinishedExports => "unfinished-exports",
        }
    }

    /// The tenant's limit for this counter, in its own unit.
    pub(crate) fn limit(self, quotas: &Quotas) -> u64 {
        let mib = |m: u64| m.saturating_mul(1 << 20);
        match self {
            Usage::Documents => mib(quotas.document_mib),
            Usage::Attachments => mib(quotas.attachment_mib),
            Usage::Results => mib(quotas.result_mib),
            Usage::UnfinishedExports => quotas.unfinished_exports,
        }
    }

    /// The quota in words, for the error a client sees.
    fn describe(self, quotas: &Quotas) -> String {
        match self {
            Usage::Documents => format!("{} MiB of stored documents", quotas.document_mib),
            Usage::Attachments => format!("{} MiB of attached files", quotas.attachment_mib),
            Usage::Results => format!(
                "{} MiB of stored export results and batch responses",
                quotas.result_mib
            ),
            Usage::UnfinishedExports => format!(
                "{} export requests queued or generating at once",
                quotas.unfinished_exports
            ),
        }
    }
}

/// Adds `delta` to the tenant's `usage`, inside the write that causes it. Growth that would
/// pass the tenant's quota fails the write with [`Error::QuotaExceeded`], and the transaction
/// rolls the addition back with everything else; shrinking never fails.
pub(crate) fn charge(
    txn: &mut (impl DocumentsTxn + ?Sized),
    tenant: &str,
    usage: Usage,
    delta: i64,
    quotas: &Quotas,
) -> Result<()> {
    if delta == 0 {
        return Ok(());
    }
    let next = txn.add_usage(tenant, usage, delta)?;
    if delta > 0 && next > usage.limit(quotas) {
        return Err(Error::QuotaExceeded(format!(
            "this would pass the tenant's quota of {}",
            usage.describe(quotas)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenants_overrides_replace_only_what_they_name() {
        let base = Quotas::default();
        let own = QuotaOverrides {
            document_mib: Some(1),
            ..QuotaOverrides::default()
        }
        .over(base);
        assert_eq!(own.document_mib, 1);
        assert_eq!(own.attachment_mib, base.attachment_mib);
    }
}
