//! Uploaded plugin components in redb's tables: a description under (owner, name) and the
//! bytes apart, so a registry's sync lists every component without reading one.

use super::{ALL, Reader, Redb, RedbTxn, Tbl, Writer, records_of, records_where};
use crate::Result;
use crate::components::{Scope, StoredComponent};
use crate::engine::{ComponentsTxn, ComponentsView};
use crate::keys::Key;
use crate::records::json;

fn component_key(scope: &Scope, name: &str) -> Vec<u8> {
    Key::new().str(scope.owner()).str(name).into_vec()
}

impl<T: Reader, W> ComponentsView for Redb<T, W> {
    fn components(&self, scope: Option<&Scope>) -> Result<Vec<StoredComponent>> {
        let Some(scope) = scope else {
            return records_where(&self.tables, Tbl::Components, ALL, |_| true);
        };
        records_of(&self.tables, Tbl::Components, scope.owner())
    }

    fn component_bytes(&self, scope: &Scope, name: &str) -> Result<Option<Vec<u8>>> {
        self.tables
            .get(Tbl::ComponentBytes, &component_key(scope, name))
    }
}

impl ComponentsTxn for RedbTxn<'_, '_> {
    fn put_component(&mut self, component: &StoredComponent, bytes: &[u8]) -> Result<()> {
        let key = component_key(&component.scope, &component.name);
        self.tables.put(Tbl::Components, &key, &json(component))?;
        self.tables.put(Tbl::ComponentBytes, &key, bytes)
    }

    fn remove_component(&mut self, scope: &Scope, name: &str) -> Result<bool> {
        let key = component_key(scope, name);
        self.tables.remove(Tbl::ComponentBytes, &key)?;
        Ok(self.tables.remove(Tbl::Components, &key)?.is_some())
    }
}
