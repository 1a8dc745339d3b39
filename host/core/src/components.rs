//! Uploaded plugin components, kept in the storage engine so that every host of a deployment
//! serves the same plugins: a component uploaded through one host is found by the others'
//! plugin registries at their next sync, and its removal likewise.
//!
//! A tenant's components are bounded by its `plugins` and `plugin_mib` quotas, checked in the
//! write's own transaction under the tenant's lock, so two hosts taking uploads at once cannot
//! pass them together. The operator's uploads have no quota.

use serde::{Deserialize, Serialize};

use crate::engine::Txn;
use crate::{Error, Result, Store};

/// Who a plugin serves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Every tenant (the operator's plugins).
    Global,
    /// One tenant's own extensions.
    Tenant(String),
}

impl Scope {
    /// The scope as a stored owner: the tenant's name, or the empty string, which no tenant
    /// is called, for the operator.
    pub fn owner(&self) -> &str {
        match self {
            Scope::Global => "",
            Scope::Tenant(tenant) => tenant,
        }
    }

    /// The scope a stored owner names.
    pub fn of_owner(owner: &str) -> Self {
        if owner.is_empty() {
            Scope::Global
        } else {
            Scope::Tenant(owner.to_string())
        }
    }
}

/// A stored component, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredComponent {
    /// Who it serves.
    pub scope: Scope,
    /// Its plugin name, unique in its scope.
    pub name: String,
    /// The SHA-256 of its bytes, hex: what a registry compares to know it is unchanged.
    pub sha256: String,
    /// Its size in bytes.
    pub len: u64,
}

/// The uploaded plugin components of every host.
#[derive(Debug, Clone, Copy)]
pub struct Components<'a> {
    store: &'a Store,
}

impl Store {
    /// Uploaded plugin components, shared by every host.
    pub fn components(&self) -> Components<'_> {
        Components { store: self }
    }
}

impl Components<'_> {
    /// Every stored component, without its bytes.
    pub fn list(&self) -> Result<Vec<StoredComponent>> {
        self.store.engine.read()?.components(None)
    }

    /// The bytes of a stored component.
    pub fn bytes(&self, scope: &Scope, name: &str) -> Result<Option<Vec<u8>>> {
        self.store.engine.read()?.component_bytes(scope, name)
    }

    /// Stores `bytes` as `component`, replacing a component of its name. A tenant's upload
    /// that would take it past its plugin quotas fails with [`Error::QuotaExceeded`] and
    /// stores nothing.
    pub fn put(&self, component: &StoredComponent, bytes: &[u8]) -> Result<()> {
        self.store.write(|txn| {
            if let Scope::Tenant(tenant) = &component.scope {
                txn.lock_tenant(tenant)?;
                self.check_quota(txn, tenant, component)?;
            }
            txn.put_component(component, bytes)
        })
    }

    /// Removes a stored component; answers whether there was one.
    pub fn remove(&self, scope: &Scope, name: &str) -> Result<bool> {
        self.store.write(|txn| txn.remove_component(scope, name))
    }

    /// Fails when `component` does not fit beside the tenant's other components.
    fn check_quota(
        &self,
        txn: &mut dyn Txn,
        tenant: &str,
        component: &StoredComponent,
    ) -> Result<()> {
        let quotas = self.store.tenants.quotas(tenant);
        let others: Vec<StoredComponent> = txn
            .components(Some(&component.scope))?
            .into_iter()
            .filter(|c| c.name != component.name)
            .collect();
        let bytes = others.iter().map(|c| c.len).sum::<u64>() + component.len;
        if others.len() as u64 >= quotas.plugins
            || bytes > quotas.plugin_mib.saturating_mul(1 << 20)
        {
            return Err(Error::QuotaExceeded(format!(
                "the tenant's plugins may number {} and take {} MiB together; this one does not fit",
                quotas.plugins, quotas.plugin_mib
            )));
        }
        Ok(())
    }
}
