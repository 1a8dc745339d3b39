//! `bulkhost copy`: moves a deployment between an embedded data directory and a PostgreSQL
//! database, either way, through the core's engine-neutral copy.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bulkhost_core::engine::Engine;
use bulkhost_core::{Copied, Schemas, Tenants};

use crate::serve::{Database, open_embedded, open_shared};
use crate::state::blocking;

/// Where a deployment's state is: a `postgres://` URL or a data directory.
fn is_database(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// Opens the engine at `location`. A source data directory must hold a database; a target
/// database is migrated first.
async fn open(location: &str, schemas: &Schemas, target: bool) -> anyhow::Result<Arc<dyn Engine>> {
    if is_database(location) {
        let database = Database {
            options: bulkhost_postgres::Options::new(location),
            migrate: target,
        };
        return open_shared(&database).await;
    }
    let dir = Path::new(location);
    anyhow::ensure!(
        target || dir.join("bulkhost.redb").is_file(),
        "{} holds no bulkhost database",
        dir.display()
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    open_embedded(dir, schemas).await
}

/// Copies everything of `tenants` from `from` into the empty `to`.
pub async fn copy(
    from: &str,
    to: &str,
    schemas: Schemas,
    tenants: Tenants,
) -> anyhow::Result<Copied> {
    anyhow::ensure!(from != to, "the source and the target are the same");
    let source = open(from, &schemas, false).await?;
    let target = open(to, &schemas, true).await?;
    blocking(move || bulkhost_core::copy_deployment(&*source, &*target, &schemas, &tenants))
        .await
        .context("copying")
}
