//! Uploaded plugin components in PostgreSQL's table, the bytes beside their description.

use bulkhost_core::engine::{ComponentsTxn, ComponentsView};
use bulkhost_core::{Result, Scope, StoredComponent};
use tokio_postgres::Row;

use crate::session::Session;

fn component_of(row: &Row) -> StoredComponent {
    StoredComponent {
        scope: Scope::of_owner(row.get(0)),
        name: row.get(1),
        sha256: row.get(2),
        len: row.get::<_, i64>(3) as u64,
    }
}

impl ComponentsView for Session {
    fn components(&self, scope: Option<&Scope>) -> Result<Vec<StoredComponent>> {
        let rows = match scope {
            Some(scope) => self.query(
                "SELECT owner, name, sha256, len FROM components WHERE owner = $1 ORDER BY name",
                &[&scope.owner()],
            )?,
            None => self.query(
                "SELECT owner, name, sha256, len FROM components ORDER BY owner, name",
                &[],
            )?,
        };
        Ok(rows.iter().map(component_of).collect())
    }

    fn component_bytes(&self, scope: &Scope, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .query_opt(
                "SELECT bytes FROM components WHERE owner = $1 AND name = $2",
                &[&scope.owner(), &name],
            )?
            .map(|row| row.get(0)))
    }
}

impl ComponentsTxn for Session {
    fn put_component(&mut self, component: &StoredComponent, bytes: &[u8]) -> Result<()> {
        self.execute(
            "INSERT INTO components (owner, name, sha256, len, bytes) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (owner, name) DO UPDATE
             SET sha256 = EXCLUDED.sha256, len = EXCLUDED.len, bytes = EXCLUDED.bytes",
            &[
                &component.scope.owner(),
                &component.name,
                &component.sha256,
                &(component.len as i64),
                &bytes,
            ],
        )
        .map(drop)
    }

    fn remove_component(&mut self, scope: &Scope, name: &str) -> Result<bool> {
        Ok(self.execute(
            "DELETE FROM components WHERE owner = $1 AND name = $2",
            &[&scope.owner(), &name],
        )? > 0)
    }
}
